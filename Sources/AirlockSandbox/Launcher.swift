import AirlockCore
import AirlockPolicy
import CAirlockLinux
import CCap
import Glibc

/// A listening socket the sandbox's init creates inside the sandbox's network namespace and
/// hands to the launcher (docs/design.md §1: no forwarder process).
public enum ListenerRequest: Sendable, Equatable {
    case tcp(port: UInt16)
    case unix(path: String)
}

public struct LaunchRequest: Sendable {
    public var layout: SandboxLayout
    public var argv: [String]
    /// Give the agent a pseudo-terminal (when the launcher's stdin and stdout are terminals).
    public var terminal: (rows: UInt16, columns: UInt16)?
    public var listeners: [ListenerRequest] = []
    /// The compiled seccomp filter, when the caller built it ahead (in the background).
    public var seccomp: Background<Result<SeccompProgram, AirlockError>>?
    /// The cgroups the sandbox's init joins before it starts (its memory, CPU, process limits).
    public var cgroups: Cgroups.Handle?

    public init(layout: SandboxLayout, argv: [String], terminal: (rows: UInt16, columns: UInt16)?) {
        self.layout = layout
        self.argv = argv
        self.terminal = terminal
    }
}

/// How the agent ended.
public enum AgentExit: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)

    /// docs/design.md §6: the agent's exit code, or 128+N when a signal N ended it.
    public var code: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        }
    }
}

/// Starts sandboxes. When the launcher runs as root, the agent is mapped to an unprivileged
/// host uid (never host root) and writable trees are idmapped so they stay writable.
public enum Launcher {
    /// The host uid/gid the agent runs as when Airlock is started by root
    /// (`AIRLOCK_AGENT_UID` overrides). Never 0.
    public static func rootAgentID(environment: [String: String]) -> UInt32 {
        if let text = environment["AIRLOCK_AGENT_UID"], let value = UInt32(text), value != 0 { return value }
        return 100_000
    }

    /// `onListeners` runs as soon as init has handed over the listeners, while it still sets
    /// up the agent (the broker starts serving in that time).
    public static func start(_ request: LaunchRequest, environment: [String: String],
                             onListeners: (RunningSandbox) throws(AirlockError) -> Void = { _ throws(AirlockError) in }) throws(AirlockError) -> RunningSandbox {
        let arena = CArena()
        let layout = request.layout
        let asRoot = getuid() == 0
        let hostID = asRoot ? rootAgentID(environment: environment) : getuid()
        let hostGID = asRoot ? rootAgentID(environment: environment) : getgid()
        var ownedFDs: [Int32] = []
        defer { for fd in ownedFDs { close(fd) } }

        if asRoot, let home = homeSource(layout) {
            // The agent's home belongs to the agent's host uid, so it can write there.
            chown(home, hostID, hostGID)
        }
        var idmaps: [String: Int32] = [:]  // "uid:gid" → user namespace fd
        var mounts: [al_mount] = []
        for step in layout.mounts {
            var mount = al_mount()
            mount.fd = -1
            mount.target = arena.string(step.target)
            switch step {
            case let .bind(source, _, writable, directory, role):
                var flags = Int32(AL_MOUNT_NOSUID)
                if !writable { flags |= Int32(AL_MOUNT_READONLY) }
                flags |= role == .device ? Int32(AL_MOUNT_NOEXEC) : Int32(AL_MOUNT_NODEV)
                if directory { flags |= Int32(AL_MOUNT_DIRECTORY) }
                mount.flags = flags
                mount.source = arena.string(source)
                if asRoot {
                    // Root clones the trees itself (the child, as the agent's uid, could not
                    // even traverse /root) and idmaps the writable ones: their owner on disk
                    // appears as the agent's host uid.
                    var userns: Int32 = -1
                    if writable && role != .home && role != .device {
                        userns = try idmapNamespace(for: source, hostID: hostID, hostGID: hostGID, cache: &idmaps)
                    }
                    let fd = al_open_tree(source, flags, userns)
                    guard fd >= 0 else {
                        throw AirlockError(
                            "cannot prepare \(source) for the sandbox: \(String(cString: strerror(errno)))",
                            hint: userns >= 0
                                ? "its file system may not support idmapped mounts (Linux ≥ 5.12, ext4/xfs/btrfs/tmpfs); run airlock as your own user instead of root"
                                : nil)
                    }
                    ownedFDs.append(fd)
                    mount.kind = Int32(AL_MOUNT_TREE.rawValue)
                    mount.fd = fd
                } else {
                    mount.kind = Int32(AL_MOUNT_BIND_PATH.rawValue)
                }
            case let .tmpfs(_, options, noExec):
                mount.kind = Int32(AL_MOUNT_TMPFS.rawValue)
                mount.source = arena.string(options)
                mount.flags = Int32(AL_MOUNT_NOSUID | AL_MOUNT_NODEV | AL_MOUNT_DIRECTORY)
                if noExec { mount.flags |= Int32(AL_MOUNT_NOEXEC) }
            case .proc:
                mount.kind = Int32(AL_MOUNT_PROC.rawValue)
            case .devpts:
                mount.kind = Int32(AL_MOUNT_DEVPTS.rawValue)
            case let .symlink(_, pointsTo):
                mount.kind = Int32(AL_MOUNT_SYMLINK.rawValue)
                mount.source = arena.string(pointsTo)
            case let .file(_, contents, mode):
                mount.kind = Int32(AL_MOUNT_FILE.rawValue)
                let (bytes, length) = arena.bytes(contents)
                mount.source = bytes
                mount.length = length
                mount.mode = Int32(mode)
            case let .mask(_, cover):
                mount.kind = Int32(AL_MOUNT_MASK.rawValue)
                mount.source = arena.string(cover)
            case .remountReadOnly:
                mount.kind = Int32(AL_MOUNT_REMOUNT_RO.rawValue)
                mount.flags = Int32(AL_MOUNT_NOSUID | AL_MOUNT_NODEV | AL_MOUNT_NOEXEC)
            }
            mounts.append(mount)
        }

        let seccomp = try (request.seccomp?.value ?? Result { () throws(AirlockError) in try SeccompProgram.build() }).get()
        guard let capsEmpty = cap_init(), let capsFull = cap_init() else {
            throw AirlockError("libcap could not allocate a capability set")
        }
        defer {
            cap_free(UnsafeMutableRawPointer(capsEmpty))
            cap_free(UnsafeMutableRawPointer(capsFull))
        }
        let capLast = Int32(cap_max_bits()) - 1
        var everything = (0...capLast).map { cap_value_t($0) }
        cap_set_flag(capsFull, CAP_PERMITTED, Int32(everything.count), &everything, CAP_SET)
        cap_set_flag(capsFull, CAP_EFFECTIVE, Int32(everything.count), &everything, CAP_SET)

        let sync = try makePipe(), report = try makePipe(), status = try makePipe()
        var control: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &control) == 0 else {
            throw AirlockError("socketpair failed: \(String(cString: strerror(errno)))")
        }
        // The child's ends are closed here once it has its copies; ours stay with the session.
        ownedFDs += [sync.read, report.write, status.write, control[1]]

