import AirlockCore
import AirlockPolicy
import Foundation
import Testing

@testable import AirlockStore
@testable import AirlockStorePostgres
import PostgresNIO

/// The store's drivers, each as the contract suite opens it: `make` gives a store and a
/// second handle on the same data, as another process (or replica) would have it.
enum StoreDriver: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, sqlite
    /// A real PostgreSQL server: scripts/test starts one and sets AIRLOCK_TEST_POSTGRES; each
    /// test gets a schema of its own.
    case postgres

    var testDescription: String { rawValue }

    func make() throws -> (store: any ProposalStore, second: any ProposalStore) {
        switch self {
        case .memory:
            let store = InMemoryProposalStore()
            return (store, store)
        case .sqlite:
            let dir = NSTemporaryDirectory() + "airlock-store-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return (try SQLiteProposalStore(stateDir: dir), try SQLiteProposalStore(stateDir: dir))
        case .postgres:
            guard let url = ProcessInfo.processInfo.environment["AIRLOCK_TEST_POSTGRES"] else {
                throw AirlockError("AIRLOCK_TEST_POSTGRES is not set: the PostgreSQL store tests need a server",
                                   hint: "scripts/test starts one (Debian's postgresql); or set AIRLOCK_TEST_POSTGRES=postgres://USER@HOST:PORT/DB")
            }
            let configuration = try PostgresStoreConfiguration(parsing: url)
            let schema = "t_" + RandomID.make(12)
            return (try PostgresProposalStore(configuration, schema: schema), try PostgresProposalStore(configuration, schema: schema))
        }
    }
}

/// What every store driver promises (ProposalStore's contract), run on each driver.
@Suite struct ProposalStoreContractTests {

    func draft(_ summary: String = "ec2:TerminateInstances") -> ProposalDraft {
        ProposalDraft(sessionID: "s1", kind: .api, summary: summary,
                      ruling: Ruling(.mutation, "IAM access level Write (ec2:TerminateInstances)"),
                      payload: Array("{\"method\":\"POST\"}".utf8), upstream: "http://127.0.0.1:5000")
    }

    /// `pending → expired` and `approved → expired` past their deadlines, with the clock
    /// injected: nothing expires early, each once, audited, and the previews beside them kept.
    @Test(arguments: StoreDriver.allCases)
    func waitingProposalsExpireAtTheirDeadlines(_ driver: StoreDriver) throws {
        let (store, second) = try driver.make()
        let waiting = try store.propose(draft("sqs:DeleteQueue"))
        let approved = try store.propose(ProposalDraft(sessionID: "s1", kind: .api, summary: "s3:PutObject", ruling: Ruling(.mutation, "w"),
                                                       payload: Array("{}".utf8), upstream: "aws", preview: .object([("diff", .string("+ x"))])))
        try store.apply(.approve, to: approved.id, actor: "user:alice")
        let decided = try store.propose(draft("iam:CreateUser"))
        try store.apply(.deny, to: decided.id, actor: "user:alice")
        let deadlines = ProposalDeadlines(pending: 3600, approved: 600)
        let start = try #require(Clock.epochMilliseconds(parsing: waiting.createdAt))
        #expect(try store.expireOverdue(deadlines, now: start + 599_000).isEmpty, "expired before a deadline")
        #expect(try second.expireOverdue(deadlines, now: start + 601_000 + 1_000) == [approved.id])
        #expect(try store.proposal(id: waiting.id)?.state == .pending)
        #expect(try store.expireOverdue(deadlines, now: start + 3_601_000 + 1_000) == [waiting.id])
        #expect(try store.expireOverdue(deadlines, now: start + 9_000_000).isEmpty, "expired twice")
        let after = try #require(try store.proposal(id: approved.id))
        #expect(after.state == .expired && after.decisionNote?.contains("not executed within 10 min") == true, "\(after)")
        #expect(try store.proposal(id: waiting.id)?.decisionNote?.contains("not decided within 1 h") == true)
        #expect(try store.proposal(id: decided.id)?.state == .denied)
        #expect(try store.previewRecord(approved.id)?["diff"]?.string == "+ x")
        #expect(throws: AirlockError.self) { try store.apply(.startExecution, to: approved.id, actor: "user:alice", executor: "x") }
        #expect(try store.auditEntries().filter { $0.event == "expired" }.count == 2)
        #expect(try store.verifyAudit().intact)
    }

