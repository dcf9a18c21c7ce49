import AirlockCore
import AirlockPolicy
import CAirlockLinux
import CSeccomp
import Glibc

/// `airlock doctor`: what this kernel offers the sandbox, each missing piece with its fix.
public struct DoctorCheck: Sendable, Equatable {
    public enum Status: String, Sendable { case ok, warning, failed }
    public var name: String
    public var status: Status
    public var detail: String
    public var fix: String?

    public init(name: String, status: Status, detail: String, fix: String?) {
        self.name = name
        self.status = status
        self.detail = detail
        self.fix = fix
    }
}

public enum Doctor {
    public static func run(environment: [String: String]) -> [DoctorCheck] {
        var checks = [userNamespaces(), seccomp(), landlock(), cgroups()]
        if getuid() == 0 { checks.append(idmappedMounts()) }
        checks.append(sandboxProbe(environment: environment))
        return checks
    }

    static func readSysctl(_ path: String) -> String? {
        guard let text = try? readTextFile(path, limit: 64) else { return nil }
        return String(text.filter { !$0.isWhitespace })
    }

    static func userNamespaces() -> DoctorCheck {
        let name = "user namespaces"
        if let max = readSysctl("/proc/sys/user/max_user_namespaces"), max == "0" {
            return DoctorCheck(name: name, status: .failed, detail: "user.max_user_namespaces is 0",
                               fix: "sysctl -w user.max_user_namespaces=15000 (persist it in /etc/sysctl.d/)")
        }
        if let value = readSysctl("/proc/sys/kernel/unprivileged_userns_clone"), value == "0" {
            return DoctorCheck(name: name, status: getuid() == 0 ? .warning : .failed,
                               detail: "kernel.unprivileged_userns_clone is 0: only root can create them",
                               fix: "sysctl -w kernel.unprivileged_userns_clone=1 (persist it in /etc/sysctl.d/)")
        }
        if let value = readSysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"), value == "1" {
            return DoctorCheck(name: name, status: getuid() == 0 ? .warning : .failed,
                               detail: "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+)",
                               fix: "add an AppArmor profile granting `userns,` to the airlock binary, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")
        }
        let max = readSysctl("/proc/sys/user/max_user_namespaces") ?? "?"
        return DoctorCheck(name: name, status: .ok, detail: "available (max_user_namespaces \(max))", fix: nil)
    }

    static func seccomp() -> DoctorCheck {
        let status = (try? readTextFile("/proc/self/status", limit: 1 << 16)) ?? ""
        guard status.contains("Seccomp:") else {
            return DoctorCheck(name: "seccomp", status: .failed, detail: "the kernel has no seccomp",
                               fix: "use a kernel built with CONFIG_SECCOMP_FILTER=y")
        }
        do {
            let program = try SeccompProgram.build()
            return DoctorCheck(name: "seccomp", status: .ok,
                               detail: "filter builds (\(program.count) BPF instructions, libseccomp \(libseccompVersion()))",
                               fix: nil)
        } catch {
            return DoctorCheck(name: "seccomp", status: .failed, detail: error.message,
                               fix: "apt-get install libseccomp2 (and libseccomp-dev to build)")
        }
    }

    static func landlock() -> DoctorCheck {
        let abi = al_landlock_abi()
        if abi > 0 {
            return DoctorCheck(name: "landlock", status: .ok, detail: "ABI \(abi): writes confined to the workspace, home and temporary directories", fix: nil)
        }
        let reason = errno == EOPNOTSUPP ? "built in but not enabled" : "not in this kernel"
        return DoctorCheck(name: "landlock", status: .warning, detail: "\(reason); the sandbox relies on mounts and seccomp alone",
                           fix: errno == EOPNOTSUPP ? "add landlock to the kernel's lsm= boot parameter" : "use Linux ≥ 5.13 with CONFIG_SECURITY_LANDLOCK=y")
    }

    /// Which of a profile's `limits:` (memory, cpus, pids for the whole sandbox) this host
    /// and this user can enforce, and how to enable the rest.
    static func cgroups() -> DoctorCheck {
        let host = Cgroups.inspect()
        let plan = CgroupPlan.make(SandboxLimits(memory: 1 << 30, cpus: 1, pids: 1024), host: host, name: "airlock-doctor")
        let enforced = SandboxLimits.Kind.allCases.filter { kind in !plan.unenforced.contains { $0.kind == kind } }
        let how = plan.groups.map { group in
            group.directory.hasPrefix(host.unifiedMount ?? "\0") ? "cgroup v2" : "cgroup v1"
        }
        let names = { (kinds: [SandboxLimits.Kind]) in kinds.map { $0 == .cpu ? "cpus" : $0.rawValue }.joined(separator: ", ") }
        if plan.unenforced.isEmpty {
            return DoctorCheck(name: "cgroup limits", status: .ok,
                               detail: "limits.memory, cpus and pids are enforced (\(Set(how).sorted().joined(separator: " and ")))", fix: nil)
        }
        let detail = enforced.isEmpty
            ? "no profile limit (memory, cpus, pids) can be enforced for this user here; only rlimits apply"
            : "enforced: \(names(enforced)); not enforced: \(names(plan.unenforced.map(\.kind)))"
        return DoctorCheck(name: "cgroup limits", status: .warning, detail: detail,
                           fix: plan.unenforced.map { "\($0.kind == .cpu ? "cpus" : $0.kind.rawValue): \($0.why)" }.joined(separator: "; "))
    }

    static func idmappedMounts() -> DoctorCheck {
        let name = "idmapped mounts (root launches)"
        let userns = al_idmap_userns(0, Launcher.rootAgentID(environment: [:]), 0, Launcher.rootAgentID(environment: [:]))
        guard userns >= 0 else {
            return DoctorCheck(name: name, status: .failed, detail: "cannot create an id mapping: \(String(cString: strerror(errno)))",
                               fix: "use Linux ≥ 5.12, or run airlock as an unprivileged user")
        }
        defer { close(userns) }
        let tree = al_open_tree("/tmp", Int32(AL_MOUNT_NOSUID), userns)
        guard tree >= 0 else {
            return DoctorCheck(name: name, status: .failed, detail: "/tmp cannot be idmapped: \(String(cString: strerror(errno)))",
                               fix: "keep workspaces on ext4, xfs, btrfs or tmpfs, or run airlock as an unprivileged user")
        }
        close(tree)
        return DoctorCheck(name: name, status: .ok, detail: "workspaces stay writable while the agent is not host root", fix: nil)
    }

    /// The real thing: start a sandbox running /bin/true with the default layout.
    static func sandboxProbe(environment: [String: String]) -> DoctorCheck {
        let name = "sandbox"
        do {
            let stack = ProfileStack([])
            let facts = try HostInspection.gather(profiles: stack, workspace: "/tmp", stateDir: nil, environment: environment)
            let layout = try SandboxLayout.make(profiles: stack, host: facts)
            var clock = timespec()
            clock_gettime(CLOCK_MONOTONIC, &clock)
            let started = Double(clock.tv_sec) + Double(clock.tv_nsec) / 1e9
            let sandbox = try Launcher.start(LaunchRequest(layout: layout, argv: ["/bin/true"], terminal: nil), environment: environment)
            let exit = try sandbox.wait().get()
            clock_gettime(CLOCK_MONOTONIC, &clock)
            let elapsed = (Double(clock.tv_sec) + Double(clock.tv_nsec) / 1e9 - started) * 1000
            guard exit == .exited(0) else {
                return DoctorCheck(name: name, status: .failed, detail: "/bin/true ended with \(exit.code)", fix: nil)
            }
            return DoctorCheck(name: name, status: .ok,
                               detail: "started /bin/true \(getuid() == 0 ? "as root (agent mapped to an unprivileged uid)" : "unprivileged") in \(Int(elapsed)) ms",
                               fix: nil)
        } catch {
            return DoctorCheck(name: name, status: .failed, detail: error.message, fix: error.hint)
        }
    }

    static func libseccompVersion() -> String {
        guard let version = seccomp_version() else { return "?" }
        return "\(version.pointee.major).\(version.pointee.minor).\(version.pointee.micro)"
    }
}
