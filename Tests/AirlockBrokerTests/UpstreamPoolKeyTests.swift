@testable import AirlockBroker
import AirlockPolicy
import NIOSSL
import Testing

/// Which forwarded requests may share a kept upstream connection (docs/design.md §4.5): only
/// those of one endpoint, TLS context and credential identity, and only with framing that
/// ends the request exactly where the server will read its end. The behaviour through a real
/// session is in AirlockSandboxTests' UpstreamPoolTests.
@Suite struct UpstreamPoolKeyTests {
    static func request(identity: String? = "aws AKIDEXAMPLE", headers: [(String, String)] = [], body: [UInt8] = [],
                        host: String = "sqs.us-east-1.amazonaws.com", trust: NIOSSLContext? = nil, serverName: String? = nil) -> OutboundRequest {
        var request = OutboundRequest(scheme: "https", host: host, port: 443, method: "POST", target: "/",
                                      headers: headers.map { (name: $0.0, value: $0.1) }, body: body, trust: trust, serverName: serverName)
        request.identity = identity
        return request
    }

    @Test func poolableOnlyWithAnIdentityAndExactFraming() {
        let body: [UInt8] = Array("Action=ListQueues".utf8)
        let rows: [(String, OutboundRequest, Bool)] = [
            ("no body, no length", Self.request(), true),
            ("a body and its exact length", Self.request(headers: [("Content-Length", "17")], body: body), true),
            ("no identity", Self.request(identity: nil), false),
            ("an empty identity", Self.request(identity: ""), false),
            ("a body without a length", Self.request(body: body), false),
            ("a length that is not the body's", Self.request(headers: [("Content-Length", "16")], body: body), false),
            ("two lengths", Self.request(headers: [("Content-Length", "17"), ("content-length", "17")], body: body), false),
            ("a length with a sign", Self.request(headers: [("Content-Length", "+17")], body: body), false),
            ("chunked", Self.request(headers: [("Transfer-Encoding", "chunked"), ("Content-Length", "17")], body: body), false),
            ("Connection: close", Self.request(headers: [("Connection", "close")]), false),
            ("an upgrade", Self.request(headers: [("Upgrade", "websocket")]), false),
            ("Expect: 100-continue", Self.request(headers: [("Expect", "100-continue"), ("Content-Length", "17")], body: body), false),
        ]
        for (name, request, poolable) in rows {
            #expect((UpstreamPool.key(for: request) != nil) == poolable, "\(name)")
        }
    }

    @Test func keysDifferByIdentityTrustAndEndpoint() throws {
        let first = try NIOSSLContext(configuration: .makeClientConfiguration())
        let second = try NIOSSLContext(configuration: .makeClientConfiguration())
        let base = UpstreamPool.key(for: Self.request(identity: "kubernetes alice 1", trust: first))
        #expect(base != nil)
        #expect(base == UpstreamPool.key(for: Self.request(identity: "kubernetes alice 1", trust: first)))
        // Another user, another TLS context (another client certificate), another host or
        // server name: never the same connection.
        #expect(base != UpstreamPool.key(for: Self.request(identity: "kubernetes bob 1", trust: first)))
        #expect(base != UpstreamPool.key(for: Self.request(identity: "kubernetes alice 1", trust: second)))
        #expect(base != UpstreamPool.key(for: Self.request(identity: "kubernetes alice 1", trust: nil)))
        #expect(base != UpstreamPool.key(for: Self.request(identity: "kubernetes alice 1", host: "10.0.0.1", trust: first)))
        #expect(base != UpstreamPool.key(for: Self.request(identity: "kubernetes alice 1", trust: first, serverName: "kube.test")))
    }

    /// The identities the gateways give: the AWS signing key; the Kubernetes context's
    /// resolution and token; the GitHub token. A token change is a new identity.
    @Test func gatewaysNameTheCredential() {
        let pinned = GitHubPinnedRequest(host: "api.github.com", method: "GET", path: "/repos/o/r", query: "", headers: [], body: [])
        let alice = pinned.outbound(connectHost: "api.github.com", trust: nil, authorization: "token a")
        let bob = pinned.outbound(connectHost: "api.github.com", trust: nil, authorization: "token b")
        let anonymous = pinned.outbound(connectHost: "api.github.com", trust: nil, authorization: nil)
        #expect(alice.identity != nil && alice.identity != bob.identity && alice.identity != anonymous.identity)
        #expect(alice.identity == pinned.outbound(connectHost: "api.github.com", trust: nil, authorization: "token a").identity)
        #expect(!(alice.identity ?? "").contains("token a"), "the identity holds a digest, not the token")
    }
}
