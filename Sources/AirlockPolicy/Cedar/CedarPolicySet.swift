/// A policy set ready to decide many requests (docs/policy.md): constant subexpressions folded
/// once (`ip("10.0.0.0/8")`, literal sets and records), and the policies indexed by the actions
/// their scope names, so a request evaluates only the policies that can apply to its action.
/// Same answers as `CedarAuthorizer.authorize` over the plain list (CedarDifferentialTests
/// checks this path against the reference); measured by `scripts/bench policy`.
public struct CedarPolicySet: Sendable {
    public let policies: [CedarPolicy]
    /// Policies whose scope names an action (or an action group), by that entity's id.
    let byAction: [CedarEntityUID: [Int]]
    /// Policies whose scope allows any action.
    let anyAction: [Int]

    /// The attributes read through `.slot`s: which variable, which attribute.
    let slots: [(variable: CedarVariable, name: String)]

    public init(_ policies: [CedarPolicy]) {
        var folded = policies
        var slots: [(variable: CedarVariable, name: String)] = []
        for index in folded.indices {
            for condition in folded[index].conditions.indices {
                folded[index].conditions[condition].body = CedarFolding.slotted(CedarFolding.fold(folded[index].conditions[condition].body), &slots)
            }
        }
        self.slots = slots
        self.policies = folded
        var byAction: [CedarEntityUID: [Int]] = [:], anyAction: [Int] = []
        for (index, policy) in folded.enumerated() {
            switch policy.action {
            case .any: anyAction.append(index)
            case .equals(let uid), .isInOne(let uid): byAction[uid, default: []].append(index)
            case .isIn(let list): for uid in Set(list) { byAction[uid, default: []].append(index) }
            }
        }
        self.byAction = byAction
        self.anyAction = anyAction
    }

    public func authorize(_ request: CedarRequest, _ entities: CedarEntities) -> CedarResponse {
        let scope = CedarScope(request, entities)
        var candidates = anyAction + (byAction[request.action] ?? [])
        for ancestor in scope.actionAncestors { candidates += byAction[ancestor] ?? [] }
        candidates.sort()
        var evaluator = CedarEvaluator(request: request, entities: entities)
        // Each attribute of the context, principal and resource the policies read, looked up
        // once here instead of once per policy that reads it (scripts/bench policy).
        let principal = entities[request.principal], resource = entities[request.resource]
        evaluator.slots = slots.map { slot -> CedarValue? in
            switch slot.variable {
            case .context: return CedarEvaluator.field(request.context, slot.name)
            case .principal: return principal.flatMap { CedarEvaluator.field($0.attributes, slot.name) }
            case .resource: return resource.flatMap { CedarEvaluator.field($0.attributes, slot.name) }
            case .action: return nil
            }
        }
        // Sorted and without repeats: a policy named under two of the action's groups once.
        var unique: [Int] = []
        for index in candidates where unique.last != index { unique.append(index) }
        return CedarAuthorizer.respond(policies, candidates: unique, evaluator: evaluator, scope: scope)
    }
}

