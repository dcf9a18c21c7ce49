import AirlockCore
import AirlockExecution
import AirlockPolicy
import Foundation
import Testing

@testable import AirlockBroker
@testable import AirlockStore
@testable import AirlockStorePostgres

/// What the rules ask, enforced by the one approve path on every store (docs/policy.md):
/// distinct approvers counted in the audit chain, the launcher never counting on a gate,
/// approvals voided by drift, per-proposal deadlines with an injected clock, and a policy's
/// allow as the only way to run without a human. The runner stands in for an upstream.
@Suite struct PolicyApprovalTests {
    struct Fixture {
        let store: any ProposalStore
        let runner: ApprovalTests.CountingRunner
        var approval: Approval
        let id: String
        let created: Int64
    }

    func fixture(_ driver: StoreDriver, requirement: PolicyRequirement?, launcher: String? = nil, drifted: [String] = [],
                 place: ApprovalTally.Place = .local) throws -> Fixture {
        let (store, _) = try driver.make()
        try store.recordSession(Session(id: "s-1", startedAt: Clock.now(), user: "host:builder", workspace: "/w", profiles: "",
                                        awsUpstream: "aws", awsAccessKeyID: "AKIDDUMMYSESSIONKEY", launcher: launcher))
        let proposal = try store.propose(ProposalDraft(sessionID: "s-1", kind: .api, summary: "sqs:CreateQueue", ruling: Ruling(.mutation, "w"),
                                                       payload: ApprovalTests.payload.bytes, upstream: "aws", requirement: requirement))
        let runner = ApprovalTests.CountingRunner(drifted: drifted)
        var approval = Approval(store: store, executor: Executor(store: store, lease: ExecutionLease(owner: "r", seconds: 30), runners: Runners(aws: runner)))
        approval.place = place
        return Fixture(store: store, runner: runner, approval: approval, id: proposal.id,
                       created: Clock.epochMilliseconds(parsing: proposal.createdAt) ?? Clock.epochMilliseconds())
    }

    static let two = PolicyRequirement(approvals: 2, expiresAfter: 3600, policies: ["prod-destructive"], allowedBy: nil)

    func code(_ body: () throws(AirlockError) -> Proposal) -> (Proposal?, AirlockError.Code?) {
        do throws(AirlockError) { return (try body(), nil) } catch { return (nil, error.code) }
    }

