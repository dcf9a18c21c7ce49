import AirlockCore
import Glibc

/// The session log (`<state>/sessions/<session>.log`): one timestamped line per broker
/// event. Never the agent's terminal.
public final class BrokerLog: @unchecked Sendable {
    private let fd: Int32
    private var mutex = pthread_mutex_t()
    public let path: String?

    public init(path: String?) {
        self.path = path
        if let path {
            let dir = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
            try? ensureDirectory(dir)
            fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        } else {
            fd = -1
        }
        pthread_mutex_init(&mutex, nil)
    }

    deinit { if fd >= 0 { close(fd) } }

    public func write(_ line: String) {
        guard fd >= 0 else { return }
        let text = Clock.now() + " " + line.replacingNewlines() + "\n"
        pthread_mutex_lock(&mutex)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        pthread_mutex_unlock(&mutex)
    }

    /// Lines of the log, for summaries at the end of a session.
    public func lines() -> [String] {
        guard let path, let text = try? readTextFile(path, limit: 64 << 20) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }
}

extension String {
    func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
