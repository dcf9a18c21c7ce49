import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockStore

/// The one approve path (docs/architecture.md, "Approving"): `airlock approve` on the local
/// store, the gate's API, and anything later (a web page, Slack) call it, and it makes every
/// check on every store: the proposal exists and can run here, nothing is frozen, its session
/// is not revoked, its row is still what the audit log recorded when it was proposed (a payload
/// and digest rewritten together in the database are refused, not executed); then it approves
/// and the one Executor runs it, once, under the lease when there is one. A proposal left
/// `approved` and never claimed (its approver died first) runs when it is approved again.
public struct Approval: Sendable {
    public let store: any ProposalStore
    public var executor: Executor
    /// Called once the approval is stored, before the execution (a gate counts it, signs the
    /// chain's head and wakes waits).
    public var approved: (@Sendable (Proposal) -> Void)?
    /// Called when the row does not match its audit entry (a gate counts and logs it).
    public var tampered: (@Sendable (Proposal, String) -> Void)?

    public init(store: any ProposalStore, executor: Executor) {
        self.store = store
        self.executor = executor
    }

    /// Why nothing may execute now: the freeze, with who set it and when; fails closed when the
    /// store cannot say.
    public static func frozenReason(_ store: any ProposalStore) -> String? {
        let freeze: GateControl?
        do { freeze = try store.control(GateControl.freeze) } catch {
            return "the store cannot say whether the gate is frozen (\(error.message)), so nothing executes"
        }
        guard let freeze else { return nil }
        return "the gate is frozen by \(freeze.setBy) since \(freeze.setAt)" + (freeze.reason.map { " (\($0))" } ?? "")
    }

    public func approve(_ id: String, by actor: String, note: String?) throws(AirlockError) -> Proposal {
        guard let current = try store.proposal(id: id) else { throw ProposalRecords.noSuchProposal(id) }
        if current.kind == .command && executor.runners.command == nil {
            throw AirlockError("this gate does not run command proposals; nothing was approved", code: .noCommands)
        }
        if let reason = Self.frozenReason(store) {
            throw AirlockError("\(reason); nothing was approved", hint: "an approver thaws it: airlock thaw (POST /v1/thaw on a gate)", code: .frozen)
        }
        if try store.control(GateControl.session(current.sessionID)) != nil {
            throw AirlockError("session \(current.sessionID) is revoked; nothing was approved", code: .sessionRevoked)
        }
        if let mismatch = try store.rowMismatch(current) {
            tampered?(current, mismatch)
            throw AirlockError("proposal \(id) was changed in the store since it was proposed (\(mismatch)); nothing was approved", code: .tampered)
        }
        if current.state == .approved {
            // Approved, never claimed: the approver's process or replica died between its
            // approval and the claim (a store written before may hold such rows). Approving it
            // again runs it; the claim below still lets exactly one execution start.
            return try execute(id, by: actor)
        }
        let decided = try store.apply(.approve, to: id, actor: actor, note: note)
        approved?(decided)
        return try execute(id, by: actor)
    }

    /// The Executor's run; a claim another approval won first is refused in the approve's words.
    func execute(_ id: String, by actor: String) throws(AirlockError) -> Proposal {
        do {
            return try executor.execute(id, actor: actor)
        } catch where error.code == .conflict {
            guard let now = try store.proposal(id: id), now.state != .approved else { throw error }
            throw AirlockError("proposal \(id) cannot be approved: \(ProposalLifecycle.refusal(now.state, on: .approve))", code: .conflict)
        }
    }
}
