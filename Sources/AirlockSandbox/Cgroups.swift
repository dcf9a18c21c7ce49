import AirlockCore
import AirlockPolicy
import Glibc

/// The whole sandbox's memory, CPU and process limits (docs/sandbox.md): groups made beneath
/// the launcher's own cgroup (v2 where the launcher may create one with the controllers, v1
/// hierarchies as root), the sandbox's init put into them before it starts, and removed when
/// the sandbox has ended. What to write comes from `CgroupPlan` (pure).
public enum Cgroups {
    /// Reads /proc/self/mountinfo and /proc/self/cgroup.
    public static func inspect() -> CgroupHost {
        var host = CgroupHost()
        let own = (try? readTextFile("/proc/self/cgroup", limit: 1 << 16)) ?? ""
        var legacyPaths: [String: String] = [:]
        for line in own.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                host.unifiedPath = String(parts[2])
            } else {
                for controller in parts[1].split(separator: ",") { legacyPaths[String(controller)] = String(parts[2]) }
            }
        }
        let mounts = (try? readTextFile("/proc/self/mountinfo", limit: 1 << 20)) ?? ""
        for line in mounts.split(separator: "\n") {
            // id parent major:minor root mountpoint options … - fstype source superoptions
            let text = String(line)
            guard let separator = text.range(ofText: " - ") else { continue }
            let fields = text[..<separator.lowerBound].split(separator: " ")
            let tail = text[separator.upperBound...].split(separator: " ")
            guard fields.count >= 5, tail.count >= 3 else { continue }
            let mountpoint = String(fields[4])
            if tail[0] == "cgroup2", host.unifiedMount == nil {
                host.unifiedMount = mountpoint
            } else if tail[0] == "cgroup" {
                for option in tail[2].split(separator: ",") where ["memory", "pids", "cpu"].contains(String(option)) {
                    let controller = String(option)
                    guard let path = legacyPaths[controller] else { continue }
                    let directory = CgroupPlan.join(mountpoint, path)
                    host.legacy[controller] = (mountpoint, path, access(directory, W_OK) == 0)
                }
            }
        }
        if let mount = host.unifiedMount, let path = host.unifiedPath {
            let directory = CgroupPlan.join(mount, path)
            let words = { (file: String) in Set(((try? readTextFile(directory + "/" + file, limit: 4096)) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)) }
            host.unifiedAvailable = words("cgroup.controllers")
            host.unifiedEnabled = words("cgroup.subtree_control")
            host.unifiedWritable = access(directory, W_OK) == 0 && access(directory + "/cgroup.subtree_control", W_OK) == 0
        }
        return host
    }

    /// The groups of one running sandbox.
    public final class Handle: @unchecked Sendable {
        let groups: [CgroupPlan.Group]

        init(groups: [CgroupPlan.Group]) { self.groups = groups }

        /// Puts a process (the sandbox's init, before it runs anything) into every group.
        public func add(_ pid: pid_t) throws(AirlockError) {
            for group in groups {
                try Cgroups.write(group.directory + "/cgroup.procs", String(pid))
            }
        }

        /// Processes the kernel killed for want of memory.
        public func oomKills() -> Int {
            groups.compactMap(\.oomEvents).reduce(0) { total, file in
                total + CgroupPlan.oomKills((try? readTextFile(file, limit: 1 << 16)) ?? "")
            }
        }

        /// Removes the groups (empty once the sandbox's pid namespace is gone).
        public func remove() {
            for group in groups.reversed() {
                for _ in 0..<50 {
                    if rmdir(group.directory) == 0 || errno == ENOENT { break }
                    usleep(10_000)
                }
            }
        }
    }

    /// Makes the plan's groups; nil when there is nothing to enforce.
    public static func create(_ plan: CgroupPlan) throws(AirlockError) -> Handle? {
        guard !plan.groups.isEmpty else { return nil }
        var made: [CgroupPlan.Group] = []
        do throws(AirlockError) {
            for group in plan.groups {
                let parent = String(group.directory[..<group.directory.lastIndex(of: "/")!])
                if !group.enableInParent.isEmpty { try enable(group.enableInParent, in: parent) }
                guard mkdir(group.directory, 0o755) == 0 || errno == EEXIST else {
                    throw AirlockError("cannot create the cgroup \(group.directory): \(String(cString: strerror(errno)))")
                }
                made.append(group)
                for (name, value) in group.files {
                    let optional = name.hasSuffix("?")
                    let file = group.directory + "/" + (optional ? String(name.dropLast()) : name)
                    if optional && access(file, F_OK) != 0 { continue }
                    try write(file, value)
                }
            }
        } catch {
            Handle(groups: made).remove()
            throw error
        }
        return Handle(groups: made)
    }

    /// cgroup v2 lets a cgroup enable controllers for children only while it has no
    /// processes of its own ("no internal processes"): the launcher, in its own cgroup,
    /// first moves into a leaf beside the sandbox's.
    static func enable(_ controllers: [String], in parent: String) throws(AirlockError) {
        let line = controllers.map { "+" + $0 }.joined(separator: " ")
        if (try? write(parent + "/cgroup.subtree_control", line)) != nil { return }
        guard errno == EBUSY else {
            throw AirlockError("cannot enable \(controllers.joined(separator: ", ")) in \(parent): \(String(cString: strerror(errno)))")
        }
        let leaf = parent + "/airlock-launcher-\(getpid())"
        guard mkdir(leaf, 0o755) == 0 || errno == EEXIST else {
            throw AirlockError("cannot create \(leaf): \(String(cString: strerror(errno)))")
        }
        try write(leaf + "/cgroup.procs", String(getpid()))
        try write(parent + "/cgroup.subtree_control", line)
    }

    static func write(_ path: String, _ value: String) throws(AirlockError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw AirlockError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw AirlockError("cannot write \(value) to \(path): \(String(cString: strerror(errno)))")
        }
    }
}
