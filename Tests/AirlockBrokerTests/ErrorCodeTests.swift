import AirlockCore
import AirlockPolicy
import AirlockStore
import Testing

@testable import AirlockGate

/// One error type, its code deciding the gate's HTTP status and the CLI's exit status, each in
/// one place (docs/architecture.md, "Errors"): a stale view is a conflict (409), an unreachable
/// database 503 (retry: nothing was decided), never the other way round.
@Suite struct ErrorCodeTests {
    @Test func aStoresRefusalsReachTheCallerAsWhatTheyShouldDo() throws {
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
        #expect(conflict.code == .conflict && conflict.httpStatus == 409 && conflict.exitStatus() == 1)
    }

    @Test(arguments: [
        (AirlockError.Code?.none, 503, 125), (.conflict, 409, 1), (.proposalLimit, 429, 1), (.sessionRevoked, 409, 1), (.leaseLost, 409, 1),
        (.frozen, 423, 1), (.tampered, 409, 1), (.noCommands, 501, 1), (.noSuchProposal, 404, 1), (.unauthenticated, 401, 1),
        (.forbidden, 403, 1), (.badRequest, 400, 1), (.tooLarge, 413, 1), (.usage, 400, 2), (.storeUnavailable, 503, 1),
        (.refused, 422, 1), (.busy, 429, 1), (.commandNotFound, 500, 127), (.commandNotExecutable, 500, 126),
    ])
    func everyCodeHasItsStatuses(_ code: AirlockError.Code?, _ http: Int, _ exit: Int32) {
        let error = AirlockError("x", code: code)
        #expect(error.httpStatus == http, "\(String(describing: code))")
        #expect(error.exitStatus() == exit, "\(String(describing: code))")
        // `airlock run` ends 125 for whatever failed before the command ran, but the shell's own.
        #expect(error.exitStatus(run: true) == (exit == 126 || exit == 127 ? exit : 125))
    }

    @Test func theWireFormKeepsTheCodeAndTheHint() {
        let error = AirlockError("frozen by alice", hint: "airlock thaw", code: .frozen)
        #expect(error.json["error"]?["code"]?.string == "AirlockFrozen")
        #expect(error.json["error"]?["message"]?.string == "frozen by alice (airlock thaw)")
        #expect(AirlockError("db down").json["error"]?["code"]?.string == "AirlockStoreUnavailable")
    }
}