/// Constant folding that cannot change an answer: only what evaluates without error, to the
/// value it always has (an `ip()` or `decimal()` of a valid literal, a set or record of
/// literals, arithmetic on two literals that does not overflow). Anything that could error is
/// left to fail when evaluated, as the reference does.
enum CedarFolding {
    /// Replaces `context.x`, `principal.x` and `resource.x` with slots read once per request.
    static func slotted(_ expr: CedarExpr, _ slots: inout [(variable: CedarVariable, name: String)]) -> CedarExpr {
        func rebuilt(_ kind: CedarExpr.Kind) -> CedarExpr { CedarExpr(kind, at: expr.location) }
        func go(_ e: CedarExpr) -> CedarExpr { slotted(e, &slots) }
        switch expr.kind {
        case .attribute(let target, let name):
            if case .variable(let variable) = target.kind, variable != .action {
                let index = slots.firstIndex { $0.variable == variable && CedarText.sameBytes($0.name, name) } ?? {
                    slots.append((variable, name))
                    return slots.count - 1
                }()
                return rebuilt(.slot(index, original: expr))
            }
            return rebuilt(.attribute(go(target), name))
        case .literal, .variable, .slot: return expr
        case .not(let a): return rebuilt(.not(go(a)))
        case .negate(let a): return rebuilt(.negate(go(a)))
        case .and(let a, let b): return rebuilt(.and(go(a), go(b)))
        case .or(let a, let b): return rebuilt(.or(go(a), go(b)))
        case .ifThenElse(let a, let b, let c): return rebuilt(.ifThenElse(go(a), go(b), go(c)))
        case .has(let a, let name): return rebuilt(.has(go(a), name))
        case .like(let a, let pattern): return rebuilt(.like(go(a), pattern))
        case .isType(let a, let type): return rebuilt(.isType(go(a), type))
        case .method(let a, let name, let arguments): return rebuilt(.method(go(a), name, arguments.map(go)))
        case .binary(let op, let a, let b): return rebuilt(.binary(op, go(a), go(b)))
        case .call(let name, let arguments): return rebuilt(.call(name, arguments.map(go)))
        case .set(let items): return rebuilt(.set(items.map(go)))
        case .record(let fields): return rebuilt(.record(fields.map { CedarRecordField(key: $0.key, value: go($0.value)) }))
        }
    }

    static func fold(_ expr: CedarExpr) -> CedarExpr {
        func literal(_ value: CedarValue) -> CedarExpr { CedarExpr(.literal(value), at: expr.location) }
        func rebuilt(_ kind: CedarExpr.Kind) -> CedarExpr { CedarExpr(kind, at: expr.location) }
        switch expr.kind {
        case .literal, .variable, .slot:
            return expr
        case .not(let a): return rebuilt(.not(fold(a)))
        case .negate(let a): return rebuilt(.negate(fold(a)))
        case .and(let a, let b): return rebuilt(.and(fold(a), fold(b)))
        case .or(let a, let b): return rebuilt(.or(fold(a), fold(b)))
        case .ifThenElse(let a, let b, let c): return rebuilt(.ifThenElse(fold(a), fold(b), fold(c)))
        case .has(let a, let name): return rebuilt(.has(fold(a), name))
        case .attribute(let a, let name): return rebuilt(.attribute(fold(a), name))
        case .like(let a, let pattern): return rebuilt(.like(fold(a), pattern))
        case .isType(let a, let type): return rebuilt(.isType(fold(a), type))
        case .method(let a, let name, let arguments): return rebuilt(.method(fold(a), name, arguments.map(fold)))
        case .binary(let op, let a, let b):
            let (x, y) = (fold(a), fold(b))
            if case .literal(.long(let l)) = x.kind, case .literal(.long(let r)) = y.kind {
                let folded: (Int64, Bool)?
                switch op {
                case .add: folded = l.addingReportingOverflow(r)
                case .subtract: folded = l.subtractingReportingOverflow(r)
                case .multiply: folded = l.multipliedReportingOverflow(by: r)
                default: folded = nil
                }
                if let (value, overflow) = folded, !overflow { return literal(.long(value)) }
            }
            return rebuilt(.binary(op, x, y))
        case .call(let name, let arguments):
            let folded = arguments.map(fold)
            if folded.count == 1, case .literal(.string(let text)) = folded[0].kind {
                if name == "ip", let ip = CedarIP.parse(text) { return literal(.ipaddr(ip)) }
                if name == "decimal", let value = CedarDecimal.parse(text) { return literal(.decimal(value)) }
            }
            return rebuilt(.call(name, folded))
        case .set(let items):
            let folded = items.map(fold)
            var values = Set<CedarValue>()
            for item in folded {
                guard case .literal(let value) = item.kind else { return rebuilt(.set(folded)) }
                values.insert(value)
            }
            return literal(.set(values))
        case .record(let fields):
            let folded = fields.map { CedarRecordField(key: $0.key, value: fold($0.value)) }
            var values: [String: CedarValue] = [:]
            for field in folded {
                guard case .literal(let value) = field.value.kind else { return rebuilt(.record(folded)) }
                values[field.key] = value
            }
            return literal(.record(values))
        }
    }
}
