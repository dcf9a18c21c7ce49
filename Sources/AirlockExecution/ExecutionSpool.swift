import AirlockCore
import AirlockPolicy
import AirlockStore
import Glibc

/// The store of an execution sandbox a team gate started (docs/gate.md, "Command proposals
/// on the gate"): the run cannot reach the gate's database, so what it would record (each
/// call it sends for the approved proposal, each change it refused) is appended to
/// `calls.jsonl` in the artifact, which only the gate's user can write, and the gate reads
/// it into its own store when the run ends (`ExecutionSpool.drain`). Nothing else is asked
/// of an execution's store; everything else throws.
public final class ExecutionSpoolStore: ProposalStore, @unchecked Sendable {
    let path: String
    private var mutex = pthread_mutex_t()

    public init(path: String) {
        self.path = path
        pthread_mutex_init(&mutex, nil)
    }

    func append(_ line: JSON) throws(AirlockError) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AirlockError("cannot record the execution's call in \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array((line.serialized() + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        // Recorded before the call is sent, or it is not sent.
        guard written == bytes.count, fsync(fd) == 0 else { throw AirlockError("cannot record the execution's call in \(path)") }
    }

    public func recordExecutionCall(proposalID: String, sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try append(.object([("kind", .string("call")), ("proposal", .string(proposalID)), ("summary", .string(summary)), ("rule", .string(rule))]))
    }

    public func recordRefusal(sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try append(.object([("kind", .string("refusal")), ("summary", .string(summary)), ("rule", .string(rule))]))
    }

    /// The execution sandbox's own session is not the agent's: nothing to record.
    public func recordSession(_ session: Session) throws(AirlockError) {}

    static func notHere() -> AirlockError { AirlockError("an execution sandbox on a team gate records its calls only") }

    public func session(id: String) throws(AirlockError) -> Session? { nil }
    public func sessionIDs(user: String) throws(AirlockError) -> [String] { [] }
    public func propose(_ draft: ProposalDraft, pendingLimit: Int) throws(AirlockError) -> Proposal { throw Self.notHere() }
    public func proposal(id: String) throws(AirlockError) -> Proposal? { nil }
    public func previewRecord(_ id: String) throws(AirlockError) -> JSON? { nil }
    public func setPreview(_ preview: JSON, of id: String) throws(AirlockError) { throw Self.notHere() }
    public func proposals(states: Set<ProposalState>?, session: String?) throws(AirlockError) -> [Proposal] { [] }
    public func apply(_ event: ProposalEvent, to id: String, actor: String, note: String?, result: ExecutionResult?,
                      executor: String?, leaseUntil: Int64?) throws(AirlockError) -> Proposal { throw Self.notHere() }
    public func renewLease(_ id: String, owner: String, until: Int64) throws(AirlockError) { throw Self.notHere() }
    public func loseLapsedExecution(_ id: String, before now: Int64, note: String) throws(AirlockError) -> Bool { false }
    public func executions() throws(AirlockError) -> [Execution] { [] }
    public func addIdentity(_ identity: GateIdentity, by actor: String) throws(AirlockError) { throw Self.notHere() }
    public func identity(tokenHash: String) throws(AirlockError) -> GateIdentity? { nil }
    public func identities() throws(AirlockError) -> [GateIdentity] { [] }
    public func revokeIdentity(name: String, role: GateAccess.Role, by actor: String) throws(AirlockError) -> GateIdentity { throw Self.notHere() }
    public func setControl(_ name: String, on: Bool, by actor: String, reason: String?) throws(AirlockError) { throw Self.notHere() }
    public func controls() throws(AirlockError) -> [GateControl] { [] }
    public func proposalCounts() throws(AirlockError) -> [ProposalCount] { [] }
    public func auditEntries() throws(AirlockError) -> [AuditEntry] { [] }
    public func auditHead() throws(AirlockError) -> (seq: Int, hash: String)? { nil }
    public func addCheckpoint(_ checkpoint: AuditCheckpoint) throws(AirlockError) { throw Self.notHere() }
    public func checkpoints() throws(AirlockError) -> [AuditCheckpoint] { [] }
    public func allProposalRows() throws(AirlockError) -> [Proposal] { [] }
}

/// The gate's side of the spool: after a run, its lines go into the gate's store (under the
/// agent's session), and the file is removed.
public enum ExecutionSpool {
    /// Records every line; returns how many were read.
    @discardableResult
    public static func drain(_ path: String, into store: any ProposalStore, sessionID: String) -> Int {
        guard let text = try? readTextFile(path, limit: 64 << 20) else { return 0 }
        unlink(path)
        var count = 0
        for line in text.split(separator: "\n") {
            guard let json = try? JSON.parseStrict(bytes: Array(line.utf8)), let summary = json["summary"]?.string,
                  let rule = json["rule"]?.string else { continue }
            count += 1
            if json["kind"]?.string == "call", let proposal = json["proposal"]?.string {
                try? store.recordExecutionCall(proposalID: proposal, sessionID: sessionID, summary: summary, rule: rule)
            } else {
                try? store.recordRefusal(sessionID: sessionID, summary: summary, rule: rule)
            }
        }
        return count
    }
}
