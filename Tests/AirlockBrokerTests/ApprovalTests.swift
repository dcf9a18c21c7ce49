import AirlockCore
import AirlockExecution
import AirlockPolicy
import Foundation
import Synchronization
import Testing

@testable import AirlockBroker
@testable import AirlockStore
@testable import AirlockStorePostgres

/// The one approve path (Approval, docs/architecture.md "Approving and executing") on every
/// store driver, as a table: each case ends the same way on memory, SQLite and PostgreSQL, and
/// nothing is sent when a check refuses. The runner stands in for an upstream and counts sends.
@Suite struct ApprovalTests {
    final class CountingRunner: PayloadRunner, @unchecked Sendable {
        let sends = Mutex(0)
        /// Run before the send check (a test steals the lease here).
        let before: (@Sendable (Proposal) -> Void)?
        /// What the target's re-read finds changed (the drift cases).
        let drifted: [String]
        init(before: (@Sendable (Proposal) -> Void)? = nil, drifted: [String] = []) {
            self.before = before
            self.drifted = drifted
        }

        func drift(_ payload: ProposalPayload, of proposal: Proposal, shown: JSON?) -> PreviewDriftFound? {
            drifted.isEmpty ? nil : PreviewDriftFound(preview: .object([("type", .string("aws-effect")), ("drift", .array(drifted.map(JSON.string)))]),
                                                      changes: drifted)
        }

        func run(_ payload: ProposalPayload, of proposal: Proposal, send: SendCheck) throws(RunFailure) -> ExecutionResult {
            before?(proposal)
            try send.check()
            sends.withLock { $0 += 1 }
            return ExecutionResult(httpStatus: 200, output: Array("ok".utf8))
        }
    }

