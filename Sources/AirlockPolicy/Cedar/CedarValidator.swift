/// A policy that does not fit the schema: which policy, where, and what is wrong.
public struct CedarValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var policy: String
    public var location: CedarLocation
    public var message: String

    public var description: String { "\(policy) (line \(location.line), column \(location.column)): \(message)" }
}

/// Cedar's strict validation (the reference's typechecker, checked against it by
/// CedarDifferentialTests): every entity type and action a policy names is declared; its scope
/// can apply to some declared action; and in every request environment the schema allows
/// (action × principal type × resource type) its condition is a boolean without a type error,
/// an attribute that may be missing, or a comparison of values that can never be equal. Like
/// the reference, what is known to be `false` is not checked further (`principal is Host && …`
/// when the principal is a Session).
public enum CedarValidator {
    public static func validate(_ policies: [CedarPolicy], schema: CedarSchema) -> [CedarValidationError] {
        policies.flatMap { validate($0, schema: schema) }
    }

    public static func validate(_ policy: CedarPolicy, schema: CedarSchema) -> [CedarValidationError] {
        var errors: [CedarValidationError] = []
        func fail(_ message: String, _ location: CedarLocation? = nil) {
            let error = CedarValidationError(policy: policy.id, location: location ?? policy.location, message: message)
            if !errors.contains(error) { errors.append(error) }
        }
        // Entity types and action ids named anywhere in the policy.
        var names = Set<String>(), actionIDs: [CedarEntityUID] = []
        func note(_ uid: CedarEntityUID) {
            if isActionType(uid.type) { actionIDs.append(uid) } else { names.insert(uid.type) }
        }
        for constraint in [policy.principal, policy.resource] {
            switch constraint {
            case .any: break
            case .equals(let uid), .isIn(let uid): note(uid)
            case .isType(let type): names.insert(type)
            case .isTypeIn(let type, let uid): names.insert(type); note(uid)
            }
        }
        switch policy.action {
        case .any: break
        case .equals(let uid), .isInOne(let uid): note(uid)
        case .isIn(let list): list.forEach(note)
        }
        for condition in policy.conditions {
            visit(condition.body) { expr in
                switch expr.kind {
                case .literal(.entity(let uid)): note(uid)
                case .isType(_, let type): names.insert(type)
                default: break
                }
            }
        }
        for name in names.sorted() where !isActionType(name) && schema.entityTypes[name] == nil {
            fail("unrecognized entity type `\(name)`" + suggestion(name, Array(schema.entityTypes.keys)))
        }
        for uid in actionIDs where schema.actions[uid] == nil {
            fail("unrecognized action `\(uid)`" + suggestion(uid.id, schema.actions.keys.map(\.id)))
        }
        if !actionApplies(policy, schema) {
            fail("no action in the schema applies to this policy's principal and resource constraints")
        }
        // The condition, typechecked in every request environment.
        let condition = conditionExpression(policy)
        for action in schema.actions.values.sorted(by: { $0.uid < $1.uid }) {
            guard let principals = action.principals else { continue }
            for principal in principals {
                for resource in action.resources {
                    var checker = Typechecker(schema: schema, action: action, principal: principal, resource: resource)
                    let answer = checker.check(condition, [])
                    if let type = answer.type, !checker.isSubtype(type, .boolean, strict: false) {
                        checker.problem("the policy's condition is \(type), not a boolean", condition.location)
                    }
                    for problem in checker.problems {
                        // Once per place and message, as the reference reports it (not once
                        // per request environment).
                        fail(problem.message, problem.location)
                    }
                    if errors.count > 20 { return errors }
                }
            }
        }
        return errors
    }

    /// `principal`, `context.preview`, `resource["tags"]` as written; nil for anything else.
    static func describe(_ expr: CedarExpr) -> String? {
        switch expr.kind {
        case .variable(let variable): return variable.rawValue
        case .attribute(let target, let name): return describe(target).map { "\($0).\(name)" }
        default: return nil
        }
    }

    static func isActionType(_ name: String) -> Bool { name == "Action" || name.hasSuffix("::Action") }

