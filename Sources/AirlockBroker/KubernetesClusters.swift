import AirlockCore
import AirlockPolicy
import Glibc
import NIOSSL

/// The human's kubeconfig as the broker uses it, outside the sandbox (docs/kubernetes.md, "The
/// endpoint"): each context's server, TLS trust and credentials (a token, a token file, a
/// client certificate, or an exec plugin run here, never in the sandbox), resolved on first
/// use and kept while they are valid.
public final class KubernetesClusters: @unchecked Sendable {
    public let config: Kubeconfig
    /// The files it was read from.
    public let sources: [String]
    let environment: [String: String]
    private var mutex = pthread_mutex_t()
    private var resolved: [String: Resolved] = [:]

    /// What a request to one context needs: where to send it, how to verify the server, and
    /// the Authorization header (none for client certificates).
    public struct Target: Sendable {
        public var server: Kubeconfig.Server
        public var trust: NIOSSLContext?
        public var serverName: String?
        public private(set) var authorization: String?
        var expires: Int?
        /// Who requests of this context speak as, for connection reuse (docs/design.md §4.5):
        /// the context, this resolution of its credentials (new ones, from an exec plugin say,
        /// are a new identity; a client certificate is the resolution's), and a digest of the
        /// token as sent (a rotated token file is a new identity). Made when the token is.
        private(set) var identity = ""
        var resolution: String

        mutating func setAuthorization(_ value: String?) {
            authorization = value
            identity = resolution + " " + SigV4.hexSHA256(Array((value ?? "").utf8))
        }
        /// Where to connect: the server's host, or the address AIRLOCK_EGRESS_RESOLVE pins it
        /// to (names resolve here as for the egress proxy, docs/egress.md).
        var connectHost: String
    }

    struct Resolved {
        var target: Target
        var tokenFile: String?
    }

    public init(config: Kubeconfig, sources: [String], environment: [String: String]) {
        self.config = config
        self.sources = sources
        self.environment = environment
        pthread_mutex_init(&mutex, nil)
    }

    /// The kubeconfig files kubectl would read: `KUBECONFIG` (a colon-separated list) or
    /// `~/.kube/config`.
    /// (CredentialSources: the same files, and those they name, are masked in the sandbox.)
    public static func paths(environment: [String: String]) -> [String] {
        CredentialSources.kubeconfigFiles(environment, home: environment["HOME"] ?? "/")
    }

    /// The human's clusters; nil when there is no kubeconfig (or it names no context).
    public static func load(environment: [String: String]) throws(AirlockError) -> KubernetesClusters? {
        var configs: [Kubeconfig] = []
        var read: [String] = []
        for path in paths(environment: environment) {
            guard access(path, F_OK) == 0 else { continue }
            let text: String
            do { text = try readTextFile(path, limit: 4 << 20) } catch {
                throw AirlockError("cannot read the kubeconfig \(path): \(error.message)")
            }
            do {
                configs.append(try Kubeconfig.parse(text, base: HostPath.parent(of: path)))
            } catch {
                throw AirlockError("\(path): \(error.message)", hint: "fix the file, or start airlock with KUBECONFIG pointing at one that kubectl reads")
            }
            read.append(path)
        }
        let merged = Kubeconfig.merged(configs)
        guard !merged.contexts.isEmpty else { return nil }
        return KubernetesClusters(config: merged, sources: read, environment: environment)
    }

    public func context(at index: Int) -> Kubeconfig.Context? {
        config.contexts.indices.contains(index) ? config.contexts[index] : nil
    }

    public func context(named name: String) -> Kubeconfig.Context? {
        config.contexts.first { $0.name == name }
    }

    /// The context whose server is `host:port` (an API server the agent reached by CONNECT).
    public func contextIndex(host: String, port: Int) -> Int? {
        config.contexts.firstIndex { context in
            guard let server = Kubeconfig.server(context.cluster.server) else { return false }
            return server.host == host.lowercased() && server.port == port
        }
    }

    /// Where and how to send a request of `context`, credentials included. Exec plugins run
    /// here (outside the sandbox) and their answer is kept until it expires.
    public func target(_ context: Kubeconfig.Context) throws(AirlockError) -> Target {
        if let unsupported = context.user.unsupported {
            throw AirlockError("context \(context.name): \(unsupported)")
        }
        pthread_mutex_lock(&mutex)
        let cached = resolved[context.name]
        pthread_mutex_unlock(&mutex)
        if var cached, cached.target.expires.map({ $0 > Clock.epochSeconds() + 30 }) ?? true {
            if let file = cached.tokenFile {
                // Token files are rotated (projected service account tokens): read each time.
                cached.target.setAuthorization("Bearer " + (try readTextFile(file, limit: 1 << 16)).trimmingWhitespace())
            }
            return cached.target
        }
        let made = try resolve(context)
        pthread_mutex_lock(&mutex)
        resolved[context.name] = made
        pthread_mutex_unlock(&mutex)
        return made.target
    }

