import Glibc

/// Runs a program to completion and collects its output (posix_spawn: safe from a
/// multi-threaded process).
public enum ChildProcess {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// `directory`: where the child starts (default: here). `mergeOutput`: stderr goes to
    /// stdout (in order, as a terminal would show them). `outputLimit`: bytes kept of each
    /// stream; the rest is read and dropped so the child never blocks.
    public static func run(_ argv: [String], environment: [String: String], stdin: [UInt8] = [], directory: String? = nil,
                           mergeOutput: Bool = false, outputLimit: Int = 64 << 20) throws(AirlockError) -> Output {
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1], inPipe: [Int32] = [-1, -1]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0, pipe(&inPipe) == 0 else {
            throw AirlockError("pipe failed: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, mergeOutput ? outPipe[1] : errPipe[1], 2)
        if let directory { _ = spawnAddChdir(&actions, directory) }
        for fd in inPipe + outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Signals the launcher blocks must not stay blocked in the child.
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in cArgs + cEnv { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        for fd in [inPipe[0], outPipe[1], errPipe[1]] { close(fd) }
        guard rc == 0 else {
            for fd in [inPipe[1], outPipe[0], errPipe[0]] { close(fd) }
            throw AirlockError("cannot run \(argv[0]): \(String(cString: strerror(rc)))")
        }
        if !stdin.isEmpty { stdin.withUnsafeBytes { _ = write(inPipe[1], $0.baseAddress, $0.count) } }
        close(inPipe[1])
        // Read both pipes without deadlocking on a full one.
        var out = [UInt8](), err = [UInt8]()
        var open = [outPipe[0], errPipe[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 && errno != EINTR { break }
            for entry in fds where entry.revents != 0 {
                let n = read(entry.fd, &buffer, buffer.count)
                if n <= 0 {
                    close(entry.fd)
                    open.removeAll { $0 == entry.fd }
                } else if entry.fd == outPipe[0] {
                    if out.count < outputLimit { out += buffer[0..<min(n, outputLimit - out.count)] }
                } else {
                    if err.count < outputLimit { err += buffer[0..<min(n, outputLimit - err.count)] }
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Output(status: code, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }
}

/// glibc ≥ 2.29; not exported by the Glibc module (it is a GNU extension).
@_silgen_name("posix_spawn_file_actions_addchdir_np")
private func spawnAddChdir(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: UnsafePointer<CChar>) -> Int32
