import AirlockCore
import AirlockPolicy
import AirlockStore

/// Sends approved AWS payloads (docs/gate.md): a pinned request re-signed with the execution
/// credentials (or, with `assumeRole`, a role assumed for this one proposal) to the upstream
/// its session recorded; a staged multipart upload replayed create, parts, complete.
public struct AWSRunner: PayloadRunner {
    public let catalog: AWSCatalogFiles
    public let credentials: HostCredentials
    /// Where staged multipart parts are kept, under their SHA-256 (the gate's store, shared
    /// by its replicas; a local session's directory).
    public let blobs: any BlobStore
    /// A role every execution assumes first (`sts:AssumeRole` with the execution credentials),
    /// its session named `airlock-<proposal id>` and its SourceIdentity the proposal id, so
    /// CloudTrail ties each change to its proposal (docs/gate.md, "Role per execution").
    public var assumeRole: String?
    /// What drift re-checks read with (a gate's `aws.preview_profile`); nil: `credentials`.
    public var previewCredentials: HostCredentials?

    public init(catalog: AWSCatalogFiles, credentials: HostCredentials, blobs: any BlobStore, assumeRole: String? = nil) {
        self.catalog = catalog
        self.credentials = credentials
        self.blobs = blobs
        self.assumeRole = assumeRole
    }

    /// A multipart upload's parts must all be held, at their sizes, before it is approved or
    /// claimed: a part missing stops it there, and the proposal stays as it was (retryable).
    public func missing(_ payload: ProposalPayload) -> String? {
        guard case .s3Multipart(let manifest) = payload else { return nil }
        for part in manifest.parts {
            let size: Int?
            do { size = try blobs.blobSize(part.blobSHA256) } catch {
                return "the gate's blob store cannot say whether part \(part.number) is held (\(error.message))"
            }
            guard let size else { return "part \(part.number) of the upload (blob \(part.blobSHA256)) is not in the blob store" }
            guard size == part.size else { return "part \(part.number) is \(size) bytes in the blob store, not the \(part.size) proposed" }
        }
        return nil
    }

    /// The preview read again with these credentials, at the proposal's upstream, compared with
    /// the one the approver read (PreviewDrift): only for a proposal whose preview listed what
    /// it touches. A re-read that fails is no drift found (the preview's own notes say so).
    public func drift(_ payload: ProposalPayload, of proposal: Proposal, shown: JSON?) -> PreviewDriftFound? {
        guard case .aws(let pinned) = payload, let before = PreviewDrift.resources(shown), !before.isEmpty,
              let upstream = try? AWSUpstream(parsing: proposal.upstream) else { return nil }
        let source = AWSPreviewSource(catalog: catalog, credentials: previewCredentials ?? credentials, upstream: { _ in upstream })
        let now = source.preview(pinned)
        guard let after = PreviewDrift.resources(now) else { return nil }
        // Nothing read back where the approver was shown resources: not known to be the same,
        // so not approved (fails closed; the new preview's notes say why).
        var changes = PreviewDrift.changes(shown: before, now: after)
        if after.isEmpty, let notes = now["notes"]?.stringArray, !notes.isEmpty {
            changes = ["the previewed resources could not be read again (\(notes.prefix(2).joined(separator: "; ")))"]
        }
        guard !changes.isEmpty else { return nil }
        guard case .object(var fields) = now else { return nil }
        fields.append(("drift", .array(changes.map(JSON.string))))
        return PreviewDriftFound(preview: .object(fields), changes: changes)
    }

    public func run(_ payload: ProposalPayload, of proposal: Proposal, send: SendCheck) throws(RunFailure) -> ExecutionResult {
        let upstream: AWSUpstream
        do { upstream = try AWSUpstream(parsing: proposal.upstream) } catch { throw .notSent(error.message) }
        var keys: SigV4.Credentials?
        switch payload {
        case .aws(let pinned):
            if let assumeRole {
                keys = try assumedKeys(assumeRole, proposalID: proposal.id, region: pinned.region, upstream: upstream, send: send)
            }
            let response = try self.send(pinned, upstream: upstream, check: send, keys: keys)
            var result = ExecutionResult(httpStatus: response.status, contentType: response.header("content-type"), output: response.body)
            result.headers = ExecutionResult.replayedHeaders(response.headers)
            return result
        case .s3Multipart(let manifest):
            if let assumeRole {
                keys = try assumedKeys(assumeRole, proposalID: proposal.id, region: manifest.create.region, upstream: upstream, send: send)
            }
            return try runMultipart(manifest, upstream: upstream, check: send, keys: keys)
        case .kubernetes, .github, .gitPush, .command:
            throw .notSent("the AWS runner does not send \(payload.type) proposals")
        }
    }

    /// `keys`: an assumed role's; nil signs with the execution credentials.
    func send(_ pinned: PinnedRequest, upstream: AWSUpstream, check: SendCheck?, keys roleKeys: SigV4.Credentials? = nil) throws(RunFailure)
        -> ExecutionClient.Response {
        try check?.check()
        let found: AWSService?
        do { found = try catalog.service(pinned.service) } catch { throw .notSent("the AWS catalog cannot be read: \(error.message)") }
        guard let service = found else { throw .notSent("the AWS catalog has no service \(pinned.service)") }
        let keys: SigV4.Credentials
        if let roleKeys {
            keys = roleKeys
        } else {
            do { keys = try credentials.credentials() } catch { throw .notSent(error.description) }
        }
        return try ExecutionClient.exchange(pinned.signed(for: upstream, service: service, credentials: keys)).answer()
    }

