import AirlockCore
import AirlockPolicy
import Crypto
import Glibc

/// Files of a proposal's artifact directory (in the state directory, which no sandbox sees):
/// digests of the plan and of outputs, copies of the human's files for one execution, and
/// cleaning up. Workspace files are read only through `Beneath` and `WorkspaceSnapshot`.
public enum PinnedFiles {
    /// All copies of one proposal together.
    public static let copyLimit = 64 << 20

    public struct Refusal: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// SHA-256 of a file, or of a directory's manifest (each regular file's relative path
    /// and digest, sorted); symlinks and special files are refused.
    public static func digest(_ path: String) throws(Refusal) -> String {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw Refusal("\(path): \(String(cString: strerror(errno)))") }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return try fileDigest(path)
        case S_IFDIR:
            var manifest = ""
            for relative in try walk(path) {
                manifest += relative + "\0" + (try fileDigest(path + "/" + relative)) + "\n"
            }
            return SigV4.hexSHA256(Array(manifest.utf8))
        default:
            throw Refusal("\(path) is neither a regular file nor a directory")
        }
    }

    public static func fileDigest(_ path: String, followLinks: Bool = false) throws(Refusal) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (followLinks ? 0 : O_NOFOLLOW))
        guard fd >= 0 else { throw Refusal("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw Refusal("\(path): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return SigV4.hex(Array(hasher.finalize()))
    }

    /// Regular files below `directory`, relative, sorted; a symlink or special file is refused.
    static func walk(_ directory: String, prefix: String = "") throws(Refusal) -> [String] {
        guard let handle = opendir(directory) else { throw Refusal("\(directory): \(String(cString: strerror(errno)))") }
        defer { closedir(handle) }
        var found: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { throw Refusal("\(path): \(String(cString: strerror(errno)))") }
            switch info.st_mode & S_IFMT {
            case S_IFREG: found.append(prefix + name)
            case S_IFDIR: found += try walk(path, prefix: prefix + name + "/")
            default: throw Refusal("\(path) is a symlink or special file; only regular files can be pinned")
            }
        }
        return found.sorted()
    }

    /// Copies a host file or directory (the human's kubeconfig for one execution).
    public static func copyAny(_ source: String, to destination: String, budget: Int) throws(Refusal) -> Int {
        var info = stat()
        guard stat(source, &info) == 0 else { throw Refusal("\(source): \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFDIR else { return try copyFile(source, to: destination, budget: budget) }
        var copied = 0
        for relative in try walk(source) {
            copied += try copyFile(source + "/" + relative, to: destination + "/" + relative, budget: budget - copied)
        }
        return copied
    }

    static func copyFile(_ source: String, to destination: String, budget: Int) throws(Refusal) -> Int {
        try makeParents(of: destination)
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else { throw Refusal("\(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        var info = stat()
        guard fstat(input, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw Refusal("\(source) is not a regular file") }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw Refusal("\(destination): \(String(cString: strerror(errno)))") }
        defer { close(output) }
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = read(input, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw Refusal("\(source): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            total += count
            guard total <= budget else {
                throw Refusal("\(source) is larger than \(copyLimit >> 20) MiB; Airlock copies at most that for an execution")
            }
            guard write(output, buffer, count) == count else { throw Refusal("\(destination): \(String(cString: strerror(errno)))") }
        }
        return total
    }

    public static func makeParents(of path: String) throws(Refusal) {
        var current = ""
        for part in path.split(separator: "/").dropLast() {
            current += "/" + part
            if mkdir(current, 0o700) != 0 && errno != EEXIST { throw Refusal("\(current): \(String(cString: strerror(errno)))") }
        }
    }

    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Makes a tree readable by the execution sandbox's agent (a root launch maps it to
    /// another uid, and binds read-only trees without an idmap): 0644 files, 0755
    /// directories. Only for Airlock's own copies inside the state directory (0700).
    public static func makeReadable(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            chmod(path, 0o755)
            guard let handle = opendir(path) else { return }
            var names: [String] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(handle)
            for name in names { makeReadable(path + "/" + name) }
        } else if info.st_mode & S_IFMT == S_IFREG {
            chmod(path, 0o644)
        }
    }

    /// Removes a directory tree (artifact scratch: provider caches, copied credentials).
    public static func remove(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR, let handle = opendir(path) {
            var names: [String] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(handle)
            for name in names { remove(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
