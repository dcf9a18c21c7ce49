import AirlockCore
import AirlockPolicy

/// The gate's memory (DESIGN §5, docs/gate.md): sessions, proposals and their transitions,
/// and the hash-chained audit log. One protocol, one driver per place it lives:
/// `InMemoryProposalStore` (tests), `SQLiteProposalStore` (the embedded default, in the
/// state directory). Every driver keeps the same promises, checked by one test suite run on
/// each (`ProposalStoreContractTests`):
/// - a change and its audit entry are durable together, before the call returns;
/// - `apply` re-reads the state inside its transaction, so of two racing executors exactly
///   one gets `approved → executing` (the claim);
/// - a proposal's payload and digest never change after `propose`.
public protocol ProposalStore: AnyObject, Sendable {
    func recordSession(_ session: Session) throws(AirlockError)
    func session(id: String) throws(AirlockError) -> Session?

    /// Stores a new pending proposal and its audit entry; returns it once durable. Refused
    /// when its session already has `pendingLimit` pending (checked in the same transaction).
    func propose(_ draft: ProposalDraft, pendingLimit: Int) throws(AirlockError) -> Proposal
    func proposal(id: String) throws(AirlockError) -> Proposal?
    /// Newest first. `states` nil means all.
    func proposals(states: Set<ProposalState>?, session: String?) throws(AirlockError) -> [Proposal]

    /// Applies a lifecycle event atomically (the state is re-read under the write lock).
    /// Returns the updated proposal, or throws with why the event cannot apply.
    @discardableResult
    func apply(_ event: ProposalEvent, to id: String, actor: String, note: String?,
               result: ExecutionResult?, executor: String?) throws(AirlockError) -> Proposal

    /// The proposals being executed, with who claimed each.
    func executions() throws(AirlockError) -> [(id: String, executor: String?)]

    /// A request refused by policy (a hard deny): no proposal, but audited.
    func recordRefusal(sessionID: String, summary: String, rule: String) throws(AirlockError)
    /// An API call made by an approved command's execution (terraform apply's calls): let
    /// through because of that proposal, and audited under it.
    func recordExecutionCall(proposalID: String, sessionID: String, summary: String, rule: String) throws(AirlockError)

    func auditEntries() throws(AirlockError) -> [AuditEntry]
    /// All proposals as stored, for checking them against the log.
    func allProposalRows() throws(AirlockError) -> [Proposal]
}

/// Proposals one session may have pending at once (docs/gate.md): an agent in a loop must
/// not bury the human's queue or fill the disk.
public enum ProposalLimits {
    public static let pendingPerSession = 200
}

extension ProposalStore {
    public func propose(_ draft: ProposalDraft) throws(AirlockError) -> Proposal {
        try propose(draft, pendingLimit: ProposalLimits.pendingPerSession)
    }

    public func proposals(states: Set<ProposalState>? = nil, session: String? = nil) throws(AirlockError) -> [Proposal] {
        try proposals(states: states, session: session)
    }

    @discardableResult
    public func apply(_ event: ProposalEvent, to id: String, actor: String, note: String? = nil,
                      result: ExecutionResult? = nil, executor: String? = nil) throws(AirlockError) -> Proposal {
        try apply(event, to: id, actor: actor, note: note, result: result, executor: executor)
    }

    /// Executions whose executor process is gone are marked `unknown` (never re-run).
    /// Returns the ids marked.
    @discardableResult
    public func recoverInterruptedExecutions() throws(AirlockError) -> [String] {
        var marked: [String] = []
        for (id, executor) in try executions() {
            if let executor, Actor.isAlive(executor) { continue }
            do {
                try apply(.lose, to: id, actor: "airlock", note: "the executing process (\(executor ?? "?")) ended before recording a result")
                marked.append(id)
            } catch {
                continue  // someone else recorded it meanwhile
            }
        }
        return marked
    }

    /// Checks the chain and that every proposal row agrees with what the log says of it.
    public func verifyAudit() throws(AirlockError) -> AuditChain.Report {
        let entries = try auditEntries()
        return AuditChain.verify(entries: entries, proposals: try allProposalRows())
    }
}
