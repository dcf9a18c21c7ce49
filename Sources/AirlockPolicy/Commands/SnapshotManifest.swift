import AirlockCore

/// What a command proposal's workspace snapshot holds (docs/commands.md): every directory,
/// regular file (size, SHA-256, executable bit) and symlink (its target, never followed), by
/// path relative to the workspace root. Its canonical text is digested: the digest is pinned
/// in the proposal, and an execution re-walks the snapshot and refuses on any difference.
/// Pure: the broker's walker builds the entries.
public struct SnapshotEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case directory
        case file(size: Int, sha256: String, executable: Bool)
        case symlink(target: String)
    }

    /// Relative, `/`-separated, no leading `/`, never `.` or `..` components.
    public var path: String
    public var kind: Kind

    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }

    var json: JSON {
        switch kind {
        case .directory: return .array([.string("d"), .string(path)])
        case .file(let size, let sha256, let executable):
            return .array([.string(executable ? "x" : "f"), .string(path), .number(Double(size)), .string(sha256)])
        case .symlink(let target): return .array([.string("l"), .string(path), .string(target)])
        }
    }

    init?(json: JSON) {
        guard let items = json.array, items.count >= 2, let type = items[0].string, let path = items[1].string,
              SnapshotManifest.isRelativePath(path) else { return nil }
        switch (type, items.count) {
        case ("d", 2): kind = .directory
        case ("f", 4), ("x", 4):
            guard let size = items[2].int, size >= 0, let sha = items[3].string else { return nil }
            kind = .file(size: size, sha256: sha, executable: type == "x")
        case ("l", 3):
            guard let target = items[2].string else { return nil }
            kind = .symlink(target: target)
        default: return nil
        }
        self.path = path
    }
}

public struct SnapshotManifest: Sendable, Equatable {
    /// Sorted by path.
    public let entries: [SnapshotEntry]

    public init(entries: [SnapshotEntry]) {
        self.entries = entries.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    /// One JSON array per line, in path order: the bytes the digest is taken of.
    public var text: String {
        entries.map { $0.json.serialized() + "\n" }.joined()
    }

    public var digest: String { SigV4.hexSHA256(Array(text.utf8)) }

    public var fileCount: Int {
        entries.reduce(0) { count, entry in if case .file = entry.kind { return count + 1 } else { return count } }
    }

    public var totalBytes: Int {
        entries.reduce(0) { total, entry in if case .file(let size, _, _) = entry.kind { return total + size } else { return total } }
    }

    public static func parse(_ text: String) -> SnapshotManifest? {
        var entries: [SnapshotEntry] = []
        for line in text.split(separator: "\n") {
            guard let json = try? JSON.parseStrict(bytes: Array(line.utf8)), let entry = SnapshotEntry(json: json) else { return nil }
            entries.append(entry)
        }
        return SnapshotManifest(entries: entries)
    }

    public func entry(_ path: String) -> SnapshotEntry? {
        entries.first { $0.path == path }
    }

    /// What differs from `other` (paths added, removed or changed), for the refusal message.
    public func differences(from other: SnapshotManifest, limit: Int = 10) -> [String] {
        let mine = Dictionary(entries.map { ($0.path, $0.kind) }, uniquingKeysWith: { a, _ in a })
        let theirs = Dictionary(other.entries.map { ($0.path, $0.kind) }, uniquingKeysWith: { a, _ in a })
        var out: [String] = []
        for path in Set(mine.keys).union(theirs.keys).sorted() where mine[path] != theirs[path] {
            switch (theirs[path], mine[path]) {
            case (nil, _): out.append("\(path) (new)")
            case (_, nil): out.append("\(path) (gone)")
            default: out.append(path)
            }
            if out.count == limit { out.append("…"); break }
        }
        return out
    }

    /// A path as the manifest holds them: relative, no empty, `.` or `..` component.
    public static func isRelativePath(_ path: String) -> Bool {
        !path.isEmpty && !path.hasPrefix("/") && path.utf8.count <= 4096 && !path.contains("\0")
            && path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }
}

/// Which workspace paths a snapshot leaves out: name patterns (`.terraform`, `*.log`, matching
/// any component) and anchored relative paths (`data/raw`), from the tool and sandbox profiles,
/// plus the paths the sandbox masks (credentials inside the workspace). Leaving something out
/// can only make an execution see less.
public struct SnapshotExclusion: Sendable, Equatable {
    public var names: [String]
    public var paths: Set<String>

    public init(patterns: [String], paths: Set<String> = []) {
        names = patterns.filter { !$0.contains("/") }
        self.paths = paths.union(patterns.filter { $0.contains("/") }.map { String($0.drop { $0 == "/" }) })
    }

    public func excludes(_ relativePath: String) -> Bool {
        if paths.contains(relativePath) { return true }
        let name = relativePath.split(separator: "/").last.map(String.init) ?? relativePath
        return names.contains { Glob($0).matches(name) }
    }
}

/// Why a snapshot is too large, with where the bytes are and how to leave them out.
public enum SnapshotSize {
    /// The largest directories (depth 1 and 2) of a workspace whose per-directory byte counts
    /// are given; a parent is dropped when one listed child holds most of it.
    public static func largest(_ sizes: [String: Int], count: Int = 5) -> [(path: String, bytes: Int)] {
        let candidates = sizes.filter { $0.key.split(separator: "/").count <= 2 }.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
        var picked: [(String, Int)] = []
        for (path, bytes) in candidates {
            if picked.count == count { break }
            picked.append((path, bytes))
        }
        // A parent whose listed child holds ≥ 80% of it says nothing the child does not.
        let filtered = picked.filter { parent in
            !picked.contains { child in child.0.hasPrefix(parent.0 + "/") && child.1 * 5 >= parent.1 * 4 }
        }
        return filtered.map { (path: $0.0, bytes: $0.1) }
    }

    public static func refusal(total: Int, limit: Int, largest: [(path: String, bytes: Int)]) -> String {
        let list = largest.map { "\($0.path) (\(ByteSize.human($0.bytes)))" }.joined(separator: ", ")
        let names = largest.prefix(3).map(\.path).joined(separator: ", ")
        return """
            the workspace is \(total >= limit ? "over" : "about") \(ByteSize.human(total)), more than the snapshot limit of \(ByteSize.human(limit)); \
            a proposal runs on a copy of the workspace, so nothing was proposed. Largest directories: \(list). \
            Leave them out with `snapshot: {exclude: [\(names)]}` in a profile (airlock run --profile FILE), \
            or raise `snapshot: {limit: …}`
            """
    }
}