    /// The target `target(context)` would return without running or reading anything: nil
    /// when it is not resolved yet, expires within 30 s, or reads a token file.
    func cachedTarget(_ context: Kubeconfig.Context) -> Target? {
        guard context.user.unsupported == nil else { return nil }
        pthread_mutex_lock(&mutex)
        let cached = resolved[context.name]
        pthread_mutex_unlock(&mutex)
        guard let cached, cached.tokenFile == nil, cached.target.expires.map({ $0 > Clock.epochSeconds() + 30 }) ?? true else { return nil }
        return cached.target
    }

    func resolve(_ context: Kubeconfig.Context) throws(AirlockError) -> Resolved {
        guard let server = Kubeconfig.server(context.cluster.server) else {
            throw AirlockError("context \(context.name): the server \(context.cluster.server) is not an http(s) URL")
        }
        var authorization: String?
        var certificate = try bytes(context.user.clientCertificateData, context.user.clientCertificate, "client certificate")
        var key = try bytes(context.user.clientKeyData, context.user.clientKey, "client key")
        var expires: Int?
        var tokenFile: String?
        if let token = context.user.token, !token.isEmpty {
            authorization = "Bearer " + token
        } else if let file = context.user.tokenFile {
            tokenFile = file
            authorization = "Bearer " + (try readTextFile(file, limit: 1 << 16)).trimmingWhitespace()
        } else if let exec = context.user.exec {
            let answer = try runExec(exec, context: context.name)
            if let token = answer.token { authorization = "Bearer " + token }
            if let pem = answer.certificate { certificate = Array(pem.utf8) }
            if let pem = answer.key { key = Array(pem.utf8) }
            expires = answer.expires
        }
        var trust: NIOSSLContext?
        if server.scheme == "https" {
            var tls = TLSConfiguration.makeClientConfiguration()
            do {
                if let ca = try bytes(context.cluster.certificateAuthorityData, context.cluster.certificateAuthority, "certificate authority") {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
                }
                if context.cluster.insecureSkipTLSVerify { tls.certificateVerification = .none }
                if let certificate, let key {
                    tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
                }
                trust = try NIOSSLContext(configuration: tls)
            } catch {
                throw AirlockError("context \(context.name): cannot set up TLS to \(context.cluster.server): \(error)")
            }
        }
        let pinned = EgressResolver(environment: environment).pinnedAddress(server.host)
        var target = Target(server: server, trust: trust, serverName: context.cluster.tlsServerName ?? (pinned == nil ? nil : server.host),
                            authorization: nil, expires: expires, resolution: "kubernetes \(context.name) \(RandomID.make(16))",
                            connectHost: pinned?.description ?? server.host)
        target.setAuthorization(authorization)
        return Resolved(target: target, tokenFile: tokenFile)
    }

    func bytes(_ data: [UInt8]?, _ file: String?, _ what: String) throws(AirlockError) -> [UInt8]? {
        if let data { return data }
        guard let file else { return nil }
        do { return Array(try readTextFile(file, limit: 1 << 20).utf8) } catch {
            throw AirlockError("cannot read the kubeconfig's \(what) \(file): \(error.message)")
        }
    }

    struct ExecAnswer {
        var token: String?
        var certificate: String?
        var key: String?
        var expires: Int?
    }

    /// Runs a kubeconfig exec plugin (client.authentication.k8s.io ExecCredential) with the
    /// human's environment, non-interactively, and reads its status.
    func runExec(_ exec: Kubeconfig.ExecPlugin, context: String) throws(AirlockError) -> ExecAnswer {
        var environment = self.environment
        for (name, value) in exec.env { environment[name] = value }
        environment["KUBERNETES_EXEC_INFO"] = JSON.object([
            ("apiVersion", .string(exec.apiVersion)), ("kind", .string("ExecCredential")),
            ("spec", .object([("interactive", .bool(false))])),
        ]).serialized()
        // A relative command with a slash is relative to the kubeconfig's directory, as kubectl reads it.
        var command = exec.command
        if !command.hasPrefix("/"), command.contains("/"), let first = sources.first { command = HostPath.parent(of: first) + "/" + command }
        let output = try ChildProcess.run([command] + exec.args, environment: environment, outputLimit: 1 << 20)
        guard output.status == 0 else {
            throw AirlockError("the exec plugin of context \(context) (\(exec.command)) failed (exit \(output.status)): \(output.stderr.prefix(300))",
                               hint: "run it yourself to log in, then retry")
        }
        guard let json = try? JSON.parse(output.stdout), let status = json["status"] else {
            throw AirlockError("the exec plugin of context \(context) (\(exec.command)) did not print an ExecCredential with a status")
        }
        let answer = ExecAnswer(token: status["token"]?.string, certificate: status["clientCertificateData"]?.string,
                                key: status["clientKeyData"]?.string,
                                expires: status["expirationTimestamp"]?.string.flatMap(ISO8601.epochSeconds))
        guard answer.token != nil || (answer.certificate != nil && answer.key != nil) else {
            throw AirlockError("the exec plugin of context \(context) gave neither a token nor a client certificate and key")
        }
        return answer
    }
}
