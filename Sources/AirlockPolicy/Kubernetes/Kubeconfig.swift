import AirlockCore

/// The parts of a kubeconfig the broker needs (docs/kubernetes.md, "The endpoint"): every
/// context with its cluster and user. Read from the human's file outside the sandbox; the
/// sandbox gets `sandboxConfig`, which names the same contexts and holds nothing real.
/// Pure: text in, values out (files the config names are read by the caller).
public struct Kubeconfig: Sendable, Equatable {
    public struct Cluster: Sendable, Equatable {
        public var server: String
        public var certificateAuthorityData: [UInt8]?
        public var certificateAuthority: String?
        public var insecureSkipTLSVerify: Bool
        public var tlsServerName: String?
    }

    public struct ExecPlugin: Sendable, Equatable {
        public var command: String
        public var args: [String]
        public var env: [(name: String, value: String)]
        public var apiVersion: String

        public static func == (a: ExecPlugin, b: ExecPlugin) -> Bool {
            a.command == b.command && a.args == b.args && a.apiVersion == b.apiVersion
                && a.env.map(\.name) == b.env.map(\.name) && a.env.map(\.value) == b.env.map(\.value)
        }
    }

    public struct User: Sendable, Equatable {
        public var token: String?
        public var tokenFile: String?
        public var clientCertificateData: [UInt8]?
        public var clientCertificate: String?
        public var clientKeyData: [UInt8]?
        public var clientKey: String?
        public var exec: ExecPlugin?
        /// Set for what the broker cannot do for the user (basic auth, auth-provider,
        /// impersonation in the kubeconfig): requests of that context are refused with it.
        public var unsupported: String?
    }

    public struct Context: Sendable, Equatable {
        public var name: String
        public var cluster: Cluster
        public var user: User
        public var namespace: String?
    }

    public var contexts: [Context]
    public var currentContext: String?

    /// Parses one kubeconfig (YAML, or JSON, which the YAML reader's flow syntax covers).
    /// `base`: the file's directory, against which relative file paths resolve (as kubectl does).
    public static func parse(_ text: String, base: String) throws(AirlockError) -> Kubeconfig {
        let root: YAMLNode?
        do { root = try YAML.parse(text) } catch {
            throw AirlockError("the kubeconfig is not YAML Airlock can read (\(error))")
        }
        guard let root, case .mapping = root.value else { return Kubeconfig(contexts: [], currentContext: nil) }
        func named(_ key: String, _ inner: String) -> [String: YAMLNode] {
            var found: [String: YAMLNode] = [:]
            guard case .sequence(let items)? = root[key]?.value else { return found }
            for item in items {
                // kubectl's merge rule: the first entry of a name wins.
                if let name = item["name"]?.scalar, let value = item[inner], found[name] == nil { found[name] = value }
            }
            return found
        }
        let clusters = named("clusters", "cluster")
        let users = named("users", "user")
        var contexts: [Context] = []
        guard case .sequence(let items)? = root["contexts"]?.value else {
            return Kubeconfig(contexts: [], currentContext: root["current-context"]?.scalar)
        }
        func path(_ value: String?) -> String? {
            guard let value, !value.isEmpty else { return nil }
            return value.hasPrefix("/") ? value : base + "/" + value
        }
        for item in items {
            guard let name = item["name"]?.scalar, let context = item["context"], !contexts.contains(where: { $0.name == name }),
                  let clusterName = context["cluster"]?.scalar, let clusterNode = clusters[clusterName],
                  let server = clusterNode["server"]?.scalar, !server.isEmpty else { continue }
            let cluster = Cluster(
                server: server,
                certificateAuthorityData: clusterNode["certificate-authority-data"]?.scalar.flatMap { Base64.decode($0) },
                certificateAuthority: path(clusterNode["certificate-authority"]?.scalar),
                insecureSkipTLSVerify: clusterNode["insecure-skip-tls-verify"]?.scalar == "true",
                tlsServerName: clusterNode["tls-server-name"]?.scalar)
            var user = User()
            if let userName = context["user"]?.scalar, let node = users[userName] {
                user.token = node["token"]?.scalar
                user.tokenFile = path(node["tokenFile"]?.scalar)
                user.clientCertificateData = node["client-certificate-data"]?.scalar.flatMap { Base64.decode($0) }
                user.clientCertificate = path(node["client-certificate"]?.scalar)
                user.clientKeyData = node["client-key-data"]?.scalar.flatMap { Base64.decode($0) }
                user.clientKey = path(node["client-key"]?.scalar)
                if let exec = node["exec"], let command = exec["command"]?.scalar {
                    var env: [(name: String, value: String)] = []
                    if case .sequence(let pairs)? = exec["env"]?.value {
                        for pair in pairs { if let n = pair["name"]?.scalar, let v = pair["value"]?.scalar { env.append((n, v)) } }
                    }
                    var args: [String] = []
                    if case .sequence(let list)? = exec["args"]?.value { args = list.compactMap(\.scalar) }
                    user.exec = ExecPlugin(command: command, args: args, env: env,
                                           apiVersion: exec["apiVersion"]?.scalar ?? "client.authentication.k8s.io/v1")
                }
                if node["username"] != nil || node["password"] != nil {
                    user.unsupported = "basic authentication (username/password) is not supported by the broker"
                } else if node["auth-provider"] != nil {
                    user.unsupported = "auth-provider plugins are not supported by the broker; use an exec plugin"
                } else if node["as"] != nil || node["as-groups"] != nil || node["as-uid"] != nil {
                    user.unsupported = "impersonation in the kubeconfig (as:) is not supported by the broker"
                }
            }
            contexts.append(Context(name: name, cluster: cluster, user: user,
                                    namespace: context["namespace"]?.scalar.flatMap { $0.isEmpty ? nil : $0 }))
        }
        return Kubeconfig(contexts: contexts, currentContext: root["current-context"]?.scalar)
    }

