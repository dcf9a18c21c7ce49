/// Shell-style matching with `*` (any run of characters, possibly empty). No other
/// metacharacters: environment names and host names need nothing more.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    /// The literal pieces between stars, as bytes (matching runs on every environment
    /// variable at each launch, so it avoids String indexing).
    private let parts: [[UInt8]]

    public init(_ pattern: String) {
        self.pattern = pattern
        self.parts = pattern.split(separator: "*", omittingEmptySubsequences: false).map { Array($0.utf8) }
    }

    public var isLiteral: Bool { parts.count == 1 }
    public var description: String { pattern }

    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { matches(bytes: $0) }
    }

    func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        if parts.count == 1 { return bytes.elementsEqual(parts[0]) }
        let first = parts[0], last = parts[parts.count - 1]
        guard bytes.count >= first.count + last.count, bytes.starts(with: first),
            bytes[(bytes.count - last.count)...].elementsEqual(last)
        else { return false }
        var position = first.count
        let limit = bytes.count - last.count
        for middle in parts.dropFirst().dropLast() where !middle.isEmpty {
            guard let found = Self.find(middle, in: bytes, from: position, limit: limit) else { return false }
            position = found + middle.count
        }
        return true
    }

    /// First index ≥ `from` where `needle` occurs entirely before `limit`.
    static func find(_ needle: [UInt8], in bytes: UnsafeBufferPointer<UInt8>, from: Int, limit: Int) -> Int? {
        guard limit - from >= needle.count else { return nil }
        for start in from...(limit - needle.count) where bytes[start] == needle[0] {
            if bytes[start..<start + needle.count].elementsEqual(needle) { return start }
        }
        return nil
    }
}

extension String {
    func replacingStars(with replacement: String) -> String {
        split(separator: "*", omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
