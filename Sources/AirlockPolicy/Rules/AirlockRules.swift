import AirlockCore

/// A loaded policy set (docs/policy.md): Cedar policies read whole from their files, parsed,
/// checked against Airlock's schema and their annotations, ready to decide proposals. A file
/// that does not parse or validate is refused whole, with every problem and its line: a rule
/// half-read is worse than none.
public struct AirlockRules: Sendable {
    public struct Source: Sendable {
        /// What the policies are called after: the file's path.
        public var label: String
        public var text: String

        public init(label: String, text: String) {
            self.label = label
            self.text = text
        }
    }

    public let policies: [CedarPolicy]
    /// The same, folded and indexed for deciding.
    let set: CedarPolicySet
    public let annotations: [String: RuleAnnotations]
    public let sources: [String]
    /// Which group the catalog puts an action in (as the schema does when validating).
    let lookup: AirlockCedar.ActionLookup
    let forbids: Set<String>

    /// An empty set: every mutation asks one approver.
    public init() {
        policies = []
        set = CedarPolicySet([])
        annotations = [:]
        sources = []
        lookup = AirlockCedar.shapeLookup
        forbids = []
    }

    /// Parses and validates `sources`; throws with every problem found (parse errors with
    /// line and column, validation errors with the policy and what is wrong).
    public init(_ sources: [Source], lookup: @escaping AirlockCedar.ActionLookup = AirlockCedar.shapeLookup) throws(AirlockError) {
        var all: [CedarPolicy] = [], problems: [String] = []
        for source in sources {
            do {
                let parsed = try CedarParser.parse(source.text)
                all += parsed.map { policy in
                    var named = policy
                    named.id = Self.name(policy, in: source.label)
                    return named
                }
            } catch {
                problems.append("\(source.label): \(error.description)")
            }
        }
        if problems.isEmpty {
            let schema = AirlockCedar.schema(for: all, lookup: lookup)
            for error in CedarValidator.validate(all, schema: schema) {
                problems.append("\(error.policy) (line \(error.location.line), column \(error.location.column)): \(error.message)")
            }
        }
        var annotations: [String: RuleAnnotations] = [:]
        var seen = Set<String>()
        for policy in all {
            if !seen.insert(policy.id).inserted { problems.append("two policies are named \(policy.id): an @id names one policy") }
            do { annotations[policy.id] = try RuleAnnotations(policy) } catch { problems.append(error.message) }
        }
        guard problems.isEmpty else {
            throw AirlockError("the policy is not valid, so nothing was loaded:\n  " + problems.prefix(20).joined(separator: "\n  ")
                               + (problems.count > 20 ? "\n  … and \(problems.count - 20) more" : ""),
                               hint: "fix it and check it with `airlock policy check FILE`; docs/policy.md has the schema and examples", code: .badRequest)
        }
        self.policies = all
        self.set = CedarPolicySet(all)
        self.annotations = annotations
        self.sources = sources.map(\.label)
        self.lookup = lookup
        self.forbids = Set(all.filter { $0.effect == .forbid }.map(\.id))
    }

    /// `@id("name")` when the policy has one, else `FILE#N` (its position in the file, from 0,
    /// as the reference numbers policies).
    static func name(_ policy: CedarPolicy, in label: String) -> String {
        if let id = policy.annotation("id"), !id.isEmpty { return id }
        let base = label.split(separator: "/").last.map(String.init) ?? label
        return "\(base)#\(policy.id.dropFirst("policy".count))"
    }

    public var isEmpty: Bool { policies.isEmpty }

    /// Whether any policy reads `context.session` (the session's counts cost a read of its
    /// proposals on a gate; nothing else needs them).
    public var readsSessionCounts: Bool {
        policies.contains { policy in
            var reads = false
            for condition in policy.conditions {
                CedarValidator.visit(condition.body) { expr in
                    if case .attribute(let target, "session") = expr.kind, case .variable(.context) = target.kind { reads = true }
                }
            }
            return reads
        }
    }

    /// The response for a request already built (benchmarks, replays).
    public func authorize(_ request: CedarRequest, _ entities: CedarEntities) -> CedarResponse { set.authorize(request, entities) }

    /// The decision for one proposal, with the reference-shaped response behind it.
    public func decide(_ facts: ProposalFacts, session: SessionFacts, now epochSeconds: Int64) -> (outcome: RuleOutcome, response: CedarResponse) {
        var facts = facts
        // The catalog's group too, so a rule on `mutation` sees a sensitive write (asked only
        // for sensitive rulings: the lookup cost a common mutation's decision a third more).
        if facts.group != "mutation", let group = lookup(facts.action), group != facts.group, !facts.otherGroups.contains(group) {
            facts.otherGroups.append(group)
        }
        let (request, entities) = AirlockCedar.request(facts, session: session, now: epochSeconds)
        let response = set.authorize(request, entities)
        return (RuleOutcome.of(response, annotations: { annotations[$0] ?? RuleAnnotations() }, isForbid: { forbids.contains($0) }), response)
    }

    /// The decision for a proposal of several parts (ProposalFacts.parts): each part decided,
    /// then combined (any deny denies; all must allow to run without a human).
    public func decide(parts: [ProposalFacts], session: SessionFacts, now epochSeconds: Int64) -> RuleOutcome {
        RuleOutcome.combined(parts.map { decide($0, session: session, now: epochSeconds).outcome })
    }
}
