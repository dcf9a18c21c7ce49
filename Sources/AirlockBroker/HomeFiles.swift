import AirlockCore
import Glibc

/// A profile's `home_files` (docs/sandbox.md): configuration an agent needs to run inside
/// Airlock (Codex's sandbox settings), written into its persistent home once, when absent;
/// never overwritten (the agent or the person may have changed it since). The home is the
/// agent's to write, so every path is opened beneath it without following symlinks: a
/// symlink planted there cannot make the launcher (maybe root) write elsewhere.
public enum HomeFiles {
    /// Returns warnings for files that could not be written (the session goes on).
    public static func write(_ files: [String: String], into home: String, owner: (uid_t, gid_t)?) -> [String] {
        guard !files.isEmpty else { return [] }
        guard let root = try? Beneath.openRoot(home) else { return ["cannot open the agent's home \(home) to write its configuration"] }
        defer { close(root) }
        var warnings: [String] = []
        for (path, contents) in files.sorted(by: { $0.key < $1.key }) {
            let parts = path.split(separator: "/").map(String.init)
            var current = ""
            var failed = false
            for part in parts.dropLast() {
                current += (current.isEmpty ? "" : "/") + part
                if let fd = try? Beneath.open(root, current, flags: O_RDONLY | O_DIRECTORY) { close(fd); continue }
                let parentPath = current.contains("/") ? String(current[..<current.lastIndex(of: "/")!]) : ""
                guard let parent = parentPath.isEmpty ? dup(root) : try? Beneath.open(root, parentPath, flags: O_RDONLY | O_DIRECTORY),
                      mkdirat(parent, part, 0o755) == 0 || errno == EEXIST else {
                    warnings.append("cannot create \(current) in the agent's home: \(String(cString: strerror(errno)))")
                    failed = true
                    break
                }
                if let owner { fchownat(parent, part, owner.0, owner.1, AT_SYMLINK_NOFOLLOW) }
                close(parent)
            }
            guard !failed else { continue }
            // O_EXCL: an existing file (or a symlink) is left as it is.
            let parentPath = parts.dropLast().joined(separator: "/")
            guard let parent = parentPath.isEmpty ? dup(root) : try? Beneath.open(root, parentPath, flags: O_RDONLY | O_DIRECTORY) else { continue }
            defer { close(parent) }
            let fd = openat(parent, parts[parts.count - 1], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                if errno != EEXIST { warnings.append("cannot write \(path) in the agent's home: \(String(cString: strerror(errno)))") }
                continue
            }
            let bytes = Array(contents.utf8)
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if let owner { fchown(fd, owner.0, owner.1) }
            close(fd)
            if written != bytes.count { warnings.append("cannot write \(path) in the agent's home") }
        }
        return warnings
    }
}
