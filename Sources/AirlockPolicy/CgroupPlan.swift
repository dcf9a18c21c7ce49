/// Memory, CPU and process limits for the whole sandbox through cgroups (docs/sandbox.md):
/// which files to write where, decided from what the host has. Pure: the launcher reads the
/// host's cgroup mounts and its own cgroup paths, this decides, the launcher writes.
public struct SandboxLimits: Sendable, Equatable {
    /// Bytes of memory (and swap, where the kernel counts it) the sandbox may use.
    public var memory: UInt64?
    /// CPUs' worth of time per period (1.5 = one and a half cores).
    public var cpus: Double?
    /// Processes and threads at once.
    public var pids: Int?

    public init(memory: UInt64? = nil, cpus: Double? = nil, pids: Int? = nil) {
        self.memory = memory
        self.cpus = cpus
        self.pids = pids
    }

    public var isEmpty: Bool { memory == nil && cpus == nil && pids == nil }

    public enum Kind: String, Sendable, CaseIterable { case memory, cpu, pids }

    public var requested: [Kind] {
        var kinds: [Kind] = []
        if memory != nil { kinds.append(.memory) }
        if cpus != nil { kinds.append(.cpu) }
        if pids != nil { kinds.append(.pids) }
        return kinds
    }
}

/// What the launcher found about cgroups on this host.
public struct CgroupHost: Sendable, Equatable {
    /// The cgroup v2 mount (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts).
    public var unifiedMount: String?
    /// The launcher's own cgroup in the v2 hierarchy (`0::/path` of /proc/self/cgroup).
    public var unifiedPath: String?
    /// Controllers available to children of the launcher's v2 cgroup (`cgroup.controllers`
    /// of it) and already enabled for them (`cgroup.subtree_control`).
    public var unifiedAvailable: Set<String> = []
    public var unifiedEnabled: Set<String> = []
    /// Whether the launcher may create cgroups beneath its own v2 cgroup (root, or a
    /// delegated subtree it owns).
    public var unifiedWritable = false
    /// v1 hierarchies per controller (`memory`, `pids`, `cpu`): mount and the launcher's path.
    public var legacy: [String: (mount: String, path: String, writable: Bool)] = [:]

    public init() {}

    public static func == (a: CgroupHost, b: CgroupHost) -> Bool {
        a.unifiedMount == b.unifiedMount && a.unifiedPath == b.unifiedPath && a.unifiedAvailable == b.unifiedAvailable
            && a.unifiedEnabled == b.unifiedEnabled && a.unifiedWritable == b.unifiedWritable
            && a.legacy.keys.sorted() == b.legacy.keys.sorted()
            && a.legacy.keys.allSatisfy { a.legacy[$0]! == b.legacy[$0]! }
    }
}

public struct CgroupPlan: Sendable, Equatable {
    /// A directory to create (beneath the launcher's own cgroup) and the files to write in it.
    public struct Group: Sendable, Equatable {
        public var directory: String
        public var files: [(name: String, value: String)]
        /// Whether the v2 parent first needs these controllers enabled for its children.
        public var enableInParent: [String]
        /// The file whose counters tell of an out-of-memory kill, if this group limits memory.
        public var oomEvents: String?

        public static func == (a: Group, b: Group) -> Bool {
            a.directory == b.directory && a.files.map(\.name) == b.files.map(\.name) && a.files.map(\.value) == b.files.map(\.value)
                && a.enableInParent == b.enableInParent && a.oomEvents == b.oomEvents
        }
    }

    public var groups: [Group]
    /// Limits that cannot be enforced here, each with what to do about it.
    public var unenforced: [(kind: SandboxLimits.Kind, why: String)]

    public static func == (a: CgroupPlan, b: CgroupPlan) -> Bool {
        a.groups == b.groups && a.unenforced.map(\.kind) == b.unenforced.map(\.kind) && a.unenforced.map(\.why) == b.unenforced.map(\.why)
    }

    static let v1Controller: [SandboxLimits.Kind: String] = [.memory: "memory", .cpu: "cpu", .pids: "pids"]
    static let period = 100_000

