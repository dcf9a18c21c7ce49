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
        if let why = deadlines.expiry(state: current.state, created: Double(created) / 1000, updated: Double(updated) / 1000, now: Double(now) / 1000) {
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
        let decided = try store.apply(.approve, to: id, actor: actor, note: note)
        approved?(decided)
        return try execute(id, by: actor, note: nil)
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
