import AirlockCore
import AirlockPolicy
import AirlockStore

/// The broker's Kubernetes decision path (docs/kubernetes.md, "The endpoint"): the sandbox's
/// kubeconfig names the broker, with the session's dummy token; a request is read as the API
/// server reads it, then a read is forwarded with the human's credentials (watches stream),
/// a change or a sensitive read becomes a proposal whose preview is the server's own dry run,
/// and a refused one is answered with a Status. Blocking (it may run an exec plugin, ask the
/// server for a dry run, write the store): called off the event loop.
public final class KubernetesGateway: @unchecked Sendable {
    public let sessionID: String
    /// The token the sandbox's kubeconfig holds: worth nothing outside this broker.
    public let token: String
    public let clusters: KubernetesClusters
    let store: any ProposalIntake
    let log: BrokerLog
    let mutationPolicy: AWSGateway.MutationPolicy
    let allowed: Set<String>
    let readNamespaces: Set<String>?
    /// Resources the profile gates even to read, besides Secrets.
    let sensitive: Set<String>
    /// Whether this broker makes a change's dry run (false with a team gate, which makes its own).
    let previews: Bool

    public init(sessionID: String, token: String, clusters: KubernetesClusters, store: any ProposalIntake,
                log: BrokerLog, mutationPolicy: AWSGateway.MutationPolicy = .propose,
                allowed: Set<String> = [], readNamespaces: Set<String>? = nil, sensitive: Set<String> = [], previews: Bool = true) {
        self.previews = previews
        self.sessionID = sessionID
        self.token = token
        self.clusters = clusters
        self.store = store
        self.log = log
        self.mutationPolicy = mutationPolicy
        self.allowed = allowed
        self.readNamespaces = readNamespaces
        self.sensitive = sensitive
    }

    public static func newToken() -> String { "airlock-session-" + RandomID.make(32) }

    public typealias Request = BrokerHTTPRequest

    /// Headers a pinned change keeps: what the API server reads to decode the body and shape
    /// the answer. Everything else (the agent's Authorization, hop-by-hop, tracing) is dropped.
    public static let pinnedHeaders: Set<String> = ["content-type", "accept", "user-agent"]
    /// Headers never forwarded on a read.
    static let droppedHeaders: Set<String> = ["authorization", "host", "content-length", "connection", "keep-alive", "proxy-connection",
                                              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "expect"]

    /// Dropped, and never pinned: the set above, and every forwarding header.
    static func isDropped(_ name: String) -> Bool {
        let lower = name.lowercased()
        return droppedHeaders.contains(lower) || PinnedRequest.isNeverPinned(lower)
    }

    /// `boundContext`: the context a CONNECT to its API server's address reached (no
    /// `/contexts/N` prefix then).
    public func handle(_ request: Request, boundContext: Int? = nil) -> GatewayReply {
        do {
            return try decide(request, boundContext: boundContext)
        } catch let refusal as Refusal {
            log.write("kubernetes \(request.method) \(request.target.prefix(300)): \(refusal.status) \(refusal.message)")
            return Self.status(refusal.status, reason: refusal.reason, message: refusal.message)
        } catch {
            log.write("kubernetes \(request.method) \(request.target.prefix(300)): broker error: \(error)")
            return Self.status(502, reason: "InternalError", message: "Airlock broker: \(error)")
        }
    }

    struct Refusal: Error {
        var status: Int
        var reason: String
        var message: String
    }

