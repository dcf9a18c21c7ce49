import AirlockCore
import AirlockPolicy
import Foundation
import Testing

@testable import AirlockBroker

/// The GitHub gateway's pure parts: GraphQL requests read strictly, the report git hears for a
/// proposed push, the report read back from a server, and the human's gh hosts.
@Suite struct GitHubGatewayTests {
    static func graphql(_ body: String, method: String = "POST") -> Decision {
        GitHubGateway.graphQLRuling(BrokerHTTPRequest(method: method, target: "/graphql", headers: [], body: Array(body.utf8))).decision
    }

    @Test(arguments: [
        (#"{"query": "query { viewer { login } }"}"#, Decision.read),
        (#"{"query": "{ viewer { login } }", "variables": {"a": 1}}"#, .read),
        (#"{"query": "query A { a } mutation B { b }", "operationName": "A"}"#, .read),
        (#"{"query": "query A { a } mutation B { b }", "operationName": "B"}"#, .mutation),
        (#"{"query": "query A { a } mutation B { b }"}"#, .mutation),
        (#"{"query": "mutation { addStar(input: {}) { clientMutationId } }"}"#, .mutation),
        (#"{"query": "query { a }", "query": "mutation { b }"}"#, .mutation),      // a key twice: no single reading
        (#"{"query": "query { a }", "operationName": 7}"#, .mutation),
        (#"[{"query": "query { a }"}]"#, .mutation),                               // a batch
        (#"{"Query": "query { a }"}"#, .mutation),
        ("query=query%20%7B%20a%20%7D", .mutation),                               // a form, not JSON
        (#"{"query": "query { a }", "operationName": null}"#, .read),
    ])
    func graphQLRequests(body: String, decision: Decision) {
        #expect(Self.graphql(body) == decision, "\(body)")
    }

    @Test func graphQLByGETIsRefused() {
        #expect(Self.graphql("", method: "GET") == .deny)
    }

    static let oid = String(repeating: "a", count: 40), next = String(repeating: "b", count: 40)

    static func push(_ capabilities: String) -> GitReceivePack {
        let line = "\(oid) \(next) refs/heads/main\u{0}\(capabilities)"
        var body = Array(String(format: "%04x", line.utf8.count + 4).utf8) + Array(line.utf8) + Array("0000".utf8)
        body += Array("PACK".utf8) + [0, 0, 0, 2, 0, 0, 0, 0]
        guard case .success(let push) = GitReceivePack.parse(body) else { fatalError("the test push does not parse") }
        #expect(push.serialized() == body, "git's own form (a leading space, no line feed) serializes back")
        return push
    }

    @Test func aProposedPushIsRejectedPerRefOverTheSideBandWhenAsked() {
        let message = "Airlock: Proposal 1234abcd is pending"
        let banded = GitPushInspection.pendingReport(Self.push(" report-status side-band-64k agent=git/2.39.5"), message: message)
        let text = String(decoding: banded, as: UTF8.self)
        #expect(text.contains("\u{2}\(message)") && text.contains("\u{1}"), "\(text)")
        let plain = GitPushInspection.pendingReport(Self.push(" report-status"), message: message)
        #expect(String(decoding: plain, as: UTF8.self) == "000eunpack ok\n" + String(format: "%04x", 4 + "ng refs/heads/main \(message)\n".utf8.count)
                + "ng refs/heads/main \(message)\n0000")
        // Read back as a server's answer: rejected, whichever framing.
        for report in [banded, plain] {
            let read = GitPushInspection.readReport(report)
            #expect(!read.accepted && read.text.contains("ng refs/heads/main"), "\(read)")
        }
        let accepted = GitPushInspection.pkt(Array("unpack ok\n".utf8)) + GitPushInspection.pkt(Array("ok refs/heads/main\n".utf8)) + Array("0000".utf8)
        #expect(GitPushInspection.readReport(accepted).accepted)
        #expect(GitPushInspection.readReport(GitPushInspection.pkt([1] + accepted) + Array("0000".utf8)).accepted)
        #expect(!GitPushInspection.readReport(GitPushInspection.pkt(Array("unpack index-pack failed\n".utf8)) + Array("0000".utf8)).accepted)
    }

    @Test func theHumansHostsAreGitHubsAndGhsHostsFile() throws {
        let directory = NSTemporaryDirectory() + "gh-hosts-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "github.com:\n    oauth_token: gho_person\n    user: person\nghe.example.com:\n    oauth_token: ghe_token\n    git_protocol: https\n"
            .write(toFile: directory + "/hosts.yml", atomically: true, encoding: .utf8)
        let environment = ["GH_CONFIG_DIR": directory, "GH_HOST": "other.example.org", "PATH": "/nonexistent"]
        #expect(GitHubCredentials.hosts(environment: environment) == ["github.com", "api.github.com", "ghe.example.com", "other.example.org"])
        let credentials = GitHubCredentials(environment: environment)
        #expect(credentials.apiToken(for: "api.github.com") == "gho_person", "api.github.com uses github.com's token")
        #expect(credentials.apiToken(for: "ghe.example.com") == "ghe_token")
        #expect(GitHubCredentials(environment: environment.merging(["GH_TOKEN": "from-env"]) { $1 }).apiToken(for: "github.com") == "from-env")
        #expect(credentials.apiToken(for: "other.example.org") == nil)
        #expect(!credentials.covers("evil.example") && credentials.covers("GHE.example.com"))
    }

    @Test func aDeleteWithOptionsIsPreviewedWithDryRunInItsBody() throws {
        let delete = KubernetesPinnedRequest(context: "c", server: "https://k", method: "DELETE", path: "/api/v1/namespaces/d/configmaps/x",
                                             query: "dryRun=All", headers: [("Content-Type", "application/json")],
                                             body: Array(#"{"propagationPolicy":"Background","dryRun":[]}"#.utf8))
        let dry = try #require(delete.dryRun())
        #expect(KubernetesClassifier.deleteOptionsAreDryRun(dry.body, contentType: "application/json"), "\(String(decoding: dry.body, as: UTF8.self))")
        #expect(String(decoding: dry.body, as: UTF8.self).contains("propagationPolicy"))
        // Options the broker cannot mark dry are never sent as a "preview".
        let yaml = KubernetesPinnedRequest(context: "c", server: "https://k", method: "DELETE", path: "/api/v1/namespaces/d/configmaps/x",
                                           query: "", headers: [], body: Array("propagationPolicy: Background".utf8))
        #expect(yaml.dryRun() == nil)
        let patch = KubernetesPinnedRequest(context: "c", server: "https://k", method: "PATCH", path: "/api/v1/namespaces/d/configmaps/x",
                                            query: "fieldManager=kubectl", headers: [], body: Array("{}".utf8))
        #expect(patch.dryRun()?.query == "fieldManager=kubectl&dryRun=All")
        // A query that already names another dry-run value is not made "dry" by adding one.
        let odd = KubernetesPinnedRequest(context: "c", server: "https://k", method: "PATCH", path: "/p", query: "dryRun=Nope", headers: [], body: [])
        #expect(odd.dryRun() == nil)
    }
}
