import AirlockCore
import AirlockPolicy
import Glibc

/// The store driver for tests and throwaway gates: everything in this process's memory, gone
/// when it exits. Same promises as the others (one mutex stands for the transaction).
public final class InMemoryProposalStore: ProposalStoreDriver, @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var sessions: [String: Session] = [:]
    private var rows: [Proposal] = []
    private var executors: [String: String] = [:]
    private var leases: [String: Int64] = [:]
    private var audit: [AuditEntry] = []
    private var enrolled: [GateIdentity] = []
    private var settings: [GateControl] = []
    private var signed: [AuditCheckpoint] = []
    private var previews: [String: JSON] = [:]

    public init() { pthread_mutex_init(&mutex, nil) }

    func locked<T>(_ body: () throws(AirlockError) -> T) throws(AirlockError) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    public func recordSession(_ session: Session) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            guard sessions[session.id] == nil else { throw AirlockError("session \(session.id) is already recorded") }
            sessions[session.id] = session
            append(event: "session", proposalID: nil, actor: session.user, detail: ProposalRecords.sessionDetail(session))
        }
    }

    public func sessionIDs(user: String) throws(AirlockError) -> [String] {
        try locked { () throws(AirlockError) in sessions.values.filter { $0.user == user }.map(\.id).sorted() }
    }

    public func session(id: String) throws(AirlockError) -> Session? {
        try locked { () throws(AirlockError) in sessions[id] }
    }

    public func propose(_ draft: ProposalDraft, pendingLimit: Int) throws(AirlockError) -> Proposal {
        try locked { () throws(AirlockError) in
            let pending = rows.filter { $0.sessionID == draft.sessionID && $0.state == .pending }.count
            guard pending < pendingLimit else { throw ProposalRecords.pendingLimitReached(pending) }
            guard !settings.contains(where: { $0.name == GateControl.session(draft.sessionID) }) else {
                throw ProposalRecords.sessionRevoked(draft.sessionID)
            }
            var id = RandomID.make(8)
            while rows.contains(where: { $0.id == id }) { id = RandomID.make(8) }
            let proposal = ProposalRecords.newProposal(draft, id: id, now: Clock.now())
            rows.append(proposal)
            append(event: "proposed", proposalID: id, actor: "session:\(draft.sessionID)", detail: ProposalRecords.proposedDetail(proposal, requirement: draft.requirement))
            if let preview = draft.preview { previews[id] = preview }
            return proposal
        }
    }

    public func proposal(id: String) throws(AirlockError) -> Proposal? {
        try locked { () throws(AirlockError) in rows.first { $0.id == id } }
    }

    public func previewRecord(_ id: String) throws(AirlockError) -> JSON? {
        try locked { () throws(AirlockError) in previews[id] }
    }

    public func setPreview(_ preview: JSON, of id: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            guard rows.contains(where: { $0.id == id }) else { throw ProposalRecords.noSuchProposal(id) }
            previews[id] = preview
        }
    }

    public func proposals(states: Set<ProposalState>?, session: String?) throws(AirlockError) -> [Proposal] {
        try locked { () throws(AirlockError) in
            rows.filter { (states?.contains($0.state) ?? true) && (session == nil || $0.sessionID == session) }
                .sorted { ($0.createdAt, $1.id) > ($1.createdAt, $0.id) }
        }
    }

    @discardableResult
    public func apply(_ event: ProposalEvent, to id: String, actor: String, note: String?,
                      result: ExecutionResult?, executor: String?, leaseUntil: Int64?) throws(AirlockError) -> Proposal {
        try locked { () throws(AirlockError) in
            guard let index = rows.firstIndex(where: { $0.id == id }) else { throw ProposalRecords.noSuchProposal(id) }
            let step = try ProposalRecords.transition(rows[index], event, actor: actor, note: note, result: result,
                                                      executor: executor, leaseUntil: leaseUntil, now: Clock.now())
            rows[index] = step.updated
            if let executor { executors[id] = executor }
            if let leaseUntil { leases[id] = leaseUntil }
            append(event: step.updated.state.rawValue, proposalID: id, actor: actor, detail: step.detail)
            return step.updated
        }
    }

    public func countedApprovals(_ id: String) throws(AirlockError) -> [String] {
        try locked { () throws(AirlockError) in counted(id) }
    }

    private func counted(_ id: String) -> [String] {
        ProposalRecords.counted(audit.filter { $0.proposalID == id }.map { ($0.event, $0.actor) })
    }

    public func countApproval(_ id: String, actor: String, note: String?) throws(AirlockError) -> [String] {
        try locked { () throws(AirlockError) in
            guard let row = rows.first(where: { $0.id == id }) else { throw ProposalRecords.noSuchProposal(id) }
            guard row.state == .pending else { throw ProposalRecords.notPendingForCount(id, row.state) }
            let before = counted(id)
            guard !before.contains(actor) else { throw ProposalRecords.alreadyCounted(id, actor) }
            append(event: ProposalRecords.approvalCounted, proposalID: id, actor: actor, detail: ProposalRecords.countedDetail(note: note))
            return before + [actor]
        }
    }

    public func voidApprovals(_ id: String, reason: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            guard !counted(id).isEmpty else { return }
            append(event: ProposalRecords.approvalsVoid, proposalID: id, actor: "airlock", detail: ProposalRecords.voidDetail(reason: reason))
        }
    }

    public func loseLapsedExecution(_ id: String, before now: Int64, note: String) throws(AirlockError) -> Bool {
        try locked { () throws(AirlockError) in
            guard let index = rows.firstIndex(where: { $0.id == id }), rows[index].state == .executing,
                  let lease = leases[id], lease < now else { return false }
            let step = try ProposalRecords.transition(rows[index], .lose, actor: "airlock", note: note,
                                                      result: ExecutionResult(output: [], error: note), executor: nil, now: Clock.now())
            rows[index] = step.updated
            append(event: step.updated.state.rawValue, proposalID: id, actor: "airlock", detail: step.detail)
            return true
        }
    }

    public func executions() throws(AirlockError) -> [Execution] {
        try locked { () throws(AirlockError) in
            rows.filter { $0.state == .executing }.map { Execution(id: $0.id, executor: executors[$0.id], leaseUntil: leases[$0.id]) }
        }
    }

    public func renewLease(_ id: String, owner: String, until: Int64) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            guard rows.first(where: { $0.id == id })?.state == .executing, executors[id] == owner, leases[id] != nil else {
                throw ProposalRecords.leaseLost(id, owner: owner)
            }
            leases[id] = until
        }
    }

    public func setControl(_ name: String, on: Bool, by actor: String, reason: String?) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            let present = settings.contains { $0.name == name }
            guard present != on else { return }
            if on { settings.append(GateControl(name: name, setBy: actor, setAt: Clock.now(), reason: reason)) } else { settings.removeAll { $0.name == name } }
            append(event: on ? "control-set" : "control-cleared", proposalID: nil, actor: actor,
                   detail: ProposalRecords.controlDetail(name, on: on, reason: reason))
        }
    }

    public func auditHead() throws(AirlockError) -> (seq: Int, hash: String)? {
        try locked { () throws(AirlockError) in audit.last.map { ($0.seq, $0.hash) } }
    }

    public func addCheckpoint(_ checkpoint: AuditCheckpoint) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            if !signed.contains(where: { $0.seq == checkpoint.seq }) { signed.append(checkpoint) }
        }
    }

    public func checkpoints() throws(AirlockError) -> [AuditCheckpoint] {
        try locked { () throws(AirlockError) in signed.sorted { $0.seq < $1.seq } }
    }

    public func controls() throws(AirlockError) -> [GateControl] {
        try locked { () throws(AirlockError) in settings }
    }

    public func proposalCounts() throws(AirlockError) -> [ProposalCount] {
        try locked { () throws(AirlockError) in
            var counts: [String: ProposalCount] = [:]
            for row in rows { counts["\(row.state.rawValue) \(row.kind.rawValue)", default: ProposalCount(state: row.state, kind: row.kind, count: 0)].count += 1 }
            return counts.keys.sorted().compactMap { counts[$0] }
        }
    }

    public func storeRefusal(sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            append(event: "refused", proposalID: nil, actor: "session:\(sessionID)",
                   detail: .object([("summary", .string(summary)), ("rule", .string(rule))]))
        }
    }

    public func storeExecutionCall(proposalID: String, sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            append(event: "execution-call", proposalID: proposalID, actor: "session:\(sessionID)",
                   detail: .object([("state", .string(ProposalState.executing.rawValue)), ("summary", .string(summary)),
                                    ("rule", .string(rule))]))
        }
    }

    public func addIdentity(_ identity: GateIdentity, by actor: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            guard !enrolled.contains(where: { $0.name == identity.name && $0.role == identity.role }) else {
                throw ProposalRecords.identityTaken(identity)
            }
            enrolled.append(identity)
            append(event: "identity-added", proposalID: nil, actor: actor, detail: ProposalRecords.identityDetail(identity))
        }
    }

    public func identity(tokenHash: String) throws(AirlockError) -> GateIdentity? {
        try locked { () throws(AirlockError) in enrolled.first { $0.tokenHash == tokenHash && $0.revokedAt == nil } }
    }

    public func identities() throws(AirlockError) -> [GateIdentity] {
        try locked { () throws(AirlockError) in enrolled }
    }

    @discardableResult
    public func revokeIdentity(name: String, role: GateAccess.Role, by actor: String) throws(AirlockError) -> GateIdentity {
        try locked { () throws(AirlockError) in
            guard let index = enrolled.firstIndex(where: { $0.name == name && $0.role == role }) else {
                throw ProposalRecords.noSuchIdentity(name, role)
            }
            if enrolled[index].revokedAt == nil {
                enrolled[index].revokedAt = Clock.now()
                append(event: "identity-revoked", proposalID: nil, actor: actor, detail: ProposalRecords.identityDetail(enrolled[index]))
            }
            return enrolled[index]
        }
    }

    public func auditEntries() throws(AirlockError) -> [AuditEntry] {
        try locked { () throws(AirlockError) in audit }
    }

    public func allProposalRows() throws(AirlockError) -> [Proposal] {
        try locked { () throws(AirlockError) in rows }
    }

    /// Under the mutex.
    private func append(event: String, proposalID: String?, actor: String, detail: JSON) {
        let entry = AuditEntry(seq: audit.count + 1, at: Clock.now(), event: event, proposalID: proposalID, actor: actor,
                               detail: detail.serialized(), previousHash: audit.last?.hash ?? AuditChain.genesis, hash: "")
        audit.append(AuditChain.seal(entry))
    }
}
