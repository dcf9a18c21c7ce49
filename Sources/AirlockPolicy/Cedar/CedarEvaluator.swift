/// Why an expression has no value (a type error, a missing attribute or entity, an overflow,
/// a malformed extension literal): the policy it is in is skipped, as the reference skips it.
public struct CedarEvaluationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Cedar's evaluation of one expression for one request (the reference's semantics, checked
/// against it by CedarDifferentialTests): `&&`, `||` and `if` evaluate only what they need;
/// arithmetic is 64-bit and overflow is an error; `in` follows the entities' ancestors; an
/// attribute of an entity the store does not hold is an error, `has` on one is false.
public struct CedarEvaluator: Sendable {
    public let request: CedarRequest
    public let entities: CedarEntities
    /// What a policy set's `.slot`s read, once per request (CedarPolicySet).
    var slots: [CedarValue?] = []

    public init(request: CedarRequest, entities: CedarEntities) {
        self.request = request
        self.entities = entities
    }

    typealias Failure = CedarEvaluationError

    func typeError(_ expected: String, _ value: CedarValue) -> Failure {
        Failure("type error: expected \(expected), got \(value.typeName)")
    }

    /// A record's or entity's attribute by name, compared by bytes as the reference does (the
    /// dictionary finds by canonical equivalence, under which "K" and the Kelvin sign are one;
    /// the key found is checked byte for byte). A linear scan of small records measured slower
    /// than the hash (scripts/bench policy).
    @inline(__always)
    static func field(_ fields: [String: CedarValue], _ name: String) -> CedarValue? {
        guard let index = fields.index(forKey: name) else { return nil }
        let (key, value) = fields[index]
        return CedarText.sameBytes(key, name) ? value : nil
    }

    func bool(_ expr: CedarExpr) throws(Failure) -> Bool {
        let value = try evaluate(expr)
        guard case .bool(let b) = value else { throw typeError("bool", value) }
        return b
    }

    func long(_ expr: CedarExpr) throws(Failure) -> Int64 {
        let value = try evaluate(expr)
        guard case .long(let n) = value else { throw typeError("long", value) }
        return n
    }

    func entity(_ value: CedarValue) throws(Failure) -> CedarEntityUID {
        guard case .entity(let uid) = value else { throw typeError("entity", value) }
        return uid
    }

    func set(_ value: CedarValue) throws(Failure) -> Set<CedarValue> {
        guard case .set(let items) = value else { throw typeError("set", value) }
        return items
    }

    public func evaluate(_ expr: CedarExpr) throws(CedarEvaluationError) -> CedarValue {
        switch expr.kind {
        case .literal(let value):
            return value
        case .variable(let variable):
            switch variable {
            case .principal: return .entity(request.principal)
            case .action: return .entity(request.action)
            case .resource: return .entity(request.resource)
            case .context: return .record(request.context)
            }
        case .not(let inner):
            return .bool(!(try bool(inner)))
        case .negate(let inner):
            let (value, overflow) = Int64(0).subtractingReportingOverflow(try long(inner))
            if overflow { throw Failure("integer overflow while negating") }
            return .long(value)
        case .and(let left, let right):
            guard try bool(left) else { return .bool(false) }
            return .bool(try bool(right))
        case .or(let left, let right):
            if try bool(left) { return .bool(true) }
            return .bool(try bool(right))
        case .ifThenElse(let condition, let then, let otherwise):
            return try bool(condition) ? try evaluate(then) : try evaluate(otherwise)
        case .binary(let op, let left, let right):
            return try binary(op, try evaluate(left), try evaluate(right))
        case .has(let target, let name):
            let value = try evaluate(target)
            switch value {
            case .record(let fields): return .bool(Self.field(fields, name) != nil)
            case .entity(let uid): return .bool(entities[uid].flatMap { Self.field($0.attributes, name) } != nil)
            default: throw typeError("entity or record", value)
            }
        case .attribute(let target, let name):
            // `context.x`: read in place, not through a copy of the context record.
            if case .variable(.context) = target.kind {
                guard let field = Self.field(request.context, name) else { throw Failure("record does not have the attribute `\(name)`") }
                return field
            }
            let value = try evaluate(target)
            switch value {
            case .record(let fields):
                guard let field = Self.field(fields, name) else { throw Failure("record does not have the attribute `\(name)`") }
                return field
            case .entity(let uid):
                guard let found = entities[uid] else { throw Failure("entity `\(uid)` does not exist") }
                guard let field = Self.field(found.attributes, name) else { throw Failure("`\(uid)` does not have the attribute `\(name)`") }
                return field
            default:
                throw typeError("entity or record", value)
            }
        case .like(let target, let pattern):
            let value = try evaluate(target)
            guard case .string(let text) = value else { throw typeError("string", value) }
            return .bool(CedarPattern.matches(pattern, text))
        case .isType(let target, let type):
            return .bool(try entity(try evaluate(target)).type == type)
        case .method(let target, let name, let arguments):
            let receiver = try evaluate(target)
            // `contains`, the commonest: no argument array.
            if arguments.count == 1, name == "contains" {
                let argument = try evaluate(arguments[0])
                return .bool(try set(receiver).contains(argument))
            }
            var values: [CedarValue] = []
            for argument in arguments { values.append(try evaluate(argument)) }
            return try method(name, receiver, values)
        case .call(let name, let arguments):
            guard arguments.count == 1 else { throw Failure("`\(name)` takes one argument, not \(arguments.count)") }
            let argument = try evaluate(arguments[0])
            guard case .string(let text) = argument else { throw typeError("string", argument) }
            switch name {
            case "ip":
                guard let ip = CedarIP.parse(text) else { throw Failure("invalid IP address: \(CedarEntityUID.quote(text))") }
                return .ipaddr(ip)
            case "decimal":
                guard let value = CedarDecimal.parse(text) else { throw Failure("invalid decimal: \(CedarEntityUID.quote(text))") }
                return .decimal(value)
            default:
                throw Failure("unknown function `\(name)`")
            }
        case .set(let items):
            var values = Set<CedarValue>()
            for item in items { values.insert(try evaluate(item)) }
            return .set(values)
        case .record(let fields):
            var values: [String: CedarValue] = [:]
            for field in fields { values[field.key] = try evaluate(field.value) }
            return .record(values)
        case .slot(let index, let original):
            if index < slots.count, let value = slots[index] { return value }
            return try evaluate(original)
        }
    }

