/// Substring search and replacement without Foundation.
extension String {
    public func range(ofText needle: String, from start: String.Index? = nil) -> Range<String.Index>? {
        var index = start ?? startIndex
        while index < endIndex {
            if self[index...].hasPrefix(needle) { return index..<self.index(index, offsetBy: needle.count) }
            index = self.index(after: index)
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
