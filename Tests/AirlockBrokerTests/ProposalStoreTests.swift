import AirlockCore
import AirlockPolicy
import Foundation
import Testing

@testable import AirlockStore

@Suite struct ProposalStoreTests {
    func makeStore() throws -> (ProposalStore, String) {
        let dir = NSTemporaryDirectory() + "airlock-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (try ProposalStore(stateDir: dir), dir)
    }

    func draft(_ summary: String = "ec2:TerminateInstances") -> ProposalDraft {
        ProposalDraft(sessionID: "s1", kind: .api, summary: summary,
                      ruling: Ruling(.mutation, "IAM access level Write (ec2:TerminateInstances)"),
                      payload: Array("{\"method\":\"POST\"}".utf8), upstream: "http://127.0.0.1:5000")
    }

    @Test func lifecycleToSuccess() throws {
        let (store, _) = try makeStore()
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

    @Test func deniedIsFinal() throws {
        let (store, _) = try makeStore()
        let proposal = try store.propose(draft())
        try store.apply(.deny, to: proposal.id, actor: "user:bob", note: "no")
        #expect(throws: AirlockError.self) { try store.apply(.approve, to: proposal.id, actor: "user:bob") }
        #expect(throws: AirlockError.self) { try store.apply(.startExecution, to: proposal.id, actor: "user:bob") }
        #expect(try store.proposal(id: proposal.id)?.state == .denied)
    }

    /// Two processes race to execute the same approved proposal: exactly one wins.
    @Test func executionIsClaimedOnce() throws {
        let (store, dir) = try makeStore()
        let proposal = try store.propose(draft())
        try store.apply(.approve, to: proposal.id, actor: "user:alice")
        let other = try ProposalStore(stateDir: dir)  // a second connection, as another process has
        let wins = Counter()
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            let connection = index % 2 == 0 ? store : other
            if (try? connection.apply(.startExecution, to: proposal.id, actor: "x", executor: Actor.processIdentity())) != nil {
                wins.increment()
            }
        }
        #expect(wins.value == 1)
    }

    @Test func interruptedExecutionBecomesUnknownNotRerun() throws {
        let (store, _) = try makeStore()
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

    /// Hand edits of the store's decision rows or of the log itself are detected.
    @Test(arguments: [
        ("UPDATE proposals SET state = 'approved' WHERE state = 'pending'", "is approved in the store but pending"),
        ("UPDATE proposals SET decided_by = 'user:mallory' WHERE state = 'denied'", "decided by user:mallory"),
        ("UPDATE proposals SET payload = X'7B7D'", "payload or digest differs"),
        ("UPDATE audit SET detail = replace(detail, 'no', 'yes') WHERE event = 'denied'", "was altered"),
        ("DELETE FROM audit WHERE seq = 2", "missing"),
        ("UPDATE audit SET seq = seq + 100 WHERE seq = 3", "missing"),
        ("DELETE FROM proposals WHERE state = 'denied'", "removed from the store"),
        ("INSERT INTO proposals SELECT 'ffffffff', session_id, kind, state, summary, decision, rule, created_at, updated_at, digest, payload, upstream, decided_by, decision_note, executor, result FROM proposals LIMIT 1", "not in the audit log"),
    ])
    func tamperingIsDetected(sql: String, expected: String) throws {
        let (store, _) = try makeStore()
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

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