    /// A preview is a record beside the proposal: replaced (a drift re-check writes a new
    /// one) without touching what was pinned, its digest or the audit chain's account of it.
    @Test(arguments: StoreDriver.allCases)
    func aPreviewIsReplacedWithoutTouchingWhatWasPinned(_ driver: StoreDriver) throws {
        let (store, second) = try driver.make()
        let proposed = try store.propose(ProposalDraft(sessionID: "s1", kind: .api, summary: "kubernetes:patch deployments/web", ruling: Ruling(.mutation, "w"),
                                                       payload: Array("{\"type\":\"x\"}".utf8), upstream: "aws", preview: .object([("diff", .string("- 3\n+ 5"))])))
        try second.setPreview(.object([("diff", .string("- 4\n+ 5")), ("note", .string("re-checked: the live object moved"))]), of: proposed.id)
        let after = try #require(try store.proposal(id: proposed.id))
        #expect(after.payload == proposed.payload && after.digest == proposed.digest)
        #expect(try store.previewRecord(proposed.id)?["diff"]?.string == "- 4\n+ 5")
        #expect(try store.rowMismatch(after) == nil)
        #expect(try store.verifyAudit().intact)
    }

    @Test(arguments: StoreDriver.allCases)
    func lifecycleToSuccess(_ driver: StoreDriver) throws {
        let (store, _) = try driver.make()
        let proposal = try store.propose(draft())
        #expect(proposal.state == .pending)
        #expect(proposal.digest == SigV4.hexSHA256(proposal.payload))
        #expect(proposal.id.count == 8)
        try store.apply(.approve, to: proposal.id, actor: "user:alice", note: "looks right")
        #expect(throws: AirlockError.self) { try store.apply(.approve, to: proposal.id, actor: "user:alice") }
        try store.apply(.startExecution, to: proposal.id, actor: "user:alice", executor: Actor.processIdentity())
        let done = try store.apply(.succeed, to: proposal.id, actor: "user:alice",
                                   result: ExecutionResult(httpStatus: 200, output: Array("<ok/>".utf8)))
        #expect(done.state == .succeeded)
        let stored = try #require(try store.proposal(id: proposal.id))
        #expect(stored.result?.httpStatus == 200)
        #expect(stored.result?.output == Array("<ok/>".utf8))
        #expect(stored.decidedBy == "user:alice" && stored.decisionNote == "looks right")
        let events = try store.auditEntries().map(\.event)
        #expect(events == ["proposed", "approved", "executing", "succeeded"])
        #expect(try store.verifyAudit().intact)
    }

    @Test(arguments: StoreDriver.allCases)
    func deniedIsFinal(_ driver: StoreDriver) throws {
        let (store, _) = try driver.make()
        let proposal = try store.propose(draft())
        try store.apply(.deny, to: proposal.id, actor: "user:bob", note: "no")
        #expect(throws: AirlockError.self) { try store.apply(.approve, to: proposal.id, actor: "user:bob") }
        #expect(throws: AirlockError.self) { try store.apply(.startExecution, to: proposal.id, actor: "user:bob") }
        #expect(try store.proposal(id: proposal.id)?.state == .denied)
    }