    /// A Kubernetes `Status` answer: what kubectl prints as "Error from server (Reason): message".
    public static func status(_ code: Int, reason: String, message: String) -> GatewayReply {
        let body = JSON.object([
            ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object([])), ("status", .string("Failure")),
            ("message", .string(message)), ("reason", .string(reason)), ("code", .number(Double(code))),
        ]).serialized()
        return .respond(status: code, headers: [("Content-Type", "application/json")], body: Array(body.utf8))
    }

    /// How a request reads, with no side effect: what `decide` acts on and `quickRead` asks.
    struct Reading {
        var context: Kubeconfig.Context
        var path: String
        var query: String
        var ruling: Ruling
        var described: String
    }

    /// A plain read decided on the event loop, or nil: anything else, or anything that might
    /// block (credentials not resolved yet or near their expiry, a token file to read). Then
    /// the caller asks `handle` on the blocking pool, which reads the request again and alone
    /// logs and records refusals. Both go through `reading`: one set of checks. (The hop to
    /// the pool and back was 0.07–0.12 ms of a kept-alive read; BENCHMARKS.md.) The log line
    /// is a short append to the session log, as on the pool.
    public func quickRead(_ request: Request, boundContext: Int? = nil) -> OutboundRequest? {
        // A large body would hold the session's one event loop while it is read: the pool's.
        guard request.body.count <= AWSGateway.quickBodyLimit,
              let reading = try? reading(request, boundContext: boundContext), reading.ruling.decision == .read,
              let target = clusters.cachedTarget(reading.context) else { return nil }
        logDecision(request, reading)
        var read = outbound(target, method: request.method, path: reading.path, query: reading.query,
                            headers: request.headers.filter { !Self.isDropped($0.name) }, body: request.body)
        read.retrySafe = true
        return read
    }

    func logDecision(_ request: Request, _ reading: Reading) {
        log.write("kubernetes \(request.method) \(reading.path)\(reading.query.isEmpty ? "" : "?" + reading.query) [\(reading.context.name)]: \(reading.ruling.decision.rawValue) (\(reading.ruling.rule))")
    }

    func reading(_ request: Request, boundContext: Int?) throws -> Reading {
        // The session's token, exactly once: anything else did not come from this sandbox's kubeconfig.
        let authorization = request.values("authorization")
        guard authorization.count == 1, Self.constantTimeEqual(authorization[0], "Bearer " + token) else {
            throw Refusal(status: 401, reason: "Unauthorized", message:
                "Airlock: this API server is reached through the broker with the session's token from the sandbox's kubeconfig ($KUBECONFIG); other credentials are never forwarded")
        }
        guard request.values("upgrade").isEmpty else {
            throw Refusal(status: 403, reason: "Forbidden", message: "Airlock: upgraded connections (exec, attach, port-forward) are not passed through the broker")
        }
        if let encoding = request.values("content-encoding").first, encoding.lowercased() != "identity" {
            throw Refusal(status: 415, reason: "UnsupportedMediaType", message: "Airlock: request bodies with Content-Encoding \(encoding) are refused; send the body plain")
        }
        let (index, path, query) = try route(request.target, boundContext: boundContext)
        guard let context = clusters.context(at: index) else {
            throw Refusal(status: 404, reason: "NotFound", message: "Airlock: the sandbox's kubeconfig has no context \(index)")
        }
        let ruling = KubernetesClassifier.classify(method: request.method, path: path, query: query, headers: request.headers,
                                                   body: request.body, allowed: allowed, readNamespaces: readNamespaces, sensitive: sensitive)
        return Reading(context: context, path: path, query: query, ruling: ruling,
                       described: Self.describe(method: request.method, path: path, query: query))
    }

    func decide(_ request: Request, boundContext: Int?) throws -> GatewayReply {
        let reading = try reading(request, boundContext: boundContext)
        let (context, path, query, ruling, described) = (reading.context, reading.path, reading.query, reading.ruling, reading.described)
        let summary = "kubernetes:\(described) (context \(context.name))"
        logDecision(request, reading)
        switch ruling.decision {
        case .read:
            let target = try clusterTarget(context)
            var read = outbound(target, method: request.method, path: path, query: query,
                                headers: request.headers.filter { !Self.isDropped($0.name) }, body: request.body)
            read.retrySafe = true
            return .forward(read)
        case .deny:
            try store.recordRefusal(sessionID: sessionID, summary: summary, rule: ruling.rule)
            throw Refusal(status: 403, reason: "Forbidden", message: "Airlock: \(described) is not allowed: \(ruling.rule). No proposal was made.")
        case .mutation, .sensitive:
            let pinned = KubernetesPinnedRequest(context: context.name, server: context.cluster.server, method: request.method.uppercased(),
                                                 path: path, query: query,
                                                 headers: request.headers.filter { Self.pinnedHeaders.contains($0.name.lowercased()) },
                                                 body: request.body)
            switch mutationPolicy {
            case .refuse(let why):
                try store.recordRefusal(sessionID: sessionID, summary: summary, rule: why)
                throw Refusal(status: 403, reason: "Forbidden", message: "Airlock: \(described) is not allowed: \(why)")
            case .execute(let proposalID):
                try store.recordExecutionCall(proposalID: proposalID, sessionID: sessionID, summary: summary, rule: ruling.rule)
                return .forward(pinned.outbound(try clusterTarget(context)))
            case .propose:
                break
            }
            // The preview (the server's dry run, as a diff) is a record beside the proposal,
            // outside the pinned bytes and their digest.
            let proposal = try store.propose(ProposalDraft(sessionID: sessionID, kind: .api, summary: summary, ruling: ruling,
                                                             payload: ProposalPayload.kubernetes(pinned).bytes, upstream: context.cluster.server,
                                                             preview: ruling.decision == .mutation && previews ? preview(pinned, context: context) : nil))
            if let executed = GatewayReply.executed(proposal) {
                log.write("proposal \(proposal.id): \(summary) was allowed by policy and executed: HTTP \(proposal.result?.httpStatus ?? 0)")
                return executed
            }
            log.write("proposal \(proposal.id): \(summary) is pending approval")
            // A stored proposal is an answer like any other: returned, not thrown.
            return Self.status(403, reason: "Forbidden", message: """
                Airlock: \(described) needs a human's approval (\(ruling.decision.rawValue): \(ruling.rule)). \
                Proposal \(proposal.id) is pending. Nothing was changed. A human inspects it with `airlock show \(proposal.id)` \
                (the server's dry run of it, as a diff) and approves it with `airlock approve \(proposal.id)` \
                (or denies it with `airlock deny \(proposal.id)`). Wait for the decision and its result with `airlock wait \(proposal.id)`.
                """)
        }
    }

    func clusterTarget(_ context: Kubeconfig.Context) throws -> KubernetesClusters.Target {
        do { return try clusters.target(context) } catch {
            throw Refusal(status: 503, reason: "ServiceUnavailable", message: "Airlock broker: \(error.message)\(error.hint.map { " (\($0))" } ?? "")")
        }
    }

    /// `/contexts/N/rest` → (N, /rest, query). One reading: N is a plain decimal index.
    func route(_ target: String, boundContext: Int?) throws -> (Int, String, String) {
        let path = String(target.prefix { $0 != "?" })
        let query = target.contains("?") ? String(target.drop { $0 != "?" }.dropFirst()) : ""
        if let boundContext { return (boundContext, path.isEmpty ? "/" : path, query) }
        let parts = path.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0].isEmpty, parts[1] == "contexts", let index = Int(parts[2].prefix { $0 != "/" }),
              String(index) == parts[2].prefix(while: { $0 != "/" }) else {
            throw Refusal(status: 404, reason: "NotFound", message: "Airlock: the broker serves the contexts of the sandbox's kubeconfig at /contexts/N/; \(path) is none")
        }
        let rest = path.dropFirst("/contexts/\(index)".count)
        guard rest.isEmpty || rest.hasPrefix("/") else {
            throw Refusal(status: 404, reason: "NotFound", message: "Airlock: no context at \(path)")
        }
        return (index, rest.isEmpty ? "/" : String(rest), query)
    }

    /// "delete deployments.apps/prod in default", "list pods in kube-system", "GET /version".
    public static func describe(method: String, path: String, query: String) -> String {
        guard case .resource(let request) = KubernetesRequest.read(method: method, path: path, query: query) else {
            return "\(method.uppercased()) \(path)"
        }
        var text = "\(request.verb.rawValue) \(request.resource)\(request.group.isEmpty ? "" : "." + request.group)"
        if let name = request.name { text += "/" + name }
        if let subresource = request.subresource { text += " (\(subresource))" }
        if let namespace = request.namespace { text += " in \(namespace)" }
        return text
    }

    func outbound(_ target: KubernetesClusters.Target, method: String, path: String, query: String,
                  headers: [(name: String, value: String)], body: [UInt8]) -> OutboundRequest {
        KubernetesPinnedRequest(context: "", server: "", method: method, path: path, query: query, headers: headers, body: body).outbound(target)
    }

    /// What approval would do, asked of the API server itself: the same request with
    /// `dryRun=All` (in the DeleteOptions body for a DELETE that has one, where the server
    /// reads it), and the live object, as a diff. Never the real request: a preview that cannot
    /// be made dry says so and sends nothing.
    func preview(_ pinned: KubernetesPinnedRequest, context: Kubeconfig.Context) -> JSON {
        Self.preview(pinned, context: context, clusters: clusters)
    }

    /// The same, with `clusters`' credentials (a team gate's own: docs/gate.md, "Kubernetes
    /// and GitHub on the gate").
    public static func preview(_ pinned: KubernetesPinnedRequest, context: Kubeconfig.Context, clusters: KubernetesClusters) -> JSON {
        // Only where the API server honours dryRun: writes of resources (and their status and
        // scale), never a non-resource path or another subresource, which might ignore it.
        guard case .resource(let request) = KubernetesRequest.read(method: pinned.method, path: pinned.path, query: pinned.query),
              KubernetesClassifier.dryRunHonoured(request) else {
            return .object([("note", .string("no dry run: the API server may not honour dryRun for this request"))])
        }
        guard let dry = pinned.dryRun() else {
            return .object([("note", .string("no dry run: the DELETE's body is not JSON DeleteOptions the broker can mark dryRun"))])
        }
        let target: KubernetesClusters.Target
        do { target = try clusters.target(context) } catch {
            return .object([("note", .string("no dry run: \(error.message)"))])
        }
        let after: ExecutionClient.Response
        do { after = try ExecutionClient.send(dry.outbound(target), timeoutSeconds: 30) } catch {
            return .object([("note", .string("no dry run: \(error.message)"))])
        }
        var fields: [(String, JSON)] = [("dry_run_status", .number(Double(after.status)))]
        let afterText = Self.comparable(after.body)
        var liveText = ""
        if request.name != nil, pinned.method != "POST" {
            let live = KubernetesPinnedRequest(context: pinned.context, server: pinned.server, method: "GET", path: pinned.path, query: "",
                                               headers: [("Accept", "application/json")], body: [])
            if let response = try? ExecutionClient.send(live.outbound(target), timeoutSeconds: 30) {
                fields.append(("live_status", .number(Double(response.status))))
                if response.status == 200 {
                    liveText = Self.comparable(response.body)
                    // What the approval re-checks (docs/previews.md, drift): the object's version.
                    let metadata = (try? JSON.parse(bytes: response.body))?["metadata"]
                    if let version = metadata?["resourceVersion"]?.string { fields.append(("live_resource_version", .string(version))) }
                    if let uid = metadata?["uid"]?.string { fields.append(("live_uid", .string(uid))) }
                }
            }
        }
        if after.status >= 300 {
            fields.append(("dry_run_answer", .string(String(decoding: after.body.prefix(8192), as: UTF8.self))))
        } else {
            let deleting = pinned.method == "DELETE"
            fields.append(("diff", .string(LineDiff.unified(old: liveText, new: deleting ? "" : afterText,
                                                            oldName: "live", newName: deleting ? "deleted" : "after (server dry run)"))))
        }
        return .object(fields)
    }

    /// An object as JSON lines to compare, without the fields every write changes.
    static func comparable(_ body: [UInt8]) -> String {
        guard case .object(let pairs)? = try? JSON.parse(bytes: body) else { return String(decoding: body.prefix(65536), as: UTF8.self) }
        let trimmed = pairs.map { key, value -> (String, JSON) in
            guard key == "metadata", case .object(let metadata) = value else { return (key, value) }
            return (key, .object(metadata.filter { !["managedFields", "resourceVersion", "generation"].contains($0.0) }))
        }
        return JSON.object(trimmed).pretty() + "\n"
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}