    func binary(_ op: CedarBinaryOperator, _ left: CedarValue, _ right: CedarValue) throws(Failure) -> CedarValue {
        switch op {
        case .equal: return .bool(left == right)
        case .notEqual: return .bool(left != right)
        case .less, .lessOrEqual, .greater, .greaterOrEqual:
            guard case .long(let a) = left else { throw typeError("long", left) }
            guard case .long(let b) = right else { throw typeError("long", right) }
            switch op {
            case .less: return .bool(a < b)
            case .lessOrEqual: return .bool(a <= b)
            case .greater: return .bool(a > b)
            default: return .bool(a >= b)
            }
        case .add, .subtract, .multiply:
            guard case .long(let a) = left else { throw typeError("long", left) }
            guard case .long(let b) = right else { throw typeError("long", right) }
            let (value, overflow) = op == .add ? a.addingReportingOverflow(b)
                : op == .subtract ? a.subtractingReportingOverflow(b) : a.multipliedReportingOverflow(by: b)
            if overflow { throw Failure("integer overflow: \(a) \(op.rawValue) \(b)") }
            return .long(value)
        case .isIn:
            let member = try entity(left)
            switch right {
            case .entity(let container):
                return .bool(entities.isIn(member, container))
            case .set(let items):
                var containers: [CedarEntityUID] = []
                for item in items { containers.append(try entity(item)) }
                return .bool(containers.contains { entities.isIn(member, $0) })
            default:
                throw typeError("entity or set of entities", right)
            }
        }
    }

    func method(_ name: String, _ receiver: CedarValue, _ arguments: [CedarValue]) throws(Failure) -> CedarValue {
        func one() throws(Failure) -> CedarValue {
            guard arguments.count == 1 else { throw Failure("`\(name)` takes one argument, not \(arguments.count)") }
            return arguments[0]
        }
        func none() throws(Failure) {
            guard arguments.isEmpty else { throw Failure("`\(name)` takes no argument, not \(arguments.count)") }
        }
        switch name {
        case "contains": return .bool(try set(receiver).contains(try one()))
        case "containsAll": return .bool(try set(one()).isSubset(of: try set(receiver)))
        case "containsAny": return .bool(!(try set(receiver)).isDisjoint(with: try set(one())))
        case "isEmpty": try none(); return .bool(try set(receiver).isEmpty)
        case "lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual":
            guard case .decimal(let a) = receiver else { throw typeError("decimal", receiver) }
            let other = try one()
            guard case .decimal(let b) = other else { throw typeError("decimal", other) }
            switch name {
            case "lessThan": return .bool(a < b)
            case "lessThanOrEqual": return .bool(a <= b)
            case "greaterThan": return .bool(a > b)
            default: return .bool(a >= b)
            }
        case "isIpv4", "isIpv6", "isLoopback", "isMulticast":
            guard case .ipaddr(let ip) = receiver else { throw typeError("ipaddr", receiver) }
            try none()
            switch name {
            case "isIpv4": return .bool(ip.isV4)
            case "isIpv6": return .bool(!ip.isV4)
            case "isLoopback": return .bool(ip.isLoopback)
            default: return .bool(ip.isMulticast)
            }
        case "isInRange":
            guard case .ipaddr(let ip) = receiver else { throw typeError("ipaddr", receiver) }
            let other = try one()
            guard case .ipaddr(let range) = other else { throw typeError("ipaddr", other) }
            return .bool(ip.isInRange(range))
        default:
            throw Failure("unknown method `\(name)`")
        }
    }
}

