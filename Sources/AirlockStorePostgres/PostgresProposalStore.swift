import AirlockCore
import AirlockPolicy
import AirlockStore
import Glibc
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// The team driver (docs/gate.md): the store in PostgreSQL, shared by every gate replica.
/// Its calls block the calling thread (never an event loop) like the other drivers', so the
/// gate's domain code is the same on all three. Each call holds one connection of a small
/// pool, opened as needed up to `maxConnections`: reads run side by side (measured: with one
/// connection every read waited behind every write, p99 0.6 s under 100 sessions;
/// BENCHMARKS.md).
///
/// Every write runs in one transaction that first takes a transaction-scoped advisory lock:
/// the audit chain has one head, so appends (and with them every transition, the execution
/// claim included) are serialized across replicas; the lock is released at COMMIT or
/// ROLLBACK, also when a replica dies mid-transaction (its connection closes).
public final class PostgresProposalStore: ProposalStoreDriver, @unchecked Sendable {
    let configuration: PostgresStoreConfiguration
    let logger: Logger
    private var mutex = pthread_mutex_t()
    private var available = pthread_cond_t()
    private var connections: [PostgresConnection] = []
    private var idle: [Int] = []
    /// Connections being opened (outside the mutex) and not yet in `connections`.
    private var opening = 0
    /// The connection the calling thread holds (its index + 1), while inside `locked`.
    private var current = pthread_key_t()
    public let schema: String
    public let maxConnections: Int

    /// Every replica's transitions, from LISTEN on `channel` (NOTIFY is sent inside each
    /// transition's transaction, so it is delivered at COMMIT).
    public let changes: ProposalChanges? = ProposalChanges()
    var channel: String { "airlock_changes_" + schema }
    private let listening = Mutex(false)

    /// The advisory lock's key: any constant all replicas agree on ("airlock" in ASCII).
    static let chainLock: Int64 = 0x6169726c6f636b