    /// Merges the files of a KUBECONFIG list in order (the first context of a name wins, the
    /// first current-context set wins), as kubectl does.
    public static func merged(_ configs: [Kubeconfig]) -> Kubeconfig {
        var merged = Kubeconfig(contexts: [], currentContext: nil)
        for config in configs {
            for context in config.contexts where !merged.contexts.contains(where: { $0.name == context.name }) {
                merged.contexts.append(context)
            }
            if merged.currentContext == nil, let current = config.currentContext, !current.isEmpty { merged.currentContext = current }
        }
        return merged
    }

    /// The path below the broker's address that serves context number `index`.
    public static func contextPrefix(_ index: Int) -> String { "/contexts/\(index)" }

    /// The sandbox's kubeconfig: every context, its cluster the broker's endpoint (the
    /// session CA), its user the session's dummy token. Names are the human's, so
    /// `kubectl --context NAME` works unchanged; the real servers and credentials are absent.
    public func sandboxConfig(endpoint: String, caPEM: String, token: String) -> String {
        func quoted(_ text: String) -> String { JSON.string(text).serialized() }
        var lines = ["# Generated by Airlock: every context goes through the broker, which holds the real credentials.",
                     "apiVersion: v1", "kind: Config", "clusters:"]
        let ca = Base64.encode(Array(caPEM.utf8))
        for (index, context) in contexts.enumerated() {
            lines += ["- name: \(quoted(context.name))", "  cluster:",
                      "    server: \(quoted(endpoint + Self.contextPrefix(index)))",
                      "    certificate-authority-data: \(ca)"]
        }
        lines += ["users:", "- name: airlock-session", "  user:", "    token: \(quoted(token))", "contexts:"]
        for context in contexts {
            lines += ["- name: \(quoted(context.name))", "  context:", "    cluster: \(quoted(context.name))", "    user: airlock-session"]
            if let namespace = context.namespace { lines.append("    namespace: \(quoted(namespace))") }
        }
        if let current = currentContext, contexts.contains(where: { $0.name == current }) {
            lines.append("current-context: \(quoted(current))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The cluster's address: scheme, host, port and the path its server URL has.
    public struct Server: Sendable, Equatable {
        public var scheme: String
        public var host: String
        public var port: Int
        public var basePath: String
    }

    public static func server(_ url: String) -> Server? {
        let scheme: String
        var rest: Substring
        if url.hasPrefix("https://") { scheme = "https"; rest = url.dropFirst(8) }
        else if url.hasPrefix("http://") { scheme = "http"; rest = url.dropFirst(7) }
        else { return nil }
        var basePath = ""
        if let slash = rest.firstIndex(of: "/") {
            basePath = String(rest[slash...])
            rest = rest[..<slash]
            while basePath.hasSuffix("/") { basePath.removeLast() }
        }
        guard !rest.isEmpty, !rest.contains("@"), !basePath.contains("?"), !basePath.contains("#") else { return nil }
        var host = String(rest)
        var port = scheme == "https" ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }; port = p }
            else if !after.isEmpty { return nil }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { return nil }
        return Server(scheme: scheme, host: host.lowercased(), port: port, basePath: basePath)
    }
}

extension YAMLNode {
    /// A mapping's value for `key`, nil for a scalar or sequence.
    public subscript(key: String) -> YAMLNode? {
        guard case .mapping(let entries) = value else { return nil }
        return entries.first { $0.key == key }?.value
    }
}
