import AirlockCore
import AirlockPolicy
import Glibc

/// The embedded store driver (docs/gate.md): sessions, proposals and their transitions, and
/// the hash-chained audit log, in one SQLite database (WAL) in the state directory, shared by
/// the local `airlock run` sessions and `airlock approve`. Every change and its audit entry
/// commit in one transaction, before anyone is told.
public final class SQLiteProposalStore: ProposalStoreDriver, @unchecked Sendable {
    let db: SQLiteDatabase
    private var lock = pthread_mutex_t()
    public let stateDir: String

    public static func databasePath(stateDir: String) -> String { stateDir + "/airlock.db" }

    public init(stateDir: String) throws(AirlockError) {
        self.stateDir = stateDir
        let path = Self.databasePath(stateDir: stateDir)
        let existed = access(path, F_OK) == 0
        db = try SQLiteDatabase(path: path)
        if !existed { chmod(path, 0o600) }
        pthread_mutex_init(&lock, nil)
        try db.execute("PRAGMA journal_mode=WAL")
        // FULL: a decision is on disk before `airlock approve` says so.
        try db.execute("PRAGMA synchronous=FULL")
        try db.execute(Self.schema)
        // Stores made before execution leases: add the column (NULL: a local process's claim).
        let columns = try db.prepare("PRAGMA table_info(proposals)").rows().compactMap { $0.text("name") }
        if !columns.contains("lease_until") {
            try db.execute("ALTER TABLE proposals ADD COLUMN lease_until INTEGER")
        }
        // Stores made before rules: who launched a session (NULL: not recorded).
        let sessionColumns = try db.prepare("PRAGMA table_info(sessions)").rows().compactMap { $0.text("name") }
        if !sessionColumns.contains("launcher") {
            try db.execute("ALTER TABLE sessions ADD COLUMN launcher TEXT")
        }
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS sessions (
          id TEXT PRIMARY KEY, started_at TEXT NOT NULL, user TEXT NOT NULL, workspace TEXT NOT NULL,
          profiles TEXT NOT NULL, aws_upstream TEXT NOT NULL, aws_access_key_id TEXT NOT NULL, launcher TEXT);
        CREATE TABLE IF NOT EXISTS proposals (
          id TEXT PRIMARY KEY, session_id TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
          summary TEXT NOT NULL, decision TEXT NOT NULL, rule TEXT NOT NULL,
          created_at TEXT NOT NULL, updated_at TEXT NOT NULL, digest TEXT NOT NULL, payload BLOB NOT NULL,
          upstream TEXT NOT NULL, decided_by TEXT, decision_note TEXT, executor TEXT, result TEXT,
          lease_until INTEGER);
        CREATE INDEX IF NOT EXISTS proposals_state ON proposals(state);
        CREATE INDEX IF NOT EXISTS proposals_session ON proposals(session_id, state);
        CREATE TABLE IF NOT EXISTS identities (
          name TEXT NOT NULL, role TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
          revoked_at TEXT, PRIMARY KEY (name, role));
        CREATE TABLE IF NOT EXISTS controls (
          name TEXT PRIMARY KEY, set_by TEXT NOT NULL, set_at TEXT NOT NULL, reason TEXT);
        CREATE TABLE IF NOT EXISTS audit_checkpoints (
          seq INTEGER PRIMARY KEY, head_hash TEXT NOT NULL, at TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS audit (
          seq INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, proposal_id TEXT,
          actor TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS audit_proposal ON audit(proposal_id, event);
        CREATE TABLE IF NOT EXISTS previews (
          proposal_id TEXT NOT NULL, made_at TEXT NOT NULL, body TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS previews_proposal ON previews(proposal_id);
        CREATE TABLE IF NOT EXISTS web_sessions (
          hash TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, source TEXT NOT NULL, csrf TEXT NOT NULL,
          expires_ms INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS login_links (
          hash TEXT PRIMARY KEY, name TEXT NOT NULL, expires_ms INTEGER NOT NULL, used_ms INTEGER);
        CREATE TABLE IF NOT EXISTS identity_subjects (
          kind TEXT NOT NULL, subject TEXT NOT NULL, name TEXT NOT NULL, bound_at TEXT NOT NULL,
          PRIMARY KEY (kind, subject), UNIQUE (kind, name));
        """

    func locked<T>(_ body: () throws(AirlockError) -> T) throws(AirlockError) -> T {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return try body()
    }

    // MARK: Sessions

    public func recordSession(_ session: Session) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                try db.prepare("INSERT INTO sessions (id, started_at, user, workspace, profiles, aws_upstream, aws_access_key_id, launcher) VALUES (?,?,?,?,?,?,?,?)").run([
                    .text(session.id), .text(session.startedAt), .text(session.user), .text(session.workspace),
                    .text(session.profiles), .text(session.awsUpstream), .text(session.awsAccessKeyID), session.launcher.map { .text($0) } ?? .null,
                ])
                try appendAudit(event: "session", proposalID: nil, actor: session.user, detail: ProposalRecords.sessionDetail(session))
            }
        }
    }

    public func pendingCount(user: String) throws(AirlockError) -> Int {
        try locked { () throws(AirlockError) in
            try db.prepare("""
                SELECT COUNT(*) AS n FROM proposals p JOIN sessions s ON s.id = p.session_id WHERE s.user = ? AND p.state = 'pending'
                """).rows([.text(user)]).first?.integer("n").map { Int($0) } ?? 0
        }
    }

    public func sessionIDs(user: String) throws(AirlockError) -> [String] {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT id FROM sessions WHERE user = ? ORDER BY id").rows([.text(user)]).compactMap { $0.text("id") }
        }
    }

    public func session(id: String) throws(AirlockError) -> Session? {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM sessions WHERE id = ?").rows([.text(id)]).first.map { row in
                Session(id: row.text("id") ?? "", startedAt: row.text("started_at") ?? "", user: row.text("user") ?? "",
                        workspace: row.text("workspace") ?? "", profiles: row.text("profiles") ?? "",
                        awsUpstream: row.text("aws_upstream") ?? "", awsAccessKeyID: row.text("aws_access_key_id") ?? "",
                        launcher: row.text("launcher"))
            }
        }
    }

    // MARK: Proposals

    public func propose(_ draft: ProposalDraft, pendingLimit: Int) throws(AirlockError) -> Proposal {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                let pending = try db.prepare("SELECT COUNT(*) AS n FROM proposals WHERE session_id = ? AND state = 'pending'")
                    .rows([.text(draft.sessionID)]).first?.integer("n") ?? 0
                guard pending < Int64(pendingLimit) else { throw ProposalRecords.pendingLimitReached(Int(pending)) }
                guard try db.prepare("SELECT 1 FROM controls WHERE name = ?").rows([.text(GateControl.session(draft.sessionID))]).isEmpty else {
                    throw ProposalRecords.sessionRevoked(draft.sessionID)
                }
                let now = Clock.now()
                var id = RandomID.make(8)
                while try !db.prepare("SELECT 1 FROM proposals WHERE id = ?").rows([.text(id)]).isEmpty { id = RandomID.make(8) }
                let proposal = ProposalRecords.newProposal(draft, id: id, now: now)
                try db.prepare("""
                    INSERT INTO proposals (id, session_id, kind, state, summary, decision, rule, created_at, updated_at,
                      digest, payload, upstream) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
                    """).run([
                        .text(id), .text(proposal.sessionID), .text(proposal.kind.rawValue), .text("pending"),
                        .text(proposal.summary), .text(proposal.decision.rawValue), .text(proposal.rule), .text(now),
                        .text(now), .text(proposal.digest), .blob(proposal.payload), .text(proposal.upstream),
                    ])
                try appendAudit(event: "proposed", proposalID: id, actor: "session:\(draft.sessionID)", detail: ProposalRecords.proposedDetail(proposal, requirement: draft.requirement))
                if let preview = draft.preview {
                    try db.prepare("INSERT INTO previews VALUES (?,?,?)").run([.text(id), .text(now), .text(preview.serialized())])
                }
                return proposal
            }
        }
    }

    public func proposal(id: String) throws(AirlockError) -> Proposal? {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM proposals WHERE id = ?").rows([.text(id)]).first.map(Self.proposal)
        }
    }

    public func previewRecord(_ id: String) throws(AirlockError) -> JSON? {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT body FROM previews WHERE proposal_id = ? ORDER BY rowid DESC LIMIT 1").rows([.text(id)]).first
                .flatMap { $0.text("body") }.flatMap { try? JSON.parse($0) }
        }
    }

    public func setPreview(_ preview: JSON, of id: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            guard try !db.prepare("SELECT 1 FROM proposals WHERE id = ?").rows([.text(id)]).isEmpty else {
                throw ProposalRecords.noSuchProposal(id)
            }
            try db.prepare("INSERT INTO previews VALUES (?,?,?)").run([.text(id), .text(Clock.now()), .text(preview.serialized())])
        }
    }

    public func proposals(states: Set<ProposalState>?, session: String?) throws(AirlockError) -> [Proposal] {
        try locked { () throws(AirlockError) in
            // Filtered by the database (indexed on state and session), not after loading all.
            if let states, states.isEmpty { return [] }
            var conditions: [String] = []
            var values: [SQLiteStatement.Value] = []
            if let states {
                conditions.append("state IN (\(states.map { _ in "?" }.joined(separator: ",")))")
                values += states.map { .text($0.rawValue) }
            }
            if let session {
                conditions.append("session_id = ?")
                values.append(.text(session))
            }
            let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            return try db.prepare("SELECT * FROM proposals\(filter) ORDER BY created_at DESC, id").rows(values).map(Self.proposal)
        }
    }

    @discardableResult
    public func apply(_ event: ProposalEvent, to id: String, actor: String, note: String?,
                      result: ExecutionResult?, executor: String?, leaseUntil: Int64?) throws(AirlockError) -> Proposal {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                try applyInTransaction(event, to: id, actor: actor, note: note, result: result, executor: executor, leaseUntil: leaseUntil)
            }
        }
    }

    public func countedApprovals(_ id: String) throws(AirlockError) -> [String] {
        try locked { () throws(AirlockError) in try counted(id) }
    }

    func counted(_ id: String) throws(AirlockError) -> [String] {
        let rows = try db.prepare("SELECT event, actor FROM audit WHERE proposal_id = ? AND event IN (?, ?) ORDER BY seq")
            .rows([.text(id), .text(ProposalRecords.approvalCounted), .text(ProposalRecords.approvalsVoid)])
        return ProposalRecords.counted(rows.map { ($0.text("event") ?? "", $0.text("actor") ?? "") })
    }

    public func countApproval(_ id: String, actor: String, note: String?) throws(AirlockError) -> [String] {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                guard let state = try db.prepare("SELECT state FROM proposals WHERE id = ?").rows([.text(id)]).first?.text("state") else {
                    throw ProposalRecords.noSuchProposal(id)
                }
                guard state == ProposalState.pending.rawValue else { throw ProposalRecords.notPendingForCount(id, ProposalState(rawValue: state) ?? .pending) }
                let before = try counted(id)
                guard !before.contains(actor) else { throw ProposalRecords.alreadyCounted(id, actor) }
                try appendAudit(event: ProposalRecords.approvalCounted, proposalID: id, actor: actor, detail: ProposalRecords.countedDetail(note: note))
                return before + [actor]
            }
        }
    }

    public func voidApprovals(_ id: String, reason: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                guard try !counted(id).isEmpty else { return }
                try appendAudit(event: ProposalRecords.approvalsVoid, proposalID: id, actor: "airlock", detail: ProposalRecords.voidDetail(reason: reason))
            }
        }
    }

    public func loseLapsedExecution(_ id: String, before now: Int64, note: String) throws(AirlockError) -> Bool {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                let lease = try db.prepare("SELECT lease_until FROM proposals WHERE id = ? AND state = 'executing'").rows([.text(id)]).first?.integer("lease_until")
                guard let lease, lease < now else { return false }
                _ = try applyInTransaction(.lose, to: id, actor: "airlock", note: note, result: ExecutionResult(output: [], error: note),
                                       executor: nil, leaseUntil: nil)
                return true
            }
        }
    }

    /// One transition and its audit entry; call inside a transaction.
    func applyInTransaction(_ event: ProposalEvent, to id: String, actor: String, note: String?,
                            result: ExecutionResult?, executor: String?, leaseUntil: Int64?) throws(AirlockError) -> Proposal {
        guard let current = try db.prepare("SELECT * FROM proposals WHERE id = ?").rows([.text(id)]).first.map(Self.proposal) else {
            throw ProposalRecords.noSuchProposal(id)
        }
        let step = try ProposalRecords.transition(current, event, actor: actor, note: note, result: result,
                                                  executor: executor, leaseUntil: leaseUntil, now: Clock.now())
        let updated = step.updated
        var sets = ["state = ?", "updated_at = ?"]
        var values: [SQLiteStatement.Value] = [.text(updated.state.rawValue), .text(updated.updatedAt)]
        if step.decides {
            sets += ["decided_by = ?", "decision_note = ?"]
            values += [.text(actor), note.map { .text($0) } ?? .null]
        }
        if let executor {
            sets.append("executor = ?")
            values.append(.text(executor))
        }
        if let leaseUntil {
            sets.append("lease_until = ?")
            values.append(.integer(leaseUntil))
        }
        if let result {
            sets.append("result = ?")
            values.append(.text(result.json.serialized()))
        }
        try db.prepare("UPDATE proposals SET \(sets.joined(separator: ", ")) WHERE id = ? AND state = ?")
            .run(values + [.text(id), .text(current.state.rawValue)])
        guard db.changes == 1 else { throw AirlockError("proposal \(id) changed underneath; try again", code: ProposalRecords.conflictCode) }
        try appendAudit(event: updated.state.rawValue, proposalID: id, actor: actor, detail: step.detail)
        return updated
    }

    public func executions() throws(AirlockError) -> [Execution] {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT id, executor, lease_until FROM proposals WHERE state = 'executing'").rows().compactMap { row in
                row.text("id").map { Execution(id: $0, executor: row.text("executor"), leaseUntil: row.integer("lease_until")) }
            }
        }
    }

    public func renewLease(_ id: String, owner: String, until: Int64) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.prepare("UPDATE proposals SET lease_until = ? WHERE id = ? AND state = 'executing' AND executor = ? AND lease_until IS NOT NULL")
                .run([.integer(until), .text(id), .text(owner)])
            guard db.changes == 1 else { throw ProposalRecords.leaseLost(id, owner: owner) }
        }
    }

    public func setControl(_ name: String, on: Bool, by actor: String, reason: String?) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                let present = try !db.prepare("SELECT 1 FROM controls WHERE name = ?").rows([.text(name)]).isEmpty
                guard present != on else { return }
                if on {
                    try db.prepare("INSERT INTO controls VALUES (?,?,?,?)").run([.text(name), .text(actor), .text(Clock.now()), reason.map { .text($0) } ?? .null])
                } else {
                    try db.prepare("DELETE FROM controls WHERE name = ?").run([.text(name)])
                }
                try appendAudit(event: on ? "control-set" : "control-cleared", proposalID: nil, actor: actor,
                                detail: ProposalRecords.controlDetail(name, on: on, reason: reason))
            }
        }
    }

    public func auditHead() throws(AirlockError) -> (seq: Int, hash: String)? {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").rows().first.map { (Int($0.integer("seq") ?? 0), $0.text("hash") ?? "") }
        }
    }

    public func addCheckpoint(_ checkpoint: AuditCheckpoint) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.prepare("INSERT OR IGNORE INTO audit_checkpoints VALUES (?,?,?,?,?)").run([
                .integer(Int64(checkpoint.seq)), .text(checkpoint.headHash), .text(checkpoint.at), .text(checkpoint.keyID), .text(checkpoint.signature),
            ])
        }
    }

    public func checkpoints() throws(AirlockError) -> [AuditCheckpoint] {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM audit_checkpoints ORDER BY seq").rows().map { row in
                AuditCheckpoint(seq: Int(row.integer("seq") ?? 0), headHash: row.text("head_hash") ?? "", at: row.text("at") ?? "",
                                keyID: row.text("key_id") ?? "", signature: row.text("signature") ?? "")
            }
        }
    }

    public func controls() throws(AirlockError) -> [GateControl] {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM controls ORDER BY name").rows().map { row in
                GateControl(name: row.text("name") ?? "", setBy: row.text("set_by") ?? "", setAt: row.text("set_at") ?? "", reason: row.text("reason"))
            }
        }
    }

    public func proposalCounts() throws(AirlockError) -> [ProposalCount] {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT state, kind, COUNT(*) AS n FROM proposals GROUP BY state, kind ORDER BY state, kind").rows().compactMap { row in
                guard let state = row.text("state").flatMap(ProposalState.init(rawValue:)),
                      let kind = row.text("kind").flatMap(Proposal.Kind.init(rawValue:)) else { return nil }
                return ProposalCount(state: state, kind: kind, count: Int(row.integer("n") ?? 0))
            }
        }
    }

    public func storeRefusal(sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                try appendAudit(event: "refused", proposalID: nil, actor: "session:\(sessionID)",
                                detail: .object([("summary", .string(summary)), ("rule", .string(rule))]))
            }
        }
    }

    public func storeExecutionCall(proposalID: String, sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                try appendAudit(event: "execution-call", proposalID: proposalID, actor: "session:\(sessionID)",
                                detail: .object([("state", .string(ProposalState.executing.rawValue)), ("summary", .string(summary)),
                                                 ("rule", .string(rule))]))
            }
        }
    }

    static func proposal(_ row: SQLiteStatement.Row) -> Proposal {
        Proposal(
            id: row.text("id") ?? "", sessionID: row.text("session_id") ?? "",
            kind: Proposal.Kind(rawValue: row.text("kind") ?? "") ?? .api,
            state: ProposalState(rawValue: row.text("state") ?? "") ?? .unknown,
            summary: row.text("summary") ?? "", decision: Decision(rawValue: row.text("decision") ?? "") ?? .mutation,
            rule: row.text("rule") ?? "", createdAt: row.text("created_at") ?? "", updatedAt: row.text("updated_at") ?? "",
            digest: row.text("digest") ?? "", payload: row.blob("payload") ?? [], upstream: row.text("upstream") ?? "",
            decidedBy: row.text("decided_by"), decisionNote: row.text("decision_note"),
            result: row.text("result").flatMap { try? JSON.parse($0) }.flatMap(ExecutionResult.init(json:)))
    }

    // MARK: Audit

    /// Appends one entry to the chain; call inside a transaction.
    func appendAudit(event: String, proposalID: String?, actor: String, detail: JSON) throws(AirlockError) {
        let last = try db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").rows().first
        let seq = (last?.integer("seq") ?? 0) + 1
        let previous = last?.text("hash") ?? AuditChain.genesis
        let entry = AuditEntry(seq: Int(seq), at: Clock.now(), event: event, proposalID: proposalID, actor: actor,
                               detail: detail.serialized(), previousHash: previous, hash: "")
        let hashed = AuditChain.seal(entry)
        try db.prepare("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)").run([
            .integer(Int64(hashed.seq)), .text(hashed.at), .text(hashed.event), hashed.proposalID.map { .text($0) } ?? .null,
            .text(hashed.actor), .text(hashed.detail), .text(hashed.previousHash), .text(hashed.hash),
        ])
    }

    public func addIdentity(_ identity: GateIdentity, by actor: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                guard try db.prepare("SELECT 1 FROM identities WHERE name = ? AND role = ?")
                    .rows([.text(identity.name), .text(identity.role.rawValue)]).isEmpty else { throw ProposalRecords.identityTaken(identity) }
                try db.prepare("INSERT INTO identities VALUES (?,?,?,?,?)").run([
                    .text(identity.name), .text(identity.role.rawValue), .text(identity.tokenHash), .text(identity.createdAt),
                    identity.revokedAt.map { .text($0) } ?? .null,
                ])
                try appendAudit(event: "identity-added", proposalID: nil, actor: actor, detail: ProposalRecords.identityDetail(identity))
            }
        }
    }

    public func identity(tokenHash: String) throws(AirlockError) -> GateIdentity? {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM identities WHERE token_hash = ? AND revoked_at IS NULL").rows([.text(tokenHash)]).first.flatMap(Self.identity)
        }
    }

    public func identities() throws(AirlockError) -> [GateIdentity] {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM identities ORDER BY created_at, name").rows().compactMap(Self.identity)
        }
    }

    @discardableResult
    public func revokeIdentity(name: String, role: GateAccess.Role, by actor: String) throws(AirlockError) -> GateIdentity {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                guard var identity = try db.prepare("SELECT * FROM identities WHERE name = ? AND role = ?")
                    .rows([.text(name), .text(role.rawValue)]).first.flatMap(Self.identity) else {
                    throw ProposalRecords.noSuchIdentity(name, role)
                }
                guard identity.revokedAt == nil else { return identity }
                identity.revokedAt = Clock.now()
                try db.prepare("UPDATE identities SET revoked_at = ? WHERE name = ? AND role = ?")
                    .run([.text(identity.revokedAt ?? ""), .text(name), .text(role.rawValue)])
                try appendAudit(event: "identity-revoked", proposalID: nil, actor: actor, detail: ProposalRecords.identityDetail(identity))
                return identity
            }
        }
    }

    static func identity(_ row: SQLiteStatement.Row) -> GateIdentity? {
        guard let name = row.text("name"), let role = row.text("role").flatMap(GateAccess.Role.init(rawValue:)),
              let hash = row.text("token_hash"), let created = row.text("created_at") else { return nil }
        return GateIdentity(name: name, role: role, tokenHash: hash, createdAt: created, revokedAt: row.text("revoked_at"))
    }

    public func auditEntries() throws(AirlockError) -> [AuditEntry] { try auditEntries(fromSeq: 0) }

    public func auditEntries(fromSeq seq: Int) throws(AirlockError) -> [AuditEntry] {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM audit WHERE seq >= ? ORDER BY seq").rows([.integer(Int64(seq))]).map { row in
                AuditEntry(seq: Int(row.integer("seq") ?? 0), at: row.text("at") ?? "", event: row.text("event") ?? "",
                           proposalID: row.text("proposal_id"), actor: row.text("actor") ?? "", detail: row.text("detail") ?? "",
                           previousHash: row.text("prev_hash") ?? "", hash: row.text("hash") ?? "")
            }
        }
    }

    public func allProposalRows() throws(AirlockError) -> [Proposal] {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM proposals").rows().map(Self.proposal)
        }
    }

    public func proposedEntry(_ id: String) throws(AirlockError) -> AuditEntry? {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM audit WHERE proposal_id = ? AND event = 'proposed' ORDER BY seq LIMIT 1").rows([.text(id)]).map { row in
                AuditEntry(seq: Int(row.integer("seq") ?? 0), at: row.text("at") ?? "", event: row.text("event") ?? "",
                           proposalID: row.text("proposal_id"), actor: row.text("actor") ?? "", detail: row.text("detail") ?? "",
                           previousHash: row.text("prev_hash") ?? "", hash: row.text("hash") ?? "")
            }.first
        }
    }
}