    /// Two processes race to execute the same approved proposal: exactly one wins.
    @Test(arguments: StoreDriver.allCases)
    func executionIsClaimedOnce(_ driver: StoreDriver) throws {
        let (store, other) = try driver.make()
        let proposal = try store.propose(draft())
        try store.apply(.approve, to: proposal.id, actor: "user:alice")
        let wins = Counter()
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            let connection: any ProposalStore = index % 2 == 0 ? store : other
            if (try? connection.apply(.startExecution, to: proposal.id, actor: "x", executor: Actor.processIdentity())) != nil {
                wins.increment()
            }
        }
        #expect(wins.value == 1)
    }

    /// Replicas racing over a queue: every approved proposal is claimed by exactly one of
    /// four executors on two handles, and the chain stays whole.
    @Test(arguments: StoreDriver.allCases)
    func aQueueIsClaimedOnceEach(_ driver: StoreDriver) throws {
        let (store, other) = try driver.make()
        var ids: [String] = []
        for index in 0..<40 {
            let proposal = try store.propose(draft("p\(index)"))
            try other.apply(.approve, to: proposal.id, actor: "user:alice")
            ids.append(proposal.id)
        }
        let claims = Counter()
        let perProposal = ClaimLedger()
        let snapshot = ids
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            let handle: any ProposalStore = worker % 2 == 0 ? store : other
            for id in snapshot.shuffled() {
                if (try? handle.apply(.startExecution, to: id, actor: "replica-\(worker)", executor: Actor.processIdentity())) != nil {
                    claims.increment()
                    perProposal.record(id)
                }
            }
        }
        #expect(claims.value == ids.count)
        #expect(perProposal.counts.values.allSatisfy { $0 == 1 } && perProposal.counts.count == ids.count)
        #expect(try store.verifyAudit().intact)
    }

    /// A replica's claim holds while its lease does, whatever this host knows of its
    /// processes; once it runs out the proposal is `unknown`, the old owner can neither renew
    /// nor record a result, and nobody runs it again.
    @Test(arguments: StoreDriver.allCases)
    func leasedExecutionsEndUnknownWhenTheLeaseRunsOut(_ driver: StoreDriver) throws {
        let (store, other) = try driver.make()
        let proposal = try store.propose(draft())
        try store.apply(.approve, to: proposal.id, actor: "user:alice")
        let now = Clock.epochMilliseconds()
        // An owner name that looks like a dead local pid: a lease is judged by its time only.
        let owner = "999999:1"
        try store.apply(.startExecution, to: proposal.id, actor: "gate", executor: owner, leaseUntil: now + 30_000)
        #expect(try other.executions() == [Execution(id: proposal.id, executor: owner, leaseUntil: now + 30_000)])
        #expect(try other.recoverInterruptedExecutions(now: now).isEmpty)
        #expect(throws: AirlockError.self) { try other.renewLease(proposal.id, owner: "replica-b", until: now + 60_000) }
        try store.renewLease(proposal.id, owner: owner, until: now + 60_000)
        #expect(try other.recoverInterruptedExecutions(now: now + 45_000).isEmpty, "the renewed lease still holds")
        #expect(try other.recoverInterruptedExecutions(now: now + 60_001) == [proposal.id])
        #expect(try store.proposal(id: proposal.id)?.state == .unknown)
        #expect(throws: AirlockError.self) { try store.renewLease(proposal.id, owner: owner, until: now + 90_000) }
        #expect(throws: AirlockError.self) {
            try store.apply(.succeed, to: proposal.id, actor: "gate", result: ExecutionResult(httpStatus: 200, output: []))
        }
        #expect(throws: AirlockError.self) { try other.apply(.startExecution, to: proposal.id, actor: "gate", executor: "replica-b") }
        // A local claim (no lease) cannot be renewed as if it were one.
        let local = try store.propose(draft())
        try store.apply(.approve, to: local.id, actor: "user:alice")
        let me = try #require(Actor.processIdentity())
        try store.apply(.startExecution, to: local.id, actor: "user:alice", executor: me)
        #expect(throws: AirlockError.self) { try store.renewLease(local.id, owner: me, until: now + 1) }
        #expect(try store.verifyAudit().intact)
    }

    /// Enrolled hosts and approvers: found by their token's hash only while not revoked;
    /// names are never reused; every change is in the audit log.
    @Test(arguments: StoreDriver.allCases)
    func identitiesAreEnrolledFoundAndRevoked(_ driver: StoreDriver) throws {
        let (store, other) = try driver.make()
        let hostToken = GateToken.make(.host), userToken = GateToken.make(.approver)
        let host = GateIdentity(name: "ci-runner-1", role: .host, tokenHash: GateToken.hash(hostToken), createdAt: Clock.now())
        let user = GateIdentity(name: "alice", role: .approver, tokenHash: GateToken.hash(userToken), createdAt: Clock.now())
        try store.addIdentity(host, by: "user:root(uid 0)")
        try store.addIdentity(user, by: "user:root(uid 0)")
        #expect(try other.identity(tokenHash: GateToken.hash(hostToken)) == host)
        #expect(try other.identity(tokenHash: GateToken.hash(userToken))?.role == .approver)
        #expect(try other.identity(tokenHash: GateToken.hash(GateToken.make(.host))) == nil)
        #expect(throws: AirlockError.self) { try other.addIdentity(host, by: "user:root(uid 0)") }
        // The same name may be a host and a user: they are different identities.
        try other.addIdentity(GateIdentity(name: "alice", role: .host, tokenHash: GateToken.hash(GateToken.make(.host)), createdAt: Clock.now()),
                              by: "user:root(uid 0)")
        let revoked = try other.revokeIdentity(name: "ci-runner-1", role: .host, by: "user:alice")
        #expect(revoked.revokedAt != nil)
        #expect(try store.identity(tokenHash: GateToken.hash(hostToken)) == nil, "a revoked token still works")
        #expect(try store.revokeIdentity(name: "ci-runner-1", role: .host, by: "user:alice").revokedAt == revoked.revokedAt)
        #expect(throws: AirlockError.self) { try store.revokeIdentity(name: "nobody", role: .host, by: "user:alice") }
        #expect(throws: AirlockError.self) {
            try store.addIdentity(GateIdentity(name: "ci-runner-1", role: .host, tokenHash: GateToken.hash(GateToken.make(.host)), createdAt: Clock.now()),
                                  by: "user:root(uid 0)")
        }
        #expect(try store.identities().count == 3)
        let events = try store.auditEntries().map(\.event)
        #expect(events.filter { $0 == "identity-added" }.count == 3 && events.filter { $0 == "identity-revoked" }.count == 1)
        // The log never holds a token, only a prefix of its hash.
        let log = try store.auditEntries().map(\.detail).joined()
        #expect(!log.contains(hostToken) && !log.contains(userToken) && !log.contains(GateToken.hash(hostToken)))
        #expect(try store.verifyAudit().intact)
    }

    @Test(arguments: StoreDriver.allCases)
    func interruptedExecutionBecomesUnknownNotRerun(_ driver: StoreDriver) throws {
        let (store, _) = try driver.make()
        let proposal = try store.propose(draft())
        try store.apply(.approve, to: proposal.id, actor: "user:alice")
        // An executor that has exited: a child process that is gone.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["30"]
        try child.run()
        let identity = try #require(Actor.processIdentity(child.processIdentifier))
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        try store.apply(.startExecution, to: proposal.id, actor: "user:alice", executor: identity)
        #expect(try store.recoverInterruptedExecutions() == [proposal.id])
        #expect(try store.proposal(id: proposal.id)?.state == .unknown)
        #expect(throws: AirlockError.self) { try store.apply(.startExecution, to: proposal.id, actor: "user:alice") }
        // A live executor is left alone.
        let live = try store.propose(draft())
        try store.apply(.approve, to: live.id, actor: "user:alice")
        try store.apply(.startExecution, to: live.id, actor: "user:alice", executor: Actor.processIdentity())
        #expect(try store.recoverInterruptedExecutions().isEmpty)
        #expect(try store.verifyAudit().intact)
    }

    @Test(arguments: StoreDriver.allCases)
    func listingsSessionsAndLimits(_ driver: StoreDriver) throws {
        let (store, other) = try driver.make()
        let session = Session(id: "s1", startedAt: Clock.now(), user: "alice", workspace: "/w", profiles: "default",
                              awsUpstream: "aws", awsAccessKeyID: "AKIDDUMMYSESSIONKEY")
        try store.recordSession(session)
        #expect(try other.session(id: "s1") == session)
        #expect(try store.session(id: "nope") == nil)
        #expect(throws: AirlockError.self) { try store.recordSession(session) }
        var ids: [String] = []
        for index in 0..<3 { ids.append(try store.propose(draft("p\(index)"), pendingLimit: 3).id) }
        // The limit is per session and counts only pending proposals.
        #expect(throws: AirlockError.self) { try store.propose(self.draft("p4"), pendingLimit: 3) }
        var elsewhere = draft("other session")
        elsewhere.sessionID = "s2"
        _ = try other.propose(elsewhere, pendingLimit: 3)
        try store.apply(.deny, to: ids[0], actor: "user:bob")
        usleep(3_000)  // timestamps have milliseconds: p5 is the newest by its time, not its id
        _ = try store.propose(draft("p5"), pendingLimit: 3)
        #expect(try other.proposals(states: [.pending], session: "s1").count == 3)
        #expect(try store.proposals(session: "s1").first?.summary == "p5", "newest first")
        #expect(try other.proposals(states: [.denied]).map(\.id) == [ids[0]])
        #expect(try other.proposals(states: [.denied, .pending], session: "s2").count == 1)
        #expect(try other.proposals(states: []).isEmpty)
        #expect(try other.proposals().count == 5)
        #expect(try store.proposal(id: "00000000") == nil)
        #expect(throws: AirlockError.self) { try store.apply(.approve, to: "00000000", actor: "user:bob") }
        try store.recordRefusal(sessionID: "s1", summary: "iam:CreateUser", rule: "denied by profile")
        try store.apply(.approve, to: ids[1], actor: "user:bob")
        try other.apply(.startExecution, to: ids[1], actor: "user:bob", executor: Actor.processIdentity())
        #expect(try store.executions().map(\.id) == [ids[1]])
        try store.recordExecutionCall(proposalID: ids[1], sessionID: "s1", summary: "s3:PutObject", rule: "approved")
        let events = try other.auditEntries().map(\.event)
        #expect(events.first == "session" && events.contains("refused") && events.contains("execution-call"))
        let report = try other.verifyAudit()
        #expect(report.intact, "\(report.problems)")
        // Payload and digest are what was proposed.
        let stored = try #require(try other.proposal(id: ids[1]))
        #expect(stored.payload == draft().payload && stored.digest == SigV4.hexSHA256(draft().payload))
    }
}