    enum Case: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case approved, frozen, revokedSession, rowRewritten, leaseLost, twiceAtOnce
        /// Approved by someone else moments ago, not yet claimed: their execution is starting.
        case approvedMomentsAgo
        /// Approved long ago and never claimed (the approver died first): approving runs it.
        case approvalAbandoned
        /// Pending past the gate's deadline: expired, not approved, even before a sweep.
        case pastItsDeadline
        /// The target changed since its preview: not approved, the new preview stored.
        case driftedTarget
        /// Approved long ago, never claimed, and the target changed since: not run.
        case abandonedAndDrifted
        var testDescription: String { rawValue }
    }

    static let payload = ProposalPayload.aws(PinnedRequest(json: .object([
        ("type", .string("aws-request")), ("service", .string("sqs")), ("signing_name", .string("sqs")), ("region", .string("us-east-1")),
        ("operation", .string("CreateQueue")), ("method", .string("POST")), ("path", .string("/")), ("query", .string("")),
        ("headers", .array([])), ("body_base64", .string(Base64.encode(Array("{}".utf8)))),
    ]))!)

    /// What each case must end with, whatever the driver: the code refused with (nil: not
    /// refused), the proposal's state after, and how many sends reached the "upstream".
    static func expected(_ row: Case) -> (code: AirlockError.Code?, state: ProposalState, sends: Int) {
        switch row {
        case .approved: return (nil, .succeeded, 1)
        case .frozen: return (.frozen, .pending, 0)
        case .revokedSession: return (.sessionRevoked, .pending, 0)
        case .rowRewritten: return (.tampered, .pending, 0)
        case .leaseLost: return (nil, .unknown, 0)
        case .twiceAtOnce: return (.conflict, .succeeded, 1)
        case .approvedMomentsAgo: return (.conflict, .approved, 0)
        case .approvalAbandoned: return (nil, .succeeded, 1)
        case .pastItsDeadline: return (.conflict, .expired, 0)
        case .driftedTarget: return (.conflict, .pending, 0)
        case .abandonedAndDrifted: return (.conflict, .approved, 0)
        }
    }

    @Test(arguments: StoreDriver.allCases, Case.allCases)
    func everyCheckOnEveryStore(_ driver: StoreDriver, _ row: Case) throws {
        let (store, other) = try driver.make()
        try store.recordSession(Session(id: "s-1", startedAt: Clock.now(), user: "user:dev", workspace: "/w", profiles: "",
                                        awsUpstream: "aws", awsAccessKeyID: "AKIDDUMMYSESSIONKEY"))
        var proposal = try store.propose(ProposalDraft(sessionID: "s-1", kind: .api, summary: "sqs:CreateQueue", ruling: Ruling(.mutation, "w"),
                                                       payload: Self.payload.bytes, upstream: "aws"))
        let lease = ExecutionLease(owner: "replica-a", seconds: 30)
        var steal: (@Sendable (Proposal) -> Void)?
        if row == .leaseLost {
            // Another replica's recovery found this lease lapsed and marked the proposal unknown.
            steal = { claimed in _ = try? other.loseLapsedExecution(claimed.id, before: Int64.max, note: "lapsed") }
        }
        let runner = CountingRunner(before: steal, drifted: [.driftedTarget, .abandonedAndDrifted].contains(row) ? ["added: AWS::SQS::Queue q2"] : [])
        var approval = Approval(store: store, executor: Executor(store: store, lease: lease, runners: Runners(aws: runner)))
        let later = Clock.epochMilliseconds() + Int64(Approval.abandonedAfterSeconds * 1000) + 60_000
        switch row {
        case .approvedMomentsAgo: try other.apply(.approve, to: proposal.id, actor: "user:bob", note: "ship it")
        case .approvalAbandoned, .abandonedAndDrifted:
            try other.apply(.approve, to: proposal.id, actor: "user:bob", note: "ship it")
            approval.now = { later }
        case .pastItsDeadline:
            approval.deadlines = ProposalDeadlines(pending: 60)
            approval.now = { later }
        case .frozen: try other.setControl(GateControl.freeze, on: true, by: "user:ops", reason: "incident")
        case .revokedSession: try other.setControl(GateControl.session("s-1"), on: true, by: "user:ops", reason: "looping")
        case .rowRewritten:
            guard driver != .memory else { return }  // an in-memory store has no rows to rewrite underneath
            try driver.rewritePayload(of: proposal.id, in: other, to: Array("{\"type\":\"aws-request\"}".utf8))
        default: break
        }
        var codes: [AirlockError.Code?] = []
        let id = proposal.id
        if row == .twiceAtOnce {
            let approval = approval
            let results = Mutex<[AirlockError.Code?]>([])
            DispatchQueue.concurrentPerform(iterations: 2) { _ in
                do throws(AirlockError) {
                    _ = try approval.approve(id, by: "user:alice", note: nil)
                    results.withLock { $0.append(AirlockError.Code?.none) }
                } catch {
                    results.withLock { $0.append(error.code) }
                }
            }
            codes = results.withLock { $0 }
            #expect(codes.filter { $0 == nil }.count == 1, "one of two approvals at once went through: \(codes)")
        } else {
            do throws(AirlockError) {
                _ = try approval.approve(proposal.id, by: "user:alice", note: "still wanted")
                codes = [AirlockError.Code?.none]
            } catch {
                codes = [error.code]
            }
        }
        let want = Self.expected(row)
        #expect(codes.contains(want.code), "\(driver) \(row): \(codes)")
        proposal = try #require(try store.proposal(id: proposal.id))
        #expect(proposal.state == want.state, "\(driver) \(row): \(proposal.state)")
        #expect(runner.sends.withLock { $0 } == want.sends, "\(driver) \(row): sent \(runner.sends.withLock { $0 }) times")
        if row == .driftedTarget || row == .abandonedAndDrifted {
            // The drift is kept where the approver reads next.
            #expect(try store.preview(of: proposal)?["drift"]?.stringArray == ["added: AWS::SQS::Queue q2"], "\(driver) \(row)")
        }
        if row == .approvalAbandoned {
            // Who ran it, and why, is in the log: the claim names the second approver and their note.
            let claim = try store.auditEntries().last { $0.proposalID == proposal.id && $0.event == "executing" }
            #expect(claim?.actor == "user:alice" && claim?.detail.contains("approved again by user:alice") == true
                    && claim?.detail.contains("still wanted") == true, "\(driver): \(String(describing: claim))")
        }
    }
}

extension StoreDriver {
    /// Rewrites a proposal's payload and its digest together in the database, as someone with
    /// write access to it could (the row no longer matches its `proposed` audit entry).
    func rewritePayload(of id: String, in store: any ProposalStore, to payload: [UInt8]) throws {
        let digest = SigV4.hexSHA256(payload)
        switch self {
        case .memory: break
        case .sqlite:
            let sqlite = try #require(store as? SQLiteProposalStore)
            try sqlite.db.prepare("UPDATE proposals SET payload = ?, digest = ? WHERE id = ?").run([.blob(payload), .text(digest), .text(id)])
        case .postgres:
            let postgres = try #require(store as? PostgresProposalStore)
            try postgres.locked { () throws(AirlockError) in
                _ = try postgres.run("UPDATE proposals SET payload = $1, digest = $2 WHERE id = $3", [.bytes(payload), .text(digest), .text(id)])
            }
        }
    }
}
