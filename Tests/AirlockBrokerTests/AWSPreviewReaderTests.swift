@testable import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockStore
import Glibc
import Testing

/// The preview reader's bounds (docs/previews.md): a slow upstream stops the preview at its
/// deadline, a long one at its read budget, each saying so in a note; answers are kept per
/// session, so a burst of proposals on one target reads it once.
@Suite struct AWSPreviewReaderTests {
    static let ok = ExecutionClient.Response(status: 200, headers: [], body: Array("<A><B>1</B></A>".utf8))

    @Test func aSlowUpstreamStopsAtTheDeadline() {
        let reader = AWSPreviewReader(send: .init(read: { _, _, _ in usleep(120_000); return .success(Self.ok) }), cache: AWSPreviewCache(),
                                      reads: 40, seconds: 0.3)
        var answered = 0
        for index in 0..<10 where reader.call("s", "Op", AWSRequest(method: "GET", path: "/\(index)", query: "", headers: [], body: [])) != nil {
            answered += 1
        }
        #expect(answered >= 2 && answered <= 4, "\(answered)")
        #expect(reader.notes.contains { $0.hasPrefix("stopped after 300 ms") }, "\(reader.notes)")
    }

    @Test func theReadBudgetAndTheCache() {
        let cache = AWSPreviewCache()
        let calls = Counter()
        let send = AWSPreviewReader.Send(read: { _, _, _ in calls.add(); return .success(Self.ok) })
        let reader = AWSPreviewReader(send: send, cache: cache, reads: 3)
        for index in 0..<5 { _ = reader.call("s", "Op", AWSRequest(method: "GET", path: "/\(index)", query: "", headers: [], body: [])) }
        #expect(calls.value == 3 && reader.notes.contains { $0.hasPrefix("stopped after 3 reads") }, "\(reader.notes)")
        // Another proposal's preview on the same targets: answered from the cache.
        let next = AWSPreviewReader(send: send, cache: cache, reads: 3)
        for index in 0..<3 { #expect(next.call("s", "Op", AWSRequest(method: "GET", path: "/\(index)", query: "", headers: [], body: [])) != nil) }
        #expect(calls.value == 3 && next.reads == 0)
        // An error answer is not kept (asked again, noted again); another region is another answer.
        let errors = Counter()
        let notFound = AWSPreviewReader.Send(read: { _, _, _ in errors.add(); return .success(ExecutionClient.Response(status: 404, headers: [], body: [])) })
        let errorCache = AWSPreviewCache()
        for _ in 0..<2 {
            let reader = AWSPreviewReader(send: notFound, cache: errorCache, scope: "us-east-1")
            #expect(reader.call("s3", "HeadObject", AWSRequest(method: "HEAD", path: "/b/k", query: "", headers: [], body: [])) == nil)
            #expect(reader.notes == ["s3:HeadObject: HTTP 404"])
        }
        #expect(errors.value == 2)
        let west = AWSPreviewReader(send: send, cache: cache, reads: 3, scope: "us-west-2")
        _ = west.call("s", "Op", AWSRequest(method: "GET", path: "/0", query: "", headers: [], body: []))
        #expect(calls.value == 4, "another region's answer is read, not taken from the cache")
        // A failed read is a note, not a failure of the proposal.
        let failing = AWSPreviewReader(send: .init(read: { _, _, _ in .failure(AirlockError("connection refused")) }), cache: AWSPreviewCache())
        #expect(failing.call("cloudformation", "DescribeStacks", AWSRequest(method: "POST", path: "/", query: "", headers: [], body: [])) == nil)
        #expect(failing.notes == ["cloudformation:DescribeStacks: connection refused"])
    }

    final class Counter: @unchecked Sendable {
        private var count = 0
        private var lock = pthread_mutex_t()
        init() { pthread_mutex_init(&lock, nil) }
        func add() { pthread_mutex_lock(&lock); count += 1; pthread_mutex_unlock(&lock) }
        var value: Int { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return count }
    }
}

/// Groups form only over uploads a table shows fully (docs/previews.md, "Groups"): never over
/// operations whose effect is in parameters or a preview, nor uploads carrying an ACL.
@Suite struct ProposalGroupCandidateTests {
    @Test func onlyPlainUploadsGroup() throws {
        let store = InMemoryProposalStore()
        try store.recordSession(Session(id: "s-1", startedAt: Clock.now(), user: "user:person", workspace: "/w", profiles: "",
                                        awsUpstream: "aws", awsAccessKeyID: "AKIDDUMMYSESSIONKEY"))
        func propose(_ service: String, _ operation: String, path: String, headers: [(String, String)] = [], body: String = "") throws {
            let pinned: JSON = .object([("type", .string("aws-request")), ("service", .string(service)), ("signing_name", .string(service)),
                                        ("region", .string("us-east-1")), ("operation", .string(operation)), ("method", .string("POST")),
                                        ("path", .string(path)), ("query", .string("")),
                                        ("headers", .array(headers.map { .array([.string($0.0), .string($0.1)]) })),
                                        ("body_base64", .string(Base64.encode(Array(body.utf8))))])
            _ = try store.propose(ProposalDraft(sessionID: "s-1", kind: .api, summary: "\(service):\(operation)", ruling: Ruling(.mutation, "test"),
                                                payload: Array(pinned.serialized().utf8), upstream: "aws"))
        }
        for index in 0..<3 {
            try propose("ec2", "TerminateInstances", path: "/", body: "Action=TerminateInstances&InstanceId.1=i-\(index)")
            try propose("iam", "PutRolePolicy", path: "/", body: "Action=PutRolePolicy&RoleName=r\(index)")
            try propose("s3", "PutObject", path: "/site/public\(index).html", headers: [("x-amz-acl", "public-read")], body: "x")
            try propose("s3", "PutObject", path: "/site/page\(index).html", body: "<p>\(index)</p>")
        }
        let groups = ProposalGroups.groups(ProposalGroups.candidates(try store.proposals(states: [.pending], session: nil)))
        #expect(groups.count == 1 && groups.first?.key == "s3:PutObject in site" && groups.first?.members.count == 3, "\(groups)")
        #expect(groups.first?.members.allSatisfy { $0.target.contains("/page") } == true)
    }
}

/// Previews read, and only read, whatever the agent put in its request (docs/previews.md):
/// a read the classifier calls anything else is never sent, nor one that is not the operation
/// the previewer meant; a stack name carrying `&Action=DeleteStack` stays one parameter's value.
@Suite struct AWSPreviewReadOnlyTests {
    static let catalog = try? AWSCatalogFiles(directory: Stage.repoRoot + "/profiles/aws")

