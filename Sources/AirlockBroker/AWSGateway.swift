import AirlockCore
import AirlockPolicy
import AirlockStore

/// The session the broker serves: its id and the dummy keys its sandbox holds.
public struct BrokerSession: Sendable {
    public var id: String
    /// The dummy key pair written into the sandbox: verifying its signature tells the broker
    /// the request came from this session.
    public var agentCredentials: SigV4.Credentials
    public var upstream: AWSUpstream
    public var record: Session

    public init(id: String, agentCredentials: SigV4.Credentials, upstream: AWSUpstream, record: Session) {
        self.id = id
        self.agentCredentials = agentCredentials
        self.upstream = upstream
        self.record = record
    }

    /// New dummy keys for a session: they look like AWS keys and are worth nothing.
    public static func dummyCredentials() -> SigV4.Credentials {
        SigV4.Credentials(
            accessKeyID: "AIRLOCK" + RandomID.make(13, alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
            secretAccessKey: RandomID.make(40, alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    }
}

/// What the endpoint does with a request.
public enum GatewayReply: Sendable {
    case respond(status: Int, headers: [(String, String)], body: [UInt8])
    case forward(OutboundRequest)

    /// The upstream's own answer to a proposal a policy ran without a human (docs/policy.md),
    /// so the agent does not retry what already happened; nil while it waits for people.
    static func executed(_ proposal: Proposal, extraHeaders: [(String, String)] = []) -> GatewayReply? {
        guard proposal.state.isFinal, let result = proposal.result, let status = result.httpStatus else { return nil }
        var headers: [(String, String)] = [("x-airlock-proposal", proposal.id)] + extraHeaders
        if let type = result.contentType { headers.append(("content-type", type)) }
        headers += result.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return .respond(status: status, headers: headers, body: result.output)
    }
}

/// The broker's AWS decision path (docs/design.md §4.2): verify the agent's signature, identify and
/// classify the operation, then forward a read (re-signed with the host's credentials),
/// store a proposal for a mutation or sensitive read, or refuse a denied one. Blocking (it
/// reads the catalog and writes the store): the server calls it off its event loop.
public final class AWSGateway: @unchecked Sendable {
    /// What a mutation or sensitive read from this session becomes.
    public enum MutationPolicy: Sendable, Equatable {
        /// A proposal (an agent's session).
        case propose
        /// Refused (preparing a proposal: a plan only reads).
        case refuse(String)
        /// Sent, with the execution credentials, and audited under the approved command
        /// proposal this session executes. Only that session's keys get this.
        case execute(proposalID: String)
    }

    public let session: BrokerSession
    let mutationPolicy: MutationPolicy
    let catalog: AWSCatalogFiles
    let store: any ProposalIntake
    let credentials: HostCredentials
    let staging: StagedMultipart
    let log: BrokerLog
    let discovery = AWSEndpointDiscovery()
    /// Effect previews at proposal time (docs/previews.md): off with a team gate, whose
    /// previews are its own (a host's facts are the host's word).
    let previews: Bool
    let previewCache = AWSPreviewCache()
    /// The accounts the session's profiles name as production (labels, docs/previews.md).
    let productionAccounts: Set<String>

    public init(session: BrokerSession, catalog: AWSCatalogFiles, store: any ProposalIntake,
                credentials: HostCredentials, stagingDirectory: String, log: BrokerLog, mutationPolicy: MutationPolicy = .propose,
                environment: [String: String] = [:], previews: Bool = true, productionAccounts: Set<String> = []) {
        self.previews = previews
        self.productionAccounts = productionAccounts
        self.session = session
        self.mutationPolicy = mutationPolicy
        self.catalog = catalog
        self.store = store
        self.credentials = credentials
        self.staging = StagedMultipart(directory: stagingDirectory, quota: StagedMultipart.Quota(environment: environment))
        self.log = log
    }

    static let servicePrefix = "/svc/"

    /// `host`: the AWS host name the request reached through the egress proxy (TLS
    /// terminated by the broker), nil for the broker's own AWS endpoint.
    public func handle(_ request: AWSRequest, host: String? = nil) -> GatewayReply {
        let requestID = RandomID.make(16)
        do {
            return try decide(request, requestID: requestID, host: host)
        } catch let failure as GatewayFailure {
            log.write("aws \(request.method) \(request.path): \(failure.error.code): \(failure.error.message)")
            let wire = failure.wire ?? AWSProtocol.guess(contentType: request.header("content-type"), target: request.header("x-amz-target"), body: request.body)
            return render(failure.error, wire: wire, requestID: requestID)
        } catch let error as AirlockError {
            // A problem on the broker's side (no host credentials, an unreadable catalog):
            // a 4xx so SDKs do not retry it, with the fix for whoever reads it.
            if error.code == .denied {
                // A policy forbids it (docs/policy.md): refused like a denied operation.
                log.write("aws \(request.method) \(request.path): \(error.message)")
                return render(AWSErrorResponse(status: 403, code: .denied, message: "Airlock: \(error.message)\(error.hint.map { " (\($0))" } ?? "")"),
                              wire: try? route(request).0.wireProtocol, requestID: requestID)
            }
            log.write("aws \(request.method) \(request.path): broker error: \(error)")
            return render(AWSErrorResponse(status: 400, code: error.code ?? .brokerError,
                                           message: "Airlock broker: \(error.message)\(error.hint.map { " (\($0))" } ?? "")"),
                          wire: try? route(request).0.wireProtocol, requestID: requestID)
        } catch {
            log.write("aws \(request.method) \(request.path): broker error: \(error)")
            return render(AWSErrorResponse(status: 400, code: .brokerError, message: "Airlock broker: \(error)"),
                          wire: try? route(request).0.wireProtocol, requestID: requestID)
        }
    }

    struct GatewayFailure: Error {
        var error: AWSErrorResponse
        var wire: AWSProtocol?
    }

    func render(_ error: AWSErrorResponse, wire: AWSProtocol?, requestID: String) -> GatewayReply {
        let rendered = error.render(for: wire, requestID: requestID)
        return .respond(status: error.status, headers: rendered.headers, body: rendered.body)
    }

    /// How a request reads: routed, its signature verified, refused if it has two readings or
    /// is malformed, classified and pinned. What `decide` acts on and `quickRead` asks.
    /// `quick`: nothing that can block (catalog files, the config file's region) and nothing
    /// logged: any refusal or anything not at hand throws, and the caller goes to the pool.
    struct Reading {
        var service: AWSService
        var servicePath: String
        var classification: AWSClassifier.Classification
        var pinned: PinnedRequest
        var summary: String
    }

    func reading(_ request: AWSRequest, host: String?, quick: Bool = false) throws -> Reading {
        let (service, servicePath) = try host.map { host in try route(request, host: host, warmOnly: quick) } ?? route(request, warmOnly: quick)
        let wire = service.wireProtocol
        let s3 = ["s3", "s3control"].contains(service.name)
        let classifier = try catalog.classifier(warmOnly: quick)
        func note(_ line: String) { if !quick { log.write(line) } }

        // Who signed it: this session's dummy key, checked for real.
        var signature: SigV4.Signature?
        do {
            let parsed = try SigV4.parse(request)
            guard parsed.accessKeyID == session.agentCredentials.accessKeyID else {
                throw GatewayFailure(error: AWSErrorResponse(status: 403, code: s3 ? "InvalidAccessKeyId" : "UnrecognizedClientException",
                    message: "Airlock: the access key \(parsed.accessKeyID) is not this session's; use the keys in the sandbox's environment"), wire: wire)
            }
            try SigV4.verify(request, signature: parsed, secret: session.agentCredentials.secretAccessKey,
                             uriEncodedTwice: !["s3", "s3control", "s3express"].contains(parsed.service))
            guard parsed.service == service.signingName || (service.name == "s3" && parsed.service == "s3express") else {
                throw GatewayFailure(error: AWSErrorResponse(status: 403, code: .scopeMismatch,
                    message: "Airlock: the request is signed for \(parsed.service) but sent to \(service.name)'s endpoint"), wire: wire)
            }
            signature = parsed
        } catch let failure as SigV4.Failure {
            // Only operations AWS itself serves unsigned (sts:AssumeRoleWithWebIdentity…) may be.
            let unsignedOK: Bool
            if failure == .missing, case .exact(let operation, _) = AWSOperationResolver.resolve(request, service: service, servicePath: servicePath) {
                unsignedOK = operation.authType == "none"
            } else {
                unsignedOK = false
            }
            if !unsignedOK {
                note("aws \(service.name) \(request.method) \(servicePath): refused: \(failure)")
                throw GatewayFailure(error: AWSErrorResponse.signature(failure, s3: s3), wire: wire)
            }
        }
        // Unsigned (an operation AWS serves unsigned): its region may come from the config file.
        if quick && signature == nil { throw AWSCatalogFiles.notLoaded }
        // One reading or none (docs/gate.md): refused, never resolved by picking a reading.
        if let signature, !AWSRegion.isValidName(signature.region) {
            throw ambiguous(service, servicePath, "the signing region \(signature.region) is not an AWS region name", quiet: quick)
        }
        if let ambiguity = request.ambiguity(for: service, servicePath: servicePath,
                                             decidingQueryKeys: classifier.decidingQueryKeys(for: service)) {
            throw ambiguous(service, servicePath, ambiguity, quiet: quick)
        }
        if let malformation = request.malformation(for: wire) {
            note("aws \(service.name) \(request.method) \(servicePath): refused: \(malformation)")
            throw GatewayFailure(error: AWSErrorResponse(status: 400, code: .malformedRequest,
                message: "Airlock: malformed request: \(malformation); nothing was forwarded or stored"), wire: wire)
        }
        let region = signature?.region ?? credentials.defaultRegion()
        let signingName = signature?.service ?? service.signingName

        let classification = classifier.classify(request, service: service, servicePath: servicePath)
        let summary = "\(service.name):\(classification.operation ?? "\(request.method) \(servicePath)")"
        let pinned = PinnedRequest(request: request, service: service, servicePath: servicePath, region: region,
                                   signingName: signingName, operation: classification.operation)
        return Reading(service: service, servicePath: servicePath, classification: classification, pinned: pinned, summary: summary)
    }

    /// A read decided on the event loop, or nil: anything but a plain read (a staged upload's
    /// parts, endpoint discovery, a refusal) or anything that might block (the catalog not
    /// loaded, credentials to resolve). Then the caller asks `handle` on the blocking pool,
    /// which reads the request again and alone logs and records refusals; both go through
    /// `reading`, one set of checks. (The hop to the pool and back: BENCHMARKS.md.)
    public func quickRead(_ request: AWSRequest, host: String? = nil) -> OutboundRequest? {
        // A large body (hashed to verify it) would hold the one event loop every endpoint of
        // the session shares: those go to the pool.
        guard request.body.count <= Self.quickBodyLimit, let keys = credentials.cachedCredentials(),
              let reading = try? reading(request, host: host, quick: true),
              reading.classification.ruling.decision == .read,
              !StagedMultipart.mayAnswerRead(reading.pinned),
              !(reading.classification.operation == "DescribeEndpoints" && reading.service.wireProtocol == .json) else { return nil }
        logDecision(reading)
        var outbound = reading.pinned.signed(for: upstream(for: reading.service), service: reading.service, credentials: keys)
        outbound.retrySafe = true
        return outbound
    }

    /// Bodies up to this size may be decided on the event loop (about 0.1 ms of hashing).
    static let quickBodyLimit = 64 << 10

    func logDecision(_ reading: Reading) {
        log.write("aws \(reading.summary): \(reading.classification.ruling.decision.rawValue) (\(reading.classification.ruling.rule))")
    }

    func decide(_ request: AWSRequest, requestID: String, host: String?) throws -> GatewayReply {
        let reading = try reading(request, host: host)
        let (service, classification, pinned, summary) = (reading.service, reading.classification, reading.pinned, reading.summary)
        let wire = service.wireProtocol
        logDecision(reading)

        switch classification.ruling.decision {
        case .read:
            if let staged = try staging.answerRead(pinned) { return staged }
            var outbound = pinned.signed(for: upstream(for: service), service: service, credentials: try credentials.credentials())
            outbound.retrySafe = true
            if classification.operation == "DescribeEndpoints", service.wireProtocol == .json {
                return try discoverEndpoints(outbound, service: service)
            }
            return .forward(outbound)
        case .deny:
            try store.recordRefusal(sessionID: session.id, summary: summary, rule: classification.ruling.rule)
            throw GatewayFailure(error: .denied(summary, rule: classification.ruling.rule), wire: wire)
        case .mutation, .sensitive:
            switch mutationPolicy {
            case .propose:
                break
            case .refuse(let why):
                try store.recordRefusal(sessionID: session.id, summary: summary, rule: why)
                throw GatewayFailure(error: .denied(summary, rule: why), wire: wire)
            case .execute(let proposalID):
                try store.recordExecutionCall(proposalID: proposalID, sessionID: session.id, summary: summary,
                                                        rule: classification.ruling.rule)
                log.write("aws \(summary): sent as part of approved proposal \(proposalID)")
                let outbound = pinned.signed(for: upstream(for: service), service: service, credentials: try credentials.credentials())
                return .forward(outbound)
            }
            // S3 multipart uploads are staged here and proposed as one upload at completion.
            switch try staging.handle(pinned, ruling: classification.ruling) {
            case .answered(let reply): return reply
            case .propose(let payload, let stagedSummary):
                return try propose(summary: stagedSummary, ruling: classification.ruling, payload: payload, wire: wire, requestID: requestID)
            case .notStaged:
                return try propose(summary: summary, ruling: classification.ruling, payload: ProposalPayload.aws(pinned).bytes, wire: wire,
                                   requestID: requestID, preview: previews ? effectPreview(pinned) : nil)
            }
        }
    }

    /// What `pinned` will do, read with the human's credentials before it is proposed.
    func effectPreview(_ pinned: PinnedRequest) -> JSON {
        let log = self.log
        var source = AWSPreviewSource(catalog: catalog, credentials: credentials, upstream: { [self] service in upstream(for: service) },
                                      log: { log.write($0) })
        source.productionAccounts = productionAccounts
        return source.preview(pinned, cache: previewCache)
    }

    /// Where a service's calls go: the session's upstream, or on AWS itself the host its
    /// endpoint discovery named.
    func upstream(for service: AWSService) -> AWSUpstream {
        if session.upstream == .aws, let host = discovery.host(for: service.name) {
            return .endpoint(scheme: "https", host: host, port: 443, basePath: "")
        }
        return session.upstream
    }

    /// Sends `DescribeEndpoints` and answers with the broker's own address (AWSEndpointDiscovery).
    func discoverEndpoints(_ outbound: OutboundRequest, service: AWSService) throws -> GatewayReply {
        let response = try ExecutionClient.send(outbound, timeoutSeconds: 60)
        let hopByHop: Set<String> = ["content-length", "transfer-encoding", "connection", "keep-alive"]
        let headers = response.headers.filter { !hopByHop.contains($0.name.lowercased()) }.map { ($0.name, $0.value) }
        guard response.status == 200,
              let rewritten = AWSEndpointDiscovery.rewrite(response.body, brokerAddress: AWSSandboxSetup.endpoint + Self.servicePrefix + service.name) else {
            return .respond(status: response.status, headers: headers, body: response.body)
        }
        if session.upstream == .aws, let address = rewritten.discovered, AWSEndpointDiscovery.isAWSHost(address) {
            discovery.remember(address, for: service.name)
        }
        log.write("aws \(service.name):DescribeEndpoints: \(rewritten.discovered ?? "no address") answered as the broker's address")
        return .respond(status: 200, headers: headers, body: rewritten.body)
    }

    func ambiguous(_ service: AWSService, _ servicePath: String, _ why: String, quiet: Bool = false) -> GatewayFailure {
        if !quiet { log.write("aws \(service.name) \(servicePath): refused: \(why)") }
        return GatewayFailure(error: AWSErrorResponse(status: 400, code: .ambiguousRequest,
            message: "Airlock: \(why); a request must have exactly one reading, so nothing was forwarded or stored. SDKs never send this: check what made the request"),
            wire: service.wireProtocol)
    }

    /// A stored proposal is an answer like any other (403 `AirlockProposalPending`, naming it),
    /// returned, not thrown.
    func propose(summary: String, ruling: Ruling, payload: [UInt8], wire: AWSProtocol, requestID: String,
                 preview: JSON? = nil) throws(AirlockError) -> GatewayReply {
        let proposal = try store.propose(ProposalDraft(sessionID: session.id, kind: .api, summary: summary, ruling: ruling,
                                                       payload: payload, upstream: session.upstream.description, preview: preview))
        // A policy's @airlock_allow ran it already (docs/policy.md): the agent gets AWS's own
        // answer, as if it had passed, with the proposal named in a header.
        if let executed = GatewayReply.executed(proposal, extraHeaders: [("x-amz-request-id", requestID)]) {
            log.write("proposal \(proposal.id): \(summary) was allowed by policy and executed: HTTP \(proposal.result?.httpStatus ?? 0)")
            return executed
        }
        log.write("proposal \(proposal.id): \(summary) is pending approval")
        return render(.pending(proposal), wire: wire, requestID: requestID)
    }

    /// A request to an AWS host name: the service from the signature's scope (and, where
    /// services share a signing name, the host and API version), S3's bucket from a
    /// virtual-hosted name (docs/gate.md).
    func route(_ request: AWSRequest, host: String, warmOnly: Bool = false) throws -> (AWSService, String) {
        let signature = try? SigV4.parse(request)
        var candidates: [(name: String, endpointPrefix: String, apiVersion: String)] = []
        if let signing = signature?.service {
            for entry in try catalog.index(warmOnly: warmOnly).services(signingAs: signing) {
                candidates.append((entry.name, entry.endpointPrefix, try catalog.service(entry.name, warmOnly: warmOnly)?.apiVersion ?? ""))
            }
        }
        let version = request.formParameters.first { $0.key == "Version" }?.value ?? nil
        switch AWSHostRoute.route(host: host, path: request.path, signingName: signature?.service, candidates: candidates, version: version) {
        case .refused(let why):
            throw GatewayFailure(error: AWSErrorResponse(status: 400, code: .unknownService, message: "Airlock: \(why)"), wire: nil)
        case .service(let name, let path):
            guard let service = try catalog.service(name, warmOnly: warmOnly) else {
                throw GatewayFailure(error: AWSErrorResponse(status: 400, code: .unknownService, message: "Airlock: no catalog entry for \(name)"), wire: nil)
            }
            return (service, path)
        }
    }

    /// `/svc/<name>/…` → the service and the path below it. Without the prefix (a client using
    /// `AWS_ENDPOINT_URL` alone), the signing name picks the service when only one has it.
    func route(_ request: AWSRequest, warmOnly: Bool = false) throws -> (AWSService, String) {
        if request.path.hasPrefix(Self.servicePrefix) {
            let rest = request.path.dropFirst(Self.servicePrefix.count)
            let name = String(rest.prefix { $0 != "/" })
            let below = String(rest.dropFirst(name.count))
            guard let service = try catalog.service(name, warmOnly: warmOnly) else {
                throw GatewayFailure(error: AWSErrorResponse(status: 404, code: .unknownService,
                    message: "Airlock: no AWS service is served at /svc/\(name); the sandbox's AWS_CONFIG_FILE lists every endpoint"), wire: nil)
            }
            return (service, below.isEmpty ? "/" : below)
        }
        if let signature = try? SigV4.parse(request) {
            let candidates = try catalog.index(warmOnly: warmOnly).services(signingAs: signature.service)
            if candidates.count == 1, let service = try catalog.service(candidates[0].name, warmOnly: warmOnly) {
                return (service, request.path.isEmpty ? "/" : request.path)
            }
        }
        throw GatewayFailure(error: AWSErrorResponse(status: 400, code: .unknownService,
            message: "Airlock: cannot tell which AWS service \(request.path) is for; use the per-service endpoints of the sandbox's AWS_CONFIG_FILE (/svc/<service>)"), wire: nil)
    }
}