extension ProposalStoreContractTests {
    /// The kill switch's store side: a revoked session's pending proposals are denied and it
    /// can propose nothing more (checked in the propose transaction); freeze is a control any
    /// handle sees; all audited; counts by state and kind come from the store.
    @Test(arguments: StoreDriver.allCases)
    func killSwitchControlsAndCounts(_ driver: StoreDriver) throws {
        let (store, other) = try driver.make()
        let pending = try (0..<3).map { _ in try store.propose(draft()).id }
        var elsewhere = draft("other session")
        elsewhere.sessionID = "s2"
        let survivor = try store.propose(elsewhere).id
        try store.apply(.approve, to: pending[0], actor: "user:alice")
        let denied = try other.revokeSession("s1", by: "user:alice", reason: "runaway")
        #expect(Set(denied) == Set(pending.dropFirst()))
        #expect(try store.proposal(id: pending[0])?.state == .approved, "a decided proposal keeps its decision")
        #expect(try store.proposal(id: survivor)?.state == .pending)
        do {
            _ = try store.propose(draft())
            Issue.record("a revoked session proposed")
        } catch {
            #expect(error.code == .sessionRevoked, "\(error)")
        }
        _ = try store.propose(elsewhere)
        try store.setControl(GateControl.freeze, on: true, by: "user:bob", reason: "incident")
        try store.setControl(GateControl.freeze, on: true, by: "user:bob", reason: "again")  // idempotent
        #expect(try other.control(GateControl.freeze)?.reason == "incident")
        #expect(Set(try other.controls().map(\.name)) == ["freeze", "session:s1"])
        try other.setControl(GateControl.freeze, on: false, by: "user:bob", reason: nil)
        #expect(try store.control(GateControl.freeze) == nil)
        let counts = try other.proposalCounts()
        #expect(counts.first { $0.state == .denied && $0.kind == .api }?.count == 2)
        #expect(counts.first { $0.state == .pending && $0.kind == .api }?.count == 2)
        #expect(counts.first { $0.state == .approved && $0.kind == .api }?.count == 1)
        #expect(counts.map(\.count).reduce(0, +) == 5)
        let events = try store.auditEntries().map(\.event)
        #expect(events.filter { $0 == "control-set" }.count == 2 && events.contains("control-cleared"))
        #expect(try store.verifyAudit().intact)
    }
}