    /// Nothing listens on port 9 here: a read that got past the checks fails to connect.
    static func source() throws -> AWSPreviewSource {
        AWSPreviewSource(catalog: try #require(catalog), credentials: HostCredentials(environment: ["AWS_ACCESS_KEY_ID": "AKIDDUMMYPREVIEW",
                                                                                                     "AWS_SECRET_ACCESS_KEY": "dummy"], profile: nil),
                         upstream: { _ in .endpoint(scheme: "http", host: "127.0.0.1", port: 9, basePath: "") })
    }

    @Test func anythingButTheMeantReadIsNotSent() throws {
        let source = try Self.source()
        let delete = AWSRequest(method: "DELETE", path: "/bucket/key", query: "", headers: [], body: [])
        for (operation, request) in [("DeleteObject", delete), ("HeadObject", delete),
                                     ("ListObjectsV2", AWSRequest(method: "PUT", path: "/bucket", query: "list-type=2", headers: [], body: []))] {
            guard case .failure(let error) = source.read(service: "s3", operation: operation, request: request, region: "us-east-1") else {
                Issue.record("\(operation) was sent")
                continue
            }
            #expect(error.message.hasPrefix("not read: Airlock classifies it as"), "\(operation): \(error.message)")
        }
        // A real read gets as far as the network (and fails there: nothing listens).
        let list = AWSRequest(method: "GET", path: "/bucket", query: "list-type=2", headers: [], body: [])
        guard case .failure(let error) = source.read(service: "s3", operation: "ListObjectsV2", request: list, region: "us-east-1") else { return }
        #expect(!error.message.hasPrefix("not read"), "\(error.message)")
    }

    @Test func agentValuesStayValues() throws {
        let sent = RequestLog()
        let reader = AWSPreviewReader(send: .init(read: { _, _, request in sent.add(request); return .failure(AirlockError("not sent in this test")) }),
                                      cache: AWSPreviewCache())
        let catalog = try #require(Self.catalog)
        let form = "Action=DeleteStack&Version=2010-05-15&StackName=" + PercentEncoding.encode("prod&Action=DeleteStack&StackName=other")
        let pinned = PinnedRequest(request: AWSRequest(method: "POST", path: "/", query: "",
                                                       headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(form.utf8)),
                                   service: try #require(try catalog.service("cloudformation")), servicePath: "/", region: "us-east-1",
                                   signingName: "cloudformation", operation: "DeleteStack")
        _ = AWSPreviews.preview(pinned, reader: reader, service: { (try? catalog.service($0)) ?? nil })
        #expect(!sent.requests.isEmpty)
        for request in sent.requests {
            let actions = request.formParameters.filter { $0.key == "Action" }.compactMap(\.value)
            let names = request.formParameters.filter { $0.key == "StackName" }.compactMap(\.value)
            #expect(actions.count == 1 && !actions[0].hasPrefix("Delete"), "\(actions)")
            #expect(names == ["prod&Action=DeleteStack&StackName=other"], "\(names)")
        }
    }

    final class RequestLog: @unchecked Sendable {
        private var list: [AWSRequest] = []
        private var lock = pthread_mutex_t()
        init() { pthread_mutex_init(&lock, nil) }
        func add(_ request: AWSRequest) { pthread_mutex_lock(&lock); list.append(request); pthread_mutex_unlock(&lock) }
        var requests: [AWSRequest] { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return list }
    }
}
