/// A JSON value, with a strict parser and a compact, deterministic serializer (object keys
/// keep insertion order). Small on purpose: Airlock's documents are its own.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    // MARK: Access

    public subscript(key: String) -> JSON? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var int: Int? {
        if case .number(let value) = self, value == value.rounded(), abs(value) < 9e15 { return Int(value) }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var array: [JSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var objectPairs: [(String, JSON)]? {
        if case .object(let pairs) = self { return pairs }
        return nil
    }

    public var stringArray: [String]? {
        array?.compactMap(\.string)
    }

    // MARK: Serializing

    public func serialized() -> String {
        var out = ""
        write(to: &out)
        return out
    }

    /// Two-space indented, one member per line: for people (a preview's diff reads by line).
    public func pretty(indent: String = "") -> String {
        let inner = indent + "  "
        switch self {
        case .array(let items) where !items.isEmpty:
            return "[\n" + items.map { inner + $0.pretty(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let pairs) where !pairs.isEmpty:
            return "{\n" + pairs.map { inner + JSON.quote($0.0) + ": " + $0.1.pretty(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        default:
            return serialized()
        }
    }

    public static func quote(_ text: String) -> String {
        var out = ""
        writeString(text, to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .number(let value):
            if !value.isFinite {
                out += "null"  // JSON has no infinity or NaN
            } else if value == value.rounded(), abs(value) < 9e15 {
                out += String(Int64(value))
            } else {
                out += "\(value)"
            }
        case .string(let value): JSON.writeString(value, to: &out)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (index, (key, value)) in pairs.enumerated() {
                if index > 0 { out += "," }
                JSON.writeString(key, to: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }

    private static func writeString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    // MARK: Parsing

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var offset: Int
        public var message: String
        public var description: String { "invalid JSON at byte \(offset): \(message)" }
    }

    /// Parses one JSON document; nesting deeper than `maximumDepth` is refused.
    public static func parse(_ text: String, maximumDepth: Int = 64) throws(ParseError) -> JSON {
        var parser = Parser(bytes: Array(text.utf8), maximumDepth: maximumDepth)
        return try parser.document()
    }

    public static func parse(bytes: [UInt8], maximumDepth: Int = 64) throws(ParseError) -> JSON {
        var parser = Parser(bytes: bytes, maximumDepth: maximumDepth)
        return try parser.document()
    }

    /// Parses a document that must have exactly one reading (docs/gate.md, "One reading or
    /// none"): a key twice in one object, bytes that are not UTF-8, or a number outside
    /// RFC 8259's grammar are errors. Parsers disagree on those (Python keeps the last of
    /// duplicate keys, others the first), so a broker that picked one could be read
    /// differently upstream.
    public static func parseStrict(bytes: [UInt8], maximumDepth: Int = 64) throws(ParseError) -> JSON {
        var parser = Parser(bytes: bytes, maximumDepth: maximumDepth, strict: true)
        return try parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        let maximumDepth: Int
        let strict: Bool
        var index = 0
        var depth = 0

        init(bytes: [UInt8], maximumDepth: Int, strict: Bool = false) {
            self.bytes = bytes
            self.maximumDepth = maximumDepth
            self.strict = strict
        }

        func fail(_ message: String) -> ParseError { ParseError(offset: index, message: message) }

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[index]) { index += 1 }
        }

        mutating func document() throws(ParseError) -> JSON {
            let value = try self.value()
            skipSpace()
            guard index == bytes.count else { throw fail("trailing characters") }
            return value
        }

        mutating func value() throws(ParseError) -> JSON {
            skipSpace()
            guard index < bytes.count else { throw fail("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object()
            case UInt8(ascii: "["): return try array()
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return .number(try number())
            }
        }

        mutating func literal(_ word: String) throws(ParseError) {
            let utf8 = Array(word.utf8)
            guard index + utf8.count <= bytes.count, Array(bytes[index..<index + utf8.count]) == utf8 else {
                throw fail("unexpected token")
            }
            index += utf8.count
        }

        mutating func enter() throws(ParseError) {
            depth += 1
            if depth > maximumDepth { throw fail("nested deeper than \(maximumDepth)") }
        }

        mutating func object() throws(ParseError) -> JSON {
            try enter()
            index += 1
            var pairs: [(String, JSON)] = []
            var seen = Set<String>()
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                depth -= 1
                return .object(pairs)
            }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                let keyOffset = index
                let key = try string()
                if strict && !seen.insert(key).inserted {
                    throw ParseError(offset: keyOffset, message: "the key \(JSON.quote(key)) appears twice in one object")
                }
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                index += 1
                pairs.append((key, try value()))
                skipSpace()
                guard index < bytes.count else { throw fail("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; break }
                throw fail("expected ',' or '}'")
            }
            depth -= 1
            return .object(pairs)
        }

        mutating func array() throws(ParseError) -> JSON {
            try enter()
            index += 1
            var items: [JSON] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                depth -= 1
                return .array(items)
            }
            while true {
                items.append(try value())
                skipSpace()
                guard index < bytes.count else { throw fail("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; break }
                throw fail("expected ',' or ']'")
            }
            depth -= 1
            return .array(items)
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
            var value: UInt32 = 0
            for byte in bytes[index..<index + 4] {
                value <<= 4
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value |= UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): value |= UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): value |= UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw fail("bad \\u escape")
                }
            }
            index += 4
            return value
        }

        mutating func string() throws(ParseError) -> String {
            index += 1
            var out = [UInt8]()
            while true {
                guard index < bytes.count else { throw fail("unterminated string") }
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\"") { break }
                if byte < 0x20 { throw fail("control character in string") }
                guard byte == UInt8(ascii: "\\") else {
                    out.append(byte)
                    continue
                }
                guard index < bytes.count else { throw fail("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw fail("lone surrogate") }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid code point") }
                    out += Array(String(Character(unicode)).utf8)
                default: throw fail("bad escape")
                }
            }
            if strict {
                guard let text = String(validating: out, as: UTF8.self) else { throw fail("a string that is not UTF-8") }
                return text
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func number() throws(ParseError) -> Double {
            let start = index
            while index < bytes.count, "+-0123456789.eE".utf8.contains(bytes[index]) { index += 1 }
            guard index > start, let value = Double(String(decoding: bytes[start..<index], as: UTF8.self)) else {
                throw fail("unexpected character")
            }
            if strict && !Self.isStrictNumber(bytes[start..<index]) { throw ParseError(offset: start, message: "a number outside JSON's grammar") }
            // 1e999 is infinity to some parsers and an error to others (found by scripts/fuzz).
            if strict && !value.isFinite { throw ParseError(offset: start, message: "a number too large for a double") }
            return value
        }

        /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
        static func isStrictNumber(_ text: ArraySlice<UInt8>) -> Bool {
            var i = text.startIndex
            func digits() -> Int {
                let from = i
                while i < text.endIndex, (0x30...0x39).contains(text[i]) { i += 1 }
                return i - from
            }
            if i < text.endIndex, text[i] == UInt8(ascii: "-") { i += 1 }
            guard i < text.endIndex else { return false }
            if text[i] == UInt8(ascii: "0") { i += 1 } else if digits() == 0 { return false }
            if i < text.endIndex, text[i] == UInt8(ascii: ".") {
                i += 1
                if digits() == 0 { return false }
            }
            if i < text.endIndex, text[i] == UInt8(ascii: "e") || text[i] == UInt8(ascii: "E") {
                i += 1
                if i < text.endIndex, text[i] == UInt8(ascii: "+") || text[i] == UInt8(ascii: "-") { i += 1 }
                if digits() == 0 { return false }
            }
            return i == text.endIndex
        }
    }
}
