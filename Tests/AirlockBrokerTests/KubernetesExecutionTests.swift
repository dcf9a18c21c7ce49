import AirlockCore
import AirlockPolicy
import AirlockStore
import Foundation
import Testing

@testable import AirlockBroker

/// What an approval of a Kubernetes or GitHub proposal may send, and where: the agent (or
/// anyone who can edit the approver's files) must not redirect it between proposal and
/// approval. Nothing here reaches a network: each refusal comes before a request is built.
@Suite struct KubernetesExecutionTests {
    static func executor(_ store: InMemoryProposalStore) throws -> Executor {
        Executor(store: store, runners: Runners())
    }

    static func approved(_ store: InMemoryProposalStore, payload: JSON, upstream: String) throws -> String {
        try store.recordSession(Session(id: "s-1", startedAt: Clock.now(), user: "user:person", workspace: "/w", profiles: "",
                                        awsUpstream: "aws", awsAccessKeyID: "AKIDDUMMYSESSIONKEY"))
        let proposal = try store.propose(ProposalDraft(sessionID: "s-1", kind: .api, summary: "kubernetes:delete", ruling: Ruling(.mutation, "test"),
                                                       payload: Array(payload.serialized().utf8), upstream: upstream))
        _ = try store.apply(.approve, to: proposal.id, actor: "user:alice")
        return proposal.id
    }

    static let pinned = KubernetesPinnedRequest(context: "prod", server: "https://10.0.0.1:6443", method: "DELETE",
                                                path: "/apis/apps/v1/namespaces/default/deployments/prod", query: "", headers: [], body: [])

    static func clusters(server: String) throws -> KubernetesClusters {
        let config = try Kubeconfig.parse("""
            clusters:
            - name: c
              cluster: {server: "\(server)"}
            users:
            - name: u
              user: {token: t}
            contexts:
            - name: prod
              context: {cluster: c, user: u}
            """, base: "/")
        return KubernetesClusters(config: config, sources: [], environment: [:])
    }

    /// A delete is sent with the previewed object's version as preconditions: stricter than
    /// pinned, never wider (docs/previews.md).
    @Test func aDeleteCarriesThePreviewedVersionAsPreconditions() throws {
        let preview = JSON.object([("live_resource_version", .string("41")), ("live_uid", .string("u-1"))])
        let bare = KubernetesRunner.preconditioned(Self.pinned, preview: preview)
        let options = try JSON.parse(bytes: bare.body)
        #expect(options["preconditions"]?["resourceVersion"]?.string == "41" && options["preconditions"]?["uid"]?.string == "u-1")
        let type = bare.headers.first(where: { $0.name.lowercased() == "content-type" })?.value
        #expect(type == "application/json")
        var withOptions = Self.pinned
        withOptions.body = Array(#"{"propagationPolicy":"Foreground"}"#.utf8)
        let kept = try JSON.parse(bytes: KubernetesRunner.preconditioned(withOptions, preview: preview).body)
        #expect(kept["propagationPolicy"]?.string == "Foreground" && kept["preconditions"]?["resourceVersion"]?.string == "41")
        // Its own preconditions, no preview, not a delete of one object, unreadable options: as pinned.
        var own = Self.pinned
        own.body = Array(#"{"preconditions":{"uid":"x"}}"#.utf8)
        #expect(KubernetesRunner.preconditioned(own, preview: preview).body == own.body)
        #expect(KubernetesRunner.preconditioned(Self.pinned, preview: nil).body.isEmpty)
        var collection = Self.pinned
        collection.path = "/apis/apps/v1/namespaces/default/deployments"
        #expect(KubernetesRunner.preconditioned(collection, preview: preview).body.isEmpty)
        // Options in the query would be ignored once a body is sent: as pinned.
        var queried = Self.pinned
        queried.query = "propagationPolicy=Orphan"
        #expect(KubernetesRunner.preconditioned(queried, preview: preview).body.isEmpty)
        var garbled = Self.pinned
        garbled.body = Array("not json".utf8)
        #expect(KubernetesRunner.preconditioned(garbled, preview: preview).body == garbled.body)
    }

    @Test func aContextThatNowNamesAnotherServerIsNotSentTo() throws {
        let store = InMemoryProposalStore()
        let id = try Self.approved(store, payload: Self.pinned.json, upstream: Self.pinned.server)
        var executor = try Self.executor(store)
        executor.runners.kubernetes = KubernetesRunner(clusters: try Self.clusters(server: "https://evil.example:6443"))
        let outcome = try executor.execute(id, actor: "user:alice")
        #expect(outcome.state == .failed)
        #expect(outcome.result?.error?.contains("now names the server https://evil.example:6443") == true, "\(String(describing: outcome.result))")
    }

    @Test func aPayloadWhoseServerIsNotTheProposalsUpstreamIsNotSent() throws {
        // The row's upstream is what the human was shown; a payload naming another server
        // (a store edited underneath, digest recomputed) is refused.
        let store = InMemoryProposalStore()
        let id = try Self.approved(store, payload: Self.pinned.json, upstream: "https://10.9.9.9:6443")
        var executor = try Self.executor(store)
        executor.runners.kubernetes = KubernetesRunner(clusters: try Self.clusters(server: Self.pinned.server))
        let outcome = try executor.execute(id, actor: "user:alice")
        #expect(outcome.state == .failed && outcome.result?.error?.contains("not sent") == true, "\(String(describing: outcome.result))")
    }

    @Test func withoutAKubeconfigNothingIsSent() throws {
        let store = InMemoryProposalStore()
        let id = try Self.approved(store, payload: Self.pinned.json, upstream: Self.pinned.server)
        let outcome = try Self.executor(store).execute(id, actor: "user:alice")
        #expect(outcome.state == .failed && outcome.result?.error?.contains("no kubeconfig here") == true, "\(String(describing: outcome.result))")
    }

    @Test func aGitHubPayloadForAnotherHostThanItsUpstreamIsNotSent() throws {
        let store = InMemoryProposalStore()
        let request = GitHubPinnedRequest(host: "evil.example", method: "POST", path: "/repos/o/r/issues", query: "", headers: [], body: [])
        let id = try Self.approved(store, payload: request.json, upstream: "https://api.github.com")
        var executor = try Self.executor(store)
        executor.runners.github = GitHubRunner(credentials: GitHubCredentials(environment: ["GH_TOKEN": "t", "PATH": "/nonexistent"]))
        let outcome = try executor.execute(id, actor: "user:alice")
        #expect(outcome.state == .failed && outcome.result?.error?.contains("not the proposal's upstream") == true, "\(String(describing: outcome.result))")
    }
}
