import AirlockCore

/// Everything an execution sandbox is (docs/commands.md), written by the broker into the
/// proposal's artifact directory (in the state directory, which no sandbox sees) and read by
/// the `airlock run` that makes the sandbox: which snapshot appears at the workspace's path,
/// what is bound where and what is writable, the variables it gets and the hosts its proxy
/// allows. Nothing here comes from the agent's sandbox: not its workspace, home, profile
/// paths or environment. Pure: a value and its JSON.
public struct ExecutionSpec: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// Making a proposal's plan and preview: AWS mutations are refused.
        case prepare
        /// Running an approved command proposal: AWS mutations from this sandbox are sent,
        /// audited under the proposal.
        case apply(proposalID: String)

        public var text: String {
            switch self {
            case .prepare: return "prepare"
            case .apply(let id): return "apply:\(id)"
            }
        }

        public init?(text: String) {
            if text == "prepare" {
                self = .prepare
            } else if text.hasPrefix("apply:"), case let id = String(text.dropFirst(6)), !id.isEmpty, id.count <= 64,
                      id.allSatisfy({ $0.isLetter || $0.isNumber }) {
                self = .apply(proposalID: id)
            } else {
                return nil
            }
        }
    }

    public struct Bind: Sendable, Equatable {
        public var source: String
        public var target: String
        public var writable: Bool
        public var directory: Bool

        public init(source: String, target: String, writable: Bool, directory: Bool) {
            self.source = source
            self.target = target
            self.writable = writable
            self.directory = directory
        }
    }

    public var mode: Mode
    public var tool: String
    /// The host directory of the proposal's artifact (`<state>/artifacts/<key>`).
    public var artifact: String
    /// Where the snapshot appears: the live workspace's path, so paths in the configuration
    /// and the command resolve as they did for the agent.
    public var workspace: String
    public var snapshot: String
    public var snapshotWritable: Bool
    /// The working directory inside (within `workspace`).
    public var directory: String
    public var binds: [Bind]
    /// Set in the sandbox, on top of the terminal and locale variables and Airlock's own.
    public var environment: [String: String]
    /// The egress proxy's rules: `host[:port]` patterns with where each came from.
    public var allow: [(rule: String, source: String)]
    public var deny: [(rule: String, source: String)]
    /// Address ranges names may resolve into (a cluster on a private network), as CIDR.
    public var addresses: [String]
    /// On a team gate: the execution's store is a file in the artifact (`calls.jsonl`) that
    /// the gate reads into its own store after the run, since the run cannot reach the
    /// gate's database (docs/gate.md, "Command proposals on the gate").
    public var spool: Bool = false
    /// The run reaches the human's clusters through the broker's Kubernetes endpoint (a
    /// sandbox kubeconfig, the credentials outside), not with a copy of the kubeconfig: the
    /// tool's code, and whatever it runs (a helm plugin, a kustomize generator), never sits
    /// beside a real token (docs/kubernetes.md, "Execution sandboxes").
    public var kubernetesEndpoint: Bool = false
    /// Likewise for GitHub: the run's gh holds the session's token, the broker's GitHub
    /// gateway adds the human's (docs/github.md, "Execution sandboxes").
    public var githubEndpoint: Bool = false
    /// The tool's program as the session or the proposal pinned it, and its SHA-256: the
    /// execution runs exactly this, whatever PATH or a version file says when it starts
    /// (docs/tools.md).
    public var binary: String = ""
    public var binaryDigest: String = ""

    /// The spool file of an execution whose spec sets `spool`.
    public var spoolPath: String { artifact + "/calls.jsonl" }

    public init(mode: Mode, tool: String, artifact: String, workspace: String, snapshot: String, snapshotWritable: Bool,
                directory: String, binds: [Bind] = [], environment: [String: String] = [:],
                allow: [(rule: String, source: String)] = [], deny: [(rule: String, source: String)] = [], addresses: [String] = []) {
        self.mode = mode
        self.tool = tool
        self.artifact = artifact
        self.workspace = workspace
        self.snapshot = snapshot
        self.snapshotWritable = snapshotWritable
        self.directory = directory
        self.binds = binds
        self.environment = environment
        self.allow = allow
        self.deny = deny
        self.addresses = addresses
    }

    public static func == (a: ExecutionSpec, b: ExecutionSpec) -> Bool {
        a.json == b.json
    }

    public var json: JSON {
        func rules(_ list: [(rule: String, source: String)]) -> JSON {
            .array(list.map { .object([("rule", .string($0.rule)), ("source", .string($0.source))]) })
        }
        return .object([
            ("mode", .string(mode.text)), ("tool", .string(tool)), ("artifact", .string(artifact)),
            ("workspace", .string(workspace)), ("snapshot", .string(snapshot)), ("snapshot_writable", .bool(snapshotWritable)),
            ("directory", .string(directory)),
            ("binds", .array(binds.map {
                .object([("source", .string($0.source)), ("target", .string($0.target)), ("writable", .bool($0.writable)),
                         ("directory", .bool($0.directory))])
            })),
            ("environment", .object(environment.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ("allow", rules(allow)), ("deny", rules(deny)), ("addresses", .array(addresses.map { .string($0) })),
            ("spool", .bool(spool)), ("kubernetes_endpoint", .bool(kubernetesEndpoint)),
            ("github_endpoint", .bool(githubEndpoint)), ("binary", .string(binary)), ("binary_sha256", .string(binaryDigest)),
        ])
    }

    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads a spec and checks it against the state directory: the artifact is one of
    /// `<state>/artifacts/`, the snapshot and every writable bind are inside it, every path
    /// is absolute and normalized, the working directory is inside the workspace.
    public static func parse(_ text: String, stateDirectory: String) throws(Invalid) -> ExecutionSpec {
        func invalid(_ why: String) -> Invalid { Invalid(description: "execution spec: \(why)") }
        guard let json = try? JSON.parseStrict(bytes: Array(text.utf8)) else { throw invalid("not JSON") }
        guard let modeText = json["mode"]?.string, let mode = Mode(text: modeText), let tool = json["tool"]?.string,
              let artifact = json["artifact"]?.string, let workspace = json["workspace"]?.string,
              let snapshot = json["snapshot"]?.string, let snapshotWritable = json["snapshot_writable"]?.bool,
              let directory = json["directory"]?.string else { throw invalid("a field is missing") }
        let root = PathResolution.normalize(stateDirectory) + "/artifacts/"
        let key = artifact.dropFirst(root.count)
        guard artifact.hasPrefix(root), !key.isEmpty, !key.contains("/"), PathResolution.normalize(artifact) == artifact else {
            throw invalid("the artifact must be a directory in \(root)")
        }
        func isClean(_ path: String) -> Bool { path.hasPrefix("/") && PathResolution.normalize(path) == path }
        guard isClean(snapshot), PathResolution.isInside(snapshot, artifact), snapshot != artifact else { throw invalid("the snapshot must be inside the artifact") }
        guard isClean(workspace), workspace != "/", isClean(directory), PathResolution.isInside(directory, workspace) else {
            throw invalid("the working directory must be inside the workspace")
        }
        var binds: [Bind] = []
        for item in json["binds"]?.array ?? [] {
            guard let source = item["source"]?.string, let target = item["target"]?.string, isClean(source), isClean(target),
                  let writable = item["writable"]?.bool, let isDirectory = item["directory"]?.bool else { throw invalid("a bind is malformed") }
            if writable && !PathResolution.isInside(source, artifact) { throw invalid("writable binds must come from the artifact (\(source))") }
            binds.append(Bind(source: source, target: target, writable: writable, directory: isDirectory))
        }
        var environment: [String: String] = [:]
        for (name, value) in json["environment"]?.objectPairs ?? [] {
            guard EnvironmentName.isValidName(name), let value = value.string else { throw invalid("a variable is malformed") }
            environment[name] = value
        }
        func rules(_ key: String) throws(Invalid) -> [(rule: String, source: String)] {
            var out: [(rule: String, source: String)] = []
            for item in json[key]?.array ?? [] {
                guard let rule = item["rule"]?.string, let source = item["source"]?.string else { throw invalid("a network rule is malformed") }
                out.append((rule, source))
            }
            return out
        }
        let addresses = json["addresses"]?.array?.compactMap(\.string) ?? []
        var spec = ExecutionSpec(mode: mode, tool: tool, artifact: artifact, workspace: workspace, snapshot: snapshot,
                                 snapshotWritable: snapshotWritable, directory: directory, binds: binds, environment: environment,
                                 allow: try rules("allow"), deny: try rules("deny"), addresses: addresses)
        spec.spool = json["spool"]?.bool ?? false
        spec.kubernetesEndpoint = json["kubernetes_endpoint"]?.bool ?? false
        spec.githubEndpoint = json["github_endpoint"]?.bool ?? false
        guard let binary = json["binary"]?.string, isClean(binary), let digest = json["binary_sha256"]?.string, digest.count == 64 else {
            throw invalid("the tool's pinned program and digest are missing")
        }
        spec.binary = binary
        spec.binaryDigest = digest
        return spec
    }

    /// The egress policy the execution's proxy applies; rules that do not parse are dropped.
    public var egressPolicy: EgressPolicy {
        EgressPolicy(allow: allow.compactMap { EgressRule.parse($0.rule, source: $0.source) },
                     deny: deny.compactMap { EgressRule.parse($0.rule, source: $0.source) },
                     allowedRanges: addresses.compactMap { IPRange($0) })
    }
}
