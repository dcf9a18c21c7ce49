import AirlockCore

/// `gate.yaml`, the team gate's configuration (docs/gate.md, "Team gate"), read strictly:
/// an unknown key, a missing value or a plain-HTTP listener off loopback is an error with
/// its line. Pure.
///
/// ```yaml
/// listen: 0.0.0.0:8443
/// tls: {certificate: /etc/airlock/gate.crt, key: /etc/airlock/gate.key}
/// store: {postgres: "postgres://airlock@db.internal/airlock"}   # or {sqlite: /var/lib/airlock-gate}
/// state_dir: /var/lib/airlock-gate       # blobs and artifacts of executions
/// aws: {profile: deploy, upstream: aws,   # the write credentials; where executions go
///       preview_profile: readonly,         # what previews and drift re-checks read with
///       assume_role: "arn:aws:iam::123456789012:role/airlock-deploy"}   # assumed per execution
/// replica: gate-a                        # this process's name in execution leases (default host-pid)
/// executions: {lease_seconds: 30, shutdown_grace_seconds: 60}
/// log: {format: json}                    # or text; to standard error
/// audit: {signing_key: /etc/airlock/gate-audit.pem}   # Ed25519, outside the database
/// kubernetes: {kubeconfig: /etc/airlock/gate-kubeconfig,     # the gate's own credentials
///              clusters: [{server: "https://kube.internal:6443", context: prod-deployer}]}
/// github: [{host: github.com, token_file: /etc/airlock/github-token}]
/// policy: /etc/airlock/gate-policy.cedar   # the gate's rules (docs/policy.md): only they allow
///                                         # without a human or lower the number of approvers
/// require_launcher: true                  # every session names its launcher (their approver token)
/// limits: {connections: 4096, connections_per_peer: 0, header_timeout_seconds: 10,
///          idle_timeout_seconds: 75, waits_per_host: 200, pending_per_host: 1000,
///          blob_bytes_per_host: 16GiB}
/// ```
public struct GateConfig: Sendable, Equatable {
    /// What one replica holds open and one agent host may use (docs/gate.md, "Bounds and
    /// timeouts"): the defaults fit 100 active sessions per host.
    public struct Limits: Sendable, Equatable {
        /// Open connections on this replica in all (also capped at the descriptor limit − 256).
        public var connections = 4096
        /// From one client address; 0: half of `connections`.
        public var connectionsPerPeer = 0
        /// A request's head must arrive whole within this many seconds of its first byte.
        public var headerTimeoutSeconds = 10
        /// A kept-alive connection with no request in progress is closed after this.
        public var idleTimeoutSeconds = 75
        /// Open waits (`GET /v1/proposals/ID/wait`) one host may hold on this replica.
        public var waitsPerHost = 200
        /// Pending proposals one host may have across its sessions (each session: 200).
        public var pendingPerHost = 1000
        /// Bytes of staged parts one host may have sent within the last 24 hours.
        public var blobBytesPerHost: Int = 16 << 30

        public init() {}

        /// The bounds in force under a descriptor limit: connections leave 256 descriptors
        /// for the store, files and execution sandboxes.
        public func effective(descriptorLimit: Int) -> (connections: Int, perPeer: Int) {
            let total = max(16, min(connections, descriptorLimit - 256))
            let perPeer = connectionsPerPeer == 0 ? max(8, total / 2) : min(connectionsPerPeer, total)
            return (total, perPeer)
        }
    }

    public enum Store: Sendable, Equatable {
        /// A state directory holding `airlock.db`.
        case sqlite(String)
        case postgres(String)
    }

