/// Lexical path helpers for absolute host paths. No file system access: callers resolve
/// symlinks first where it matters.
public enum HostPath {
    /// Collapses `//`, `.` and `..` and drops a trailing slash. `path` must be absolute.
    /// The directory holding `path` ("/" for a top-level name, "." for a bare name).
    public static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    public static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// True when `path` is `ancestor` or lies beneath it.
    public static func isWithin(_ path: String, _ ancestor: String) -> Bool {
        if ancestor == "/" { return true }
        return path == ancestor || path.hasPrefix(ancestor + "/")
    }

    /// Number of components: "/" is 0, "/usr/lib" is 2.
    public static func depth(_ path: String) -> Int {
        path.split(separator: "/").count
    }

    /// Expands a leading `~` or `~/` to `home`.
    public static func expandingTilde(_ path: String, home: String) -> String {
        if path == "~" { return home }
        if path.hasPrefix("~/") { return home + path.dropFirst(1) }
        return path
    }
}
