/// The AWS INI dialect: `[section]`, `key = value`, indented continuation lines (for nested
/// `s3 =` blocks, which are kept as text), `#` and `;` comments.
public enum INI {
    public static func parse(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        var lastKey: String?
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            let trimmed = String(line).trimmingWhitespace()
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if trimmed.hasPrefix("[") && trimmed.hasSuffix("]") {
                current = String(trimmed.dropFirst().dropLast()).trimmingWhitespace()
                sections[current!, default: [:]] = sections[current!] ?? [:]
                lastKey = nil
                continue
            }
            guard let section = current else { continue }
            if line.first == " " || line.first == "\t", let key = lastKey {
                sections[section]?[key, default: ""] += "\n" + trimmed
                continue
            }
            guard let equals = trimmed.firstIndex(of: "=") else { continue }
            let key = String(trimmed[..<equals]).trimmingWhitespace().lowercased()
            sections[section]?[key] = String(trimmed[trimmed.index(after: equals)...]).trimmingWhitespace()
            lastKey = key
        }
        return sections
    }
}

extension String {
    /// Without leading and trailing spaces, tabs and line ends.
    public func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropLast() }
        return String(s)
    }
}
