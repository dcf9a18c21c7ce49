/// Where in a policy file something is: 1-based line and column (in Unicode scalars).
public struct CedarLocation: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// One policy (docs/policy.md): annotations, effect, scope and conditions, with the id the
/// reference engine gives it (`policy0`, `policy1`, … in file order).
public struct CedarPolicy: Sendable {
    public enum Effect: String, Sendable { case permit, forbid }

    public enum EntityConstraint: Sendable, Equatable {
        case any
        case equals(CedarEntityUID)
        case isIn(CedarEntityUID)
        case isType(String)
        case isTypeIn(String, CedarEntityUID)
    }

    public enum ActionConstraint: Sendable, Equatable {
        case any
        case equals(CedarEntityUID)
        case isIn([CedarEntityUID])
        /// `action in E` (one entity, not a list).
        case isInOne(CedarEntityUID)
    }

    public struct Condition: Sendable {
        /// `when` (true) or `unless` (false).
        public var isWhen: Bool
        public var body: CedarExpr
    }

    public var id: String
    public var effect: Effect
    public var annotations: [(key: String, value: String)]
    public var principal: EntityConstraint
    public var action: ActionConstraint
    public var resource: EntityConstraint
    public var conditions: [Condition]
    public var location: CedarLocation
    /// The policy's own text, as written in the file.
    public var text: String

    public func annotation(_ key: String) -> String? { annotations.first { $0.key == key }?.value }
}

/// A Cedar expression: a kind and where it was written (ignored when two are compared).
public struct CedarExpr: Sendable, Hashable {
    public indirect enum Kind: Sendable, Hashable {
        case literal(CedarValue)
        case variable(CedarVariable)
        case not(CedarExpr)
        case negate(CedarExpr)
        case binary(CedarBinaryOperator, CedarExpr, CedarExpr)
        case and(CedarExpr, CedarExpr)
        case or(CedarExpr, CedarExpr)
        case ifThenElse(CedarExpr, CedarExpr, CedarExpr)
        case has(CedarExpr, String)
        case attribute(CedarExpr, String)
        case like(CedarExpr, [CedarPatternElement])
        case isType(CedarExpr, String)
        case method(CedarExpr, String, [CedarExpr])
        case call(String, [CedarExpr])
        case set([CedarExpr])
        case record([CedarRecordField])
        /// `context.x`, `principal.x` or `resource.x`, read once per request by a policy set
        /// (CedarPolicySet); `original` is evaluated instead when the value is missing, so the
        /// error is the reference's. Never produced by the parser.
        case slot(Int, original: CedarExpr)
    }

    public var kind: Kind
    public var location: CedarLocation

    public init(_ kind: Kind, at location: CedarLocation) {
        self.kind = kind
        self.location = location
    }

    public static func == (a: CedarExpr, b: CedarExpr) -> Bool { a.kind == b.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(kind) }
}

public struct CedarRecordField: Sendable, Hashable {
    public var key: String
    public var value: CedarExpr
}

public enum CedarVariable: String, Sendable, Hashable, CaseIterable {
    case principal, action, resource, context
}

public enum CedarBinaryOperator: String, Sendable, Hashable {
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case isIn = "in", add = "+", subtract = "-", multiply = "*"
}

public enum CedarPatternElement: Sendable, Hashable {
    case wildcard
    case scalar(Unicode.Scalar)
}

/// `like`'s matching: `*` matches any run of characters (none included), everything else
/// itself. Walks the text's scalars by index: no copy of the text per match.
enum CedarPattern {
    static func matches(_ pattern: [CedarPatternElement], _ text: String) -> Bool {
        // ASCII literals (nearly every pattern): matched over the text's UTF-8 bytes, which
        // gives the same answer (an ASCII byte never falls inside a multi-byte scalar) at a
        // fraction of the cost of walking scalars.
        if pattern.allSatisfy({ if case .scalar(let s) = $0 { return s.isASCII } else { return true } }) {
            var text = text
            return text.withUTF8 { bytes in matchesASCII(pattern, bytes) }
        }
        let scalars = text.unicodeScalars
        var p = 0, t = scalars.startIndex
        var starP = -1, starT = scalars.startIndex
        while t < scalars.endIndex {
            if p < pattern.count, case .scalar(let s) = pattern[p], s == scalars[t] {
                p += 1
                t = scalars.index(after: t)
            } else if p < pattern.count, case .wildcard = pattern[p] {
                starP = p
                starT = t
                p += 1
            } else if starP >= 0 {
                p = starP + 1
                starT = scalars.index(after: starT)
                t = starT
            } else {
                return false
            }
        }
        while p < pattern.count, case .wildcard = pattern[p] { p += 1 }
        return p == pattern.count
    }
}

extension CedarPattern {
    static func matchesASCII(_ pattern: [CedarPatternElement], _ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var p = 0, t = 0, starP = -1, starT = 0
        while t < text.count {
            if p < pattern.count, case .scalar(let s) = pattern[p], UInt8(s.value) == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, case .wildcard = pattern[p] {
                starP = p
                starT = t
                p += 1
            } else if starP >= 0 {
                p = starP + 1
                starT += 1
                t = starT
            } else {
                return false
            }
        }
        while p < pattern.count, case .wildcard = pattern[p] { p += 1 }
        return p == pattern.count
    }
}
