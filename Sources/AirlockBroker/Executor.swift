import AirlockCore
import AirlockPolicy
import AirlockStore

/// Runs an approved API proposal exactly once: claims it (approved → executing, atomically),
/// checks its digest, re-signs the pinned request with the execution credentials, sends it to
/// the upstream its session recorded, and stores the result.
public struct Executor: Sendable {
    public let store: any ProposalStore
    public let catalog: AWSCatalogFiles
    public let credentials: HostCredentials
    public let blobDirectory: String
    /// A gate replica's lease on each claim; nil for a local process (docs/gate.md, "Replicas").
    public let lease: ExecutionLease?
    /// Asked before each request leaves: a reason not to send now (the gate's freeze).
    public var holdReason: (@Sendable () -> String?)?
    /// A role every execution assumes first (`sts:AssumeRole` with the execution credentials),
    /// its session named `airlock-<proposal id>` and its SourceIdentity the proposal id, so
    /// CloudTrail ties each change to its proposal (docs/gate.md, "Role per execution").
    public var assumeRole: String?
    /// The approver's kubeconfig clusters, for Kubernetes proposals (docs/kubernetes.md).
    public var kubernetes: KubernetesClusters?
    /// The approver's GitHub credentials, for GitHub API requests and git pushes (docs/github.md).
    public var github: GitHubCredentials?

    public init(store: any ProposalStore, catalog: AWSCatalogFiles, credentials: HostCredentials, blobDirectory: String,
                lease: ExecutionLease? = nil) {
        self.store = store
        self.catalog = catalog
        self.credentials = credentials
        self.blobDirectory = blobDirectory
        self.lease = lease
    }

    enum Outcome: Error {
        /// Nothing reached the upstream.
        case notSent(String)
        /// The request may have reached the upstream; what it did is not known.
        case uncertain(String)
    }

    public func execute(_ id: String, actor: String) throws(AirlockError) -> Proposal {
        let (claimed, renewer) = try store.claimExecution(id, actor: actor, lease: lease)
        defer { renewer?.stop() }
        do {
            let result = try run(claimed, renewer: renewer)
            return try store.apply(result.succeeded ? .succeed : .fail, to: id, actor: actor, result: result)
        } catch let outcome as Outcome {
            switch outcome {
            case .notSent(let why):
                return try store.apply(.fail, to: id, actor: actor, note: why,
                                       result: ExecutionResult(output: [], error: "not sent: \(why)"))
            case .uncertain(let why):
                return try store.apply(.lose, to: id, actor: actor, note: "sent, then \(why); whether it took effect is unknown")
            }
        } catch {
            return try store.apply(.fail, to: id, actor: actor, note: "\(error)",
                                   result: ExecutionResult(output: [], error: "not sent: \(error)"))
        }
    }

    func run(_ proposal: Proposal, renewer: LeaseRenewer? = nil) throws -> ExecutionResult {
        guard SigV4.hexSHA256(proposal.payload) == proposal.digest else {
            throw Outcome.notSent("the payload does not match its digest \(proposal.digest): the store was changed")
        }
        let payload = try JSON.parse(bytes: proposal.payload)
        if payload["type"]?.string == "kubernetes-request" { return try runKubernetes(payload, proposal: proposal, renewer: renewer) }
        if payload["type"]?.string == "github-request" || payload["type"]?.string == "git-push" {
            return try runGitHub(payload, proposal: proposal, renewer: renewer)
        }
        let upstream = try AWSUpstream(parsing: proposal.upstream)
        var keys: SigV4.Credentials?
        if let assumeRole {
            let region = PinnedRequest(json: payload)?.region ?? payload["create"].flatMap(PinnedRequest.init(json:))?.region ?? "us-east-1"
            keys = try assumedKeys(assumeRole, proposalID: proposal.id, region: region, upstream: upstream, renewer: renewer)
        }
        switch payload["type"]?.string {
        case "aws-request"?:
            guard let pinned = PinnedRequest(json: payload) else { throw Outcome.notSent("the payload is not a request") }
            let response = try send(pinned, upstream: upstream, renewer: renewer, keys: keys)
            return ExecutionResult(httpStatus: response.status, contentType: response.header("content-type"), output: response.body)
        case "s3-multipart"?:
            return try runMultipart(payload, upstream: upstream, renewer: renewer, keys: keys)
        default:
            throw Outcome.notSent("proposals of this kind are not executed by the AWS executor")
        }
    }

