import AirlockCore

/// What the rules say about one proposal (docs/policy.md, "Outcomes"): denied at once (a
/// `forbid` matched), executed without a human (every determining `permit` says
/// `@airlock_allow`), or asked of `approvals` distinct approvers within `expiresAfter`
/// seconds. Pure.
public enum RuleOutcome: Sendable, Equatable {
    case deny(policies: [String])
    case allow(policy: String)
    case ask(approvals: Int, expiresAfter: Double, policies: [String])

    /// No policy decided: one approver, within a day (what Airlock did before rules).
    public static let defaultAsk = RuleOutcome.ask(approvals: 1, expiresAfter: RuleAnnotations.defaultExpiry, policies: [])

    /// The outcome of a response: forbid wins; a permit decides by its annotations, the
    /// strictest of the determining permits winning (one asking two approvers outweighs
    /// another allowing); nothing satisfied asks one approver.
    ///
    /// A policy whose condition errored (an overflow) is skipped, as the reference skips it;
    /// but it may have been the one that forbids or asks more, so with any error nothing runs
    /// without a human: an allow becomes an ask, and an erroring policy's own demands still
    /// count (`effects` says whether each id is a forbid).
    public static func of(_ response: CedarResponse, annotations: (String) -> RuleAnnotations,
                          isForbid: (String) -> Bool = { _ in false }) -> RuleOutcome {
        let erred = response.errors.map(\.policy)
        var outcome: RuleOutcome
        if !response.allowed {
            guard !response.determining.isEmpty else {
                return erred.isEmpty ? defaultAsk : .ask(approvals: erred.map { annotations($0).approvals }.max() ?? 1,
                                                         expiresAfter: RuleAnnotations.defaultExpiry, policies: erred)
            }
            return .deny(policies: response.determining)
        }
        let permits = response.determining.map { ($0, annotations($0)) }
        let asking = permits.filter { !$0.1.allow }
        if asking.isEmpty {
            outcome = .allow(policy: permits[0].0)
        } else {
            outcome = .ask(approvals: asking.map(\.1.approvals).max() ?? 1,
                           expiresAfter: asking.map(\.1.expiresAfter).min() ?? RuleAnnotations.defaultExpiry,
                           policies: asking.map(\.0))
        }
        guard !erred.isEmpty else { return outcome }
        let demanded = erred.filter { !isForbid($0) }.map { annotations($0).approvals }.max() ?? 1
        switch outcome {
        case .allow(let policy):
            return .ask(approvals: demanded, expiresAfter: RuleAnnotations.defaultExpiry, policies: [policy] + erred)
        case .ask(let approvals, let expiresAfter, let policies):
            return .ask(approvals: max(approvals, demanded), expiresAfter: expiresAfter, policies: policies + erred)
        case .deny:
            return outcome
        }
    }

    /// The outcome of several decisions one proposal needs (each ref of a push, each resource
    /// an operation touches): any deny denies; it runs without a human only if every part
    /// would; otherwise the most approvers and the shortest deadline asked.
    public static func combined(_ outcomes: [RuleOutcome]) -> RuleOutcome {
        guard let first = outcomes.first else { return defaultAsk }
        var denied: [String] = [], allowed: [String] = [], asks: [(Int, Double, [String])] = []
        for outcome in outcomes {
            switch outcome {
            case .deny(let policies): denied += policies.filter { !denied.contains($0) }
            case .allow(let policy): if !allowed.contains(policy) { allowed.append(policy) }
            case .ask(let approvals, let expiresAfter, let policies): asks.append((approvals, expiresAfter, policies))
            }
        }
        if !denied.isEmpty { return .deny(policies: denied) }
        if asks.isEmpty { return outcomes.count == 1 ? first : .allow(policy: allowed.joined(separator: "+")) }
        var policies: [String] = []
        for ask in asks { policies += ask.2.filter { !policies.contains($0) } }
        return .ask(approvals: asks.map(\.0).max() ?? 1, expiresAfter: asks.map(\.1).min() ?? RuleAnnotations.defaultExpiry, policies: policies)
    }

    /// A team gate's outcome with what the agent host's own policy asked (docs/policy.md,
    /// "Who may loosen"): only the gate's policy allows without a human or lowers the number
    /// of approvers; the host's can raise it and shorten the wait, never the reverse.
    public func tightened(by host: HostRequirement?) -> RuleOutcome {
        guard let host, host.approvals != nil || host.expiresAfter != nil else { return self }
        switch self {
        case .deny: return self
        case .allow(let policy):
            return .ask(approvals: max(1, host.approvals ?? 1), expiresAfter: min(RuleAnnotations.defaultExpiry, host.expiresAfter ?? RuleAnnotations.defaultExpiry),
                        policies: [policy] + host.policies.map { "host:" + $0 })
        case .ask(let approvals, let expiresAfter, let policies):
            return .ask(approvals: max(approvals, host.approvals ?? 1), expiresAfter: min(expiresAfter, host.expiresAfter ?? expiresAfter),
                        policies: policies + host.policies.map { "host:" + $0 })
        }
    }