/// Sending a pinned Kubernetes request to its cluster.
extension KubernetesPinnedRequest {
    func outbound(_ target: KubernetesClusters.Target) -> OutboundRequest {
        let full = target.server.basePath + path
        var request = OutboundRequest(scheme: target.server.scheme, host: target.connectHost, port: target.server.port, method: method,
                                      target: query.isEmpty ? full : full + "?" + query, headers: [], body: body)
        request.trust = target.trust
        request.serverName = target.serverName
        let defaultPort = target.server.scheme == "https" ? 443 : 80
        let host = target.server.host.contains(":") ? "[\(target.server.host)]" : target.server.host
        request.headers = [("Host", target.server.port == defaultPort ? host : "\(host):\(target.server.port)")] + headers
        if let authorization = target.authorization { request.headers.append(("Authorization", authorization)) }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { request.headers.append(("Content-Length", String(body.count))) }
        request.identity = target.identity
        return request
    }
}

/// Where the sandbox finds the Kubernetes endpoint (its own loopback: the namespace is private,
/// so the port is fixed) and its kubeconfig.
public enum KubernetesSandboxSetup {
    public static let port: UInt16 = 6443
    public static let configPath = "/run/airlock/kube/config"
    public static var endpoint: String { "https://127.0.0.1:\(port)" }
}