    /// Connects, selects `schema` (created if missing) and runs the migrations it lacks.
    public init(_ configuration: PostgresStoreConfiguration, schema: String = "airlock", maxConnections: Int = 8) throws(AirlockError) {
        guard PostgresStoreConfiguration.isIdentifier(schema) else {
            throw AirlockError("'\(schema)' is not a PostgreSQL schema name Airlock accepts (lowercase letters, digits, _)")
        }
        self.schema = schema
        self.configuration = configuration
        self.maxConnections = max(1, maxConnections)
        var logger = Logger(label: "airlock.store.postgres")
        logger.logLevel = .warning
        self.logger = logger
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&available, nil)
        pthread_key_create(&current, nil)
        connections.append(try Self.connect(configuration, id: 1, logger: logger))
        idle.append(0)
        try migrate()
    }

    /// Starts listening for other replicas' changes on a connection of its own, reconnecting
    /// after a second when it drops. Once per store; the gate calls it (tests need not).
    public func startListening() {
        guard listening.withLock({ started in defer { started = true }; return !started }) else { return }
        let configuration = self.configuration, logger = self.logger, channel = self.channel, changes = self.changes
        Task.detached {
            while true {
                do {
                    let connection = try await PostgresConnection.connect(
                        on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration.connection, id: 1000, logger: logger)
                    try await connection.listen(on: channel) { notifications in
                        for try await notification in notifications { changes?.bump(notification.payload) }
                    }
                    try? await connection.close()
                } catch {
                    logger.warning("LISTEN \(channel) stopped: \(error); waits poll the store until it is back")
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    static func connect(_ configuration: PostgresStoreConfiguration, id: Int, logger: Logger) throws(AirlockError) -> PostgresConnection {
        try configuration.checkTLS()
        do {
            return try PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration.connection,
                id: id, logger: logger).wait()
        } catch {
            throw AirlockError("cannot connect to PostgreSQL at \(configuration.display): \(String(reflecting: error))",
                               hint: "check the gate's store URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE) and that the server accepts this user")
        }
    }

    deinit {
        for connection in connections { try? connection.close().wait() }
        pthread_key_delete(current)
    }

    // MARK: Queries

    @discardableResult
    func run(_ sql: String, _ values: [SQLValue] = []) throws(AirlockError) -> PostgresQueryResult {
        var binds = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .text(let text): binds.append(text)
            case .bytes(let bytes): binds.append(ByteBuffer(bytes: bytes))
            case .integer(let number): binds.append(number)
            case .null: binds.appendNull()
            }
        }
        let connection = heldConnection()
        do {
            return try connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).wait()
        } catch {
            throw AirlockError("PostgreSQL: \(String(reflecting: error))")
        }
    }

    enum SQLValue {
        case text(String), bytes([UInt8]), integer(Int64), null
    }

    /// Runs `body` holding one connection of the pool (the thread's own, if it holds one).
    func locked<T>(_ body: () throws(AirlockError) -> T) throws(AirlockError) -> T {
        if pthread_getspecific(current) != nil { return try body() }
        let index = try acquire()
        pthread_setspecific(current, UnsafeRawPointer(bitPattern: index + 1))
        defer {
            pthread_setspecific(current, nil)
            pthread_mutex_lock(&mutex)
            idle.append(index)
            pthread_cond_signal(&available)
            pthread_mutex_unlock(&mutex)
        }
        return try body()
    }

    /// An idle connection (a closed one is replaced: the server restarted, a failover, an
    /// idle timeout), a new one while below the cap, or the next one returned. Connects
    /// happen outside the mutex, so others can return connections meanwhile.
    private func acquire() throws(AirlockError) -> Int {
        pthread_mutex_lock(&mutex)
        while true {
            if let free = idle.popLast() {
                let connection = connections[free]
                pthread_mutex_unlock(&mutex)
                guard connection.isClosed else { return free }
                do {
                    let opened = try open(id: free + 1)
                    pthread_mutex_lock(&mutex)
                    connections[free] = opened
                    pthread_mutex_unlock(&mutex)
                    return free
                } catch {
                    pthread_mutex_lock(&mutex)
                    idle.append(free)  // still closed: the next caller tries again
                    pthread_cond_signal(&available)
                    pthread_mutex_unlock(&mutex)
                    throw error
                }
            }
            if connections.count + opening < maxConnections {
                opening += 1
                let id = connections.count + opening
                pthread_mutex_unlock(&mutex)
                let opened: PostgresConnection?
                var failure: AirlockError?
                do { opened = try open(id: id) } catch { opened = nil; failure = error }
                pthread_mutex_lock(&mutex)
                opening -= 1
                if let opened {
                    connections.append(opened)
                    let index = connections.count - 1
                    pthread_mutex_unlock(&mutex)
                    return index
                }
                // No new connection: wait for one of the others, if there are any.
                if connections.isEmpty, let failure {
                    pthread_mutex_unlock(&mutex)
                    throw failure
                }
            }
            pthread_cond_wait(&available, &mutex)
        }
    }

    private func open(id: Int) throws(AirlockError) -> PostgresConnection {
        let opened = try Self.connect(configuration, id: id, logger: logger)
        do {
            _ = try opened.query(PostgresQuery(unsafeSQL: "SET search_path TO \(schema)"), logger: logger).wait()
        } catch {
            try? opened.close().wait()
            throw AirlockError("PostgreSQL: \(String(reflecting: error))")
        }
        return opened
    }

    /// The connection the calling thread holds (read under the mutex: the array grows).
    private func heldConnection() -> PostgresConnection {
        let held = Int(bitPattern: pthread_getspecific(current))
        precondition(held > 0, "PostgresProposalStore.run outside locked")
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return connections[held - 1]
    }

    /// BEGIN, the chain's lock, `body`, COMMIT; ROLLBACK when `body` throws.
    func transaction<T>(_ body: () throws(AirlockError) -> T) throws(AirlockError) -> T {
        try locked { () throws(AirlockError) in
            try run("BEGIN")
            do throws(AirlockError) {
                try run("SELECT pg_advisory_xact_lock($1)", [.integer(Self.chainLock)])
                let value = try body()
                try run("COMMIT")
                return value
            } catch {
                _ = try? run("ROLLBACK")
                throw error
            }
        }
    }

    // MARK: Schema

    /// Versioned migrations, applied in order on start, each once (recorded in
    /// `schema_migrations`), under the chain's lock so two replicas starting together do not
    /// both apply one.
    static let migrations: [(version: Int64, sql: [String])] = [
        (1, [
            """
            CREATE TABLE sessions (
              id TEXT PRIMARY KEY, started_at TEXT NOT NULL, "user" TEXT NOT NULL, workspace TEXT NOT NULL,
              profiles TEXT NOT NULL, aws_upstream TEXT NOT NULL, aws_access_key_id TEXT NOT NULL)
            """,
            """
            CREATE TABLE proposals (
              id TEXT PRIMARY KEY, session_id TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
              summary TEXT NOT NULL, decision TEXT NOT NULL, rule TEXT NOT NULL,
              created_at TEXT NOT NULL, updated_at TEXT NOT NULL, digest TEXT NOT NULL, payload BYTEA NOT NULL,
              upstream TEXT NOT NULL, decided_by TEXT, decision_note TEXT, executor TEXT, result TEXT)
            """,
            "CREATE INDEX proposals_state ON proposals(state)",
            "CREATE INDEX proposals_session ON proposals(session_id, state)",
            """
            CREATE TABLE audit (
              seq BIGINT PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, proposal_id TEXT,
              actor TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)
            """,
        ]),
        // Execution leases (epoch ms): a replica's claim holds until then unless renewed.
        (2, ["ALTER TABLE proposals ADD COLUMN lease_until BIGINT"]),
        // Enrolled agent hosts and approvers, their tokens as SHA-256.
        (3, ["""
            CREATE TABLE identities (
              name TEXT NOT NULL, role TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
              revoked_at TEXT, PRIMARY KEY (name, role))
            """]),
        // The kill switch: freeze, revoked sessions.
        (4, ["CREATE TABLE controls (name TEXT PRIMARY KEY, set_by TEXT NOT NULL, set_at TEXT NOT NULL, reason TEXT)"]),
        // Ed25519-signed checkpoints of the chain's head.
        (5, ["CREATE TABLE audit_checkpoints (seq BIGINT PRIMARY KEY, head_hash TEXT NOT NULL, at TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL)"]),
        // A proposal and its audit entry in one round trip (measured: the seven round trips of
        // a client-side transaction held the chain's lock for ~5 ms under load, 184 proposals/s;
        // BENCHMARKS.md). The hash is AuditChain.seal's: SHA-256 of the fields joined by U+001F.
        (6, ["""
            CREATE FUNCTION airlock_propose(p_id TEXT, p_session TEXT, p_kind TEXT, p_summary TEXT, p_decision TEXT, p_rule TEXT,
                p_now TEXT, p_digest TEXT, p_payload BYTEA, p_upstream TEXT, p_limit BIGINT, p_control TEXT, p_detail TEXT,
                p_lock BIGINT) RETURNS TEXT LANGUAGE plpgsql STRICT AS $$
            DECLARE
              waiting BIGINT; last_seq BIGINT; last_hash TEXT; actor TEXT := 'session:' || p_session;
            BEGIN
              PERFORM pg_advisory_xact_lock(p_lock);
              SELECT COUNT(*) INTO waiting FROM proposals WHERE session_id = p_session AND state = 'pending';
              IF waiting >= p_limit THEN RETURN 'limit ' || waiting; END IF;
              IF EXISTS (SELECT 1 FROM controls WHERE name = p_control) THEN RETURN 'revoked'; END IF;
              IF EXISTS (SELECT 1 FROM proposals WHERE id = p_id) THEN RETURN 'taken'; END IF;
              INSERT INTO proposals (id, session_id, kind, state, summary, decision, rule, created_at, updated_at, digest, payload, upstream)
                VALUES (p_id, p_session, p_kind, 'pending', p_summary, p_decision, p_rule, p_now, p_now, p_digest, p_payload, p_upstream);
              SELECT seq, hash INTO last_seq, last_hash FROM audit ORDER BY seq DESC LIMIT 1;
              IF last_seq IS NULL THEN last_seq := 0; last_hash := repeat('0', 64); END IF;
              INSERT INTO audit VALUES (last_seq + 1, p_now, 'proposed', p_id, actor, p_detail, last_hash,
                encode(sha256(convert_to(concat_ws(chr(31), (last_seq + 1)::text, p_now, 'proposed', p_id, actor, p_detail, last_hash), 'UTF8')), 'hex'));
              RETURN 'ok';
            END $$
            """]),
        // The approval checks a row against its `proposed` entry (GateService.approve).
        (7, ["CREATE INDEX audit_proposal ON audit(proposal_id, event)"]),
        // Previews are records beside their proposal, outside its digest (docs/architecture.md,
        // "Proposals"); a proposal and its first preview in the same one round trip.
        (8, [
            "CREATE TABLE previews (n BIGSERIAL PRIMARY KEY, proposal_id TEXT NOT NULL, made_at TEXT NOT NULL, body TEXT NOT NULL)",
            "CREATE INDEX previews_proposal ON previews(proposal_id, n)",
            """
            CREATE FUNCTION airlock_propose_previewed(p_id TEXT, p_session TEXT, p_kind TEXT, p_summary TEXT, p_decision TEXT, p_rule TEXT,
                p_now TEXT, p_digest TEXT, p_payload BYTEA, p_upstream TEXT, p_limit BIGINT, p_control TEXT, p_detail TEXT,
                p_lock BIGINT, p_preview TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
            DECLARE
              status TEXT;
            BEGIN
              status := airlock_propose(p_id, p_session, p_kind, p_summary, p_decision, p_rule, p_now, p_digest, p_payload, p_upstream,
                                        p_limit, p_control, p_detail, p_lock);
              IF status = 'ok' AND p_preview IS NOT NULL THEN
                INSERT INTO previews (proposal_id, made_at, body) VALUES (p_id, p_now, p_preview);
              END IF;
              RETURN status;
            END $$
            """,
        ]),
        // Blobs every replica reads (docs/gate.md, "Shared state"): content-addressed, in 1 MiB
        // chunks written as they arrive under an upload id, named by their digest once whole;
        // `stored_ms` is when the bytes were last sent (the sweep removes what is old and unused).
        (9, [
            "CREATE TABLE blob_chunks (upload TEXT NOT NULL, n INTEGER NOT NULL, bytes BYTEA NOT NULL, PRIMARY KEY (upload, n))",
            """
            CREATE TABLE blobs (digest TEXT PRIMARY KEY, upload TEXT NOT NULL, size BIGINT NOT NULL, owner TEXT NOT NULL,
              created_ms BIGINT NOT NULL, stored_ms BIGINT NOT NULL)
            """,
            // The sweep: what was last stored long ago.
            "CREATE INDEX blobs_stored ON blobs(stored_ms)",
            "CREATE INDEX blobs_owner ON blobs(owner, created_ms)",
        ]),
        // Rules (docs/policy.md): the approver who launched a session never counts as one of
        // its approvers on the gate.
        (10, ["ALTER TABLE sessions ADD COLUMN launcher TEXT"]),
        // The approvers' web page (docs/web.md): sessions by their cookie's hash, one-time
        // login links by theirs, and which identity provider subject is which person.
        (11, [
            """
            CREATE TABLE web_sessions (hash TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, source TEXT NOT NULL,
              csrf TEXT NOT NULL, expires_ms BIGINT NOT NULL)
            """,
            "CREATE TABLE login_links (hash TEXT PRIMARY KEY, name TEXT NOT NULL, expires_ms BIGINT NOT NULL, used_ms BIGINT)",
            """
            CREATE TABLE identity_subjects (kind TEXT NOT NULL, subject TEXT NOT NULL, name TEXT NOT NULL, bound_at TEXT NOT NULL,
              PRIMARY KEY (kind, subject), UNIQUE (kind, name))
            """,
        ]),

    ]

    public static var schemaVersion: Int64 { migrations.last?.version ?? 0 }

    func migrate() throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            // Made only when missing: an operator may create it beforehand for a role that
            // has no CREATE on the database (which CREATE SCHEMA IF NOT EXISTS would need).
            if try run("SELECT 1 FROM pg_namespace WHERE nspname = $1", [.text(schema)]).rows.isEmpty {
                try run("CREATE SCHEMA \(schema)")
            }
            try run("SET LOCAL search_path TO \(schema)")
            try run("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
            let applied = Set(try run("SELECT version FROM schema_migrations").rows.compactMap { try? $0.decode(Int64.self) })
            if let newest = applied.max(), newest > Self.schemaVersion {
                throw AirlockError("the store's schema is version \(newest), newer than this Airlock knows (\(Self.schemaVersion))",
                                   hint: "run the newer Airlock that migrated it, or a store of its own")
            }
            for migration in Self.migrations where !applied.contains(migration.version) {
                for statement in migration.sql { try run(statement) }
                try run("INSERT INTO schema_migrations VALUES ($1, $2)", [.integer(migration.version), .text(Clock.now())])
            }
        }
        // Every later statement on this connection names the schema's tables.
        _ = try locked { () throws(AirlockError) in try run("SET search_path TO \(schema)") }
    }

    // MARK: Sessions

    public func recordSession(_ session: Session) throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            guard try run("SELECT 1 FROM sessions WHERE id = $1", [.text(session.id)]).rows.isEmpty else {
                throw AirlockError("session \(session.id) is already recorded")
            }
            try run("INSERT INTO sessions (id, started_at, \"user\", workspace, profiles, aws_upstream, aws_access_key_id, launcher) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)", [
                .text(session.id), .text(session.startedAt), .text(session.user), .text(session.workspace),
                .text(session.profiles), .text(session.awsUpstream), .text(session.awsAccessKeyID), session.launcher.map { .text($0) } ?? .null,
            ])
            try appendAudit(event: "session", proposalID: nil, actor: session.user, detail: ProposalRecords.sessionDetail(session))
        }
    }

    public func pendingCount(user: String) throws(AirlockError) -> Int {
        try locked { () throws(AirlockError) in
            try run("""
                SELECT COUNT(*) FROM proposals p JOIN sessions s ON s.id = p.session_id WHERE s."user" = $1 AND p.state = 'pending'
                """, [.text(user)]).rows.first.flatMap { try? $0.decode(Int64.self) }.map { Int($0) } ?? 0
        }
    }

    public func sessionIDs(user: String) throws(AirlockError) -> [String] {
        try locked { () throws(AirlockError) in
            try run("SELECT id FROM sessions WHERE \"user\" = $1 ORDER BY id", [.text(user)]).rows.compactMap { try? $0.decode(String.self) }
        }
    }

    public func session(id: String) throws(AirlockError) -> Session? {
        try locked { () throws(AirlockError) in
            try run("SELECT id, started_at, \"user\", workspace, profiles, aws_upstream, aws_access_key_id, launcher FROM sessions WHERE id = $1",
                    [.text(id)]).rows.first.map { row throws(AirlockError) in
                let r = row.makeRandomAccess()
                return Session(id: try text(r, "id"), startedAt: try text(r, "started_at"), user: try text(r, "user"),
                               workspace: try text(r, "workspace"), profiles: try text(r, "profiles"),
                               awsUpstream: try text(r, "aws_upstream"), awsAccessKeyID: try text(r, "aws_access_key_id"),
                               launcher: try optionalText(r, "launcher"))
            }
        }
    }

    // MARK: Proposals

    public func propose(_ draft: ProposalDraft, pendingLimit: Int) throws(AirlockError) -> Proposal {
        // The checks, the insert and the audit entry run server-side under the chain's lock
        // (airlock_propose, migration 6), in one statement: one round trip.
        while true {
            let proposal = ProposalRecords.newProposal(draft, id: RandomID.make(8), now: Clock.now())
            let status = try locked { () throws(AirlockError) in
                try run("SELECT airlock_propose_previewed($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)", [
                    .text(proposal.id), .text(proposal.sessionID), .text(proposal.kind.rawValue), .text(proposal.summary),
                    .text(proposal.decision.rawValue), .text(proposal.rule), .text(proposal.createdAt), .text(proposal.digest),
                    .bytes(proposal.payload), .text(proposal.upstream), .integer(Int64(pendingLimit)),
                    .text(GateControl.session(draft.sessionID)), .text(ProposalRecords.proposedDetail(proposal, requirement: draft.requirement).serialized()),
                    .integer(Self.chainLock), draft.preview.map { .text($0.serialized()) } ?? .null,
                ]).rows.first.flatMap { try? $0.decode(String.self) } ?? ""
            }
            switch status {
            case "ok":
                // Every replica's live queue learns of it now (docs/web.md); a lost notice is
                // caught by their audit-head poll.
                _ = try? locked { () throws(AirlockError) in try run("SELECT pg_notify($1, $2)", [.text(channel), .text(proposal.id)]) }
                return proposal
            case "revoked": throw ProposalRecords.sessionRevoked(draft.sessionID)
            case "taken": continue
            case let limit where limit.hasPrefix("limit "): throw ProposalRecords.pendingLimitReached(Int(limit.dropFirst(6)) ?? pendingLimit)
            default: throw AirlockError("PostgreSQL: airlock_propose answered '\(status)'")
            }
        }
    }

    public func proposal(id: String) throws(AirlockError) -> Proposal? {
        try locked { () throws(AirlockError) in
            try run("SELECT * FROM proposals WHERE id = $1", [.text(id)]).rows.first.map { row throws(AirlockError) in try Self.proposal(row) }
        }
    }

    public func previewRecord(_ id: String) throws(AirlockError) -> JSON? {
        try locked { () throws(AirlockError) in
            try run("SELECT body FROM previews WHERE proposal_id = $1 ORDER BY n DESC LIMIT 1", [.text(id)]).rows.first
                .flatMap { try? $0.decode(String.self) }.flatMap { try? JSON.parse($0) }
        }
    }

    public func setPreview(_ preview: JSON, of id: String) throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            guard try !run("SELECT 1 FROM proposals WHERE id = $1", [.text(id)]).rows.isEmpty else { throw ProposalRecords.noSuchProposal(id) }
            try run("INSERT INTO previews (proposal_id, made_at, body) VALUES ($1, $2, $3)", [.text(id), .text(Clock.now()), .text(preview.serialized())])
        }
    }

    public func proposals(states: Set<ProposalState>?, session: String?) throws(AirlockError) -> [Proposal] {
        try locked { () throws(AirlockError) in
            if let states, states.isEmpty { return [] }
            var conditions: [String] = []
            var values: [SQLValue] = []
            if let states {
                values += states.map { .text($0.rawValue) }
                conditions.append("state IN (\((1...values.count).map { "$\($0)" }.joined(separator: ",")))")
            }
            if let session {
                values.append(.text(session))
                conditions.append("session_id = $\(values.count)")
            }
            let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            var found: [Proposal] = []
            for row in try run("SELECT * FROM proposals\(filter) ORDER BY created_at DESC, id", values).rows { found.append(try Self.proposal(row)) }
            return found
        }
    }

    @discardableResult
    public func apply(_ event: ProposalEvent, to id: String, actor: String, note: String?,
                      result: ExecutionResult?, executor: String?, leaseUntil: Int64?) throws(AirlockError) -> Proposal {
        try transaction { () throws(AirlockError) in
            try applyInTransaction(event, to: id, actor: actor, note: note, result: result, executor: executor, leaseUntil: leaseUntil)
        }
    }

    public func countedApprovals(_ id: String) throws(AirlockError) -> [String] {
        try locked { () throws(AirlockError) in try counted(id) }
    }

    func counted(_ id: String) throws(AirlockError) -> [String] {
        let rows = try run("SELECT event, actor FROM audit WHERE proposal_id = $1 AND event IN ($2, $3) ORDER BY seq",
                           [.text(id), .text(ProposalRecords.approvalCounted), .text(ProposalRecords.approvalsVoid)]).rows
        var entries: [(event: String, actor: String)] = []
        for row in rows {
            let r = row.makeRandomAccess()
            entries.append((try text(r, "event"), try text(r, "actor")))
        }
        return ProposalRecords.counted(entries)
    }

    public func countApproval(_ id: String, actor: String, note: String?) throws(AirlockError) -> [String] {
        try transaction { () throws(AirlockError) in
            guard let row = try run("SELECT state FROM proposals WHERE id = $1 FOR UPDATE", [.text(id)]).rows.first else {
                throw ProposalRecords.noSuchProposal(id)
            }
            let state = try text(row.makeRandomAccess(), "state")
            guard state == ProposalState.pending.rawValue else { throw ProposalRecords.notPendingForCount(id, ProposalState(rawValue: state) ?? .pending) }
            let before = try counted(id)
            guard !before.contains(actor) else { throw ProposalRecords.alreadyCounted(id, actor) }
            try appendAudit(event: ProposalRecords.approvalCounted, proposalID: id, actor: actor, detail: ProposalRecords.countedDetail(note: note))
            try run("SELECT pg_notify($1, $2)", [.text(channel), .text(id)])
            return before + [actor]
        }
    }

    public func voidApprovals(_ id: String, reason: String) throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            guard try !counted(id).isEmpty else { return }
            try appendAudit(event: ProposalRecords.approvalsVoid, proposalID: id, actor: "airlock", detail: ProposalRecords.voidDetail(reason: reason))
        }
    }

    public func loseLapsedExecution(_ id: String, before now: Int64, note: String) throws(AirlockError) -> Bool {
        try transaction { () throws(AirlockError) in
            let lease = try run("SELECT lease_until FROM proposals WHERE id = $1 AND state = 'executing' FOR UPDATE", [.text(id)]).rows.first
                .flatMap { try? $0.decode(Int64?.self) } ?? nil
            guard let lease, lease < now else { return false }
            _ = try applyInTransaction(.lose, to: id, actor: "airlock", note: note, result: ExecutionResult(output: [], error: note),
                                       executor: nil, leaseUntil: nil)
            return true
        }
    }

    /// One transition and its audit entry; call inside `transaction`.
    func applyInTransaction(_ event: ProposalEvent, to id: String, actor: String, note: String?,
                            result: ExecutionResult?, executor: String?, leaseUntil: Int64?) throws(AirlockError) -> Proposal {
        guard let current = try run("SELECT * FROM proposals WHERE id = $1 FOR UPDATE", [.text(id)]).rows.first
            .map({ row throws(AirlockError) in try Self.proposal(row) }) else {
            throw ProposalRecords.noSuchProposal(id)
        }
        let step = try ProposalRecords.transition(current, event, actor: actor, note: note, result: result,
                                                  executor: executor, leaseUntil: leaseUntil, now: Clock.now())
        let updated = step.updated
        var sets = ["state = $1", "updated_at = $2"]
        var values: [SQLValue] = [.text(updated.state.rawValue), .text(updated.updatedAt)]
        func set(_ column: String, _ value: SQLValue) {
            values.append(value)
            sets.append("\(column) = $\(values.count)")
        }
        if step.decides {
            set("decided_by", .text(actor))
            set("decision_note", note.map { .text($0) } ?? .null)
        }
        if let executor { set("executor", .text(executor)) }
        if let leaseUntil { set("lease_until", .integer(leaseUntil)) }
        if let result { set("result", .text(result.json.serialized())) }
        values += [.text(id), .text(current.state.rawValue)]
        let changed = try run("UPDATE proposals SET \(sets.joined(separator: ", ")) WHERE id = $\(values.count - 1) AND state = $\(values.count)", values)
        guard changed.metadata.rows == 1 else { throw AirlockError("proposal \(id) changed underneath; try again", code: ProposalRecords.conflictCode) }
        try appendAudit(event: updated.state.rawValue, proposalID: id, actor: actor, detail: step.detail)
        try run("SELECT pg_notify($1, $2)", [.text(channel), .text(id)])
        return updated
    }

    public func executions() throws(AirlockError) -> [Execution] {
        try locked { () throws(AirlockError) in
            try run("SELECT id, executor, lease_until FROM proposals WHERE state = 'executing'").rows.map { row throws(AirlockError) in
                let r = row.makeRandomAccess()
                return Execution(id: try text(r, "id"), executor: try optionalText(r, "executor"),
                                 leaseUntil: try decode(r, "lease_until", Int64?.self))
            }
        }
    }

    /// Not under the chain's lock (no audit entry): the row's own lock is enough.
    public func renewLease(_ id: String, owner: String, until: Int64) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            let changed = try run("UPDATE proposals SET lease_until = $1 WHERE id = $2 AND state = 'executing' AND executor = $3 AND lease_until IS NOT NULL",
                                  [.integer(until), .text(id), .text(owner)])
            guard changed.metadata.rows == 1 else { throw ProposalRecords.leaseLost(id, owner: owner) }
        }
    }

    public func storeRefusal(sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            try appendAudit(event: "refused", proposalID: nil, actor: "session:\(sessionID)",
                            detail: .object([("summary", .string(summary)), ("rule", .string(rule))]))
        }
    }

    public func storeExecutionCall(proposalID: String, sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            try appendAudit(event: "execution-call", proposalID: proposalID, actor: "session:\(sessionID)",
                            detail: .object([("state", .string(ProposalState.executing.rawValue)), ("summary", .string(summary)),
                                             ("rule", .string(rule))]))
        }
    }

    // MARK: Kill switch

    public func setControl(_ name: String, on: Bool, by actor: String, reason: String?) throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            let present = try !run("SELECT 1 FROM controls WHERE name = $1", [.text(name)]).rows.isEmpty
            guard present != on else { return }
            if on {
                try run("INSERT INTO controls VALUES ($1,$2,$3,$4)", [.text(name), .text(actor), .text(Clock.now()), reason.map { .text($0) } ?? .null])
            } else {
                try run("DELETE FROM controls WHERE name = $1", [.text(name)])
            }
            try appendAudit(event: on ? "control-set" : "control-cleared", proposalID: nil, actor: actor,
                            detail: ProposalRecords.controlDetail(name, on: on, reason: reason))
        }
    }

    public func auditHead() throws(AirlockError) -> (seq: Int, hash: String)? {
        try locked { () throws(AirlockError) in
            guard let row = try run("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").rows.first else { return nil }
            let columns = row.makeRandomAccess()
            return (Int(try decode(columns, "seq", Int64.self)), try text(columns, "hash"))
        }
    }

    public func addCheckpoint(_ checkpoint: AuditCheckpoint) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            _ = try run("INSERT INTO audit_checkpoints VALUES ($1,$2,$3,$4,$5) ON CONFLICT (seq) DO NOTHING", [
                .integer(Int64(checkpoint.seq)), .text(checkpoint.headHash), .text(checkpoint.at), .text(checkpoint.keyID), .text(checkpoint.signature),
            ])
        }
    }

    public func checkpoints() throws(AirlockError) -> [AuditCheckpoint] {
        try locked { () throws(AirlockError) in
            var found: [AuditCheckpoint] = []
            for row in try run("SELECT * FROM audit_checkpoints ORDER BY seq").rows {
                let columns = row.makeRandomAccess()
                found.append(AuditCheckpoint(seq: Int(try decode(columns, "seq", Int64.self)), headHash: try text(columns, "head_hash"),
                                             at: try text(columns, "at"), keyID: try text(columns, "key_id"), signature: try text(columns, "signature")))
            }
            return found
        }
    }

    public func controls() throws(AirlockError) -> [GateControl] {
        try locked { () throws(AirlockError) in
            var found: [GateControl] = []
            for row in try run("SELECT * FROM controls ORDER BY name").rows {
                let columns = row.makeRandomAccess()
                found.append(GateControl(name: try text(columns, "name"), setBy: try text(columns, "set_by"), setAt: try text(columns, "set_at"),
                                         reason: try optionalText(columns, "reason")))
            }
            return found
        }
    }

    public func proposalCounts() throws(AirlockError) -> [ProposalCount] {
        try locked { () throws(AirlockError) in
            var found: [ProposalCount] = []
            for row in try run("SELECT state, kind, COUNT(*) AS n FROM proposals GROUP BY state, kind ORDER BY state, kind").rows {
                let columns = row.makeRandomAccess()
                guard let state = ProposalState(rawValue: try text(columns, "state")), let kind = Proposal.Kind(rawValue: try text(columns, "kind")) else { continue }
                found.append(ProposalCount(state: state, kind: kind, count: Int(try decode(columns, "n", Int64.self))))
            }
            return found
        }
    }

    // MARK: Identities

    public func addIdentity(_ identity: GateIdentity, by actor: String) throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            guard try run("SELECT 1 FROM identities WHERE name = $1 AND role = $2",
                          [.text(identity.name), .text(identity.role.rawValue)]).rows.isEmpty else { throw ProposalRecords.identityTaken(identity) }
            try run("INSERT INTO identities VALUES ($1,$2,$3,$4,$5)", [
                .text(identity.name), .text(identity.role.rawValue), .text(identity.tokenHash), .text(identity.createdAt),
                identity.revokedAt.map { .text($0) } ?? .null,
            ])
            try appendAudit(event: "identity-added", proposalID: nil, actor: actor, detail: ProposalRecords.identityDetail(identity))
        }
    }

    public func identity(tokenHash: String) throws(AirlockError) -> GateIdentity? {
        try locked { () throws(AirlockError) in
            try run("SELECT * FROM identities WHERE token_hash = $1 AND revoked_at IS NULL", [.text(tokenHash)]).rows.first
                .map { row throws(AirlockError) in try Self.identity(row) } ?? nil
        }
    }

    public func identities() throws(AirlockError) -> [GateIdentity] {
        try locked { () throws(AirlockError) in
            var found: [GateIdentity] = []
            for row in try run("SELECT * FROM identities ORDER BY created_at, name").rows {
                if let identity = try Self.identity(row) { found.append(identity) }
            }
            return found
        }
    }

    @discardableResult
    public func revokeIdentity(name: String, role: GateAccess.Role, by actor: String) throws(AirlockError) -> GateIdentity {
        try transaction { () throws(AirlockError) in
            guard var identity = try run("SELECT * FROM identities WHERE name = $1 AND role = $2", [.text(name), .text(role.rawValue)])
                .rows.first.map({ row throws(AirlockError) in try Self.identity(row) }) ?? nil else {
                throw ProposalRecords.noSuchIdentity(name, role)
            }
            guard identity.revokedAt == nil else { return identity }
            identity.revokedAt = Clock.now()
            try run("UPDATE identities SET revoked_at = $1 WHERE name = $2 AND role = $3",
                    [.text(identity.revokedAt ?? ""), .text(name), .text(role.rawValue)])
            try appendAudit(event: "identity-revoked", proposalID: nil, actor: actor, detail: ProposalRecords.identityDetail(identity))
            return identity
        }
    }

    static func identity(_ row: PostgresRow) throws(AirlockError) -> GateIdentity? {
        let r = row.makeRandomAccess()
        guard let role = GateAccess.Role(rawValue: try text(r, "role")) else { return nil }
        return GateIdentity(name: try text(r, "name"), role: role, tokenHash: try text(r, "token_hash"),
                            createdAt: try text(r, "created_at"), revokedAt: try optionalText(r, "revoked_at"))
    }

    // MARK: Audit

    /// Appends one entry to the chain; call inside `transaction` (which holds the chain's lock).
    func appendAudit(event: String, proposalID: String?, actor: String, detail: JSON) throws(AirlockError) {
        let last = try run("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").rows.first.map { row throws(AirlockError) in
            let r = row.makeRandomAccess()
            return (seq: try decode(r, "seq", Int64.self), hash: try text(r, "hash"))
        }
        let entry = AuditEntry(seq: Int((last?.seq ?? 0) + 1), at: Clock.now(), event: event, proposalID: proposalID, actor: actor,
                               detail: detail.serialized(), previousHash: last?.hash ?? AuditChain.genesis, hash: "")
        let hashed = AuditChain.seal(entry)
        try run("INSERT INTO audit VALUES ($1,$2,$3,$4,$5,$6,$7,$8)", [
            .integer(Int64(hashed.seq)), .text(hashed.at), .text(hashed.event), hashed.proposalID.map { .text($0) } ?? .null,
            .text(hashed.actor), .text(hashed.detail), .text(hashed.previousHash), .text(hashed.hash),
        ])
    }

    public func auditEntries() throws(AirlockError) -> [AuditEntry] { try auditEntries(fromSeq: 0) }

    public func auditEntries(fromSeq seq: Int) throws(AirlockError) -> [AuditEntry] {
        try locked { () throws(AirlockError) in
            try run("SELECT * FROM audit WHERE seq >= $1 ORDER BY seq", [.integer(Int64(seq))]).rows.map { row throws(AirlockError) in
                let r = row.makeRandomAccess()
                return AuditEntry(seq: Int(try decode(r, "seq", Int64.self)), at: try text(r, "at"), event: try text(r, "event"),
                                  proposalID: try optionalText(r, "proposal_id"), actor: try text(r, "actor"),
                                  detail: try text(r, "detail"), previousHash: try text(r, "prev_hash"), hash: try text(r, "hash"))
            }
        }
    }

    public func allProposalRows() throws(AirlockError) -> [Proposal] {
        try locked { () throws(AirlockError) in
            try run("SELECT * FROM proposals").rows.map { row throws(AirlockError) in try Self.proposal(row) }
        }
    }

    public func proposedEntry(_ id: String) throws(AirlockError) -> AuditEntry? {
        try locked { () throws(AirlockError) in
            try run("SELECT * FROM audit WHERE proposal_id = $1 AND event = 'proposed' ORDER BY seq LIMIT 1", [.text(id)]).rows.map { row throws(AirlockError) in
                let r = row.makeRandomAccess()
                return AuditEntry(seq: Int(try decode(r, "seq", Int64.self)), at: try text(r, "at"), event: try text(r, "event"),
                                  proposalID: try optionalText(r, "proposal_id"), actor: try text(r, "actor"),
                                  detail: try text(r, "detail"), previousHash: try text(r, "prev_hash"), hash: try text(r, "hash"))
            }.first
        }
    }

    static func proposal(_ row: PostgresRow) throws(AirlockError) -> Proposal {
        let r = row.makeRandomAccess()
        let payload = try decode(r, "payload", ByteBuffer.self)
        return Proposal(
            id: try text(r, "id"), sessionID: try text(r, "session_id"),
            kind: Proposal.Kind(rawValue: try text(r, "kind")) ?? .api,
            state: ProposalState(rawValue: try text(r, "state")) ?? .unknown,
            summary: try text(r, "summary"), decision: Decision(rawValue: try text(r, "decision")) ?? .mutation,
            rule: try text(r, "rule"), createdAt: try text(r, "created_at"), updatedAt: try text(r, "updated_at"),
            digest: try text(r, "digest"), payload: Array(payload.readableBytesView), upstream: try text(r, "upstream"),
            decidedBy: try optionalText(r, "decided_by"), decisionNote: try optionalText(r, "decision_note"),
            result: try optionalText(r, "result").flatMap { try? JSON.parse($0) }.flatMap(ExecutionResult.init(json:)))
    }
}

func decode<T: PostgresDecodable>(_ row: PostgresRandomAccessRow, _ column: String, _ type: T.Type) throws(AirlockError) -> T {
    do {
        return try row[column].decode(T.self)
    } catch {
        throw AirlockError("PostgreSQL: column \(column) is not a \(T.self): \(error)")
    }
}

func text(_ row: PostgresRandomAccessRow, _ column: String) throws(AirlockError) -> String {
    try decode(row, column, String.self)
}

func optionalText(_ row: PostgresRandomAccessRow, _ column: String) throws(AirlockError) -> String? {
    try decode(row, column, String?.self)
}