        var listeners = request.listeners.map { listener -> al_listener in
            var entry = al_listener()
            switch listener {
            case .tcp(let port):
                entry.kind = Int32(AL_LISTEN_TCP4)
                entry.port = port
            case .unix(let path):
                entry.kind = Int32(AL_LISTEN_UNIX)
                entry.path = arena.string(path)
            }
            return entry
        }
        let rlimits = layout.rlimits.map { item -> al_rlimit in
            let (soft, hard): (UInt64, UInt64)
            switch item.value {
            case .unlimited: (soft, hard) = (UInt64.max, UInt64.max)  // RLIM_INFINITY
            case .limited(let value): (soft, hard) = (value, value)
            }
            return al_rlimit(resource: item.limit.resource, soft: soft, hard: hard)
        }
        // AIRLOCK_LANDLOCK=off is an escape hatch for kernels whose Landlock misbehaves.
        let landlockABI = environment["AIRLOCK_LANDLOCK"] == "off" ? 0 : al_landlock_abi()

        var spec = al_spec()
        spec.uid = SandboxLayout.agentUID
        spec.gid = SandboxLayout.agentUID
        spec.drop_groups = asRoot ? 1 : 0
        spec.sync_fd = sync.read
        spec.report_fd = report.write
        spec.status_fd = status.write
        spec.control_fd = control[1]
        spec.mounts = UnsafePointer(arena.array(mounts))
        spec.mount_count = mounts.count
        spec.hostname = arena.string(layout.hostname)
        spec.cwd = arena.string(layout.cwd)
        spec.listeners = UnsafePointer(arena.array(listeners))
        spec.listener_count = listeners.count
        if let terminal = request.terminal {
            spec.use_pty = 1
            spec.rows = terminal.rows
            spec.cols = terminal.columns
        }
        spec.argv = UnsafePointer(arena.stringArray(request.argv))
        spec.envp = UnsafePointer(arena.stringArray(layout.environment.map { "\($0.name)=\($0.value)" } + layout.extraEnvironment))
        spec.path = arena.string(layout.environment.first { $0.name == "PATH" }?.value ?? SandboxLayout.defaultPath)
        spec.rlimits = UnsafePointer(arena.array(rlimits))
        spec.rlimit_count = rlimits.count
        spec.cap_last = capLast
        spec.caps_empty = capsEmpty
        spec.caps_full = capsFull
        spec.seccomp = UnsafePointer(seccomp.program)
        spec.landlock_abi = landlockABI > 0 ? landlockABI : 0
        spec.writable = UnsafePointer(arena.stringArray(layout.writable))
        spec.writable_count = layout.writable.count
        listeners.removeAll()

