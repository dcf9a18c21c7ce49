/// Substring search and replacement without Foundation, on UTF-8 bytes (Character-wise
/// comparison is orders of magnitude slower on large texts).
extension String {
    public func range(ofText needle: String, from start: String.Index? = nil) -> Range<String.Index>? {
        let haystack = utf8
        let pattern = Array(needle.utf8)
        guard let first = pattern.first else { return nil }
        var index = start.map { $0.samePosition(in: haystack) ?? haystack.startIndex } ?? haystack.startIndex
        while let candidate = haystack[index...].firstIndex(of: first) {
            if haystack[candidate...].starts(with: pattern) {
                return candidate..<haystack.index(candidate, offsetBy: pattern.count)
            }
            index = haystack.index(after: candidate)
        }
        return nil
    }

    public func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var index = startIndex
        while let found = range(ofText: target, from: index) {
            out += self[index..<found.lowerBound]
            out += replacement
            index = found.upperBound
        }
        out += self[index...]
        return out
    }
}