    static func suggestion(_ name: String, _ known: [String]) -> String {
        let scored = known.map { ($0, distance(name.lowercased(), $0.lowercased())) }.filter { $0.1 <= max(2, name.count / 4) }
        guard let best = scored.min(by: { ($0.1, $0.0) < ($1.1, $1.0) }) else { return "" }
        return " (did you mean `\(best.0)`?)"
    }

    /// Levenshtein distance, for suggestions.
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.utf8), y = Array(b.utf8)
        if x.isEmpty || y.isEmpty { return max(x.count, y.count) }
        var previous = Array(0...y.count), current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }

    static func visit(_ expr: CedarExpr, _ body: (CedarExpr) -> Void) {
        body(expr)
        switch expr.kind {
        case .literal, .variable: break
        case .not(let a), .negate(let a), .has(let a, _), .attribute(let a, _), .like(let a, _), .isType(let a, _): visit(a, body)
        case .binary(_, let a, let b), .and(let a, let b), .or(let a, let b): visit(a, body); visit(b, body)
        case .ifThenElse(let a, let b, let c): visit(a, body); visit(b, body); visit(c, body)
        case .method(let a, _, let args): visit(a, body); args.forEach { visit($0, body) }
        case .call(_, let args), .set(let args): args.forEach { visit($0, body) }
        case .record(let fields): fields.forEach { visit($0.value, body) }
        case .slot(_, let original): visit(original, body)
        }
    }

    /// The reference's reading of a policy as one expression: scope and conditions joined by
    /// `&&`, an `unless` negated.
    static func conditionExpression(_ policy: CedarPolicy) -> CedarExpr {
        let at = policy.location
        func lit(_ value: CedarValue) -> CedarExpr { CedarExpr(.literal(value), at: at) }
        func variable(_ v: CedarVariable) -> CedarExpr { CedarExpr(.variable(v), at: at) }
        func scope(_ constraint: CedarPolicy.EntityConstraint, _ v: CedarVariable) -> CedarExpr {
            switch constraint {
            case .any: return lit(.bool(true))
            case .equals(let uid): return CedarExpr(.binary(.equal, variable(v), lit(.entity(uid))), at: at)
            case .isIn(let uid): return CedarExpr(.binary(.isIn, variable(v), lit(.entity(uid))), at: at)
            case .isType(let type): return CedarExpr(.isType(variable(v), type), at: at)
            case .isTypeIn(let type, let uid):
                return CedarExpr(.and(CedarExpr(.isType(variable(v), type), at: at), CedarExpr(.binary(.isIn, variable(v), lit(.entity(uid))), at: at)), at: at)
            }
        }
        let action: CedarExpr
        switch policy.action {
        case .any: action = lit(.bool(true))
        case .equals(let uid): action = CedarExpr(.binary(.equal, variable(.action), lit(.entity(uid))), at: at)
        case .isInOne(let uid): action = CedarExpr(.binary(.isIn, variable(.action), lit(.entity(uid))), at: at)
        case .isIn(let list): action = CedarExpr(.binary(.isIn, variable(.action), CedarExpr(.set(list.map { lit(.entity($0)) }), at: at)), at: at)
        }
        var result = CedarExpr(.and(CedarExpr(.and(scope(policy.principal, .principal), action), at: at), scope(policy.resource, .resource)), at: at)
        for condition in policy.conditions {
            let body = condition.isWhen ? condition.body : CedarExpr(.not(condition.body), at: condition.body.location)
            result = CedarExpr(.and(result, body), at: at)
        }
        return result
    }

    /// The reference's "invalid action application": some action the scope allows applies to
    /// a principal type and a resource type the scope allows.
    static func actionApplies(_ policy: CedarPolicy, _ schema: CedarSchema) -> Bool {
        let actions: [CedarSchema.Action]
        switch policy.action {
        case .any: actions = Array(schema.actions.values)
        case .equals(let uid): actions = schema.actions[uid].map { [$0] } ?? []
        case .isInOne(let uid): actions = (schema.actions(in: [uid]) ?? []).compactMap { schema.actions[$0] }
        case .isIn(let list): actions = (schema.actions(in: list) ?? []).compactMap { schema.actions[$0] }
        }
        func types(_ constraint: CedarPolicy.EntityConstraint) -> Set<String>? {
            switch constraint {
            case .any: return nil
            case .equals(let uid): return [uid.type]
            case .isIn(let uid): return schema.types(in: uid.type)
            case .isType(let type): return [type]
            case .isTypeIn(let type, let uid): return schema.types(in: uid.type).contains(type) ? [type] : []
            }
        }
        let principals = types(policy.principal), resources = types(policy.resource)
        return actions.contains { action in
            guard let applies = action.principals else { return false }
            let principalMatch = principals.map { !$0.isDisjoint(with: applies) } ?? !applies.isEmpty
            let resourceMatch = resources.map { !$0.isDisjoint(with: action.resources) } ?? !action.resources.isEmpty
            return principalMatch && resourceMatch
        }
    }

    struct Capability: Hashable {
        var target: CedarExpr
        var attribute: String
    }

    struct Answer {
        var type: CedarType?
        var capabilities: Set<Capability> = []
    }

    struct Typechecker {
        let schema: CedarSchema
        let action: CedarSchema.Action
        let principal: String
        let resource: String
        var problems: [(message: String, location: CedarLocation)] = []

        init(schema: CedarSchema, action: CedarSchema.Action, principal: String, resource: String) {
            self.schema = schema
            self.action = action
            self.principal = principal
            self.resource = resource
        }

        mutating func problem(_ message: String, _ location: CedarLocation) { problems.append((message, location)) }

        // MARK: the type lattice (strict mode)

        func isSubtype(_ a: CedarType, _ b: CedarType, strict: Bool) -> Bool {
            switch (a, b) {
            case (.never, _): return true
            case (.bool(let x), .bool(let y)): return y == .unknown || x == y
            case (.long, .long), (.string, .string): return true
            case let (.set(x), .set(y)):
                switch (x, y) {
                case let (x?, y?): return isSubtype(x, y, strict: strict)
                case (_, nil): return true
                case (nil, _?): return false
                }
            case let (.record(x, xOpen), .record(y, yOpen)):
                guard !xOpen || yOpen else { return false }
                func attributesSubtype(_ depthOnly: Bool) -> Bool {
                    if depthOnly && Set(x.keys) != Set(y.keys) { return false }
                    return y.allSatisfy { key, yType in
                        guard let xType = x[key] else { return false }
                        return (xType.required || !yType.required) && isSubtype(xType.type, yType.type, strict: strict)
                    }
                }
                return (yOpen && !strict && attributesSubtype(false)) || attributesSubtype(true)
            case (.action, .action): return false
            case let (.entity(x), .entity(y)): return strict ? x == y : x.isSubset(of: y)
            case (.anyEntity, .anyEntity): return true
            case (.entity, .anyEntity), (.action, .anyEntity): return !strict
            case let (.ext(x), .ext(y)): return x == y
            default: return false
            }
        }

        func leastUpperBound(_ a: CedarType, _ b: CedarType) -> CedarType? {
            if isSubtype(a, b, strict: true) { return b }
            if isSubtype(b, a, strict: true) { return a }
            switch (a, b) {
            case (.bool, .bool): return .boolean
            case (.set(nil), .set), (.set, .set(nil)): return .set(nil)
            case let (.set(x?), .set(y?)): return leastUpperBound(x, y).map { .set($0) }
            case let (.record(x, xOpen), .record(y, yOpen)):
                guard Set(x.keys) == Set(y.keys) else { return nil }
                var attributes: [String: CedarAttributeType] = [:]
                for (key, xType) in x {
                    guard let yType = y[key], let lub = leastUpperBound(xType.type, yType.type) else { return nil }
                    attributes[key] = CedarAttributeType(lub, required: xType.required && yType.required)
                }
                return .record(attributes, open: xOpen || yOpen)
            case let (.action(x), .action(y)): return x == y ? .action(x) : nil
            case let (.entity(x), .entity(y)): return x == y ? .entity(x) : nil
            case (.anyEntity, .anyEntity): return .anyEntity
            default: return nil
            }
        }

        func entityNames(_ type: CedarType) -> Set<String>? {
            switch type {
            case .entity(let names): return names
            case .action(let name): return [name]
            default: return nil
            }
        }

        func areDisjoint(_ a: CedarType, _ b: CedarType) -> Bool {
            guard let x = entityNames(a), let y = entityNames(b) else { return false }
            return x.isDisjoint(with: y)
        }

        /// An attribute of an entity or record type, and whether the type is closed (an
        /// attribute it does not list cannot be there).
        func attribute(_ type: CedarType, _ name: String) -> (found: CedarAttributeType?, mayHave: Bool) {
            switch type {
            case .record(let attributes, let open):
                return (attributes[name], attributes[name] != nil || open)
            case .entity(let names):
                let declared = names.map { schema.entityTypes[$0]?.attributes[name] }
                if names.count == 1 { return (declared[0], declared[0] != nil) }
                let all = declared.compactMap { $0 }
                guard all.count == names.count, var lub = Optional(all[0].type) else { return (nil, !all.isEmpty) }
                for other in all.dropFirst() {
                    guard let next = leastUpperBound(lub, other.type) else { return (nil, true) }
                    lub = next
                }
                return (CedarAttributeType(lub, required: all.allSatisfy(\.required)), true)
            case .action:
                return (nil, false)
            case .anyEntity:
                return (nil, true)
            case .never:
                return (nil, true)
            default:
                return (nil, false)
            }
        }

        // MARK: expressions

        /// `check` with an expectation: a value outside `expected` is a type error and has no
        /// type afterwards (the reference's expect_type, which compares permissively).
        mutating func expect(_ expr: CedarExpr, _ expected: [CedarType], _ capabilities: Set<Capability>) -> Answer {
            var answer = check(expr, capabilities)
            if let type = answer.type, !expected.contains(where: { isSubtype(type, $0, strict: false) }) {
                problem("expected \(expected.map(\.description).joined(separator: " or ")), found \(type)", expr.location)
                answer.type = nil
            }
            return answer
        }

        var actionLiteral: CedarEntityUID { action.uid }

        /// A literal after the `action` variable is replaced by this environment's action.
        func literal(_ expr: CedarExpr) -> CedarValue? {
            switch expr.kind {
            case .literal(let value): return value
            case .variable(.action): return .entity(action.uid)
            default: return nil
            }
        }

        func entityLiterals(_ expr: CedarExpr) -> [CedarEntityUID]? {
            if case .entity(let uid)? = literal(expr) { return [uid] }
            guard case .set(let items) = expr.kind else { return nil }
            var out: [CedarEntityUID] = []
            for item in items {
                guard case .entity(let uid)? = literal(item) else { return nil }
                out.append(uid)
            }
            return out
        }

        mutating func check(_ expr: CedarExpr, _ capabilities: Set<Capability>) -> Answer {
            switch expr.kind {
            case .literal(let value):
                switch value {
                case .bool(let b): return Answer(type: .bool(b ? .alwaysTrue : .alwaysFalse))
                case .long: return Answer(type: .long)
                case .string: return Answer(type: .string)
                case .entity(let uid):
                    if CedarValidator.isActionType(uid.type) { return Answer(type: schema.actions[uid] == nil ? nil : .action(uid.type)) }
                    return Answer(type: schema.entityTypes[uid.type] == nil ? nil : .entity([uid.type]))
                default: return Answer(type: nil)
                }
            case .variable(let variable):
                switch variable {
                case .principal: return Answer(type: .entity([principal]))
                case .resource: return Answer(type: .entity([resource]))
                case .action: return Answer(type: .action(action.uid.type))
                case .context: return Answer(type: .record(action.context, open: false))
                }
            case .ifThenElse(let test, let then, let otherwise):
                let testAnswer = expect(test, [.boolean], capabilities)
                if testAnswer.type == .bool(.alwaysTrue) {
                    let thenAnswer = check(then, capabilities.union(testAnswer.capabilities))
                    return Answer(type: thenAnswer.type, capabilities: thenAnswer.capabilities.union(testAnswer.capabilities))
                }
                if testAnswer.type == .bool(.alwaysFalse) {
                    return check(otherwise, capabilities)
                }
                let thenAnswer = check(then, capabilities.union(testAnswer.capabilities))
                let elseAnswer = check(otherwise, capabilities)
                guard testAnswer.type != nil, let t = thenAnswer.type, let e = elseAnswer.type else { return Answer(type: nil) }
                guard let lub = leastUpperBound(t, e) else {
                    problem("the branches of `if` have incompatible types \(t) and \(e)", expr.location)
                    return Answer(type: nil)
                }
                return Answer(type: lub, capabilities: thenAnswer.capabilities.union(testAnswer.capabilities).intersection(elseAnswer.capabilities))
            case .and(let left, let right):
                let l = expect(left, [.boolean], capabilities)
                if l.type == .bool(.alwaysFalse) { return Answer(type: l.type) }
                let r = expect(right, [.boolean], capabilities.union(l.capabilities))
                guard let lt = l.type, let rt = r.type else { return Answer(type: nil) }
                if rt == .bool(.alwaysFalse) { return Answer(type: rt) }
                if rt == .bool(.alwaysTrue) { return Answer(type: lt, capabilities: l.capabilities.union(r.capabilities)) }
                if lt == .bool(.alwaysTrue) { return Answer(type: rt, capabilities: r.capabilities) }
                return Answer(type: .boolean, capabilities: l.capabilities.union(r.capabilities))
            case .or(let left, let right):
                let l = expect(left, [.boolean], capabilities)
                if l.type == .bool(.alwaysTrue) { return l }
                let r = expect(right, [.boolean], capabilities)
                guard let lt = l.type, let rt = r.type else { return Answer(type: nil) }
                if rt == .bool(.alwaysTrue) { return Answer(type: rt, capabilities: r.capabilities) }
                if rt == .bool(.alwaysFalse) { return Answer(type: lt, capabilities: l.capabilities) }
                if lt == .bool(.alwaysFalse) { return Answer(type: rt, capabilities: r.capabilities) }
                return Answer(type: .boolean, capabilities: l.capabilities.intersection(r.capabilities))
            case .not(let inner):
                let a = expect(inner, [.boolean], capabilities)
                switch a.type {
                case .bool(.alwaysTrue)?: return Answer(type: .bool(.alwaysFalse))
                case .bool(.alwaysFalse)?: return Answer(type: .bool(.alwaysTrue))
                case nil: return Answer(type: nil)
                default: return Answer(type: .boolean)
                }
            case .negate(let inner):
                return Answer(type: expect(inner, [.long], capabilities).type == nil ? nil : .long)
            case .binary(let op, let left, let right):
                return binary(op, left, right, expr, capabilities)
            case .has(let target, let name):
                let t = expect(target, [.anyEntity, .record([:], open: true)], capabilities)
                guard let type = t.type else { return Answer(type: nil) }
                let capability = Capability(target: target, attribute: name)
                let (found, mayHave) = attribute(type, name)
                if let found {
                    let isRecord: Bool
                    if case .record = type { isRecord = true } else { isRecord = false }
                    let known = capabilities.contains(capability) || (found.required && isRecord)
                    return Answer(type: known ? .bool(.alwaysTrue) : .boolean, capabilities: [capability])
                }
                return Answer(type: mayHave ? .boolean : .bool(.alwaysFalse))
            case .attribute(let target, let name):
                let t = expect(target, [.anyEntity, .record([:], open: true)], capabilities)
                guard let type = t.type else { return Answer(type: nil) }
                let (found, _) = attribute(type, name)
                let owner = CedarValidator.describe(target) ?? type.description
                guard let found else {
                    problem("\(owner) has no attribute `\(name)`", expr.location)
                    return Answer(type: nil)
                }
                guard found.required || capabilities.contains(Capability(target: target, attribute: name)) else {
                    problem("\(owner).\(name) may be missing: test it first (`\(owner) has \(name) && …`)", expr.location)
                    return Answer(type: nil)
                }
                return Answer(type: found.type)
            case .like(let target, _):
                return Answer(type: expect(target, [.string], capabilities).type == nil ? nil : .boolean)
            case .isType(let target, let name):
                let t = expect(target, [.anyEntity], capabilities)
                guard let type = t.type else { return Answer(type: nil) }
                if let names = entityNames(type) {
                    if !names.contains(name) { return Answer(type: .bool(.alwaysFalse)) }
                    return Answer(type: names.count == 1 ? .bool(.alwaysTrue) : .boolean)
                }
                return Answer(type: .boolean)
            case .set(let items):
                var types: [CedarType?] = []
                for item in items { types.append(check(item, capabilities).type) }
                if items.isEmpty {
                    problem("an empty set literal has no type in strict validation", expr.location)
                    return Answer(type: nil)
                }
                guard let known = types as? [CedarType] else { return Answer(type: nil) }
                var lub = CedarType.never
                for type in known {
                    guard let next = leastUpperBound(lub, type) else {
                        problem("the elements of this set have incompatible types", expr.location)
                        return Answer(type: nil)
                    }
                    lub = next
                }
                return Answer(type: .set(lub))
            case .record(let fields):
                var attributes: [String: CedarAttributeType] = [:], complete = true
                for field in fields {
                    if let type = check(field.value, capabilities).type { attributes[field.key] = CedarAttributeType(type) } else { complete = false }
                }
                return Answer(type: complete ? .record(attributes, open: false) : nil)
            case .method(let target, let name, let arguments):
                return call(name, [target] + arguments, expr, capabilities, isMethod: true)
            case .call(let name, let arguments):
                return call(name, arguments, expr, capabilities, isMethod: false)
            case .slot(_, let original):
                return check(original, capabilities)
            }
        }

        mutating func binary(_ op: CedarBinaryOperator, _ left: CedarExpr, _ right: CedarExpr, _ expr: CedarExpr,
                             _ capabilities: Set<Capability>) -> Answer {
            switch op {
            case .equal, .notEqual:
                let l = check(left, capabilities), r = check(right, capabilities)
                var type = CedarType.boolean
                if let lt = l.type, let rt = r.type, areDisjoint(lt, rt) {
                    type = .bool(.alwaysFalse)
                } else if let a = literal(left), let b = literal(right) {
                    type = .bool(a == b ? .alwaysTrue : .alwaysFalse)
                }
                if type == .boolean, let lt = l.type, let rt = r.type, leastUpperBound(lt, rt) == nil {
                    problem("`\(op.rawValue)` compares \(lt) with \(rt), which are never equal", expr.location)
                    return Answer(type: nil)
                }
                // A literal comparison is decided even when a side's type is unknown (an
                // undeclared action, reported once elsewhere), as the reference does.
                guard (l.type != nil && r.type != nil) || type != .boolean else { return Answer(type: nil) }
                if op == .notEqual {
                    if case .bool(let truth) = type, truth != .unknown { return Answer(type: .bool(truth == .alwaysTrue ? .alwaysFalse : .alwaysTrue)) }
                }
                return Answer(type: type)
            case .less, .lessOrEqual, .greater, .greaterOrEqual:
                let l = check(left, capabilities), r = check(right, capabilities)
                guard let lt = l.type, let rt = r.type else { return Answer(type: nil) }
                if lt == .never, rt == .never { return Answer(type: nil) }
                if (lt == .long || lt == .never) && (rt == .long || rt == .never) { return Answer(type: .boolean) }
                problem("`\(op.rawValue)` compares Longs, not \(lt) and \(rt)", expr.location)
                return Answer(type: nil)
            case .add, .subtract, .multiply:
                let l = expect(left, [.long], capabilities), r = expect(right, [.long], capabilities)
                return Answer(type: l.type == nil || r.type == nil ? nil : .long)
            case .isIn:
                let l = expect(left, [.anyEntity], capabilities)
                let r = expect(right, [.set(.anyEntity), .anyEntity], capabilities)
                guard let lt = l.type, let rt = r.type else { return Answer(type: nil) }
                if case .entity(let lhs)? = literal(left), CedarValidator.isActionType(lhs.type), let rhs = entityLiterals(right) {
                    let actions = rhs.filter { CedarValidator.isActionType($0.type) }
                    if actions.isEmpty { return Answer(type: .bool(.alwaysFalse)) }
                    guard let members = schema.actions(in: actions) else { return Answer(type: nil) }
                    return Answer(type: .bool(members.contains(lhs) ? .alwaysTrue : .alwaysFalse))
                }
                var rhsNames: Set<String>?
                if case .set(let element?) = rt { rhsNames = entityNames(element).flatMap { names in
                    if case .entity = element { return names } else { return nil } } }
                else if case .entity(let names) = rt { rhsNames = names }
                var lhsNames: Set<String>?
                if case .entity(let names) = lt { lhsNames = names }
                if let lhsNames, let rhsNames, !lhsNames.contains(where: { l in rhsNames.contains { r in
                    schema.types(in: r).contains(l) || l == r || schema.actions.values.contains { $0.uid.type == r && (schema.actions(in: [$0.uid]) ?? []).contains { $0.type == l } }
                } }) {
                    return Answer(type: .bool(.alwaysFalse))
                }
                return Answer(type: .boolean)
            }
        }

        static let extensionSignatures: [String: (arguments: [CedarType], result: CedarType)] = [
            "ip": ([.string], .ext("ipaddr")), "decimal": ([.string], .ext("decimal")),
            "lessThan": ([.ext("decimal"), .ext("decimal")], .boolean), "lessThanOrEqual": ([.ext("decimal"), .ext("decimal")], .boolean),
            "greaterThan": ([.ext("decimal"), .ext("decimal")], .boolean), "greaterThanOrEqual": ([.ext("decimal"), .ext("decimal")], .boolean),
            "isIpv4": ([.ext("ipaddr")], .boolean), "isIpv6": ([.ext("ipaddr")], .boolean), "isLoopback": ([.ext("ipaddr")], .boolean),
            "isMulticast": ([.ext("ipaddr")], .boolean), "isInRange": ([.ext("ipaddr"), .ext("ipaddr")], .boolean),
        ]

        mutating func call(_ name: String, _ arguments: [CedarExpr], _ expr: CedarExpr, _ capabilities: Set<Capability>, isMethod: Bool) -> Answer {
            switch name {
            case "contains":
                let set = expect(arguments[0], [.set(nil)], capabilities)
                guard set.type != nil else { return Answer(type: nil) }
                let element = check(arguments[1], capabilities)
                if case .set(let elementType?)? = set.type, let argument = element.type, leastUpperBound(elementType, argument) == nil {
                    problem("`contains` looks for \(argument) in a set of \(elementType)", expr.location)
                    return Answer(type: nil)
                }
                return Answer(type: element.type == nil ? nil : .boolean)
            case "containsAll", "containsAny":
                let a = expect(arguments[0], [.set(nil)], capabilities)
                guard a.type != nil else { return Answer(type: nil) }
                let b = expect(arguments[1], [.set(nil)], capabilities)
                guard let at = a.type, let bt = b.type else { return Answer(type: nil) }
                if leastUpperBound(at, bt) == nil {
                    problem("`\(name)` compares \(at) with \(bt)", expr.location)
                    return Answer(type: nil)
                }
                return Answer(type: .boolean)
            case "isEmpty":
                return Answer(type: expect(arguments[0], [.set(nil)], capabilities).type == nil ? nil : .boolean)
            default:
                guard let signature = Self.extensionSignatures[name] else {
                    problem("unknown extension function `\(name)`", expr.location)
                    return Answer(type: nil)
                }
                var failed = false
                if arguments.count != signature.arguments.count {
                    problem("`\(name)` takes \(signature.arguments.count - (isMethod ? 1 : 0)) argument(s), not \(arguments.count - (isMethod ? 1 : 0))", expr.location)
                    failed = true
                }
                if name == "ip" || name == "decimal" {
                    for argument in arguments {
                        guard case .literal(let value) = argument.kind else {
                            problem("`\(name)` takes a literal string in strict validation", expr.location)
                            failed = true
                            continue
                        }
                        if case .string(let text) = value {
                            if name == "ip" && CedarIP.parse(text) == nil { problem("\(CedarEntityUID.quote(text)) is not a valid IP address", expr.location); failed = true }
                            if name == "decimal" && CedarDecimal.parse(text) == nil { problem("\(CedarEntityUID.quote(text)) is not a valid decimal", expr.location); failed = true }
                        }
                    }
                }
                if failed {
                    for argument in arguments { _ = check(argument, capabilities) }
                    return Answer(type: nil)
                }
                var complete = true
                for (argument, type) in zip(arguments, signature.arguments) where expect(argument, [type], capabilities).type == nil { complete = false }
                return Answer(type: complete ? signature.result : nil)
            }
        }
    }
}
