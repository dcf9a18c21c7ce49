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
