import AirlockCore
import CAirlockLinux
import Glibc

/// A started sandbox: its init's pid and pidfd, the pty master (if any), the listeners its
/// init created inside the network namespace.
public final class RunningSandbox: @unchecked Sendable {
    public let pid: pid_t
    public let pidfd: Int32
    public private(set) var terminal: Int32?
    public private(set) var listeners: [Int32] = []
    /// Held open for the whole session: init polls it to notice a dead launcher.
    private let syncFD: Int32
    private let reportFD: Int32
    private let statusFD: Int32
    private let controlFD: Int32

    init(pid: pid_t, pidfd: Int32, sync: Int32, report: Int32, status: Int32, control: Int32) {
        self.pid = pid
        self.pidfd = pidfd
        self.syncFD = sync
        self.reportFD = report
        self.statusFD = status
        self.controlFD = control
    }

    deinit {
        for fd in [syncFD, reportFD, statusFD, controlFD, pidfd] + listeners where fd >= 0 { close(fd) }
        if let terminal { close(terminal) }
    }

    /// Setup is a few milliseconds; a init that takes longer than this is stuck.
    static let setupTimeoutMilliseconds: Int32 = 30_000

    /// Hands the listeners over (their new owner closes them).
    public func takeListeners() -> [Int32] {
        defer { listeners = [] }
        return listeners
    }

    /// Listeners first, then the pty master, in the order init sends them.
    func receiveDescriptors(listeners count: Int, terminal: Bool) throws(AirlockError) {
        for _ in 0..<(count + (terminal ? 1 : 0)) {
            try waitReadable(controlFD)
            let fd = al_recv_fd(controlFD)
            guard fd >= 0 else { throw setupFailure() }
            if listeners.count < count { listeners.append(fd) } else { self.terminal = fd }
        }
    }

    /// Returns once the agent has exec'd (the report pipe closes empty); throws the failed
    /// setup stage otherwise.
    func awaitExec() throws(AirlockError) {
        try waitReadable(reportFD)
        var report = al_report()
        let n = withUnsafeMutableBytes(of: &report) { readFully(reportFD, $0) }
        if n == 0 { return }
        throw LaunchFailure.error(for: report)
    }

    private func waitReadable(_ fd: Int32) throws(AirlockError) {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var ready: Int32
        repeat { ready = poll(&entry, 1, Self.setupTimeoutMilliseconds) } while ready < 0 && errno == EINTR
        if ready == 0 {
            throw AirlockError("the sandbox did not finish setting up within \(Self.setupTimeoutMilliseconds / 1000) s",
                               hint: "this is a bug in Airlock or a kernel that blocks a setup step; `airlock doctor` may tell which")
        }
    }

    private func setupFailure() -> AirlockError {
        var report = al_report()
        let n = withUnsafeMutableBytes(of: &report) { readFully(reportFD, $0) }
        if n == MemoryLayout<al_report>.size { return LaunchFailure.error(for: report) }
        return AirlockError("the sandbox's init ended during setup without saying why",
                            hint: "run `airlock doctor` to check what this kernel allows")
    }

    public func signal(_ number: Int32) {
        // pidfd_send_signal: no risk of hitting a recycled pid.
        if al_pidfd_send_signal(pidfd, number) != 0 { Glibc.kill(pid, number) }
    }

    public func kill() { signal(SIGKILL) }

    /// Waits for init to end and returns how the agent ended.
    public func wait() -> Result<AgentExit, AirlockError> {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        var agentStatus: Int32 = 0
        let n = withUnsafeMutableBytes(of: &agentStatus) { readFully(statusFD, $0) }
        if n == 4 { return .success(Self.decode(agentStatus)) }
        let initExit = Self.decode(status)
        if case .signaled(let signal) = initExit {
            return .failure(AirlockError("the sandbox was killed by signal \(signal) before the agent finished"))
        }
        return .failure(AirlockError("the sandbox's init ended (status \(initExit.code)) without the agent's exit status"))
    }

    static func decode(_ status: Int32) -> AgentExit {
        let signal = status & 0x7F
        return signal == 0 ? .exited((status >> 8) & 0xFF) : .signaled(signal)
    }
}

/// Reads until the buffer is full or EOF; returns the byte count.
func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
    var total = 0
    while total < buffer.count {
        let n = read(fd, buffer.baseAddress! + total, buffer.count - total)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        total += n
    }
    return total
}

/// Turns a failed setup stage into a message that says what to do.
enum LaunchFailure {
    static func error(for report: al_report) -> AirlockError {
        let stage = String(cString: al_stage_name(report.stage))
        let detail = withUnsafeBytes(of: report.detail) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let reason = String(cString: strerror(report.err))
        let subject = detail.isEmpty ? "" : " (\(detail))"
        switch (Int(report.stage), report.err) {
        case (Int(AL_STAGE_EXEC.rawValue), ENOENT):
            return AirlockError("command not found in the sandbox: \(detail)",
                                hint: "the sandbox sees /usr, /etc, /opt and the workspace; add other tool paths to a profile's filesystem.readonly", code: .commandNotFound)
        case (Int(AL_STAGE_EXEC.rawValue), EACCES):
            return AirlockError("cannot execute \(detail) in the sandbox: permission denied", code: .commandNotExecutable)
        case (Int(AL_STAGE_OPEN_TREE.rawValue), _), (Int(AL_STAGE_MOUNT.rawValue), ENOENT):
            return AirlockError("cannot mount \(detail) into the sandbox: \(reason)",
                                hint: "check that the path exists and that you can read it")
        case (Int(AL_STAGE_LANDLOCK.rawValue), _):
            return AirlockError("Landlock setup failed at \(detail): \(reason)",
                                hint: "set AIRLOCK_LANDLOCK=off to run without Landlock, and report this")
        case (Int(AL_STAGE_CWD.rawValue), _):
            return AirlockError("cannot enter \(detail) inside the sandbox: \(reason)")
        case (Int(AL_STAGE_MOUNT.rawValue), EPERM), (Int(AL_STAGE_MOUNT_PRIVATE.rawValue), EPERM),
            (Int(AL_STAGE_NEW_ROOT.rawValue), EPERM):
            return AirlockError("sandbox setup failed at \(stage)\(subject): \(reason)",
                                hint: "the kernel refused a mount inside the user namespace (AppArmor or a container runtime may restrict this); run `airlock doctor`")
        default:
            return AirlockError("sandbox setup failed at \(stage)\(subject): \(reason)",
                                hint: "run `airlock doctor` to check what this kernel allows")
        }
    }
}
