import AirlockCore
import AirlockPolicy
import AirlockStore
import Testing

@testable import AirlockGate

/// How a store's refusal reaches an approver or a host over HTTP: a stale view is a
/// conflict (409), an unreachable database is 503 (retry: nothing was decided), never the
/// other way round.
@Suite struct GateFailureTests {
    @Test func storeErrorsMapToWhatTheCallerShouldDo() throws {
        let store = InMemoryProposalStore()
        try store.recordSession(Session(id: "s-1", startedAt: Clock.now(), user: "host:a", workspace: "/w", profiles: "",
                                        awsUpstream: "aws", awsAccessKeyID: "AKID"))
        let proposal = try store.propose(ProposalDraft(sessionID: "s-1", kind: .api, summary: "sqs:CreateQueue",
                                                       ruling: Ruling(.mutation, "test"), payload: Array("{}".utf8), upstream: "aws"))
        _ = try store.apply(.deny, to: proposal.id, actor: "user:alice")
        // Approving a denied proposal: the lifecycle refuses it, with the conflict code.
        var refusal: AirlockError?
        do { _ = try store.apply(.approve, to: proposal.id, actor: "user:bob") } catch { refusal = error }
        let conflict = try #require(refusal)
        #expect(conflict.code == ProposalRecords.conflictCode)
        #expect(GateFailure.store(conflict).status == 409)
        #expect(GateFailure.store(AirlockError("PostgreSQL: connection reset")).status == 503)
        #expect(GateFailure.store(AirlockError("PostgreSQL: connection reset")).code == "AirlockStoreUnavailable")
        #expect(GateFailure.store(AirlockError("full", code: "AirlockProposalLimit")).status == 429)
        #expect(GateFailure.store(AirlockError("revoked", code: "AirlockSessionRevoked")).status == 409)
        #expect(GateFailure.store(AirlockError("lost", code: ProposalRecords.leaseLostCode)).status == 409)
    }
}
