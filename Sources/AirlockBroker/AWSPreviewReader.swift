import AirlockCore
import AirlockPolicy
import Glibc
import Synchronization

/// The reads an effect preview makes (docs/previews.md): each built here, classified by the
/// same classifier as the agent's requests and sent only when it is a read (never a mutation,
/// never a sensitive read), signed with the human's credentials, bounded in time, size and
/// number, and logged. Answers are kept for a while per session (`AWSPreviewCache`): fifty
/// proposals on one bucket make one round of reads.
final class AWSPreviewReader {
    struct Send: Sendable {
        /// Classifies, signs and sends one read; nil and a note when it may not or did not work.
        let read: @Sendable (_ service: String, _ operation: String, _ request: AWSRequest) -> Result<ExecutionClient.Response, AirlockError>
    }

    let send: Send
    let cache: AWSPreviewCache
    let deadline: Double
    let seconds: Double
    var remaining: Int
    private(set) var notes: [String] = []
    /// Further fields of the preview record (a policy's diff).
    var extra: [(String, JSON)] = []
    private(set) var reads = 0

    static let maximumReads = 40
    static let seconds = 10.0
    static let maximumBody = 8 << 20

    /// What else decides an answer: the region (it picks the host); the upstream and the
    /// credentials are one per cache (a session's, a gate's).
    let scope: String

    init(send: Send, cache: AWSPreviewCache, reads: Int = maximumReads, seconds: Double = seconds, scope: String = "") {
        self.send = send
        self.scope = scope
        self.cache = cache
        deadline = Clock.monotonicSeconds() + seconds
        self.seconds = seconds
        remaining = reads
    }

    func note(_ text: String) {
        if !notes.contains(text) { notes.append(text) }
    }

    /// One read; nil (with a note) when refused, over budget, out of time or answered with an error.
    func call(_ service: String, _ operation: String, _ request: AWSRequest) -> ExecutionClient.Response? {
        let key = "\(scope) \(service) \(request.method) \(request.target)\n" + SigV4.hexSHA256(request.body)
        if let kept = cache.answer(key) { return kept }
        guard remaining > 0 else {
            note("stopped after \(reads) reads: the preview is incomplete")
            return nil
        }
        guard Clock.monotonicSeconds() < deadline else {
            note("stopped after \(seconds < 1 ? "\(Int(seconds * 1000)) ms" : "\(Int(seconds)) s"): the preview is incomplete")
            return nil
        }
        remaining -= 1
        reads += 1
        switch send.read(service, operation, request) {
        case .failure(let error):
            note("\(service):\(operation): \(error.message)")
            return nil
        case .success(let response):
            guard response.body.count <= Self.maximumBody else {
                note("\(service):\(operation): the answer is over \(ByteSize.human(Self.maximumBody)); not read")
                return nil
            }
            if response.status < 300 { cache.keep(key, response) }  // an error is asked again, and noted each time
            if response.status >= 300 {
                let code = (try? XMLTree.parse(response.body)).flatMap { $0.descendants("Code").first?.text }
                    ?? (try? JSON.parse(bytes: response.body))?["__type"]?.string ?? "HTTP \(response.status)"
                note("\(service):\(operation): \(code)")
                return nil
            }
            return response
        }
    }

    // The protocols' request shapes, enough for the reads previews make.

    /// Query and EC2 protocols: `Action=…&Version=…` in a form body.
    func query(_ service: AWSService, _ action: String, _ parameters: [(String, String)]) -> XMLElement? {
        let form = ([("Action", action), ("Version", service.apiVersion)] + parameters)
            .map { "\(PercentEncoding.encode($0.0, keepSlash: false))=\(PercentEncoding.encode($0.1, keepSlash: false))" }.joined(separator: "&")
        let request = AWSRequest(method: "POST", path: "/", query: "",
                                 headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], body: Array(form.utf8))
        guard let response = call(service.name, action, request) else { return nil }
        do { return try XMLTree.parse(response.body) } catch {
            note("\(service.name):\(action): \(error)")
            return nil
        }
    }

    /// JSON protocol: `X-Amz-Target: Prefix.Action` and a JSON body.
    func json(_ service: AWSService, _ action: String, _ body: JSON) -> JSON? {
        guard let prefix = service.targetPrefix else { return nil }
        let request = AWSRequest(method: "POST", path: "/", query: "",
                                 headers: [("Content-Type", "application/x-amz-json-\(service.jsonVersion ?? "1.0")"),
                                           ("X-Amz-Target", "\(prefix).\(action)")], body: Array(body.serialized().utf8))
        guard let response = call(service.name, action, request) else { return nil }
        return try? JSON.parse(bytes: response.body)
    }

    /// REST (S3): a GET or HEAD of a path and query.
    func rest(_ service: AWSService, _ operation: String, method: String = "GET", path: String, query: String = "") -> ExecutionClient.Response? {
        call(service.name, operation, AWSRequest(method: method, path: path, query: query, headers: [], body: []))
    }
}

