import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockStore

/// The one approve path (docs/architecture.md, "Approving"): `airlock approve` on the local
/// store, the gate's API, and anything later (a web page, Slack) call it, and it makes every
/// check on every store: the proposal exists and can run here, nothing is frozen, its session
/// is not revoked, its row is still what the audit log recorded when it was proposed (a payload
/// and digest rewritten together in the database are refused, not executed); then it approves
/// and the one Executor runs it, once, under the lease when there is one. A proposal past a
/// deadline is expired instead; one left `approved` and never claimed for longer than
/// `abandonedAfterSeconds` (its approver died first) runs when it is approved again.
public struct Approval: Sendable {
    public let store: any ProposalStore
    public var executor: Executor
    /// Called once the approval is stored, before the execution (a gate counts it, signs the
    /// chain's head and wakes waits).
    public var approved: (@Sendable (Proposal) -> Void)?
    /// Called when the row does not match its audit entry (a gate counts and logs it).
    public var tampered: (@Sendable (Proposal, String) -> Void)?

    /// Deadlines the approval itself enforces (a gate's `executions.expire_*_seconds`): a
    /// proposal past one is expired here, not approved, whether or not a sweep has run yet.
    public var deadlines = ProposalDeadlines()
    /// The clock (epoch milliseconds), injected by tests.
    public var now: @Sendable () -> Int64 = { Clock.epochMilliseconds() }
    /// Where approvers decide (docs/policy.md, "Who may approve"): locally the launching
    /// human is the only human and counts; on a team gate they never count.
    public var place: ApprovalTally.Place = .local
    /// Called when an approval was counted and more are needed (a gate announces it).
    public var counted: (@Sendable (Proposal, [String]) -> Void)?
    /// How long an approval may stand unclaimed before it counts as abandoned (its approver's
    /// process or replica died between approval and claim, which a local approve and a gate's
    /// request do within milliseconds): only then does approving it again run it.
    public static let abandonedAfterSeconds: Double = 120

    public init(store: any ProposalStore, executor: Executor) {
        self.store = store
        self.executor = executor
    }

    /// Why nothing may execute now: the freeze, with who set it and when; fails closed when the
    /// store cannot say.
    public static func frozenReason(_ store: any ProposalStore) -> String? {
        do { return frozenReason(try store.controls()) } catch {
            return "the store cannot say whether the gate is frozen (\(error.message)), so nothing executes"
        }
    }

    static func frozenReason(_ controls: [GateControl]) -> String? {
        guard let freeze = controls.first(where: { $0.name == GateControl.freeze }) else { return nil }
        return "the gate is frozen by \(freeze.setBy) since \(freeze.setAt)" + (freeze.reason.map { " (\($0))" } ?? "")
    }

