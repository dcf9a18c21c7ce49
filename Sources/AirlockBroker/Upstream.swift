import AirlockCore
import AirlockPolicy
import NIOSSL

/// Where a session's AWS requests really go: AWS itself (regional endpoints), or one
/// endpoint given with `--aws-endpoint` (moto, LocalStack). A proposal records its session's
/// upstream; its execution goes there and nowhere else.
public enum AWSUpstream: Sendable, Equatable, CustomStringConvertible {
    case aws
    case endpoint(scheme: String, host: String, port: Int, basePath: String)

    public init(parsing text: String) throws(AirlockError) {
        if text == "aws" {
            self = .aws
            return
        }
        let scheme: String
        var rest: Substring
        if text.hasPrefix("http://") {
            scheme = "http"
            rest = text.dropFirst(7)
        } else if text.hasPrefix("https://") {
            scheme = "https"
            rest = text.dropFirst(8)
        } else {
            throw AirlockError("--aws-endpoint \(text) is not an http:// or https:// URL")
        }
        var basePath = ""
        if let slash = rest.firstIndex(of: "/") {
            basePath = String(rest[slash...])
            rest = rest[..<slash]
            while basePath.hasSuffix("/") { basePath.removeLast() }
        }
        var host = String(rest)
        var port = scheme == "https" ? 443 : 80
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let number = Int(rest[rest.index(after: colon)...]), (1...65535).contains(number) else {
                throw AirlockError("--aws-endpoint \(text): bad port")
            }
            port = number
            host = String(rest[..<colon])
        }
        guard !host.isEmpty, !host.contains("@") else { throw AirlockError("--aws-endpoint \(text): no host") }
        self = .endpoint(scheme: scheme, host: host, port: port, basePath: basePath)
    }

    public var description: String {
        switch self {
        case .aws: return "aws"
        case let .endpoint(scheme, host, port, basePath):
            let defaultPort = scheme == "https" ? 443 : 80
            return "\(scheme)://\(host)\(port == defaultPort ? "" : ":\(port)")\(basePath)"
        }
    }

    /// Services whose endpoint has no region (AWS's global endpoints).
    static let globalHosts = [
        "iam": "iam.amazonaws.com", "cloudfront": "cloudfront.amazonaws.com", "route53": "route53.amazonaws.com",
        "organizations": "organizations.us-east-1.amazonaws.com", "globalaccelerator": "globalaccelerator.us-west-2.amazonaws.com",
        "shield": "shield.us-east-1.amazonaws.com", "waf": "waf.amazonaws.com", "networkmanager": "networkmanager.us-west-2.amazonaws.com",
    ]

    /// (scheme, host, port, path prefix) for a service in a region.
    func target(service: AWSService, region: String) -> (scheme: String, host: String, port: Int, basePath: String) {
        switch self {
        case let .endpoint(scheme, host, port, basePath):
            return (scheme, host, port, basePath)
        case .aws:
            let host = Self.globalHosts[service.name]
                ?? "\(service.endpointPrefix).\(region).amazonaws.com\(region.hasPrefix("cn-") ? ".cn" : "")"
            return ("https", host, 443, "")
        }
    }
}

/// A request ready to send upstream: signed, Host and Content-Length set.
public struct OutboundRequest: Sendable {
    public var scheme: String
    public var host: String
    public var port: Int
    public var method: String
    /// Path and query, encoded.
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// A TLS context of its own (a Kubernetes cluster's CA and client certificate) instead
    /// of the system's roots, and the name to verify when it is not `host`.
    public var trust: NIOSSLContext? = nil
    public var serverName: String? = nil
    /// Who the request speaks as upstream (an AWS access key, a Kubernetes context's user and
    /// credential, a GitHub token), for connection reuse (docs/design.md §4.5): a forwarded request may go on a kept-alive connection of the same endpoint
    /// and identity, never of another. nil: a connection of its own, closed after.
    public var identity: String? = nil
    /// Sending it twice changes nothing (a read): it may go on a kept connection and be sent
    /// again on a new one when the kept one turns out closed before any answer. A change
    /// always gets a new connection (which may be kept after).
    public var retrySafe = false

    public init(scheme: String, host: String, port: Int, method: String, target: String, headers: [(name: String, value: String)],
                body: [UInt8], trust: NIOSSLContext? = nil, serverName: String? = nil) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.trust = trust
        self.serverName = serverName
    }

    var hostHeader: String {
        let defaultPort = scheme == "https" ? 443 : 80
        return port == defaultPort ? host : "\(host):\(port)"
    }
}