/// The SQLite driver's own: its file edited by hand.
@Suite struct SQLiteProposalStoreTests {
    func draft(_ summary: String) -> ProposalDraft {
        ProposalDraft(sessionID: "s1", kind: .api, summary: summary,
                      ruling: Ruling(.mutation, "IAM access level Write (ec2:TerminateInstances)"),
                      payload: Array("{\"method\":\"POST\"}".utf8), upstream: "http://127.0.0.1:5000")
    }

    /// A state directory from before execution leases opens, keeps its proposals and gains
    /// the column.
    @Test func storesFromBeforeLeasesAreUpgraded() throws {
        let dir = NSTemporaryDirectory() + "airlock-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let old = try SQLiteDatabase(path: SQLiteProposalStore.databasePath(stateDir: dir))
        try old.execute(SQLiteProposalStore.schema.replacingOccurrences(of: "result TEXT,", with: "result TEXT")
            .replacingOccurrences(of: "lease_until INTEGER", with: ""))
        try old.execute("INSERT INTO proposals (id, session_id, kind, state, summary, decision, rule, created_at, updated_at, digest, payload, upstream) VALUES ('0000abcd','s1','api','approved','x','mutation','r','t','t','d',X'00','u')")
        #expect(try !old.prepare("PRAGMA table_info(proposals)").rows().contains { $0.text("name") == "lease_until" })
        let store = try SQLiteProposalStore(stateDir: dir)
        try store.apply(.startExecution, to: "0000abcd", actor: "gate", executor: "replica-a", leaseUntil: 5)
        #expect(try store.executions() == [Execution(id: "0000abcd", executor: "replica-a", leaseUntil: 5)])
    }