    /// Sends an approved Kubernetes request, exactly as pinned, to the server it was made
    /// for, with the approver's credentials of that context: refused when the context now
    /// names another server (the kubeconfig changed between proposal and approval).
    func runKubernetes(_ payload: JSON, proposal: Proposal, renewer: LeaseRenewer?) throws -> ExecutionResult {
        guard let pinned = KubernetesPinnedRequest(json: payload) else { throw Outcome.notSent("the payload is not a Kubernetes request") }
        guard let kubernetes else {
            throw Outcome.notSent("no kubeconfig here to execute Kubernetes requests with (KUBECONFIG or ~/.kube/config)")
        }
        guard let context = kubernetes.context(named: pinned.context) else {
            throw Outcome.notSent("the kubeconfig here has no context \(pinned.context)")
        }
        guard context.cluster.server == pinned.server, pinned.server == proposal.upstream else {
            throw Outcome.notSent("context \(pinned.context) now names the server \(context.cluster.server), not \(pinned.server) it was proposed for")
        }
        let target: KubernetesClusters.Target
        do { target = try kubernetes.target(context) } catch { throw Outcome.notSent(error.message) }
        if let renewer, !renewer.renew() { throw Outcome.notSent("this replica's lease on the execution ran out") }
        if let reason = holdReason?() { throw Outcome.notSent(reason) }
        let response: ExecutionClient.Response
        do {
            response = try ExecutionClient.send(pinned.outbound(target))
        } catch {
            throw error.message.hasPrefix("cannot reach") && error.message.contains("connect")
                ? Outcome.notSent(error.message) : Outcome.uncertain(error.message)
        }
        return ExecutionResult(httpStatus: response.status, contentType: response.header("content-type"), output: response.body)
    }

    /// Sends an approved GitHub request or git push exactly as pinned, to the host it was made
    /// for, with the approver's credentials. A push's result is git's report: accepted only if
    /// every ref was (a ref that moved since the proposal is refused by the server).
    func runGitHub(_ payload: JSON, proposal: Proposal, renewer: LeaseRenewer?) throws -> ExecutionResult {
        guard let github else { throw Outcome.notSent("no GitHub credentials here to execute with") }
        guard let host = payload["host"]?.string, proposal.upstream == "https://\(host)" else {
            throw Outcome.notSent("the payload names no host, or not the proposal's upstream")
        }
        let pinned: GitHubPinnedRequest
        let authorization: String?
        let isPush = payload["type"]?.string == "git-push"
        if isPush {
            guard let repository = payload["repository"]?.string, let text = payload["body_base64"]?.string, let body = Base64.decode(text) else {
                throw Outcome.notSent("the push payload is incomplete")
            }
            pinned = GitHubPinnedRequest(host: host, method: "POST", path: repository + "/git-receive-pack", query: "",
                                         headers: [("Content-Type", "application/x-git-receive-pack-request"),
                                                   ("Accept", "application/x-git-receive-pack-result"), ("User-Agent", "git/airlock")],
                                         body: body)
            authorization = github.gitAuthorization(host: host, path: repository)
        } else {
            guard let request = GitHubPinnedRequest(json: payload) else { throw Outcome.notSent("the payload is not a GitHub request") }
            pinned = request
            authorization = github.apiToken(for: host).map { "token " + $0 }
        }
        guard authorization != nil else { throw Outcome.notSent("no credentials for \(host) here (gh auth login, GH_TOKEN, or a git credential helper)") }
        if let renewer, !renewer.renew() { throw Outcome.notSent("this replica's lease on the execution ran out") }
        if let reason = holdReason?() { throw Outcome.notSent(reason) }
        let response: ExecutionClient.Response
        do {
            response = try ExecutionClient.send(pinned.outbound(connectHost: github.connectHost(host), trust: github.trust(), authorization: authorization))
        } catch {
            throw error.message.hasPrefix("cannot reach") && error.message.contains("connect")
                ? Outcome.notSent(error.message) : Outcome.uncertain(error.message)
        }
        guard isPush, response.status == 200 else {
            return ExecutionResult(httpStatus: response.status, contentType: response.header("content-type"), output: response.body)
        }
        let report = GitPushInspection.readReport(response.body)
        return ExecutionResult(exitCode: report.accepted ? 0 : 1, contentType: "text/plain", output: Array(report.text.utf8),
                               error: report.accepted ? nil : "the server did not accept every ref")
    }