    /// What the proposal needs, as stored with it.
    public var requirement: PolicyRequirement? {
        switch self {
        case .deny: return nil
        case .allow(let policy): return PolicyRequirement(approvals: 0, expiresAfter: RuleAnnotations.defaultExpiry, policies: [policy], allowedBy: policy)
        case .ask(let approvals, let expiresAfter, let policies):
            return PolicyRequirement(approvals: approvals, expiresAfter: expiresAfter, policies: policies, allowedBy: nil)
        }
    }
}

/// What an agent host's own policy asked of a team gate: at least this many approvers, at
/// most this long (sent with each proposal; the gate only ever tightens by it).
public struct HostRequirement: Sendable, Equatable {
    public var approvals: Int?
    public var expiresAfter: Double?
    public var policies: [String]

    public init(approvals: Int?, expiresAfter: Double?, policies: [String]) {
        self.approvals = approvals
        self.expiresAfter = expiresAfter
        self.policies = policies
    }

    /// From the host's own outcome: a forbid never reaches the gate (the host refuses it);
    /// an allow asks nothing of the gate; an ask sends what it asks beyond the defaults.
    public init?(_ outcome: RuleOutcome) {
        guard case .ask(let approvals, let expiresAfter, let policies) = outcome, !policies.isEmpty else { return nil }
        self.init(approvals: approvals > 1 ? approvals : nil,
                  expiresAfter: expiresAfter < RuleAnnotations.defaultExpiry ? expiresAfter : nil, policies: policies)
        if self.approvals == nil && self.expiresAfter == nil { return nil }
    }

    public var json: JSON {
        var fields: [(String, JSON)] = []
        if let approvals { fields.append(("approvals", .number(Double(approvals)))) }
        if let expiresAfter { fields.append(("expires_after_seconds", .number(expiresAfter))) }
        fields.append(("policies", .array(policies.map(JSON.string))))
        return .object(fields)
    }

    /// Bounded: at most `RuleAnnotations.maximumApprovals` approvers, at least a minute.
    public init?(json: JSON) {
        let approvals = json["approvals"]?.int
        let expires = json["expires_after_seconds"].flatMap { value -> Double? in if case .number(let n) = value { return n } else { return nil } }
        if let approvals, !(1...RuleAnnotations.maximumApprovals).contains(approvals) { return nil }
        if let expires, !(60...RuleAnnotations.maximumExpiry).contains(expires) { return nil }
        self.init(approvals: approvals, expiresAfter: expires, policies: Array((json["policies"]?.stringArray ?? []).prefix(16).map { String($0.prefix(200)) }))
    }
}

/// What a proposal needs before it runs, fixed when it is proposed and stored with its
/// `proposed` audit entry (tamper-evident, like its digest).
public struct PolicyRequirement: Sendable, Equatable {
    /// Distinct approvers; 0 when a policy allows it without a human.
    public var approvals: Int
    /// Seconds a pending proposal waits before it expires (and an approved one before it must
    /// have run).
    public var expiresAfter: Double
    /// The policies that decided.
    public var policies: [String]
    /// The `@airlock_allow` policy that executes it without a human.
    public var allowedBy: String?

    public init(approvals: Int, expiresAfter: Double, policies: [String], allowedBy: String?) {
        self.approvals = approvals
        self.expiresAfter = expiresAfter
        self.policies = policies
        self.allowedBy = allowedBy
    }

    /// A proposal made before rules: one approver, no deadline of its own.
    public static let legacy = PolicyRequirement(approvals: 1, expiresAfter: .infinity, policies: [], allowedBy: nil)

    public var json: JSON {
        var fields: [(String, JSON)] = [("approvals", .number(Double(approvals)))]
        if expiresAfter.isFinite { fields.append(("expires_after_seconds", .number(expiresAfter))) }
        fields.append(("policies", .array(policies.map(JSON.string))))
        if let allowedBy { fields.append(("allowed_by", .string(allowedBy))) }
        return .object(fields)
    }

    public init?(json: JSON) {
        guard let approvals = json["approvals"]?.int else { return nil }
        self.approvals = approvals
        if case .number(let seconds)? = json["expires_after_seconds"] { expiresAfter = seconds } else { expiresAfter = .infinity }
        policies = json["policies"]?.stringArray ?? []
        allowedBy = json["allowed_by"]?.string
    }

