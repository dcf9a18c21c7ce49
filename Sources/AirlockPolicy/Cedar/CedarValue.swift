import Glibc

/// Cedar's values (docs/policy.md): what a policy's expressions evaluate to. Strings compare
/// by their bytes, as the reference engine does (Swift's `String ==` would call a precomposed
/// "é" equal to a decomposed one; Cedar does not, and a rule must not match what the reference
/// says it does not).
public enum CedarValue: Sendable, Hashable, CustomStringConvertible {
    case bool(Bool)
    case long(Int64)
    case string(String)
    case entity(CedarEntityUID)
    case set(Set<CedarValue>)
    case record([String: CedarValue])
    case ipaddr(CedarIP)
    /// A decimal as a count of ten-thousandths (Cedar's `decimal`: four fractional digits).
    case decimal(Int64)

    public static func == (a: CedarValue, b: CedarValue) -> Bool {
        switch (a, b) {
        case let (.bool(x), .bool(y)): return x == y
        case let (.long(x), .long(y)): return x == y
        case let (.string(x), .string(y)): return CedarText.sameBytes(x, y)
        case let (.entity(x), .entity(y)): return x == y
        case let (.set(x), .set(y)): return x == y
        case let (.record(x), .record(y)): return x == y
        case let (.ipaddr(x), .ipaddr(y)): return x == y
        case let (.decimal(x), .decimal(y)): return x == y
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .bool(let value): hasher.combine(0); hasher.combine(value)
        case .long(let value): hasher.combine(1); hasher.combine(value)
        // String's own hash: equal bytes hash equal (what == needs); canonically equivalent
        // strings with other bytes also hash equal but stay unequal, which is allowed. Per-byte
        // combining cost a 100-policy decision 2× (scripts/bench policy).
        case .string(let value): hasher.combine(2); hasher.combine(value)
        case .entity(let value): hasher.combine(3); hasher.combine(value)
        case .set(let value): hasher.combine(4); hasher.combine(value)
        case .record(let value): hasher.combine(5); hasher.combine(value)
        case .ipaddr(let value): hasher.combine(6); hasher.combine(value)
        case .decimal(let value): hasher.combine(7); hasher.combine(value)
        }
    }

    /// The value's type, in the words of Cedar's error messages.
    public var typeName: String {
        switch self {
        case .bool: return "bool"
        case .long: return "long"
        case .string: return "string"
        case .entity(let uid): return "(entity of type `\(uid.type)`)"
        case .set: return "set"
        case .record: return "record"
        case .ipaddr: return "ipaddr"
        case .decimal: return "decimal"
        }
    }

    public var description: String {
        switch self {
        case .bool(let value): return value ? "true" : "false"
        case .long(let value): return String(value)
        case .string(let value): return CedarEntityUID.quote(value)
        case .entity(let uid): return uid.description
        case .set(let values): return "[" + values.map(\.description).sorted().joined(separator: ", ") + "]"
        case .record(let fields):
            return "{" + fields.sorted { $0.key < $1.key }.map { "\(CedarEntityUID.quote($0.key)): \($0.value)" }.joined(separator: ", ") + "}"
        case .ipaddr(let ip): return "ip(\(CedarEntityUID.quote(ip.description)))"
        case .decimal(let value): return "decimal(\(CedarEntityUID.quote(CedarDecimal.format(value))))"
        }
    }
}

/// An entity's identity: its type (`Session`, `Action`, `Ns::Type`) and id.
public struct CedarEntityUID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var type: String
    public var id: String

    public init(_ type: String, _ id: String) {
        self.type = type
        self.id = id
    }

    public static func == (a: CedarEntityUID, b: CedarEntityUID) -> Bool {
        CedarText.sameBytes(a.id, b.id) && CedarText.sameBytes(a.type, b.type)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        hasher.combine(id)
    }

    public static func < (a: CedarEntityUID, b: CedarEntityUID) -> Bool { (a.type, a.id) < (b.type, b.id) }

    public var description: String { "\(type)::\(Self.quote(id))" }

    /// A Cedar string literal for `text`.
    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\0": out += "\\0"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Byte equality of strings, as the reference compares them (Swift's `==` is canonical
/// equivalence). A memcmp over the contiguous UTF-8: the generic `utf8.elementsEqual` took a
/// fifth of a 100-policy decision (scripts/bench policy).
enum CedarText {
    @inline(__always)
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in x.count == y.count && (x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0) }
        }
    }
}