    /// `keys`: an assumed role's; nil signs with the execution credentials.
    func send(_ pinned: PinnedRequest, upstream: AWSUpstream, renewer: LeaseRenewer? = nil,
              keys roleKeys: SigV4.Credentials? = nil) throws -> ExecutionClient.Response {
        // A replica that lost its claim (paused past its lease, then marked `unknown` by
        // another) must not send: checked right before every request leaves.
        if let renewer, !renewer.renew() {
            throw Outcome.notSent("this replica's lease on the execution ran out")
        }
        if let reason = holdReason?() { throw Outcome.notSent(reason) }
        guard let service = try catalog.service(pinned.service) else {
            throw Outcome.notSent("the AWS catalog has no service \(pinned.service)")
        }
        let keys: SigV4.Credentials
        if let roleKeys {
            keys = roleKeys
        } else {
            do { keys = try credentials.credentials() } catch { throw Outcome.notSent(error.description) }
        }
        let outbound = pinned.signed(for: upstream, service: service, credentials: keys)
        do {
            return try ExecutionClient.send(outbound)
        } catch {
            throw error.message.hasPrefix("cannot reach") && error.message.contains("connect")
                ? Outcome.notSent(error.message) : Outcome.uncertain(error.message)
        }
    }

    /// The role's temporary keys for this one execution. Nothing of the proposal is sent if
    /// the role cannot be assumed.
    /// The role's keys for one execution that is not a single API call (a command's apply on
    /// the gate), valid `seconds` (AWS allows 900 to the role's maximum session duration).
    public func assumeRole(_ role: String, proposalID: String, upstream: String, seconds: Int) throws(AirlockError) -> SigV4.Credentials {
        do {
            return try assumedKeys(role, proposalID: proposalID, region: "us-east-1", upstream: try AWSUpstream(parsing: upstream),
                                   renewer: nil, seconds: seconds)
        } catch let error as AirlockError {
            throw error
        } catch Outcome.notSent(let why) {
            throw AirlockError(why)
        } catch {
            throw AirlockError("could not assume \(role): \(error)")
        }
    }

