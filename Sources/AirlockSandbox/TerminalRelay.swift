import Glibc

/// The host terminal's settings while the agent owns the screen.
enum TerminalMode {
    static func makeRaw(_ fd: Int32) -> termios? {
        var saved = termios()
        guard tcgetattr(fd, &saved) == 0 else { return nil }
        var raw = saved
        cfmakeraw(&raw)
        tcsetattr(fd, TCSANOW, &raw)
        return saved
    }

    static func restore(_ fd: Int32, _ saved: termios) {
        var saved = saved
        tcsetattr(fd, TCSANOW, &saved)
    }

    static func size(_ fd: Int32) -> (rows: UInt16, columns: UInt16) {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 else { return (24, 80) }
        return (size.ws_row, size.ws_col)
    }

    static func copySize(from fd: Int32, to master: Int32) {
        var size = winsize()
        if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0 { _ = ioctl(master, UInt(TIOCSWINSZ), &size) }
    }
}

/// Copies bytes between the launcher's terminal and the pty master of the agent's terminal
/// (which lives in the sandbox's own devpts). Keystrokes such as Ctrl-C travel as bytes and
/// the sandbox's line discipline turns them into signals for the agent's foreground job.
final class TerminalRelay: @unchecked Sendable {
    private let master: Int32
    private let finished = Semaphore()

    init(master: Int32) {
        self.master = master
    }

    func start() {
        spawnThread { [self] in
            relay()
            finished.signal()
        }
    }

    /// Waits (up to a second) until the agent's last output has been written out.
    func finish() {
        finished.wait(timeoutSeconds: 1)
    }

    private func relay() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var stdinOpen = true
        while true {
            var fds = [
                pollfd(fd: master, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stdinOpen ? 0 : -1, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[0].revents != 0 {
                // EIO: every slave descriptor is closed, the sandbox is gone.
                let n = read(master, &buffer, buffer.count)
                if n <= 0 { return }
                guard writeAll(1, buffer, n) else { return }
            }
            if stdinOpen && fds[1].revents != 0 {
                let n = read(0, &buffer, buffer.count)
                if n <= 0 {
                    stdinOpen = false
                } else if !writeAll(master, buffer, n) {
                    return
                }
            }
        }
    }

    private func writeAll(_ fd: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
        var offset = 0
        while offset < count {
            let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + offset, count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}

/// A counting semaphore with a timed wait, on POSIX semaphores.
final class Semaphore: @unchecked Sendable {
    private var semaphore = sem_t()

    init() { sem_init(&semaphore, 0, 0) }
    deinit { sem_destroy(&semaphore) }

    func signal() { sem_post(&semaphore) }

    func wait() {
        while sem_wait(&semaphore) != 0 && errno == EINTR {}
    }

    func wait(timeoutSeconds: Int) {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_sec += timeoutSeconds
        while sem_timedwait(&semaphore, &deadline) != 0 && errno == EINTR {}
    }
}