    @Test(arguments: StoreDriver.allCases)
    func twoDistinctApproversAreCounted(_ driver: StoreDriver) throws {
        let f = try fixture(driver, requirement: Self.two)
        #expect(try f.store.requirement(of: f.id) == Self.two, "the requirement is what the proposed entry recorded")
        let (first, _) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:alice", note: "looks right") }
        #expect(first?.state == .pending && f.runner.sends.withLock { $0 } == 0, "one of two: nothing runs")
        #expect(try f.store.countedApprovals(f.id) == ["user:alice"])
        let (_, again) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:alice", note: nil) }
        #expect(again == .forbidden, "one person counts once")
        let (done, error) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:bob", note: "agreed") }
        #expect(error == nil && done?.state == .succeeded && f.runner.sends.withLock { $0 } == 1, "\(String(describing: error))")
        let (_, late) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:carol", note: nil) }
        #expect(late == .conflict, "decided: nothing more is counted or run")
        #expect(f.runner.sends.withLock { $0 } == 1)
        // Every approval is in the chain, and the chain still verifies.
        let entries = try f.store.auditEntries().filter { $0.proposalID == f.id }.map { "\($0.event) \($0.actor)" }
        #expect(entries == ["proposed session:s-1", "approval-counted user:alice", "approval-counted user:bob", "approved user:bob",
                            "executing user:bob", "succeeded user:bob"], "\(entries)")
        #expect(try f.store.verifyAudit().intact)
    }

    @Test(arguments: StoreDriver.allCases)
    func onAGateTheLauncherNeverCounts(_ driver: StoreDriver) throws {
        let one = PolicyRequirement(approvals: 1, expiresAfter: 86_400, policies: [], allowedBy: nil)
        let f = try fixture(driver, requirement: one, launcher: "user:carol", place: .gate)
        let (_, refused) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:carol", note: "mine") }
        #expect(refused == .forbidden && f.runner.sends.withLock { $0 } == 0)
        let stillPending = try f.store.proposal(id: f.id)?.state, countedNone = try f.store.countedApprovals(f.id)
        #expect(stillPending == .pending && countedNone.isEmpty)
        let (done, _) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:alice", note: nil) }
        #expect(done?.state == .succeeded)
        // Locally the launcher is the only human and approves.
        var local = try fixture(driver, requirement: one, launcher: "alice")
        local.approval.place = .local
        let (mine, _) = code { () throws(AirlockError) -> Proposal in try local.approval.approve(local.id, by: "alice", note: nil) }
        #expect(mine?.state == .succeeded)
    }

    @Test(arguments: StoreDriver.allCases)
    func aDriftVoidsTheApprovalsCounted(_ driver: StoreDriver) throws {
        var f = try fixture(driver, requirement: Self.two)
        _ = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:alice", note: nil) }
        #expect(try f.store.countedApprovals(f.id) == ["user:alice"])
        // The target changes before the second approver: refused, and alice's approval of the
        // old preview no longer counts.
        let drifting = ApprovalTests.CountingRunner(drifted: ["modified: AWS::SQS::Queue q (2 messages → 9)"])
        f.approval.executor = Executor(store: f.store, lease: ExecutionLease(owner: "r", seconds: 30), runners: Runners(aws: drifting))
        let (_, refused) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:bob", note: nil) }
        let countedAfterDrift = try f.store.countedApprovals(f.id)
        #expect(refused == .conflict && countedAfterDrift.isEmpty)
        f.approval.executor = Executor(store: f.store, lease: ExecutionLease(owner: "r", seconds: 30), runners: Runners(aws: f.runner))
        let (second, _) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:bob", note: "read the new preview") }
        #expect(second?.state == .pending, "bob is the first approval of the new preview")
        let (done, _) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:alice", note: "again, on the new preview") }
        #expect(done?.state == .succeeded && f.runner.sends.withLock { $0 } == 1 && drifting.sends.withLock { $0 } == 0)
        #expect(try f.store.verifyAudit().intact)
    }

    /// Expiry with an injected clock: the sweep (a gate's replicas, a local list/show/wait)
    /// and the approve path itself expire what is past its rules' @expires.
    @Test(arguments: StoreDriver.allCases)
    func pastItsDeadlineItExpires(_ driver: StoreDriver) throws {
        let f = try fixture(driver, requirement: Self.two)
        #expect(try f.store.expireOverdue(now: f.created + 3_599_000).isEmpty, "not yet")
        _ = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:alice", note: nil) }
        #expect(try f.store.expireOverdue(now: f.created + 3_601_000) == [f.id])
        #expect(try f.store.proposal(id: f.id)?.state == .expired)
        let (_, refused) = code { () throws(AirlockError) -> Proposal in try f.approval.approve(f.id, by: "user:bob", note: nil) }
        #expect(refused == .conflict && f.runner.sends.withLock { $0 } == 0, "nothing runs after its deadline")
        // Without a sweep, the approve path expires it itself.
        var g = try fixture(driver, requirement: Self.two)
        let created = g.created
        g.approval.now = { created + 3_601_000 }
        let (_, expired) = code { () throws(AirlockError) -> Proposal in try g.approval.approve(g.id, by: "user:alice", note: nil) }
        let stateAfter = try g.store.proposal(id: g.id)?.state
        #expect(expired == .conflict && stateAfter == .expired)
        // An approved proposal not run within its window expires too.
        let one = PolicyRequirement(approvals: 1, expiresAfter: 600, policies: [], allowedBy: nil)
        let h = try fixture(driver, requirement: one)
        try h.store.apply(.approve, to: h.id, actor: "user:alice", note: nil)
        #expect(try h.store.expireOverdue(now: Clock.epochMilliseconds() + 601_000) == [h.id])
        // A proposal from before rules has no deadline of its own.
        let legacy = try fixture(driver, requirement: nil)
        #expect(try legacy.store.expireOverdue(now: legacy.created + 365 * 86_400_000).isEmpty)
        #expect(try legacy.store.verifyAudit().intact && f.store.verifyAudit().intact)
    }

    @Test(arguments: StoreDriver.allCases)
    func onlyAnAllowingPolicyRunsWithoutAHuman(_ driver: StoreDriver) throws {
        let allowed = PolicyRequirement(approvals: 0, expiresAfter: 86_400, policies: ["scratch-uploads"], allowedBy: "scratch-uploads")
        let f = try fixture(driver, requirement: allowed)
        let (ran, _) = code { () throws(AirlockError) -> Proposal in try f.approval.approveByPolicy(f.id) }
        #expect(ran?.state == .succeeded && ran?.decidedBy == "policy:scratch-uploads")
        let approvedEntry = try f.store.auditEntries().first { $0.proposalID == f.id && $0.event == "approved" }
        #expect(approvedEntry?.actor == "policy:scratch-uploads" && approvedEntry?.detail.contains("allowed without a human by policy scratch-uploads") == true)
        // A proposal its rules did not allow: refused, whatever actor name is claimed.
        let g = try fixture(driver, requirement: Self.two)
        let (_, refused) = code { () throws(AirlockError) -> Proposal in try g.approval.approveByPolicy(g.id) }
        let (_, forged) = code { () throws(AirlockError) -> Proposal in try g.approval.approve(g.id, by: "policy:scratch-uploads", note: nil) }
        #expect(refused == .forbidden && forged == .forbidden && g.runner.sends.withLock { $0 } == 0)
    }
}