    public func approve(_ id: String, by actor: String, note: String?) throws(AirlockError) -> Proposal {
        guard let current = try store.proposal(id: id) else { throw ProposalRecords.noSuchProposal(id) }
        if current.kind == .command && executor.runners.command == nil {
            throw AirlockError("this gate does not run command proposals; nothing was approved", code: .noCommands)
        }
        let controls: [GateControl]
        do { controls = try store.controls() } catch {
            throw AirlockError("the store cannot say whether the gate is frozen (\(error.message)), so nothing was approved", code: .frozen)
        }
        if let reason = Self.frozenReason(controls) {
            throw AirlockError("\(reason); nothing was approved", hint: "an approver thaws it: airlock thaw (POST /v1/thaw on a gate)", code: .frozen)
        }
        if controls.contains(where: { $0.name == GateControl.session(current.sessionID) }) {
            throw AirlockError("session \(current.sessionID) is revoked; nothing was approved", code: .sessionRevoked)
        }
        if let mismatch = try store.rowMismatch(current) {
            tampered?(current, mismatch)
            throw AirlockError("proposal \(id) was changed in the store since it was proposed (\(mismatch)); nothing was approved", code: .tampered)
        }
        let now = self.now()
        let created = Clock.epochMilliseconds(parsing: current.createdAt) ?? now
        let updated = Clock.epochMilliseconds(parsing: current.updatedAt) ?? now
        // What the rules asked when it was proposed (its proposed audit entry): approvers,
        // its own deadline, or a policy that runs it without a human.
        let requirement = try store.requirement(of: id)
        if actor.hasPrefix(Self.policyActorPrefix) && requirement.allowedBy.map({ Self.policyActorPrefix + $0 }) != actor {
            throw AirlockError("proposal \(id) is not allowed without a human (\(requirement.summary)); nothing was approved", code: .forbidden)
        }
        if let why = deadlines.tightened(by: requirement).expiry(state: current.state, created: Double(created) / 1000, updated: Double(updated) / 1000, now: Double(now) / 1000) {
            do { try store.apply(.expire, to: id, actor: "airlock", note: why) } catch where error.code == .conflict {}
            throw AirlockError("proposal \(id) cannot be approved: it expired (\(why))", code: .conflict)
        }
        // What the run needs must be here (a part, an artifact in the blob store): if not,
        // nothing changes and the approver is told why (only for a proposal that could run;
        // a decided one is refused for that first).
        if current.state == .pending || current.state == .approved, let missing = executor.missing(current) {
            throw Executor.notReady(id, missing, approved: current.state == .approved)
        }
        // No execution on a drifted target (docs/previews.md): what the approver read is read
        // again before the approval commits (or, for an abandoned approval, before it is run);
        // changed, nothing is approved or run, the new preview replaces the old, and the
        // approver decides again on it.
        if current.state == .pending || current.state == .approved, let drift = executor.drift(current, shown: try? store.preview(of: current)) {
            try store.setPreview(drift.preview, of: id)
            // Approvals counted so far approved the old preview: they no longer count.
            try store.voidApprovals(id, reason: "the target changed since it was previewed: \(drift.changes.prefix(3).joined(separator: "; "))")
            throw AirlockError("the target changed since it was previewed (\(drift.changes.prefix(5).joined(separator: "; "))\(drift.changes.count > 5 ? "; …" : "")); nothing was approved or executed",
                               hint: "the proposal stays pending with the new preview: read it (airlock show \(id)) and decide again", code: .conflict)
        }
        if current.state == .approved {
            // Approved, never claimed. Within moments of the approval that is another
            // approver's execution starting: refused. Long after, its approver died between
            // approval and claim (a store written before may hold such rows): approving it
            // again runs it, this approver's name and note on the claim's audit entry, and the
            // claim still lets exactly one execution start.
            guard Double(now - updated) / 1000 >= Self.abandonedAfterSeconds else {
                throw AirlockError("proposal \(id) cannot be approved: \(ProposalLifecycle.refusal(.approved, on: .approve))", code: .conflict)
            }
            let claimNote = "approved again by \(actor): the approval of \(current.updatedAt) was never executed" + (note.map { ": \($0)" } ?? "")
            return try execute(id, by: actor, note: claimNote)
        }
        // Who may approve, and how many must (docs/policy.md): one identity counts once; on a
        // gate the human who launched the session never counts; more than one approver is
        // counted approval by approval (audited), and it runs on the last one.
        if requirement.allowedBy == nil || !actor.hasPrefix(Self.policyActorPrefix) {
            let launcher = try store.session(id: current.sessionID)?.launcher
            let before = requirement.approvals > 1 ? try store.countedApprovals(id) : []
            switch ApprovalTally.verdict(requirement: requirement, approver: actor, counted: before, launcher: launcher, place: place,
                                         proposedAt: Double(created) / 1000, now: Double(now) / 1000) {
            case .refused(let why):
                throw AirlockError("proposal \(id) was not approved: \(why)", hint: requirement.approvals > 1 ? "another approver approves it (\(requirement.summary))" : nil,
                                   code: .forbidden)
            case .expired:
                throw AirlockError("proposal \(id) cannot be approved: it expired", code: .conflict)
            case .needsMore, .approved:
                if requirement.approvals > 1 {
                    var all = try store.countApproval(id, actor: actor, note: note)
                    var distinct = Set(all.filter { place == .local || $0 != launcher }).count
                    if distinct >= requirement.approvals {
                        // Read again just before approving: another approver's drift check may
                        // have voided the approvals counted meanwhile (counting and approving
                        // are two transactions; this narrows the gap to the next statement).
                        all = try store.countedApprovals(id)
                        distinct = Set(all.filter { place == .local || $0 != launcher }).count
                    }
                    if distinct < requirement.approvals {
                        let pending = try store.proposal(id: id) ?? current
                        counted?(pending, all)
                        return pending
                    }
                }
            }
        }
        let decided = try store.apply(.approve, to: id, actor: actor, note: note)
        approved?(decided)
        return try execute(id, by: actor, note: nil)
    }

    /// The actor an `@airlock_allow` policy approves as: `policy:ID` (never a person's name:
    /// enrolment and Unix names cannot hold a colon).
    public static let policyActorPrefix = "policy:"

    /// Runs a proposal its rules allowed without a human (docs/policy.md, "Outcomes"), through
    /// the same checks as a human's approval (freeze, revocation, tamper, drift, expiry),
    /// audited with the policy's id. Refused for any proposal whose rules did not allow it.
    public func approveByPolicy(_ id: String) throws(AirlockError) -> Proposal {
        guard let policy = try store.requirement(of: id).allowedBy else {
            throw AirlockError("proposal \(id) needs a human: no policy allowed it; nothing was approved", code: .forbidden)
        }
        return try approve(id, by: Self.policyActorPrefix + policy, note: "allowed without a human by policy \(policy)")
    }

    /// What a pending proposal still needs: the approvers counted and how many more.
    public static func status(of id: String, in store: any ProposalStore, place: ApprovalTally.Place) throws(AirlockError) -> (requirement: PolicyRequirement, counted: [String], more: Int) {
        let requirement = try store.requirement(of: id)
        let counted = requirement.approvals > 1 ? try store.countedApprovals(id) : []
        let launcher = place == .gate ? try store.session(id: (try store.proposal(id: id))?.sessionID ?? "")?.launcher : nil
        let valid = Set(counted.filter { $0 != launcher }).count
        return (requirement, counted, max(0, max(1, requirement.approvals) - valid))
    }

    /// The Executor's run; a claim another approval won first is refused in the approve's words.
    func execute(_ id: String, by actor: String, note: String?) throws(AirlockError) -> Proposal {
        do {
            return try executor.execute(id, actor: actor, note: note)
        } catch where error.code == .conflict {
            guard let now = try store.proposal(id: id), now.state != .approved else { throw error }
            throw AirlockError("proposal \(id) cannot be approved: \(ProposalLifecycle.refusal(now.state, on: .approve))", code: .conflict)
        }
    }
}