    /// Hand edits of the store's decision rows or of the log itself are detected.
    @Test(arguments: [
        ("UPDATE proposals SET state = 'approved' WHERE state = 'pending'", "is approved in the store but pending"),
        ("UPDATE proposals SET decided_by = 'user:mallory' WHERE state = 'denied'", "decided by user:mallory"),
        ("UPDATE proposals SET payload = X'7B7D'", "payload or digest differs"),
        ("UPDATE audit SET detail = replace(detail, 'no', 'yes') WHERE event = 'denied'", "was altered"),
        ("DELETE FROM audit WHERE seq = 2", "missing"),
        ("UPDATE audit SET seq = seq + 100 WHERE seq = 3", "missing"),
        ("DELETE FROM proposals WHERE state = 'denied'", "removed from the store"),
        ("INSERT INTO proposals SELECT 'ffffffff', session_id, kind, state, summary, decision, rule, created_at, updated_at, digest, payload, upstream, decided_by, decision_note, executor, result, lease_until FROM proposals LIMIT 1", "not in the audit log"),
    ])
    func tamperingIsDetected(sql: String, expected: String) throws {
        let dir = NSTemporaryDirectory() + "airlock-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let store = try SQLiteProposalStore(stateDir: dir)
        _ = try store.propose(draft("first"))
        let second = try store.propose(draft("second"))
        try store.apply(.deny, to: second.id, actor: "user:bob", note: "no")
        #expect(try store.verifyAudit().intact)
        try store.db.execute(sql)
        let report = try store.verifyAudit()
        #expect(!report.intact)
        #expect(report.problems.contains { $0.contains(expected) }, "\(report.problems)")
    }
}

