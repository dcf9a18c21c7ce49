import AirlockCore

/// Cedar's JSON formats for values, entities and requests (the reference's `__entity` and
/// `__extn` escapes). Hand-written rather than AirlockCore's JSON because a Cedar Long is a
/// 64-bit integer and JSON numbers there are Doubles, which cannot hold 2^53 + 1: an entity
/// attribute of 9007199254740993 must not become …992.
public indirect enum CedarJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case string(String)
    case array([CedarJSON])
    case object([(String, CedarJSON)])

    public static func == (a: CedarJSON, b: CedarJSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.integer(x), .integer(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> CedarJSON? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var array: [CedarJSON]? { if case .array(let a) = self { return a }; return nil }

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Parses one JSON document; integers stay exact, fractions are refused (Cedar has none).
    public static func parse(_ bytes: [UInt8], maximumDepth: Int = 64) throws(ParseError) -> CedarJSON {
        var reader = Reader(bytes: bytes, maximumDepth: maximumDepth)
        let value = try reader.value()
        reader.space()
        guard reader.index == bytes.count else { throw reader.fail("trailing characters") }
        return value
    }

    struct Reader {
        let bytes: [UInt8]
        let maximumDepth: Int
        var index = 0
        var depth = 0

        init(bytes: [UInt8], maximumDepth: Int) {
            self.bytes = bytes
            self.maximumDepth = maximumDepth
        }

        func fail(_ message: String) -> ParseError { ParseError(message: "invalid JSON at byte \(index): \(message)") }

        mutating func space() {
            while index < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[index]) { index += 1 }
        }

        mutating func value() throws(ParseError) -> CedarJSON {
            space()
            guard index < bytes.count else { throw fail("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                depth += 1
                guard depth <= maximumDepth else { throw fail("nested too deep") }
                index += 1
                var pairs: [(String, CedarJSON)] = []
                space()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; depth -= 1; return .object(pairs) }
                while true {
                    space()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let key = try string()
                    if pairs.contains(where: { $0.0 == key }) { throw fail("the key \(JSON.quote(key)) appears twice") }
                    space()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    index += 1
                    pairs.append((key, try value()))
                    space()
                    guard index < bytes.count else { throw fail("unexpected end") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "}") { index += 1; break }
                    throw fail("expected ',' or '}'")
                }
                depth -= 1
                return .object(pairs)
            case UInt8(ascii: "["):
                depth += 1
                guard depth <= maximumDepth else { throw fail("nested too deep") }
                index += 1
                var items: [CedarJSON] = []
                space()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; depth -= 1; return .array(items) }
                while true {
                    items.append(try value())
                    space()
                    guard index < bytes.count else { throw fail("unexpected end") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "]") { index += 1; break }
                    throw fail("expected ',' or ']'")
                }
                depth -= 1
                return .array(items)
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try word("true"); return .bool(true)
            case UInt8(ascii: "f"): try word("false"); return .bool(false)
            case UInt8(ascii: "n"): try word("null"); return .null
            default:
                let start = index
                if bytes[index] == UInt8(ascii: "-") { index += 1 }
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                if index < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[index]) {
                    throw fail("Cedar has no fractional numbers (write a decimal as {\"__extn\": {\"fn\": \"decimal\", \"arg\": \"1.5\"}})")
                }
                guard let number = Int64(String(decoding: bytes[start..<index], as: UTF8.self)) else {
                    throw fail("expected a value or a 64-bit integer")
                }
                return .integer(number)
            }
        }

        mutating func word(_ text: String) throws(ParseError) {
            let utf8 = Array(text.utf8)
            guard index + utf8.count <= bytes.count, Array(bytes[index..<index + utf8.count]) == utf8 else { throw fail("unexpected token") }
            index += utf8.count
        }

        mutating func string() throws(ParseError) -> String {
            index += 1
            var out: [UInt8] = []
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    guard let text = String(validating: out, as: UTF8.self) else { throw fail("a string is not UTF-8") }
                    return text
                }
                if byte == UInt8(ascii: "\\") {
                    index += 1
                    guard index < bytes.count else { break }
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
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { throw fail("lone surrogate") }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("lone surrogate") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw fail("invalid escape") }
                        out.append(contentsOf: Array(String(scalar).utf8))
                    default:
                        throw fail("invalid escape")
                    }
                    continue
                }
                guard byte >= 0x20 else { throw fail("control character in a string") }
                out.append(byte)
                index += 1
            }
            throw fail("unterminated string")
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard index + 4 <= bytes.count, let value = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16) else {
                throw fail("invalid \\u escape")
            }
            index += 4
            return value
        }
    }
}

/// Decoding Cedar's JSON value, entity and request formats.
public enum CedarJSONFormat {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    public static func entityUID(_ json: CedarJSON) throws(Failure) -> CedarEntityUID {
        let inner = json["__entity"] ?? json
        guard let type = inner["type"]?.string, let id = inner["id"]?.string else {
            throw Failure("expected an entity reference {\"type\": …, \"id\": …}")
        }
        return CedarEntityUID(type, id)
    }

    public static func value(_ json: CedarJSON) throws(Failure) -> CedarValue {
        switch json {
        case .null: throw Failure("null is not a Cedar value")
        case .bool(let b): return .bool(b)
        case .integer(let n): return .long(n)
        case .string(let s): return .string(s)
        case .array(let items):
            var values = Set<CedarValue>()
            for item in items { values.insert(try value(item)) }
            return .set(values)
        case .object(let pairs):
            if pairs.count == 1, pairs[0].0 == "__entity" { return .entity(try entityUID(pairs[0].1)) }
            if pairs.count == 1, pairs[0].0 == "__extn" {
                let extn = pairs[0].1
                guard let function = extn["fn"]?.string, let argument = extn["arg"]?.string else {
                    throw Failure("expected {\"__extn\": {\"fn\": …, \"arg\": …}}")
                }
                switch function {
                case "ip":
                    guard let ip = CedarIP.parse(argument) else { throw Failure("invalid IP address \(JSON.quote(argument))") }
                    return .ipaddr(ip)
                case "decimal":
                    guard let decimal = CedarDecimal.parse(argument) else { throw Failure("invalid decimal \(JSON.quote(argument))") }
                    return .decimal(decimal)
                default:
                    throw Failure("unknown extension function \(JSON.quote(function))")
                }
            }
            var fields: [String: CedarValue] = [:]
            for (key, item) in pairs { fields[key] = try value(item) }
            return .record(fields)
        }
    }

    public static func record(_ json: CedarJSON) throws(Failure) -> [String: CedarValue] {
        guard case .record(let fields) = try value(json) else { throw Failure("expected a record") }
        return fields
    }

    public static func entities(_ json: CedarJSON) throws(Failure) -> [CedarEntity] {
        guard let list = json.array else { throw Failure("expected a list of entities") }
        var out: [CedarEntity] = []
        for item in list {
            guard let uidJSON = item["uid"] else { throw Failure("an entity without \"uid\"") }
            let uid = try entityUID(uidJSON)
            let attributes = try item["attrs"].map { (json) throws(Failure) in try record(json) } ?? [:]
            var parents: [CedarEntityUID] = []
            for parent in item["parents"]?.array ?? [] { parents.append(try entityUID(parent)) }
            out.append(CedarEntity(uid, attributes: attributes, parents: parents))
        }
        return out
    }
}
