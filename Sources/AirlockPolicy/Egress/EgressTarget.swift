/// Where an agent asks the egress proxy to connect: from a CONNECT request's authority
/// (`host:port`) or a plain HTTP request's absolute URI. Parsed strictly: a request the proxy
/// cannot read exactly is refused, not guessed at.
public struct EgressTarget: Sendable, Equatable, CustomStringConvertible {
    /// Lowercased, without a trailing dot; an IPv6 literal without brackets.
    public var host: String
    public var port: Int
    /// For plain HTTP: the origin-form path and query to send upstream.
    public var path: String?

    public var isIPLiteral: Bool { IPAddress(host) != nil }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        public var description: String {
            switch self { case .malformed(let why): return why }
        }
    }

    /// `CONNECT host:port` (the port is required).
    public static func connect(_ authority: String) throws(Failure) -> EgressTarget {
        let (host, port) = try splitAuthority(authority, defaultPort: nil)
        return EgressTarget(host: host, port: port, path: nil)
    }

    /// `GET http://host[:port]/path HTTP/1.1` (only http: https goes through CONNECT).
    public static func absolute(_ uri: String) throws(Failure) -> EgressTarget {
        guard uri.lowercased().hasPrefix("http://") else {
            if uri.hasPrefix("/") { throw .malformed("this is a proxy: send absolute URIs (http://host/path) or CONNECT") }
            throw .malformed("only http:// URIs are forwarded; https goes through CONNECT")
        }
        let rest = uri.dropFirst(7)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        guard !authority.contains("@") else { throw .malformed("credentials in proxy URIs are refused") }
        let (host, port) = try splitAuthority(authority, defaultPort: 80)
        var path = String(rest[authorityEnd...])
        if let fragment = path.firstIndex(of: "#") { path = String(path[..<fragment]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        return EgressTarget(host: host, port: port, path: path)
    }

    public static func splitAuthority(_ authority: String, defaultPort: Int?) throws(Failure) -> (String, Int) {
        guard !authority.isEmpty, authority.count <= 300,
              authority.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 32 && $0.value < 127 })
        else { throw .malformed("bad host '\(authority.prefix(80))'") }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .malformed("unclosed [ in '\(authority)'") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw .malformed("bad authority '\(authority)'") }
            guard IPAddress(String(host)) != nil else { throw .malformed("'\(host)' is not an IPv6 address") }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw .malformed("bad authority '\(authority)'") }
            host = parts[0]
            portText = parts.count == 2 ? parts[1] : nil
        }
        var port: Int
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value), portText.first != "+" else {
                throw .malformed("bad port in '\(authority)'")
            }
            port = value
        } else if let defaultPort {
            port = defaultPort
        } else {
            throw .malformed("CONNECT needs host:port, got '\(authority)'")
        }
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        guard !name.isEmpty, name.count <= 253 else { throw .malformed("bad host '\(host)'") }
        if IPAddress(name) == nil {
            for label in name.split(separator: ".", omittingEmptySubsequences: false) {
                guard !label.isEmpty, label.count <= 63, label.first != "-", label.last != "-",
                      label.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" })
                else { throw .malformed("'\(host)' is not a valid host name") }
            }
        }
        return (name, port)
    }
}
