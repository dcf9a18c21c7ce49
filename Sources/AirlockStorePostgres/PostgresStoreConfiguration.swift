import AirlockCore
import NIOSSL
import PostgresNIO

/// Where the PostgreSQL store is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, or
/// `postgres://USER@/DATABASE?host=/run/postgresql` for a Unix socket (docs/gate.md).
/// `?sslmode=verify-full[&sslrootcert=CA.pem]`: TLS, the server's certificate verified
/// against the system's roots or CA.pem, and its name against HOST. A host other than
/// loopback needs it, or an explicit `sslmode=disable` (a private network): the store holds
/// token hashes and every decision, and is not reached in clear text by default.
public struct PostgresStoreConfiguration: Sendable {
    public var user: String
    public var password: String?
    public var host: String?
    public var port: Int
    public var socketDirectory: String?
    public var database: String
    /// TLS with full verification (sslmode=verify-full).
    public var verifyTLS = false
    /// PEM roots for the server's certificate (sslrootcert=); nil: the system's.
    public var rootCertificate: String?

    /// For messages: never the password.
    public var display: String {
        "postgres://\(user)@\(host ?? "")\(host == nil ? "" : ":\(port)")/\(database)\(socketDirectory.map { "?host=\($0)" } ?? "")"
    }

    var connection: PostgresConnection.Configuration {
        if let socketDirectory {
            return .init(unixSocketPath: socketDirectory + "/.s.PGSQL.\(port)", username: user, password: password, database: database)
        }
        return .init(host: host ?? "127.0.0.1", port: port, username: user, password: password, database: database, tls: tls)
    }

    /// Made when connecting: reading the root file can fail, with a message.
    var tls: PostgresConnection.Configuration.TLS {
        guard verifyTLS else { return .disable }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        if let rootCertificate { configuration.trustRoots = .file(rootCertificate) }
        guard let context = try? NIOSSLContext(configuration: configuration) else { return .disable }
        return .require(context)
    }

    /// Checks what `tls` cannot say: that the root file reads.
    func checkTLS() throws(AirlockError) {
        guard verifyTLS, let rootCertificate else { return }
        do {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .file(rootCertificate)
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw AirlockError("cannot use sslrootcert=\(rootCertificate): \(error)", hint: "a PEM file of the CA that signed the server's certificate")
        }
    }

    public init(parsing url: String) throws(AirlockError) {
        let usage = "expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        var rest: Substring
        if url.hasPrefix("postgres://") { rest = url.dropFirst(11) }
        else if url.hasPrefix("postgresql://") { rest = url.dropFirst(13) }
        else { throw AirlockError("the store URL does not start with postgres://", hint: usage) }
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let at = rest.lastIndex(of: "@") else { throw AirlockError("the store URL names no user", hint: usage) }
        let credentials = rest[..<at]
        let location = rest[rest.index(after: at)...]
        let userAndPassword = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        user = Self.percentDecoded(userAndPassword[0])
        password = userAndPassword.count > 1 ? Self.percentDecoded(userAndPassword[1]) : nil
        guard let slash = location.firstIndex(of: "/") else { throw AirlockError("the store URL names no database", hint: usage) }
        database = Self.percentDecoded(location[location.index(after: slash)...])
        let hostPort = location[..<slash]
        port = 5432
        host = nil
        socketDirectory = nil
        var sslDisabled = false
        if let colon = hostPort.lastIndex(of: ":") {
            guard let number = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(number) else {
                throw AirlockError("the store URL's port is not a number from 1 to 65535", hint: usage)
            }
            port = number
            host = String(hostPort[..<colon])
        } else if !hostPort.isEmpty {
            host = String(hostPort)
        }
        for item in query.split(separator: "&") {
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            switch pair.first {
            case "host"? where pair.count == 2 && pair[1].hasPrefix("/"): socketDirectory = Self.percentDecoded(Substring(pair[1]))
            case "port"? where pair.count == 2:
                guard let number = Int(pair[1]), (1...65535).contains(number) else { throw AirlockError("the store URL's port is not a number", hint: usage) }
                port = number
            case "sslmode"? where pair.count == 2 && pair[1] == "disable": sslDisabled = true
            case "sslmode"? where pair.count == 2 && pair[1] == "verify-full": verifyTLS = true
            case "sslmode"? where pair.count == 2:
                throw AirlockError("sslmode=\(pair[1]) is not offered: use sslmode=verify-full (TLS, certificate and name checked) or sslmode=disable",
                                   hint: "require and verify-ca would accept a server whose name was not checked")
            case "sslrootcert"? where pair.count == 2 && Self.percentDecoded(Substring(pair[1])).hasPrefix("/"):
                rootCertificate = Self.percentDecoded(Substring(pair[1]))
            default: throw AirlockError("the store URL's parameter '\(item)' is not supported (host=/socket/dir, port, sslmode=verify-full|disable, sslrootcert=/path)", hint: usage)
            }
        }
        guard rootCertificate == nil || verifyTLS else {
            throw AirlockError("sslrootcert= is for sslmode=verify-full", hint: usage)
        }
        let loopback = host == nil || host == "127.0.0.1" || host == "::1" || host == "localhost"
        guard loopback || verifyTLS || sslDisabled || socketDirectory != nil else {
            throw AirlockError("the store at \(host ?? "") would be reached in clear text",
                               hint: "add ?sslmode=verify-full (and &sslrootcert=/path/ca.pem for a private CA), or ?sslmode=disable on a private network")
        }
        guard !user.isEmpty, !database.isEmpty else { throw AirlockError("the store URL needs a user and a database", hint: usage) }
        guard host != nil || socketDirectory != nil else { throw AirlockError("the store URL names no host (or ?host=/socket/dir)", hint: usage) }
    }

    /// A schema or table name Airlock puts into SQL text: lowercase letters, digits and `_`,
    /// not starting with a digit, at most 63 bytes (PostgreSQL's limit).
    public static func isIdentifier(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first), name.utf8.count <= 63 else { return false }
        return name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
    }

    static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == 0x25, let high = iterator.next(), let low = iterator.next(),
               let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