final class ClaimLedger: @unchecked Sendable {
    private let lock = NSLock()
    private var claimed: [String: Int] = [:]
    func record(_ id: String) { lock.lock(); claimed[id, default: 0] += 1; lock.unlock() }
    var counts: [String: Int] { lock.lock(); defer { lock.unlock() }; return claimed }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

/// The PostgreSQL driver's own: its URL, its schema name, its migrations.
@Suite struct PostgresStoreTests {
    @Test func urlsAreReadOneWay() throws {
        let tcp = try PostgresStoreConfiguration(parsing: "postgres://gate:p%40ss@db.internal:6432/airlock?sslmode=verify-full&sslrootcert=/etc/airlock/db-ca.pem")
        #expect(tcp.user == "gate" && tcp.password == "p@ss" && tcp.host == "db.internal" && tcp.port == 6432 && tcp.database == "airlock")
        #expect(tcp.verifyTLS && tcp.rootCertificate == "/etc/airlock/db-ca.pem")
        let plain = try PostgresStoreConfiguration(parsing: "postgres://gate@10.0.0.5/airlock?sslmode=disable")
        #expect(!plain.verifyTLS)
        // Off loopback, clear text must be asked for.
        do {
            _ = try PostgresStoreConfiguration(parsing: "postgres://gate@db.internal/airlock")
            Issue.record("clear text to a remote database accepted")
        } catch {
            #expect(error.message.contains("clear text") && error.hint?.contains("sslmode=verify-full") == true, "\(error)")
        }
        #expect(!tcp.display.contains("p@ss") && !tcp.display.contains("p%40ss"))
        let socket = try PostgresStoreConfiguration(parsing: "postgresql://gate@/airlock?host=/run/postgresql")
        #expect(socket.socketDirectory == "/run/postgresql" && socket.host == nil && socket.port == 5432)
        for bad in ["mysql://a@b/c", "postgres://host/db", "postgres://a@h:0/db", "postgres://a@h:x/db", "postgres://a@h",
                    "postgres://a@h/db?sslmode=require", "postgres://a@/db", "postgres://@h/db", "postgres://a@h/db?sslmode=verify-ca",
                    "postgres://a@127.0.0.1/db?sslrootcert=/ca.pem", "postgres://a@h/db?sslmode=verify-full&sslrootcert=relative.pem"] {
            #expect(throws: AirlockError.self, "\(bad)") { try PostgresStoreConfiguration(parsing: bad) }
        }
    }