    /// The groups for one sandbox (`name`, e.g. `airlock-<session>`): cgroup v2 when the
    /// launcher's own v2 cgroup can take a child with the controllers, else v1 hierarchies
    /// where the host has them (as root), else unenforced with the reason.
    public static func make(_ limits: SandboxLimits, host: CgroupHost, name: String) -> CgroupPlan {
        var plan = CgroupPlan(groups: [], unenforced: [])
        guard !limits.isEmpty else { return plan }
        var pending = limits.requested
        if let mount = host.unifiedMount, let path = host.unifiedPath, host.unifiedWritable {
            let wanted = pending.map { $0 == .cpu ? "cpu" : $0.rawValue }
            let usable = pending.filter { host.unifiedAvailable.contains($0 == .cpu ? "cpu" : $0.rawValue) }
            if !usable.isEmpty {
                var files: [(String, String)] = []
                for kind in usable { files += unifiedFiles(kind, limits) }
                let parent = join(mount, path)
                plan.groups.append(Group(directory: parent + "/" + name, files: files,
                                         enableInParent: wanted.filter { host.unifiedAvailable.contains($0) && !host.unifiedEnabled.contains($0) },
                                         oomEvents: usable.contains(.memory) ? parent + "/" + name + "/memory.events" : nil))
                pending.removeAll { usable.contains($0) }
            }
        }
        for kind in pending {
            let controller = v1Controller[kind]!
            guard let hierarchy = host.legacy[controller] else {
                plan.unenforced.append((kind, unenforcedReason(kind, host: host)))
                continue
            }
            guard hierarchy.writable else {
                plan.unenforced.append((kind, "the \(controller) cgroup (v1) \(join(hierarchy.mount, hierarchy.path)) is not writable by this user: run airlock as root, or on a host with a delegated cgroup v2 subtree (systemd-run --user --scope -p Delegate=yes airlock run …)"))
                continue
            }
            let directory = join(hierarchy.mount, hierarchy.path) + "/" + name
            plan.groups.append(Group(directory: directory, files: legacyFiles(kind, limits), enableInParent: [],
                                     oomEvents: kind == .memory ? directory + "/memory.oom_control" : nil))
        }
        return plan
    }

    static func unifiedFiles(_ kind: SandboxLimits.Kind, _ limits: SandboxLimits) -> [(String, String)] {
        switch kind {
        case .memory: return [("memory.max", String(limits.memory!)), ("memory.swap.max", "0")]
        case .pids: return [("pids.max", String(limits.pids!))]
        case .cpu: return [("cpu.max", "\(quota(limits.cpus!)) \(period)")]
        }
    }

    static func legacyFiles(_ kind: SandboxLimits.Kind, _ limits: SandboxLimits) -> [(String, String)] {
        switch kind {
        // memsw (memory + swap) is written after the plain limit, where the kernel has it.
        case .memory: return [("memory.limit_in_bytes", String(limits.memory!)), ("memory.memsw.limit_in_bytes?", String(limits.memory!))]
        case .pids: return [("pids.max", String(limits.pids!))]
        case .cpu: return [("cpu.cfs_period_us", String(period)), ("cpu.cfs_quota_us", String(quota(limits.cpus!)))]
        }
    }

    static func quota(_ cpus: Double) -> Int { max(1000, Int((cpus * Double(period)).rounded())) }

    static func unenforcedReason(_ kind: SandboxLimits.Kind, host: CgroupHost) -> String {
        let controller = kind == .cpu ? "cpu" : kind.rawValue
        if host.unifiedMount != nil && !host.unifiedWritable {
            return "the \(controller) limit needs a cgroup this user may create: the launcher's cgroup v2 (\(host.unifiedPath ?? "?")) is not delegated to it; run under systemd-run --user --scope -p Delegate=yes, or as root"
        }
        if host.unifiedMount != nil {
            return "the \(controller) controller is not available to the launcher's cgroup v2 (enabled in its parent's cgroup.subtree_control), and the host has no v1 \(controller) hierarchy"
        }
        return "the host has no cgroup hierarchy with the \(controller) controller (mount cgroup2, or the v1 \(controller) controller)"
    }

    public static func join(_ mount: String, _ path: String) -> String {
        path == "/" || path.isEmpty ? mount : mount + (path.hasPrefix("/") ? path : "/" + path)
    }

    /// An out-of-memory kill in the counters a group's `oomEvents` file holds (v2
    /// `memory.events`: `oom_kill N`; v1 `memory.oom_control`: `oom_kill N`).
    public static func oomKills(_ text: String) -> Int {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == "oom_kill", let count = Int(parts[1]) { return count }
        }
        return 0
    }
}
