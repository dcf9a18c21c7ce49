import Glibc

/// Random identifiers: proposal ids people type, session ids, dummy keys.
public enum RandomID {
    /// `count` characters from `alphabet`, uniformly.
    public static func make(_ count: Int, alphabet: String = "0123456789abcdef") -> String {
        let letters = Array(alphabet)
        // getentropy(3) (getrandom) fills 32 values a call, where SystemRandomNumberGenerator
        // makes one call per value (60 for a session's dummy keys). Multiply-shift maps 64
        // random bits onto the alphabet with a bias below 2^-58.
        var values = [UInt64](repeating: 0, count: count)
        let filled = values.withUnsafeMutableBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count, let base = buffer.baseAddress {
                let chunk = min(256, buffer.count - offset)  // its most per call
                guard getentropy(base + offset, chunk) == 0 else { return false }
                offset += chunk
            }
            return true
        }
        if !filled {
            var generator = SystemRandomNumberGenerator()
            values = values.map { _ in generator.next() }
        }
        return String(values.map { letters[Int(($0.multipliedFullWidth(by: UInt64(letters.count))).high)] })
    }
}

/// Who did something, for the audit log: a person at a terminal, or a session.
public enum Actor {
    /// `user:NAME(uid N)` for the process's real user (from /etc/passwd, without NSS).
    public static func currentUser() -> String {
        let uid = getuid()
        var name = "uid\(uid)"
        if let file = fopen("/etc/passwd", "r") {
            defer { fclose(file) }
            var line: UnsafeMutablePointer<CChar>?
            var size = 0
            while getline(&line, &size, file) > 0 {
                let fields = String(cString: line!).split(separator: ":", omittingEmptySubsequences: false)
                if fields.count > 2, fields[2] == Substring(String(uid)) { name = String(fields[0]); break }
            }
            free(line)
        }
        return "user:\(name)(uid \(uid))"
    }

    /// A live process, as pid plus start time (so a recycled pid is not mistaken for it).
    public static func processIdentity(_ pid: pid_t = getpid()) -> String? {
        guard let start = processStartTime(pid) else { return nil }
        return "\(pid):\(start)"
    }

    public static func isAlive(_ identity: String) -> Bool {
        let parts = identity.split(separator: ":")
        guard parts.count == 2, let pid = pid_t(parts[0]) else { return false }
        return processStartTime(pid) == String(parts[1])
    }

    /// Field 22 of /proc/PID/stat (after the command name, which may contain spaces).
    static func processStartTime(_ pid: pid_t) -> String? {
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 1024)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }
}
