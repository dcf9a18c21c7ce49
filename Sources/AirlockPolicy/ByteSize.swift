/// Sizes as people write them in profiles: `4096`, `512K`, `64MiB`, `8GiB`, `1T`.
/// Units are binary (K = KiB = 1024). Returns nil for anything else, including overflow.
public enum ByteSize {
    private static let units: [(suffix: String, shift: UInt64)] = [
        ("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40),
        ("KB", 10), ("MB", 20), ("GB", 30), ("TB", 40),
        ("K", 10), ("M", 20), ("G", 30), ("T", 40), ("k", 10), ("m", 20), ("g", 30), ("t", 40),
        ("B", 0),
    ]

    public static func parse(_ text: String) -> UInt64? {
        let trimmed = text.trimmingSpaces()
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            let number = String(trimmed.dropLast(unit.suffix.count)).trimmingSpaces()
            guard let value = UInt64(number) else { return nil }
            let (result, overflow) = value.multipliedReportingOverflow(by: 1 << unit.shift)
            return overflow ? nil : result
        }
        return UInt64(trimmed)
    }

    /// The largest exact binary unit: 8589934592 → "8GiB".
    public static func format(_ value: UInt64) -> String {
        for (suffix, shift) in [("TiB", UInt64(40)), ("GiB", 30), ("MiB", 20), ("KiB", 10)]
        where value >= (1 << shift) && value % (1 << shift) == 0 {
            return "\(value >> shift)\(suffix)"
        }
        return "\(value)"
    }

    /// Rounded, for messages: 1536 → "1.5 KiB", 300000000 → "286 MiB".
    public static func human(_ value: Int) -> String {
        var amount = Double(max(value, 0))
        for unit in ["B", "KiB", "MiB", "GiB"] {
            if amount < 1024 || unit == "GiB" {
                if unit == "B" { return "\(value) B" }
                return amount < 10 ? "\(Double(Int(amount * 10)) / 10) \(unit)" : "\(Int(amount.rounded())) \(unit)"
            }
            amount /= 1024
        }
        return "\(value) B"
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
