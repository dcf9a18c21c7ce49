import AirlockCore
import AirlockPolicy
import Testing

/// The typed payload (docs/architecture.md, "Proposals"): every kind reads back from its bytes
/// and writes the same bytes again (the digest is over them), an unknown or incomplete payload
/// is refused with a clear error, and the previews earlier releases kept inside payloads are
/// found (ProposalPayload.legacyPreview).
@Suite struct ProposalPayloadTests {
    static let aws = PinnedRequest(json: .object([
        ("type", .string("aws-request")), ("service", .string("s3")), ("signing_name", .string("s3")), ("region", .string("eu-west-1")),
        ("operation", .string("PutObject")), ("method", .string("PUT")), ("path", .string("/bucket/key")), ("query", .string("")),
        ("headers", .array([.array([.string("Content-Type"), .string("text/plain")])])), ("body_base64", .string(Base64.encode(Array("hello".utf8)))),
    ]))!

    static let payloads: [ProposalPayload] = [
        .aws(aws),
        .s3Multipart(MultipartManifest(bucket: "b", key: "k", size: 10, stagedUploadID: "airlock-staged-1", create: aws,
                                       parts: [.init(number: 1, blobSHA256: String(repeating: "a", count: 64), etag: "\"e\"", size: 10, request: aws)],
                                       complete: aws)),
        .kubernetes(KubernetesPinnedRequest(context: "prod", server: "https://kube.test:6443", method: "DELETE",
                                            path: "/apis/apps/v1/namespaces/default/deployments/web", query: "",
                                            headers: [("Accept", "application/json")], body: [])),
        .github(GitHubPinnedRequest(host: "api.github.com", method: "POST", path: "/graphql", query: "",
                                    headers: [("Content-Type", "application/json")], body: Array(#"{"query":"mutation { x }"}"#.utf8))),
        .gitPush(GitPushPayload(host: "github.com", repository: "/acme/app.git", body: [0x30, 0x30, 0x30, 0x30],
                                updates: [.init(ref: "refs/heads/main", old: String(repeating: "1", count: 40), new: String(repeating: "2", count: 40))])),
        .command(CommandPayload(tool: "terraform", binary: "/usr/local/bin/terraform", command: ["terraform", "apply"],
                                apply: ["apply", "-auto-approve", "/run/airlock/artifact/plan/plan.tfplan"], workspace: "/w", directory: "/w",
                                artifact: "a1", pins: [("snapshot", "s"), ("plan", "p")], reason: "changes infrastructure",
                                snapshotFiles: 3, snapshotBytes: 120, snapshotDigest: "d", outputs: [.init(path: "/w/terraform.tfstate", original: nil)],
                                awsEndpoint: "http://127.0.0.1:5000", mirrorPaths: ["/opt/tf-plugins"], mirrorHosts: [],
                                providers: [.init(address: "registry.terraform.io/hashicorp/aws", version: "5.0.0", hashes: ["h1:x"])],
                                notes: ["a provisioner runs"])),
    ]

    /// Intake reads pinned requests strictly (docs/gate.md, "Intake"): what a compromised host
    /// could pin to make the gate send another request line, or tell an upstream (or a proxy
    /// before it) where the request came from or was meant for, makes the payload unreadable,
    /// for every kind with a request line and for every request of a multipart upload.
    @Test(arguments: [
        ("path", "http://127.0.0.1:8080/", "origin-form"),
        ("path", "//127.0.0.1/bucket", "origin-form"),
        ("path", "bucket/key", "origin-form"),
        ("path", "/bucket/key HTTP/1.1\r\nHost: evil", "origin-form"),
        ("path", "/bucket/key?x-id=GetObject", "origin-form"),
        ("path", "/bucket/key#frag", "origin-form"),
        ("header", "Host", "Host header"),
        ("header", "X-Forwarded-Host", "X-Forwarded-Host header"),
        ("header", "x-forwarded-for", "x-forwarded-for header"),
        ("header", "Forwarded", "Forwarded header"),
        ("header", "X-Real-IP", "X-Real-IP header"),
        ("header", "Connection", "Connection header"),
        ("header", "Transfer-Encoding", "Transfer-Encoding header"),
        ("header", "Proxy-Authorization", "Proxy-Authorization header"),
        ("header", "X-Original-URL", "X-Original-URL header"),
    ])
    func intakeRefusesWhatWouldChangeTheRequestLine(_ field: String, _ value: String, _ says: String) throws {
        func bad(_ request: PinnedRequest) -> PinnedRequest {
            var request = request
            if field == "path" { request.path = value } else { request.headers.append((value, "evil.example")) }
            return request
        }
        var kubernetes = KubernetesPinnedRequest(context: "prod", server: "https://kube.test:6443", method: "DELETE", path: "/api/v1/namespaces/x",
                                                 query: "", headers: [], body: [])
        var github = GitHubPinnedRequest(host: "api.github.com", method: "POST", path: "/repos/a/b/pulls", query: "", headers: [], body: [])
        if field == "path" { kubernetes.path = value; github.path = value } else {
            kubernetes.headers.append((value, "evil.example"))
            github.headers.append((value, "evil.example"))
        }
        let hostile: [ProposalPayload] = [
            .aws(bad(Self.aws)),
            .s3Multipart(MultipartManifest(bucket: "b", key: "k", size: 10, stagedUploadID: "airlock-staged-1", create: Self.aws,
                                           parts: [.init(number: 1, blobSHA256: String(repeating: "a", count: 64), etag: "\"e\"", size: 10, request: bad(Self.aws))],
                                           complete: Self.aws)),
            .kubernetes(kubernetes), .github(github),
        ]
        for payload in hostile {
            do {
                _ = try ProposalPayload(bytes: payload.bytes)
                Issue.record("\(payload.type) with \(field) \(value) was read")
            } catch {
                #expect(error.description.contains(says), "\(payload.type): \(error.description)")
            }
        }
        // The same request without it reads.
        #expect(try ProposalPayload(bytes: ProposalPayload.aws(Self.aws).bytes) == .aws(Self.aws))
    }

    /// Pinning leaves out hop-by-hop, forwarding and signature headers an agent sent.
    @Test func pinningDropsForwardingHeaders() throws {
        let service = try AWSService(jsonText: #"{"name":"s3","signing_name":"s3","protocol":"rest-xml","operations":[]}"#)
        let request = AWSRequest(method: "PUT", path: "/bucket/key", query: "", headers: [
            ("Content-Type", "text/plain"), ("X-Forwarded-Host", "evil"), ("Forwarded", "for=1.2.3.4"), ("X-Real-IP", "1.2.3.4"),
            ("Host", "s3.amazonaws.com"), ("Authorization", "AWS4-HMAC-SHA256 x"), ("Proxy-Connection", "keep-alive"), ("X-Amz-Meta-A", "1"),
        ], body: [])
        let pinned = PinnedRequest(request: request, service: service, servicePath: "/bucket/key", region: "us-east-1", signingName: "s3", operation: "PutObject")
        #expect(pinned.headers.map(\.name) == ["Content-Type", "X-Amz-Meta-A"])
        #expect(try ProposalPayload(bytes: ProposalPayload.aws(pinned).bytes) == .aws(pinned))
    }

    @Test func everyKindRoundTripsItsBytes() throws {
        #expect(Set(Self.payloads.map(\.type)) == Set(ProposalPayload.types), "a kind has no row")
        for payload in Self.payloads {
            let bytes = payload.bytes
            let read = try ProposalPayload(bytes: bytes)
            #expect(read == payload, "\(payload.type)")
            #expect(read.bytes == bytes, "\(payload.type) does not write the bytes it was read from")
        }
    }

    @Test(arguments: [
        (#"{"type":"aws-request"}"#, "lacks a field"),
        (#"{"type":"kubernetes-request","context":"c"}"#, "lacks a field"),
        // A header pair that is not two strings is not dropped: the payload is unreadable.
        (#"{"type":"github-request","host":"api.github.com","method":"POST","path":"/x","query":"","headers":[["Accept"]],"body_base64":""}"#, "lacks a field"),
        (#"{"type":"aws-request","service":"s3","signing_name":"s3","region":"us-east-1","method":"GET","path":"/","query":"","body_base64":""}"#, "lacks a field"),
        (#"{"type":"ftp-upload","host":"x"}"#, "none this Airlock knows"),
        (#"{"service":"s3"}"#, "names no type"),
        (#"{"type":"aws-request","type":"command"}"#, "one reading"),
        (#"[1,2]"#, "names no type"),
        ("not json", "one reading"),
    ])
    func unreadablePayloadsAreRefused(_ text: String, _ says: String) {
        do {
            _ = try ProposalPayload(bytes: Array(text.utf8))
            Issue.record("\(text) was read")
        } catch {
            #expect(error.description.contains(says), "\(text): \(error.description)")
        }
    }

    @Test func previewsEarlierReleasesKeptInsideThePayloadAreFound() throws {
        // Written by fc0b570: a Kubernetes request with its dry run, a push with its log.
        let kubernetes = #"{"type":"kubernetes-request","context":"prod","server":"https://k","method":"DELETE","path":"/api/v1/namespaces/d/configmaps/c","query":"","headers":[],"body_base64":"","preview":{"dry_run_status":200,"diff":"- a"}}"#
        #expect(ProposalPayload.legacyPreview(Array(kubernetes.utf8))?["diff"]?.string == "- a")
        if case .kubernetes(let pinned) = try ProposalPayload(bytes: Array(kubernetes.utf8)) {
            #expect(pinned.context == "prod")
        } else {
            Issue.record("not read as a Kubernetes request")
        }
        let push = #"{"type":"git-push","host":"github.com","repository":"/a/b.git","body_base64":"MDAwMA==","updates":[{"ref":"refs/heads/main","old":"1","new":"2","label":"update, protected branch"}],"log":"commit x","notes":[]}"#
        let preview = ProposalPayload.legacyPreview(Array(push.utf8))
        #expect(preview?["labels"]?["refs/heads/main"]?.string == "update, protected branch" && preview?["log"]?.string == "commit x")
        let command = #"{"type":"command","preview":"Plan: 1 to add","files":{"main.tf":"x"}}"#
        #expect(ProposalPayload.legacyPreview(Array(command.utf8))?["preview"]?.string == "Plan: 1 to add")
        #expect(ProposalPayload.legacyPreview(Self.payloads[0].bytes) == nil)
    }
}