/// Preview answers kept per session for 30 s, at most 500: a burst of proposals on one target
/// reads it once; a later proposal reads it fresh.
public final class AWSPreviewCache: Sendable {
    public init() {}
    let entries = Mutex<[String: (at: Double, response: ExecutionClient.Response)]>([:])
    static let seconds = 30.0

    func answer(_ key: String) -> ExecutionClient.Response? {
        entries.withLock { entries in
            guard let entry = entries[key], Clock.monotonicSeconds() - entry.at < Self.seconds else { return nil }
            return entry.response
        }
    }

    func keep(_ key: String, _ response: ExecutionClient.Response) {
        entries.withLock { entries in
            if entries.count >= 500 { entries = entries.filter { Clock.monotonicSeconds() - $0.value.at < Self.seconds } }
            if entries.count < 500 { entries[key] = (Clock.monotonicSeconds(), response) }
        }
    }
}

/// Where a preview's reads go and with which keys: the session's upstream and the human's
/// credentials at proposal time, the proposal's recorded upstream and the approver's
/// credentials at approval (the drift re-check).
public struct AWSPreviewSource: Sendable {
    let catalog: AWSCatalogFiles
    let credentials: HostCredentials
    let upstream: @Sendable (AWSService) -> AWSUpstream
    let log: @Sendable (String) -> Void
    /// The accounts a profile names as production (docs/previews.md).
    public var productionAccounts: Set<String> = []

    public init(catalog: AWSCatalogFiles, credentials: HostCredentials, upstream: @escaping @Sendable (AWSService) -> AWSUpstream,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.catalog = catalog
        self.credentials = credentials
        self.upstream = upstream
        self.log = log
    }

    /// The effect preview of `pinned` (AWSPreviews), its reads answered from `cache` when fresh.
    public func preview(_ pinned: PinnedRequest, cache: AWSPreviewCache = AWSPreviewCache()) -> JSON {
        let reader = AWSPreviewReader(send: .init(read: { service, operation, request in
            read(service: service, operation: operation, request: request, region: pinned.region)
        }), cache: cache, scope: pinned.region)
        let catalog = self.catalog
        let preview = AWSPreviews.preview(pinned, reader: reader, service: { name in (try? catalog.service(name)) ?? nil },
                                          productionAccounts: productionAccounts)
        log("aws preview of \(pinned.service):\(pinned.operation ?? "?"): \(reader.reads) reads")
        return preview
    }

    /// One read of a preview: sent only if Airlock's own classifier calls it a read (not a
    /// mutation, not a sensitive read) of the operation the previewer meant, signed with the
    /// human's credentials, 5 s at most.
    func read(service name: String, operation: String, request: AWSRequest, region: String) -> Result<ExecutionClient.Response, AirlockError> {
        do {
            guard let service = try catalog.service(name) else { return .failure(AirlockError("no catalog entry for \(name)")) }
            let classification = try catalog.classifier().classify(request, service: service, servicePath: request.path)
            guard classification.ruling.decision == .read, classification.operation == operation else {
                return .failure(AirlockError("not read: Airlock classifies it as \(classification.ruling.decision.rawValue) (\(classification.operation ?? "unknown operation"))"))
            }
            let pinned = PinnedRequest(request: request, service: service, servicePath: request.path, region: region,
                                       signingName: service.signingName, operation: operation)
            let outbound = pinned.signed(for: upstream(service), service: service, credentials: try credentials.credentials())
            log("aws preview read \(name):\(operation): read (\(classification.ruling.rule))")
            switch ExecutionClient.exchange(outbound, timeoutSeconds: 5) {
            case .answered(let response): return .success(response)
            case .notSent(let why), .uncertain(let why): return .failure(AirlockError(why))
            }
        } catch {
            return .failure(error)
        }
    }
}