    func assumedKeys(_ role: String, proposalID: String, region: String, upstream: AWSUpstream,
                     renewer: LeaseRenewer?, seconds: Int = 900) throws -> SigV4.Credentials {
        let body = "Action=AssumeRole&Version=2011-06-15&RoleArn=\(PercentEncoding.encode(role))&RoleSessionName=airlock-\(proposalID)"
            + "&SourceIdentity=\(proposalID)&DurationSeconds=\(seconds)"
        let pinned = JSON.object([
            ("type", .string("aws-request")), ("service", .string("sts")), ("signing_name", .string("sts")), ("region", .string(region)),
            ("operation", .string("AssumeRole")), ("method", .string("POST")), ("path", .string("/")), ("query", .string("")),
            ("headers", .array([.array([.string("Content-Type"), .string("application/x-www-form-urlencoded; charset=utf-8")])])),
            ("body_base64", .string(Base64.encode(Array(body.utf8)))),
        ])
        guard let request = PinnedRequest(json: pinned) else { throw Outcome.notSent("could not build the AssumeRole request") }
        let response: ExecutionClient.Response
        do {
            response = try send(request, upstream: upstream, renewer: renewer)
        } catch Outcome.uncertain(let why) {
            throw Outcome.notSent("could not assume \(role): \(why)")
        }
        guard response.status == 200, let key = Self.element("AccessKeyId", in: response.body),
              let secret = Self.element("SecretAccessKey", in: response.body), let token = Self.element("SessionToken", in: response.body) else {
            let reason = Self.element("Message", in: response.body) ?? "HTTP \(response.status)"
            throw Outcome.notSent("could not assume \(role): \(reason)")
        }
        return SigV4.Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token)
    }

    /// Replays a staged multipart upload: create, every part (bytes checked against their
    /// digests), complete; aborts the real upload if a step fails.
    func runMultipart(_ manifest: JSON, upstream: AWSUpstream, renewer: LeaseRenewer?, keys: SigV4.Credentials?) throws -> ExecutionResult {
        guard let createJSON = manifest["create"], let create = PinnedRequest(json: createJSON),
            let completeJSON = manifest["complete"], var complete = PinnedRequest(json: completeJSON),
            let staged = manifest["staged_upload_id"]?.string, let parts = manifest["parts"]?.array
        else { throw Outcome.notSent("the multipart manifest is incomplete") }
        // Every part must be what was approved before anything is sent.
        var partRequests: [(PinnedRequest, String)] = []
        for part in parts {
            guard let requestJSON = part["request"], var request = PinnedRequest(json: requestJSON),
                let blob = part["blob_sha256"]?.string, let etag = part["etag"]?.string
            else { throw Outcome.notSent("a part of the manifest is incomplete") }
            do { request.body = try StagedMultipart.readBlob(directory: blobDirectory, digest: blob) } catch {
                throw Outcome.notSent(error.message)
            }
            partRequests.append((request, etag))
        }
        let created = try send(create, upstream: upstream, renewer: renewer, keys: keys)
        guard created.status == 200, let uploadID = Self.element("UploadId", in: created.body) else {
            return ExecutionResult(httpStatus: created.status, contentType: created.header("content-type"), output: created.body,
                                   error: "CreateMultipartUpload failed")
        }
        func withUploadID(_ request: PinnedRequest) -> PinnedRequest {
            var copy = request
            copy.query = request.query.replacingOccurrences(of: "uploadId=" + PercentEncoding.encode(staged),
                                                            with: "uploadId=" + PercentEncoding.encode(uploadID))
                .replacingOccurrences(of: "uploadId=" + staged, with: "uploadId=" + PercentEncoding.encode(uploadID))
            return copy
        }
        var body = String(decoding: complete.body, as: UTF8.self)
        for (request, stagedETag) in partRequests {
            let response = try send(withUploadID(request), upstream: upstream, renewer: renewer, keys: keys)
            guard response.status == 200, let etag = response.header("etag") else {
                _ = try? send(abortRequest(create, uploadID: uploadID), upstream: upstream, keys: keys)
                return ExecutionResult(httpStatus: response.status, contentType: response.header("content-type"),
                                       output: response.body, error: "UploadPart failed; the upload was aborted")
            }
            if etag != stagedETag {
                body = body.replacingOccurrences(of: stagedETag, with: etag)
                    .replacingOccurrences(of: Self.xmlEscaped(stagedETag), with: Self.xmlEscaped(etag))
            }
        }
        complete = withUploadID(complete)
        complete.body = Array(body.utf8)
        let finished = try send(complete, upstream: upstream, renewer: renewer, keys: keys)
        return ExecutionResult(httpStatus: finished.status, contentType: finished.header("content-type"), output: finished.body)
    }

    func abortRequest(_ create: PinnedRequest, uploadID: String) -> PinnedRequest {
        var abort = create
        abort.method = "DELETE"
        abort.query = "uploadId=" + PercentEncoding.encode(uploadID)
        abort.operation = "AbortMultipartUpload"
        abort.headers = create.headers.filter { ["user-agent", "x-amz-content-sha256"].contains($0.name.lowercased()) }
        abort.body = []
        return abort
    }

    static func element(_ name: String, in body: [UInt8]) -> String? {
        let text = String(decoding: body, as: UTF8.self)
        guard let open = text.range(ofText: "<\(name)>"), let close = text.range(ofText: "</\(name)>", from: open.upperBound) else { return nil }
        return String(text[open.upperBound..<close.lowerBound])
    }

    static func xmlEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\"", with: "&quot;")
    }
}