    /// The role's keys for one execution that is not a single API call (a command's apply on
    /// the gate), valid `seconds` (AWS allows 900 to the role's maximum session duration).
    public func assumeRole(_ role: String, proposalID: String, upstream: String, seconds: Int) throws(AirlockError) -> SigV4.Credentials {
        let parsed = try AWSUpstream(parsing: upstream)
        do {
            return try assumedKeys(role, proposalID: proposalID, region: "us-east-1", upstream: parsed, send: nil, seconds: seconds)
        } catch {
            switch error {
            case .notSent(let why), .notRun(let why), .uncertain(let why): throw AirlockError(why)
            }
        }
    }

    /// The role's temporary keys for this one execution. Nothing of the proposal is sent if
    /// the role cannot be assumed.
    func assumedKeys(_ role: String, proposalID: String, region: String, upstream: AWSUpstream, send check: SendCheck?,
                     seconds: Int = 900) throws(RunFailure) -> SigV4.Credentials {
        let body = "Action=AssumeRole&Version=2011-06-15&RoleArn=\(PercentEncoding.encode(role))&RoleSessionName=airlock-\(proposalID)"
            + "&SourceIdentity=\(proposalID)&DurationSeconds=\(seconds)"
        let pinned = JSON.object([
            ("type", .string("aws-request")), ("service", .string("sts")), ("signing_name", .string("sts")), ("region", .string(region)),
            ("operation", .string("AssumeRole")), ("method", .string("POST")), ("path", .string("/")), ("query", .string("")),
            ("headers", .array([.array([.string("Content-Type"), .string("application/x-www-form-urlencoded; charset=utf-8")])])),
            ("body_base64", .string(Base64.encode(Array(body.utf8)))),
        ])
        guard let request = PinnedRequest(json: pinned) else { throw .notSent("could not build the AssumeRole request") }
        let response: ExecutionClient.Response
        do {
            response = try send(request, upstream: upstream, check: check)
        } catch {
            // Whatever became of the AssumeRole call, nothing of the proposal was sent.
            switch error {
            case .notSent(let why), .notRun(let why), .uncertain(let why): throw .notSent("could not assume \(role): \(why)")
            }
        }
        guard response.status == 200, let key = Self.element("AccessKeyId", in: response.body),
              let secret = Self.element("SecretAccessKey", in: response.body), let token = Self.element("SessionToken", in: response.body) else {
            let reason = Self.element("Message", in: response.body) ?? "HTTP \(response.status)"
            throw .notSent("could not assume \(role): \(reason)")
        }
        return SigV4.Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token)
    }

    /// Replays a staged multipart upload: create, every part (bytes checked against their
    /// digests), complete; aborts the real upload if a step fails.
    func runMultipart(_ manifest: MultipartManifest, upstream: AWSUpstream, check: SendCheck, keys: SigV4.Credentials?) throws(RunFailure)
        -> ExecutionResult {
        // Every part must be held, at its size, before anything is sent; each is read (and
        // its digest checked) right before it is sent, so one part at a time is in memory.
        if let missing = missing(.s3Multipart(manifest)) { throw .notSent(missing) }
        let partRequests = manifest.parts.map { ($0, $0.etag) }
        let staged = manifest.stagedUploadID
        let created = try send(manifest.create, upstream: upstream, check: check, keys: keys)
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
        var body = String(decoding: manifest.complete.body, as: UTF8.self)
        for (part, stagedETag) in partRequests {
            var request = part.request
            do throws(AirlockError) {
                guard let bytes = try blobs.blob(part.blobSHA256) else { throw AirlockError("part \(part.number) (\(part.blobSHA256)) is no longer held") }
                request.body = bytes
            } catch {
                _ = try? send(abortRequest(manifest.create, uploadID: uploadID), upstream: upstream, check: nil, keys: keys)
                return ExecutionResult(httpStatus: nil, contentType: nil, output: [],
                                       error: "a staged part could not be read (\(error.message)); the upload was aborted")
            }
            let response = try send(withUploadID(request), upstream: upstream, check: check, keys: keys)
            guard response.status == 200, let etag = response.header("etag") else {
                _ = try? send(abortRequest(manifest.create, uploadID: uploadID), upstream: upstream, check: nil, keys: keys)
                return ExecutionResult(httpStatus: response.status, contentType: response.header("content-type"),
                                       output: response.body, error: "UploadPart failed; the upload was aborted")
            }
            if etag != stagedETag {
                body = body.replacingOccurrences(of: stagedETag, with: etag)
                    .replacingOccurrences(of: Self.xmlEscaped(stagedETag), with: Self.xmlEscaped(etag))
            }
        }
        var complete = withUploadID(manifest.complete)
        complete.body = Array(body.utf8)
        let finished = try send(complete, upstream: upstream, check: check, keys: keys)
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
