import AirlockCore
import CAirlockLinux
import Glibc

/// File access that never leaves a directory the agent can write into (the workspace): every
/// path is opened relative to the directory's descriptor with `openat2(RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS)`, or, on kernels without openat2, one component at a time with
/// `O_NOFOLLOW`. A symlink swapped in mid-walk makes the open fail; it never makes the
/// broker (which may run as root) read a host file.
public enum Beneath {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    /// Opens a directory the caller names on the host (already resolved): the root of a walk.
    public static func openRoot(_ path: String) throws(Failure) -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Failure("\(path): \(errnoText())") }
        return fd
    }

    /// Opens `relative` beneath `directory` (a descriptor) without following any symlink.
    public static func open(_ directory: Int32, _ relative: String, flags: Int32, mode: mode_t = 0) throws(Failure) -> Int32 {
        guard !relative.isEmpty, !relative.hasPrefix("/") else { throw Failure("\(relative): not a relative path") }
        let fd = al_openat2_beneath(directory, relative, flags, Int32(mode))
        if fd >= 0 { return fd }
        guard errno == ENOSYS else { throw Failure("\(relative): \(errorText(errno))") }
        return try openByComponents(directory, relative, flags: flags, mode: mode)
    }

    /// The fallback: each directory component opened with O_NOFOLLOW | O_DIRECTORY, `..`
    /// refused, the last with the caller's flags plus O_NOFOLLOW.
    static func openByComponents(_ directory: Int32, _ relative: String, flags: Int32, mode: mode_t) throws(Failure) -> Int32 {
        let parts = relative.split(separator: "/").map(String.init)
        guard !parts.isEmpty, !parts.contains(".."), !parts.contains(".") else { throw Failure("\(relative): must not contain . or ..") }
        var current = directory
        var owned: Int32 = -1
        defer { if owned >= 0 { close(owned) } }
        for part in parts.dropLast() {
            let next = openat(current, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { throw Failure("\(relative): \(errorText(errno))") }
            if owned >= 0 { close(owned) }
            owned = next
            current = next
        }
        let fd = openat(current, parts[parts.count - 1], flags | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure("\(relative): \(errorText(errno))") }
        return fd
    }

    static func errorText(_ code: Int32) -> String {
        code == ELOOP || code == EXDEV ? "a symlink or a path outside the workspace (refused)" : String(cString: strerror(code))
    }

    /// The names in a directory (not `.`/`..`), sorted bytewise; names that are not UTF-8 are
    /// refused (two could otherwise decode to one).
    public static func names(_ directory: Int32, what: String) throws(Failure) -> [String] {
        let copy = dup(directory)
        guard copy >= 0, let handle = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw Failure("\(what): \(errnoText())")
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if bytes == [0x2E] || bytes == [0x2E, 0x2E] { continue }
            guard let name = String(validating: bytes, as: UTF8.self) else {
                throw Failure("\(what) holds a file name that is not UTF-8; rename it or leave it out of the snapshot")
            }
            names.append(name)
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// lstat of one name in a directory.
    public static func status(_ directory: Int32, _ name: String) -> stat? {
        var info = stat()
        return fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0 ? info : nil
    }

    public static func readLink(_ directory: Int32, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlinkat(directory, name, &buffer, 4096)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Reads a regular file beneath `directory`, at most `limit` bytes (more is an error).
    public static func read(_ directory: Int32, _ relative: String, limit: Int) throws(Failure) -> [UInt8] {
        let fd = try open(directory, relative, flags: O_RDONLY | O_NONBLOCK)
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw Failure("\(relative) is not a regular file") }
        guard Int(info.st_size) <= limit else { throw Failure("\(relative) is larger than \(limit) bytes") }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw Failure("\(relative): \(errnoText())") }
            if count == 0 { break }
            out += buffer[0..<count]
            guard out.count <= limit else { throw Failure("\(relative) is larger than \(limit) bytes") }
        }
        return out
    }

    /// Replaces (or creates) `relative` beneath `directory` with `bytes`, atomically: a new
    /// file next to it, then a rename, never through a symlink. The directory must exist.
    public static func replace(_ directory: Int32, _ relative: String, with bytes: [UInt8], mode: mode_t, owner: (uid_t, gid_t)?) throws(Failure) {
        let parts = relative.split(separator: "/").map(String.init)
        guard let name = parts.last else { throw Failure("empty path") }
        let parent: Int32
        if parts.count > 1 {
            parent = try open(directory, parts.dropLast().joined(separator: "/"), flags: O_RDONLY | O_DIRECTORY)
        } else {
            parent = dup(directory)
        }
        defer { close(parent) }
        let temporary = ".\(name).airlock-\(RandomID.make(8))"
        let fd = openat(parent, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure("\(relative): \(errnoText())") }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                close(fd)
                unlinkat(parent, temporary, 0)
                throw Failure("\(relative): \(errnoText())")
            }
            written += count
        }
        if let owner { fchown(fd, owner.0, owner.1) }
        fchmod(fd, mode)
        let synced = fsync(fd) == 0
        close(fd)
        guard synced, renameat(parent, temporary, parent, name) == 0 else {
            let message = errnoText()
            unlinkat(parent, temporary, 0)
            throw Failure("\(relative): \(message)")
        }
    }
}