    /// In words: "needs 2 approvers (policy prod-deletes)".
    public var summary: String {
        if let allowedBy { return "allowed without a human by policy \(allowedBy)" }
        let who = approvals == 1 ? "1 approver" : "\(approvals) distinct approvers"
        return "needs \(who)" + (policies.isEmpty ? "" : " (policy \(policies.joined(separator: ", ")))")
    }
}

/// A policy's Airlock annotations, read and checked when the policy is loaded.
public struct RuleAnnotations: Sendable, Equatable {
    public var allow = false
    public var approvals = 1
    public var expiresAfter = defaultExpiry

    public static let defaultExpiry: Double = 86_400
    public static let maximumExpiry: Double = 30 * 86_400
    public static let maximumApprovals = 10

    public init() {}

    /// Reads `@airlock_allow`, `@approvals("N")` and `@expires("1h")`; a value out of range,
    /// or one on a `forbid` (which has nothing to ask), is an error naming the policy.
    public init(_ policy: CedarPolicy) throws(AirlockError) {
        for (key, value) in policy.annotations {
            switch key {
            case "airlock_allow":
                allow = true
            case "approvals":
                guard let n = Int(value), (1...Self.maximumApprovals).contains(n) else {
                    throw AirlockError("policy \(policy.id) (line \(policy.location.line)): @approvals(\"\(value)\") must be a whole number from 1 to \(Self.maximumApprovals)")
                }
                approvals = n
            case "expires":
                guard let seconds = Self.duration(value), (60...Self.maximumExpiry).contains(seconds) else {
                    throw AirlockError("policy \(policy.id) (line \(policy.location.line)): @expires(\"\(value)\") must be a duration from 1m to 30d, such as \"15m\", \"1h\" or \"2d\"")
                }
                expiresAfter = seconds
            default:
                continue
            }
        }
        if policy.effect == .forbid, policy.annotation("airlock_allow") != nil || policy.annotation("approvals") != nil || policy.annotation("expires") != nil {
            throw AirlockError("policy \(policy.id) (line \(policy.location.line)): @airlock_allow, @approvals and @expires belong on a permit; a forbid denies at once")
        }
        if allow && (policy.annotation("approvals") != nil) {
            throw AirlockError("policy \(policy.id) (line \(policy.location.line)): @airlock_allow runs without a human, so @approvals has no meaning beside it")
        }
    }

    /// "90s", "15m", "1h", "2d", "1h30m" → seconds.
    public static func duration(_ text: String) -> Double? {
        var total: Double = 0, digits = "", any = false
        for character in text {
            if character.isASCII, character.isNumber { digits.append(character); continue }
            guard let n = Double(digits), !digits.isEmpty else { return nil }
            switch character {
            case "s": total += n
            case "m": total += n * 60
            case "h": total += n * 3600
            case "d": total += n * 86_400
            default: return nil
            }
            digits = ""
            any = true
        }
        return any && digits.isEmpty ? total : nil
    }
}

extension PolicyRequirement {
    /// What an approver is shown: the requirement, who has approved so far, how many more.
    public func status(counted: [String], more: Int, proposedAt: String?) -> JSON {
        var fields: [(String, JSON)] = [("requirement", json), ("approvals_counted", .array(counted.map(JSON.string))),
                                        ("approvals_needed", .number(Double(more)))]
        if expiresAfter.isFinite, let proposedAt, let created = Clock.epochMilliseconds(parsing: proposedAt) {
            fields.append(("expires_at", .string(Clock.format(seconds: Int((created + Int64(expiresAfter * 1000)) / 1000), milliseconds: 0))))
        }
        return .object(fields)
    }

    /// One line for `airlock show`: "needs 2 distinct approvers (policy prod); approved so far
    /// by alice; 1 more; expires 2026-12-06T14:00:00Z".
    public func statusLine(counted: [String], more: Int, proposedAt: String?, pending: Bool) -> String {
        if let allowedBy, pending {
            // A policy allowed it, but the approve path refused to run it then (a freeze, a
            // drift): it waits for a person like any other.
            return "allowed by policy \(allowedBy), but not run (see the audit log); it waits for 1 approver"
        }
        var text = summary
        if !counted.isEmpty { text += "; approved so far by \(counted.joined(separator: ", "))" }
        if pending { text += more == 1 ? "; 1 more approver needed" : "; \(more) more approvers needed" }
        if pending, expiresAfter.isFinite, let proposedAt, let created = Clock.epochMilliseconds(parsing: proposedAt) {
            text += "; expires \(Clock.format(seconds: Int((created + Int64(expiresAfter * 1000)) / 1000), milliseconds: 0))"
        }
        return text
    }
}
