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
    public var rlimits: [ResourceLimit: LimitValue] = [:]

    public struct Filesystem: Sendable, Equatable {
        /// Extra host paths mounted read-only at the same path (`~` is the invoking user's home).
        public var readOnly: [String] = []
        /// Extra host paths mounted read-write at the same path.
        public var readWrite: [String] = []
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
    public static let rlimits = ResourceLimit.defaults
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
    public var readWrite: [String] { unique(layers.flatMap(\.filesystem.readWrite)) }
    public var tmpSize: UInt64 { layers.compactMap(\.filesystem.tmpSize).last ?? SandboxDefaults.tmpSize }
    public var pass: [String] { unique(layers.flatMap(\.environment.pass)) }

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

    /// The persistent home is per profile: the last named layer's (an agent profile placed
    /// after `default` owns the home).
    public var homeName: String { layers.last?.name ?? "default" }

    private func unique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0).inserted }
    }
}