    /// TLS to the store: the test server (scripts/lib/postgres.sh) has a certificate for
    /// localhost from a test CA; verified, it is encrypted; another CA is refused.
    @Test func tlsToTheStoreIsVerified() throws {
        guard let url = ProcessInfo.processInfo.environment["AIRLOCK_TEST_POSTGRES"],
              let ca = ProcessInfo.processInfo.environment["AIRLOCK_TEST_POSTGRES_CA"] else {
            throw AirlockError("AIRLOCK_TEST_POSTGRES and AIRLOCK_TEST_POSTGRES_CA are not set", hint: "scripts/test starts PostgreSQL with TLS")
        }
        let verified = url.replacingOccurrences(of: "@127.0.0.1:", with: "@localhost:") + "?sslmode=verify-full&sslrootcert=" + ca
        let schema = "t_" + RandomID.make(12)
        #expect(try PostgresProposalStore(try PostgresStoreConfiguration(parsing: verified), schema: schema).connectionUsesTLS())
        #expect(try !PostgresProposalStore(try PostgresStoreConfiguration(parsing: url), schema: schema).connectionUsesTLS())
        // A CA that did not sign the server's certificate.
        let other = NSTemporaryDirectory() + "other-ca-\(UUID().uuidString).pem"
        let made = runCommand("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                   "-keyout", other + ".key", "-out", other, "-days", "1", "-subj", "/CN=other"])
        #expect(made == 0)
        let wrong = url.replacingOccurrences(of: "@127.0.0.1:", with: "@localhost:") + "?sslmode=verify-full&sslrootcert=" + other
        #expect(throws: AirlockError.self) { _ = try PostgresProposalStore(try PostgresStoreConfiguration(parsing: wrong), schema: schema) }
    }

    func runCommand(_ path: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test func schemaNamesCannotCarrySQL() {
        for good in ["airlock", "t_0a1b", "_x"] { #expect(PostgresStoreConfiguration.isIdentifier(good)) }
        for bad in ["", "1x", "Airlock", "a;DROP TABLE audit", "a b", "a\"b", String(repeating: "a", count: 64)] {
            #expect(!PostgresStoreConfiguration.isIdentifier(bad), "\(bad)")
        }
    }

    /// Opening the store again runs no migration twice; a store migrated by a newer Airlock
    /// is refused, not written to.
    @Test func migrationsRunOnceAndNewerSchemasAreRefused() throws {
        let (store, _) = try StoreDriver.postgres.make()
        guard let postgres = store as? PostgresProposalStore else { return }
        let url = try #require(ProcessInfo.processInfo.environment["AIRLOCK_TEST_POSTGRES"])
        let configuration = try PostgresStoreConfiguration(parsing: url)
        _ = try PostgresProposalStore(configuration, schema: postgres.schema)
        #expect(try postgres.migrationsApplied() == Array(1...PostgresProposalStore.schemaVersion))
        try postgres.recordFutureMigration(PostgresProposalStore.schemaVersion + 1)
        #expect(throws: AirlockError.self) { try PostgresProposalStore(configuration, schema: postgres.schema) }
    }
}

/// What only the tests ask of the PostgreSQL driver (kept out of the product).
extension PostgresProposalStore {
    /// Whether this store's connection is encrypted (PostgreSQL's own view: pg_stat_ssl).
    func connectionUsesTLS() throws(AirlockError) -> Bool {
        try locked { () throws(AirlockError) in
            try run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").rows.first.flatMap { try? $0.decode(Bool.self) } ?? false
        }
    }

    /// The migrations recorded in this schema.
    func migrationsApplied() throws(AirlockError) -> [Int64] {
        try locked { () throws(AirlockError) in
            try run("SELECT version FROM schema_migrations ORDER BY version").rows.compactMap { try? $0.decode(Int64.self) }
        }
    }

    /// Flips the first byte of every blob's first chunk, as a hand in the database would.
    func changeFirstChunk() throws(AirlockError) {
        _ = try locked { () throws(AirlockError) in
            try run("UPDATE blob_chunks SET bytes = overlay(bytes placing '\\xff'::bytea from 1 for 1) WHERE n = 0")
        }
    }

    /// Records a migration this build does not know, as a newer Airlock would have.
    func recordFutureMigration(_ version: Int64) throws(AirlockError) {
        _ = try transaction { () throws(AirlockError) in
            try run("INSERT INTO schema_migrations VALUES ($1, $2)", [.integer(version), .text(Clock.now())])
        }
    }
}
