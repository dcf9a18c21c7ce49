/// A sandbox profile as written in `profiles/*.yaml`. Absent fields are nil/empty; the
/// launcher's baseline fills them (see `SandboxDefaults`).
public struct Profile: Sendable, Equatable {
    /// Where the profile came from, for messages: a file path.
    public var source: String
    public var name: String
    public var description: String?
    /// Profiles (by name) this one builds on; applied first, in order.
    public var extends: [String] = []
    public var filesystem = Filesystem()
    public var environment = Environment()
    public var network = Network()
    public var rlimits: [ResourceLimit: LimitValue] = [:]
    /// Command-line tools intercepted by shims (profiles/tools/NAME.yaml); nil when the
    /// profile does not say (a later layer's list replaces an earlier one's).
    public var tools: [String]?
    public var snapshot = Snapshot()
    /// Files written into the persistent home when they do not exist yet (an agent's
    /// configuration, e.g. Codex's `.codex/config.toml`): relative path → contents.
    public var homeFiles: [String: String] = [:]
    /// Memory, CPU and process limits for the whole sandbox (cgroups; docs/sandbox.md).
    public var limits = SandboxLimits()

    /// Kubernetes through the broker (docs/kubernetes.md, "Profiles"): the namespaces reads are
    /// scoped to (nil: any) and the interactive subresources allowed (as proposals).
    public var kubernetes = Kubernetes()
    /// GitHub through the broker (docs/github.md, "Profiles"): `owner/repo` patterns reads are
    /// scoped to (nil: any).
    public var github = GitHub()
    /// AWS (docs/previews.md): the accounts whose changes are labelled production.
    public var aws = AWS()

    public struct AWS: Sendable, Equatable {
        public var productionAccounts: [String] = []
        public init() {}
    }

    public struct Kubernetes: Sendable, Equatable {
        public var readNamespaces: [String]?
        public var allow: [String] = []
        /// Resources gated even to read, besides Secrets (`configmaps`, `widgets.example.com`).
        public var sensitive: [String] = []
        public init() {}
    }

    public struct GitHub: Sendable, Equatable {
        public var repos: [String]?
        public init() {}
    }

    /// What a command proposal's workspace snapshot leaves out, and how large it may be
    /// (docs/commands.md).
    public struct Snapshot: Sendable, Equatable {
        public var exclude: [String] = []
        public var limit: UInt64?
        public init() {}
    }

    public struct Filesystem: Sendable, Equatable {
        /// Extra host paths mounted read-only at the same path (`~` is the invoking user's home).
        public var readOnly: [String] = []
        /// Extra host paths mounted read-write at the same path.
        public var readWrite: [String] = []
        /// Like `readOnly`, for paths that exist on some machines only (an agent installed
        /// one way or another): missing ones are skipped without a warning.
        public var readOnlyIfPresent: [String] = []
        /// Size of the sandbox's `/tmp`.
        public var tmpSize: UInt64?
        public init() {}
    }

    public struct Environment: Sendable, Equatable {
        /// Names or `*` patterns of launcher variables to pass, besides the terminal and
        /// locale ones that always pass. Credential-shaped names never pass.
        public var pass: [String] = []
        /// Variables to set to fixed values.
        public var set: [String: String] = [:]
        /// Directories put on PATH (after /run/airlock/bin), `~` being the invoking user's home.
        public var path: [String] = []
        public init() {}
    }

    public struct Network: Sendable, Equatable {
        /// Hosts the egress proxy lets the agent reach: `name`, `*.suffix`, optional `:port`.
        public var allow: [String] = []
        /// Hosts always refused (deny wins).
        public var deny: [String] = []
        /// Registry sets by name (npm, pypi, crates, go, …): their hosts join `allow`.
        public var registries: [String] = []
        /// Address ranges opened despite being loopback, private or link-local.
        public var allowAddresses: [String] = []
        public var headerTimeout: Int?
        public var idleTimeout: Int?
        public var totalTimeout: Int?
        public var maxTunnels: Int?
        public init() {}
    }

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }
}

/// Values used where no profile says otherwise; also the reference `airlock profile check`
/// measures loosenings against.
public enum SandboxDefaults {
    public static let tmpSize: UInt64 = 2 << 30
    public static let snapshotLimit: UInt64 = 256 << 20
    public static let rlimits = ResourceLimit.defaults
    /// Intercepted unless a profile says otherwise: a profile that forgets to name them must
    /// not let `terraform apply` run unprepared.
    public static let tools = ["terraform", "kubectl", "helm", "gh", "aws"]
}

/// Several profiles applied in order (`--profile a --profile b`, or `extends:`): lists add
/// up, later scalar values win.
public struct ProfileStack: Sendable, Equatable {
    public private(set) var layers: [Profile]

