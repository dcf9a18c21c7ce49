import AirlockCore
import AirlockPolicy

/// What every store driver writes for a proposal and a transition, computed once so the
/// drivers cannot drift apart (the audit chain's verifier reads these details). Pure.
public enum ProposalRecords {
    public static func newProposal(_ draft: ProposalDraft, id: String, now: String) -> Proposal {
        Proposal(id: id, sessionID: draft.sessionID, kind: draft.kind, state: .pending, summary: draft.summary,
                 decision: draft.ruling.decision, rule: draft.ruling.rule, createdAt: now, updatedAt: now,
                 digest: SigV4.hexSHA256(draft.payload), payload: draft.payload, upstream: draft.upstream)
    }

    public static func proposedDetail(_ proposal: Proposal, requirement: PolicyRequirement? = nil) -> JSON {
        var fields: [(String, JSON)] = [
            ("state", .string("pending")), ("kind", .string(proposal.kind.rawValue)),
            ("summary", .string(proposal.summary)), ("decision", .string(proposal.decision.rawValue)),
            ("rule", .string(proposal.rule)), ("digest", .string(proposal.digest)),
            ("upstream", .string(proposal.upstream)),
        ]
        if let requirement { fields.append(("requirement", requirement.json)) }
        return .object(fields)
    }

    /// An approval counted toward a proposal that needs several (docs/policy.md): its own
    /// audit entry, the proposal still pending.
    public static let approvalCounted = "approval-counted"
    /// The approvals counted so far no longer count (its target drifted).
    public static let approvalsVoid = "approvals-void"

    public static func countedDetail(note: String?) -> JSON {
        .object([("state", .string("pending")), ("note", note.map(JSON.string) ?? .null)])
    }

    public static func voidDetail(reason: String) -> JSON {
        .object([("state", .string("pending")), ("reason", .string(reason))])
    }

    /// The approvers counted, in order, from a proposal's audit entries (event, actor): those
    /// after its last `approvals-void`.
    public static func counted(_ entries: [(event: String, actor: String)]) -> [String] {
        var out: [String] = []
        for entry in entries {
            if entry.event == approvalsVoid { out = [] } else if entry.event == approvalCounted, !out.contains(entry.actor) { out.append(entry.actor) }
        }
        return out
    }

    public static func alreadyCounted(_ id: String, _ actor: String) -> AirlockError {
        AirlockError("\(actor) already approved \(id); one person's approval counts once", code: conflictCode)
    }

    public static func notPendingForCount(_ id: String, _ state: ProposalState) -> AirlockError {
        AirlockError("proposal \(id) cannot be approved: \(ProposalLifecycle.refusal(state, on: .approve))", code: conflictCode)
    }

    public static func sessionDetail(_ session: Session) -> JSON {
        .object([
            ("session", .string(session.id)), ("workspace", .string(session.workspace)),
            ("profiles", .string(session.profiles)), ("aws_upstream", .string(session.awsUpstream)),
        ] + (session.launcher.map { [("launcher", JSON.string($0))] } ?? []))
    }

    public static func identityDetail(_ identity: GateIdentity) -> JSON {
        .object([("name", .string(identity.name)), ("role", .string(identity.role.rawValue)),
                 ("token_sha256_prefix", .string(String(identity.tokenHash.prefix(12))))])
    }

    public static func identityTaken(_ identity: GateIdentity) -> AirlockError {
        AirlockError("\(identity.actor) is already enrolled (or was, and is revoked); nothing was added",
                     hint: "pick another name; `airlock gate hosts` / `airlock gate users` list them", code: .refused)
    }

    public static func noSuchIdentity(_ name: String, _ role: GateAccess.Role) -> AirlockError {
        AirlockError("no \(role == .host ? "host" : "user") named \(name) is enrolled", code: .noSuchIdentity)
    }

    public static func pendingLimitReached(_ pending: Int) -> AirlockError {
        AirlockError("this session already has \(pending) proposals waiting for a decision, the most one session may have; nothing was proposed",
                     hint: "ask the human to decide some (`airlock proposals`), then try again",
                     code: .proposalLimit)
    }

    public static func sessionRevoked(_ id: String) -> AirlockError {
        AirlockError("session \(id) was revoked on the gate: it can propose nothing more", hint: "start a new session",
                     code: .sessionRevoked)
    }

    public static func controlDetail(_ name: String, on: Bool, reason: String?) -> JSON {
        .object([("control", .string(name)), ("on", .bool(on)), ("reason", reason.map(JSON.string) ?? .null)])
    }

    /// The proposal is not in a state this event applies to (already decided, executed…), or
    /// another process changed it first: the caller's view is stale, the store is fine.
    public static let conflictCode = AirlockError.Code.conflict

    public static func leaseLost(_ id: String, owner: String) -> AirlockError {
        AirlockError("the execution of \(id) is no longer held by \(owner): its lease ran out (the proposal is unknown) or it ended",
                     hint: "stop: an execution whose lease is gone must not send anything more", code: .leaseLost)
    }

    public static func noSuchProposal(_ id: String) -> AirlockError {
        AirlockError("no proposal \(id)", hint: "`airlock proposals --all` lists them", code: .noSuchProposal)
    }

    /// One transition: the proposal after it and the audit entry's detail, or why it cannot
    /// apply (the lifecycle decides).
    public struct Transition: Sendable {
        public var updated: Proposal
        public var from: ProposalState
        public var detail: JSON
        /// Whether this event records a decision (who and why).
        public var decides: Bool
        public var executor: String?
    }

    public static func transition(_ current: Proposal, _ event: ProposalEvent, actor: String, note: String?,
                                  result: ExecutionResult?, executor: String?, leaseUntil: Int64? = nil,
                                  now: String) throws(AirlockError) -> Transition {
        guard let next = ProposalLifecycle.next(current.state, on: event) else {
            throw AirlockError("proposal \(current.id) cannot be \(event.resultingState.rawValue): \(ProposalLifecycle.refusal(current.state, on: event))", code: conflictCode)
        }
        let decides = event == .approve || event == .deny || event == .expire
        var detail: [(String, JSON)] = [("from", .string(current.state.rawValue)), ("state", .string(next.rawValue)),
                                        ("digest", .string(current.digest))]
        if let note { detail.append(("note", .string(note))) }
        if let executor { detail.append(("executor", .string(executor))) }
        if let leaseUntil { detail.append(("lease_until_ms", .number(Double(leaseUntil)))) }
        if let result {
            if let status = result.httpStatus { detail.append(("http_status", .number(Double(status)))) }
            if let code = result.exitCode { detail.append(("exit_code", .number(Double(code)))) }
            detail.append(("output_sha256", .string(SigV4.hexSHA256(result.output))))
        }
        var updated = current
        updated.state = next
        updated.updatedAt = now
        if decides {
            updated.decidedBy = actor
            updated.decisionNote = note
        }
        if let result { updated.result = result }
        return Transition(updated: updated, from: current.state, detail: .object(detail), decides: decides, executor: executor)
    }
}
