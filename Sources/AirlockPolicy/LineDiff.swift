/// A unified diff of two texts by lines (what a preview shows: the live object against the
/// server's dry-run answer). Longest common subsequence by dynamic programming: objects are
/// small (the API server caps them at about 1.5 MiB), and above `maximumCells` the diff is
/// the whole old text removed and the new one added, which is still correct.
public enum LineDiff {
    public static let maximumCells = 4_000_000

    public static func unified(old: String, new: String, oldName: String = "live", newName: String = "after", context: Int = 3) -> String {
        let a = lines(old), b = lines(new)
        let edits = script(a, b)
        guard edits.contains(where: { $0.kind != .same }) else { return "" }
        var out = ["--- \(oldName)", "+++ \(newName)"]
        // Hunks: changes with up to `context` unchanged lines around them; changes closer
        // than twice that share a hunk.
        let changed = edits.indices.filter { edits[$0].kind != .same }
        var group = 0
        while group < changed.count {
            var last = group
            while last + 1 < changed.count && changed[last + 1] - changed[last] <= 2 * context + 1 { last += 1 }
            let start = max(0, changed[group] - context), stop = min(edits.count, changed[last] + 1 + context)
            let oldStart = edits[..<start].filter { $0.kind != .added }.count + 1
            let newStart = edits[..<start].filter { $0.kind != .removed }.count + 1
            let hunk = edits[start..<stop]
            out.append("@@ -\(oldStart),\(hunk.filter { $0.kind != .added }.count) +\(newStart),\(hunk.filter { $0.kind != .removed }.count) @@")
            for edit in hunk {
                switch edit.kind {
                case .same: out.append(" " + edit.line)
                case .removed: out.append("-" + edit.line)
                case .added: out.append("+" + edit.line)
                }
            }
            group = last + 1
        }
        return out.joined(separator: "\n") + "\n"
    }

    struct Edit: Equatable {
        enum Kind { case same, removed, added }
        var kind: Kind
        var line: String
    }

    static func lines(_ text: String) -> [String] {
        guard !text.isEmpty else { return [] }
        var parts = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if parts.last == "" { parts.removeLast() }
        return parts
    }

    static func script(_ a: [String], _ b: [String]) -> [Edit] {
        // Common prefix and suffix first: most previews change a few lines of many.
        var prefix = 0
        while prefix < a.count && prefix < b.count && a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix && suffix < b.count - prefix && a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        let midA = Array(a[prefix..<(a.count - suffix)]), midB = Array(b[prefix..<(b.count - suffix)])
        var edits = a[..<prefix].map { Edit(kind: .same, line: $0) }
        if midA.count * midB.count > maximumCells || midA.isEmpty || midB.isEmpty {
            edits += midA.map { Edit(kind: .removed, line: $0) } + midB.map { Edit(kind: .added, line: $0) }
        } else {
            let n = midA.count, m = midB.count
            // lengths[i][j]: LCS of midA[i...] and midB[j...], one flat array.
            var lengths = [Int32](repeating: 0, count: (n + 1) * (m + 1))
            for i in stride(from: n - 1, through: 0, by: -1) {
                for j in stride(from: m - 1, through: 0, by: -1) {
                    lengths[i * (m + 1) + j] = midA[i] == midB[j]
                        ? lengths[(i + 1) * (m + 1) + j + 1] + 1
                        : max(lengths[(i + 1) * (m + 1) + j], lengths[i * (m + 1) + j + 1])
                }
            }
            var i = 0, j = 0
            while i < n || j < m {
                if i < n && j < m && midA[i] == midB[j] {
                    edits.append(Edit(kind: .same, line: midA[i])); i += 1; j += 1
                } else if i < n && (j == m || lengths[(i + 1) * (m + 1) + j] >= lengths[i * (m + 1) + j + 1]) {
                    // Removals before additions, as diff -u prints them.
                    edits.append(Edit(kind: .removed, line: midA[i])); i += 1
                } else {
                    edits.append(Edit(kind: .added, line: midB[j])); j += 1
                }
            }
        }
        edits += a[(a.count - suffix)...].map { Edit(kind: .same, line: $0) }
        return edits
    }
}