    public init(_ layers: [Profile]) {
        self.layers = layers
    }

    public var names: [String] { layers.map(\.name) }
    public var readOnly: [String] { unique(layers.flatMap(\.filesystem.readOnly)) }
    /// The intercepted tools: the last layer that names them decides (so a profile can also
    /// turn interception off with `tools: []`).
    public var tools: [String] { layers.compactMap(\.tools).last ?? SandboxDefaults.tools }
    public var readOnlyIfPresent: [String] { unique(layers.flatMap(\.filesystem.readOnlyIfPresent)) }
    public var path: [String] { unique(layers.flatMap(\.environment.path)) }
    public var readWrite: [String] { unique(layers.flatMap(\.filesystem.readWrite)) }
    public var tmpSize: UInt64 { layers.compactMap(\.filesystem.tmpSize).last ?? SandboxDefaults.tmpSize }
    public var pass: [String] { unique(layers.flatMap(\.environment.pass)) }
    public var snapshotExclude: [String] { unique(layers.flatMap(\.snapshot.exclude)) }
    /// The whole sandbox's cgroup limits: for each, the last layer that sets it.
    public var limits: SandboxLimits {
        SandboxLimits(memory: layers.compactMap(\.limits.memory).last, cpus: layers.compactMap(\.limits.cpus).last,
                      pids: layers.compactMap(\.limits.pids).last)
    }

    /// Later layers win for the same path.
    public var homeFiles: [String: String] {
        layers.reduce(into: [:]) { result, layer in result.merge(layer.homeFiles) { _, new in new } }
    }
    /// Reads are scoped by every layer that scopes them: a namespace must be in each list.
    public var kubernetesReadNamespaces: Set<String>? {
        let scoped = layers.compactMap(\.kubernetes.readNamespaces).map(Set.init)
        guard let first = scoped.first else { return nil }
        return scoped.dropFirst().reduce(first) { $0.intersection($1) }
    }
    public var kubernetesAllow: Set<String> { Set(layers.flatMap(\.kubernetes.allow)) }
    /// Every layer's sensitive resources: a layer can only add to them.
    public var kubernetesSensitive: Set<String> { Set(layers.flatMap(\.kubernetes.sensitive)) }
    /// Every layer's production accounts: a layer can only add to them.
    public var productionAccounts: Set<String> { Set(layers.flatMap(\.aws.productionAccounts)) }
    /// Each layer's repository patterns: a repository must match one of every layer's.
    public var githubRepoScopes: [[Glob]] { layers.compactMap(\.github.repos).map { $0.map { Glob($0.lowercased()) } } }

    /// Bytes a proposal's workspace snapshot may hold (256 MiB unless a profile says).
    public var snapshotLimit: UInt64 { layers.compactMap(\.snapshot.limit).last ?? SandboxDefaults.snapshotLimit }

    public var set: [String: String] {
        layers.reduce(into: [:]) { result, layer in
            result.merge(layer.environment.set) { _, new in new }
        }
    }

    public var rlimits: [ResourceLimit: LimitValue] {
        layers.reduce(into: SandboxDefaults.rlimits) { result, layer in
            result.merge(layer.rlimits) { _, new in new }
        }
    }

    /// The egress policy of all layers, plus `--allow-domain` entries.
    public func egressPolicy(extraAllow: [(entry: String, source: String)] = []) -> EgressPolicy {
        var policy = EgressPolicy()
        for layer in layers {
            let source = "profile \(layer.name)"
            policy.allow += layer.network.allow.compactMap { EgressRule.parse($0, source: source) }
            policy.deny += layer.network.deny.compactMap { EgressRule.parse($0, source: source) }
            for registry in layer.network.registries {
                policy.allow += (EgressRegistries.hosts[registry] ?? []).compactMap {
                    EgressRule.parse($0, source: "\(registry) registry (profile \(layer.name))")
                }
            }
            policy.allowedRanges += layer.network.allowAddresses.compactMap(IPRange.init)
        }
        policy.allow += extraAllow.compactMap { EgressRule.parse($0.entry, source: $0.source) }
        return policy
    }

    public var egressTimeouts: (header: Int, idle: Int, total: Int, maxTunnels: Int) {
        (layers.compactMap(\.network.headerTimeout).last ?? 10, layers.compactMap(\.network.idleTimeout).last ?? 300,
         layers.compactMap(\.network.totalTimeout).last ?? 4 * 3600, layers.compactMap(\.network.maxTunnels).last ?? 1024)
    }

    /// The persistent home is per profile: the last named layer's (an agent profile placed
    /// after `default` owns the home).
    public var homeName: String { layers.last?.name ?? "default" }

    private func unique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0).inserted }
    }
}