        var pidfd: Int32 = -1
        StartupTrace.mark("spawn")
        let pid = al_spawn(&spec, &pidfd)
        StartupTrace.mark("spawned")
        guard pid > 0 else {
            let err = errno
            throw AirlockError(
                "cannot create the sandbox's namespaces: \(String(cString: strerror(err)))",
                hint: err == EPERM || err == ENOSPC || err == EACCES
                    ? "user namespaces are restricted on this machine; `airlock doctor` says why and how to enable them"
                    : nil)
        }
        let sandbox = RunningSandbox(pid: pid, pidfd: pidfd, sync: sync.write, report: report.read, status: status.read,
                                     control: control[0])
        do throws(AirlockError) {
            try writeIdentityMaps(pid: pid, asRoot: asRoot, hostID: hostID, hostGID: hostGID)
            // Init has not run anything yet (it waits for `go`): every process of the sandbox
            // is born inside its limits.
            try request.cgroups?.add(pid)
            var go: UInt8 = 1
            guard write(sync.write, &go, 1) == 1 else { throw AirlockError("the sandbox's init did not start") }
            for fd in ownedFDs { close(fd) }
            ownedFDs.removeAll()
            try sandbox.receiveDescriptors(listeners: request.listeners.count, terminal: request.terminal != nil)
            StartupTrace.mark("listeners")
            try onListeners(sandbox)
            StartupTrace.mark("serving")
            try sandbox.awaitExec()
            StartupTrace.mark("exec")
        } catch {
            sandbox.kill()
            _ = sandbox.wait()
            throw error
        }
        return sandbox
    }

    static func homeSource(_ layout: SandboxLayout) -> String? {
        for case let .bind(source, _, _, _, role) in layout.mounts where role == .home { return source }
        return nil
    }

    static func idmapNamespace(for path: String, hostID: UInt32, hostGID: UInt32, cache: inout [String: Int32]) throws(AirlockError) -> Int32 {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw AirlockError("cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        let key = "\(st.st_uid):\(st.st_gid)"
        if let fd = cache[key] { return fd }
        let fd = al_idmap_userns(st.st_uid, hostID, st.st_gid, hostGID)
        guard fd >= 0 else {
            throw AirlockError(
                "cannot create the id mapping for \(path): \(String(cString: strerror(errno)))",
                hint: "idmapped mounts need Linux ≥ 5.12; or run airlock as your own user instead of root")
        }
        cache[key] = fd
        return fd
    }

    /// The agent is uid/gid 1000 inside, mapped to exactly one host id: the launcher's own
    /// (unprivileged launch; setgroups must then be denied) or the unprivileged agent id.
    static func writeIdentityMaps(pid: pid_t, asRoot: Bool, hostID: UInt32, hostGID: UInt32) throws(AirlockError) {
        let inside = SandboxLayout.agentUID
        if !asRoot { try writeProcFile(pid: pid, "setgroups", "deny") }
        try writeProcFile(pid: pid, "uid_map", "\(inside) \(hostID) 1\n")
        try writeProcFile(pid: pid, "gid_map", "\(inside) \(hostGID) 1\n")
    }

    static func writeProcFile(pid: pid_t, _ name: String, _ text: String) throws(AirlockError) {
        let path = "/proc/\(pid)/\(name)"
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        var ok = false
        if fd >= 0 {
            ok = text.withCString { write(fd, $0, strlen($0)) } == text.utf8.count
            close(fd)
        }
        if !ok {
            throw AirlockError(
                "cannot write \(path): \(String(cString: strerror(errno)))",
                hint: "the kernel refused the user namespace id mapping; see `airlock doctor`")
        }
    }

    static func makePipe() throws(AirlockError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard al_pipe_cloexec(&fds) == 0 else {
            throw AirlockError("pipe failed: \(String(cString: strerror(errno)))")
        }
        return (fds[0], fds[1])
    }
}