    public var host: String
    public var port: Int
    public var tlsCertificate: String?
    public var tlsKey: String?
    public var store: Store
    public var stateDir: String
    /// The AWS profile executions sign with (nil: the gate's environment and default chain).
    public var awsProfile: String?
    /// `aws`, or an endpoint URL (a local AWS such as moto, for tests): where every approved
    /// API call is sent. Never what an agent host says.
    public var awsUpstream: String
    /// A role each execution assumes (session `airlock-<id>`, SourceIdentity the proposal id).
    public var awsAssumeRole: String?
    /// The AWS profile effect previews and drift re-checks read with (docs/previews.md): a
    /// read-only one, so the reads cannot be anything else; nil: the execution credentials,
    /// whose preview reads are still only what Airlock classifies as reads.
    public var awsPreviewProfile: String?
    /// The name this replica claims executions under; nil: `<hostname>-<pid>`.
    public var replica: String?
    /// How long a claim holds without renewal: a killed replica's execution becomes
    /// `unknown` this long after its last renewal.
    public var leaseSeconds: Int = 30
    /// On SIGTERM, how long in-flight requests (executions) may take to finish.
    public var shutdownGraceSeconds: Int = 60
    /// When waiting proposals expire (`executions.expire_pending_seconds`,
    /// `executions.expire_approved_seconds`): none unless set (a later rules issue gives
    /// policies their own deadlines).
    public var deadlines = ProposalDeadlines()
    /// The gate's own Cedar policy (docs/policy.md); none: every change asks one approver.
    public var policyFile: String?
    /// Every session must name its launcher by their approver token (docs/policy.md, "Who may
    /// approve"); otherwise a session without one lets its launcher's approval count.
    public var requireLauncher = false
    /// The approvers' web page: sign-in and roles (docs/web.md).
    public var web = GateWebConfig()
    public var jsonLogs: Bool = true
    /// The Ed25519 key (PEM) that signs a checkpoint of the audit chain at every decision.
    public var auditSigningKey: String?
    /// A Kubernetes API server an agent host may propose changes for, and the context of the
    /// gate's own kubeconfig they are executed (and dry-run) with.
    public struct KubernetesCluster: Sendable, Equatable {
        public var server: String
        public var context: String
        public init(server: String, context: String) {
            self.server = server
            self.context = context
        }
    }

    /// A GitHub host (github.com also serves api.github.com) and the file holding the gate's
    /// token for it.
    public struct GitHubHost: Sendable, Equatable {
        public var host: String
        public var tokenFile: String
        public init(host: String, tokenFile: String) {
            self.host = host
            self.tokenFile = tokenFile
        }
    }

    /// `kubernetes.kubeconfig`: the gate's own kubeconfig (its credentials); nil, Kubernetes
    /// changes are refused (docs/gate.md, "Kubernetes and GitHub on the gate").
    public var kubeconfig: String?
    public var kubernetesClusters: [KubernetesCluster] = []
    /// `github`: the hosts the gate executes changes and pushes on, with its token for each.
    public var githubHosts: [GitHubHost] = []

    /// The PostgreSQL schema the store's tables live in (`store.schema`).
    public var postgresSchema = "airlock"
    public var limits = Limits()

    public var isLoopback: Bool { host == "127.0.0.1" || host == "::1" || host == "localhost" }