/// A policy set's answer (the reference's shape): the decision, the policies that determined
/// it (the satisfied forbids when one is, else the satisfied permits), and those that erred.
public struct CedarResponse: Sendable, Equatable {
    public var allowed: Bool
    public var determining: [String]
    public var errors: [CedarPolicyError]
}

public struct CedarPolicyError: Sendable, Equatable {
    public var policy: String
    public var message: String
}

/// The request's action with its ancestors, looked up once per request rather than once per
/// policy (scripts/bench policy).
struct CedarScope {
    let request: CedarRequest
    let entities: CedarEntities
    let actionAncestors: Set<CedarEntityUID>

    init(_ request: CedarRequest, _ entities: CedarEntities) {
        self.request = request
        self.entities = entities
        actionAncestors = entities.ancestors(of: request.action)
    }
}

extension CedarPolicy {
    func matches(_ constraint: EntityConstraint, _ uid: CedarEntityUID, _ entities: CedarEntities) -> Bool {
        switch constraint {
        case .any: return true
        case .equals(let other): return uid == other
        case .isIn(let container): return entities.isIn(uid, container)
        case .isType(let type): return uid.type == type
        case .isTypeIn(let type, let container): return uid.type == type && entities.isIn(uid, container)
        }
    }

    func scopeMatches(_ scope: CedarScope) -> Bool {
        let action = scope.request.action
        switch self.action {
        case .any: break
        case .equals(let uid): guard action == uid else { return false }
        case .isInOne(let group): guard action == group || scope.actionAncestors.contains(group) else { return false }
        case .isIn(let list): guard list.contains(where: { action == $0 || scope.actionAncestors.contains($0) }) else { return false }
        }
        return matches(principal, scope.request.principal, scope.entities)
            && matches(resource, scope.request.resource, scope.entities)
    }

    /// Whether the policy applies to the request: its scope matches and every `when` holds
    /// and no `unless` does, evaluated in order and only as far as needed.
    public func isSatisfied(by evaluator: CedarEvaluator) throws(CedarEvaluationError) -> Bool {
        try isSatisfied(by: evaluator, scope: CedarScope(evaluator.request, evaluator.entities))
    }

    func isSatisfied(by evaluator: CedarEvaluator, scope: CedarScope) throws(CedarEvaluationError) -> Bool {
        guard scopeMatches(scope) else { return false }
        for condition in conditions {
            guard try evaluator.bool(condition.body) == condition.isWhen else { return false }
        }
        return true
    }
}

public enum CedarAuthorizer {
    /// Forbid wins; a permit allows; nothing satisfied denies. An erroring policy is skipped.
    public static func authorize(_ policies: [CedarPolicy], _ request: CedarRequest, _ entities: CedarEntities) -> CedarResponse {
        respond(policies, candidates: policies.indices, evaluator: CedarEvaluator(request: request, entities: entities),
                scope: CedarScope(request, entities))
    }

    /// The reference's answer over `candidates` (ascending policy indices; the others cannot
    /// apply): each evaluated once, in place (`for policy in policies` copied each policy, a
    /// retain per field).
    static func respond(_ policies: [CedarPolicy], candidates: some Sequence<Int>, evaluator: CedarEvaluator,
                        scope: CedarScope) -> CedarResponse {
        var permits: [String] = [], forbids: [String] = [], errors: [CedarPolicyError] = []
        policies.withUnsafeBufferPointer { buffer in
            for index in candidates {
                do throws(CedarEvaluationError) {
                    guard try buffer[index].isSatisfied(by: evaluator, scope: scope) else { continue }
                    if buffer[index].effect == .forbid { forbids.append(buffer[index].id) } else { permits.append(buffer[index].id) }
                } catch {
                    errors.append(CedarPolicyError(policy: buffer[index].id, message: error.message))
                }
            }
        }
        if !forbids.isEmpty { return CedarResponse(allowed: false, determining: forbids, errors: errors) }
        return CedarResponse(allowed: !permits.isEmpty, determining: permits, errors: errors)
    }
}