    /// What browsers reach: web.url, else the listen address.
    public var webURL: String {
        web.url ?? "\(tlsCertificate == nil ? "http" : "https")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public static func parse(_ text: String, source: String) throws(AirlockError) -> GateConfig {
        func fail(_ line: Int, _ message: String) -> AirlockError {
            AirlockError("\(source):\(line): \(message)", hint: "see docs/gate.md, \"Team gate\", for an example gate.yaml")
        }
        let root: YAMLNode
        do {
            guard let parsed = try YAML.parse(text) else { throw fail(1, "the file is empty") }
            root = parsed
        } catch let error as YAMLError {
            throw fail(error.line, error.message)
        } catch let error as AirlockError {
            throw error
        } catch {
            throw fail(1, "\(error)")
        }
        func mapping(_ node: YAMLNode, _ place: String, _ keys: [String]) throws(AirlockError) -> [String: YAMLNode] {
            guard case .mapping(let entries) = node.value else { throw fail(node.line, "\(place) must be a mapping") }
            var found: [String: YAMLNode] = [:]
            for entry in entries {
                guard keys.contains(entry.key) else {
                    throw fail(entry.line, "unknown key '\(entry.key)' in \(place) (known: \(keys.joined(separator: ", ")))")
                }
                found[entry.key] = entry.value
            }
            return found
        }
        func string(_ node: YAMLNode?, _ place: String, line: Int) throws(AirlockError) -> String {
            guard let node else { throw fail(line, "\(place) is required") }
            guard let text = node.scalar, !node.isNull, !text.isEmpty else { throw fail(node.line, "\(place) must be a value") }
            return text
        }
        /// `place.key` as a whole number in `range`, nil when absent.
        func whole(_ fields: [String: YAMLNode], _ place: String, _ key: String, _ range: ClosedRange<Int>, line: Int,
                   unit: String) throws(AirlockError) -> Int? {
            guard fields[key] != nil else { return nil }
            let text = try string(fields[key], "\(place).\(key)", line: line)
            guard let value = Int(text), range.contains(value) else {
                throw fail(fields[key]?.line ?? line, "\(place).\(key) must be a whole number\(unit) in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        let top = try mapping(root, "gate.yaml", ["listen", "tls", "store", "state_dir", "aws", "replica", "executions", "log", "audit", "limits",
                                                    "kubernetes", "github", "policy", "require_launcher", "web"])
        let listen = try string(top["listen"], "listen", line: root.line)
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw fail(top["listen"]?.line ?? 1, "listen must be HOST:PORT (e.g. 0.0.0.0:8443; port 0 picks a free one and prints it)")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw fail(top["listen"]?.line ?? 1, "listen must name an address (0.0.0.0 for all)") }

        var certificate: String?, key: String?
        if let tls = top["tls"] {
            let fields = try mapping(tls, "tls", ["certificate", "key"])
            certificate = try string(fields["certificate"], "tls.certificate", line: tls.line)
            key = try string(fields["key"], "tls.key", line: tls.line)
        }
        let loopback = host == "127.0.0.1" || host == "::1" || host == "localhost"
        guard certificate != nil || loopback else {
            throw fail(top["listen"]?.line ?? 1, "listen \(listen) is not loopback, so the gate needs tls (certificate and key): tokens must not cross a network in clear text")
        }

        guard let storeNode = top["store"] else { throw fail(root.line, "store is required ({sqlite: DIR} or {postgres: URL})") }
        let storeFields = try mapping(storeNode, "store", ["sqlite", "postgres", "schema"])
        guard (storeFields["sqlite"] == nil) != (storeFields["postgres"] == nil) else {
            throw fail(storeNode.line, "store names exactly one of sqlite or postgres")
        }
        var schema: String?
        if storeFields["schema"] != nil {
            guard storeFields["postgres"] != nil else { throw fail(storeFields["schema"]?.line ?? storeNode.line, "store.schema is for a postgres store") }
            let name = try string(storeFields["schema"], "store.schema", line: storeNode.line)
            guard (1...63).contains(name.utf8.count), name.utf8.first.map({ $0 >= 0x61 && $0 <= 0x7A }) == true,
                  name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }) else {
                throw fail(storeFields["schema"]?.line ?? storeNode.line, "store.schema must be a lowercase name (letters, digits, _; a letter first)")
            }
            schema = name
        }
        let store: Store = storeFields["sqlite"] != nil
            ? .sqlite(try string(storeFields["sqlite"], "store.sqlite", line: storeNode.line))
            : .postgres(try string(storeFields["postgres"], "store.postgres", line: storeNode.line))

        let stateDir = try string(top["state_dir"], "state_dir", line: root.line)
        guard stateDir.hasPrefix("/") else { throw fail(top["state_dir"]?.line ?? 1, "state_dir must be an absolute path") }

        var profile: String?
        var role: String?
        var previewProfile: String?
        var upstream = "aws"
        if let aws = top["aws"] {
            let fields = try mapping(aws, "aws", ["profile", "upstream", "assume_role", "preview_profile"])
            if fields["preview_profile"] != nil { previewProfile = try string(fields["preview_profile"], "aws.preview_profile", line: aws.line) }
            if fields["assume_role"] != nil {
                let arn = try string(fields["assume_role"], "aws.assume_role", line: aws.line)
                let parts = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
                guard parts.count == 6, parts[0] == "arn", parts[1].hasPrefix("aws"), parts[2] == "iam", parts[4].count == 12,
                      parts[4].allSatisfy(\.isNumber), parts[5].hasPrefix("role/"), parts[5].count > 5 else {
                    throw fail(fields["assume_role"]?.line ?? aws.line, "aws.assume_role must be a role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
                }
                role = arn
            }
            if fields["profile"] != nil { profile = try string(fields["profile"], "aws.profile", line: aws.line) }
            if fields["upstream"] != nil { upstream = try string(fields["upstream"], "aws.upstream", line: aws.line) }
            guard upstream == "aws" || upstream.hasPrefix("http://") || upstream.hasPrefix("https://") else {
                throw fail(fields["upstream"]?.line ?? aws.line, "aws.upstream must be aws or an http(s):// URL")
            }
        }
        var config = GateConfig(host: host, port: port, tlsCertificate: certificate, tlsKey: key, store: store, stateDir: stateDir,
                                awsProfile: profile, awsUpstream: upstream, awsAssumeRole: role)
        if let schema { config.postgresSchema = schema }
        config.awsPreviewProfile = previewProfile
        if top["require_launcher"] != nil {
            let value = try string(top["require_launcher"], "require_launcher", line: root.line)
            guard value == "true" || value == "false" else { throw fail(top["require_launcher"]?.line ?? 1, "require_launcher must be true or false") }
            config.requireLauncher = value == "true"
        }
        if top["policy"] != nil {
            let path = try string(top["policy"], "policy", line: root.line)
            guard path.hasPrefix("/") else { throw fail(top["policy"]?.line ?? 1, "policy must be an absolute path to a Cedar file") }
            config.policyFile = path
        }
        if top["replica"] != nil {
            let name = try string(top["replica"], "replica", line: root.line)
            guard (1...64).contains(name.utf8.count),
                  name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F }) else {
                throw fail(top["replica"]?.line ?? 1, "replica must be 1-64 letters, digits, '.', '_' or '-'")
            }
            config.replica = name
        }
        if let executions = top["executions"] {
            let fields = try mapping(executions, "executions", ["lease_seconds", "shutdown_grace_seconds", "expire_pending_seconds",
                                                                "expire_approved_seconds"])
            func seconds(_ key: String, _ range: ClosedRange<Int>) throws(AirlockError) -> Int? {
                try whole(fields, "executions", key, range, line: executions.line, unit: " of seconds")
            }
            config.leaseSeconds = try seconds("lease_seconds", 2...3600) ?? config.leaseSeconds
            config.shutdownGraceSeconds = try seconds("shutdown_grace_seconds", 0...3600) ?? config.shutdownGraceSeconds
            config.deadlines.pending = try seconds("expire_pending_seconds", 60...(30 * 86400)).map(Double.init)
            config.deadlines.approved = try seconds("expire_approved_seconds", 60...(30 * 86400)).map(Double.init)
        }
        if let log = top["log"] {
            let fields = try mapping(log, "log", ["format"])
            let format = try string(fields["format"], "log.format", line: log.line)
            guard format == "json" || format == "text" else { throw fail(fields["format"]?.line ?? log.line, "log.format must be json or text") }
            config.jsonLogs = format == "json"
        }
        if let limits = top["limits"] {
            let fields = try mapping(limits, "limits", ["connections", "connections_per_peer", "header_timeout_seconds", "idle_timeout_seconds",
                                                        "waits_per_host", "pending_per_host", "blob_bytes_per_host"])
            func number(_ key: String, _ range: ClosedRange<Int>) throws(AirlockError) -> Int? {
                try whole(fields, "limits", key, range, line: limits.line, unit: "")
            }
            config.limits.connections = try number("connections", 16...1_000_000) ?? config.limits.connections
            config.limits.connectionsPerPeer = try number("connections_per_peer", 0...1_000_000) ?? config.limits.connectionsPerPeer
            config.limits.headerTimeoutSeconds = try number("header_timeout_seconds", 1...600) ?? config.limits.headerTimeoutSeconds
            config.limits.idleTimeoutSeconds = try number("idle_timeout_seconds", 1...86400) ?? config.limits.idleTimeoutSeconds
            config.limits.waitsPerHost = try number("waits_per_host", 1...1_000_000) ?? config.limits.waitsPerHost
            config.limits.pendingPerHost = try number("pending_per_host", 1...10_000_000) ?? config.limits.pendingPerHost
            if fields["blob_bytes_per_host"] != nil {
                let text = try string(fields["blob_bytes_per_host"], "limits.blob_bytes_per_host", line: limits.line)
                guard let bytes = ByteSize.parse(text), bytes >= 1 << 20, bytes <= 1 << 50 else {
                    throw fail(fields["blob_bytes_per_host"]?.line ?? limits.line, "limits.blob_bytes_per_host must be a size such as 16GiB (at least 1MiB)")
                }
                config.limits.blobBytesPerHost = Int(bytes)
            }
        }
        if let kubernetes = top["kubernetes"] {
            let fields = try mapping(kubernetes, "kubernetes", ["kubeconfig", "clusters"])
            let path = try string(fields["kubeconfig"], "kubernetes.kubeconfig", line: kubernetes.line)
            guard path.hasPrefix("/") else { throw fail(fields["kubeconfig"]?.line ?? kubernetes.line, "kubernetes.kubeconfig must be an absolute path") }
            config.kubeconfig = path
            guard let list = fields["clusters"], case .sequence(let items) = list.value, !items.isEmpty else {
                throw fail(fields["clusters"]?.line ?? kubernetes.line, "kubernetes.clusters must list the API servers hosts may propose for: [{server: URL, context: NAME}]")
            }
            for item in items {
                let entry = try mapping(item, "kubernetes.clusters", ["server", "context"])
                let server = try string(entry["server"], "kubernetes.clusters[].server", line: item.line)
                guard server.hasPrefix("https://") || server.hasPrefix("http://") else {
                    throw fail(entry["server"]?.line ?? item.line, "kubernetes.clusters[].server must be the API server's URL as hosts' kubeconfigs name it (https://…)")
                }
                guard !config.kubernetesClusters.contains(where: { $0.server == server }) else {
                    throw fail(item.line, "kubernetes.clusters names \(server) twice")
                }
                config.kubernetesClusters.append(KubernetesCluster(server: server, context: try string(entry["context"], "kubernetes.clusters[].context", line: item.line)))
            }
        }
        if let github = top["github"] {
            guard case .sequence(let items) = github.value, !items.isEmpty else {
                throw fail(github.line, "github must list hosts: [{host: github.com, token_file: /etc/airlock/github-token}]")
            }
            for item in items {
                let entry = try mapping(item, "github", ["host", "token_file"])
                let host = try string(entry["host"], "github[].host", line: item.line).lowercased()
                guard !host.isEmpty, host.count < 254, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }),
                      host != "api.github.com" else {
                    throw fail(entry["host"]?.line ?? item.line, "github[].host must be a host name (github.com, which serves api.github.com too, or an enterprise host)")
                }
                let file = try string(entry["token_file"], "github[].token_file", line: item.line)
                guard file.hasPrefix("/") else { throw fail(entry["token_file"]?.line ?? item.line, "github[].token_file must be an absolute path") }
                guard !config.githubHosts.contains(where: { $0.host == host }) else { throw fail(item.line, "github names \(host) twice") }
                config.githubHosts.append(GitHubHost(host: host, tokenFile: file))
            }
        }
        if let audit = top["audit"] {
            let fields = try mapping(audit, "audit", ["signing_key"])
            let path = try string(fields["signing_key"], "audit.signing_key", line: audit.line)
            guard path.hasPrefix("/") else { throw fail(fields["signing_key"]?.line ?? audit.line, "audit.signing_key must be an absolute path") }
            config.auditSigningKey = path
        }
        if let web = top["web"] { config.web = try GateWebConfig.parse(web, fail: fail) }
        return config
    }
}
