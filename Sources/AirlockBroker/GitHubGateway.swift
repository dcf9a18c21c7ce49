import AirlockCore
import AirlockPolicy
import AirlockStore
import NIOSSL

/// The broker's GitHub decision path (docs/github.md, "The endpoint"): the egress proxy
/// terminates TLS to github.com, api.github.com and the human's enterprise hosts and hands
/// each request here. The API is classified by method and path (REST) or by parsing the
/// document (GraphQL); git's smart HTTP by its service (fetches read, a push a proposal that
/// pins the ref updates and the pack). Reads go on with the human's credentials; the agent's
/// own credentials are never forwarded. Blocking: called off the event loop.
public final class GitHubGateway: @unchecked Sendable {
    public let sessionID: String
    /// The token the sandbox's gh holds (GH_TOKEN): worth nothing outside this broker.
    public let token: String
    public let credentials: GitHubCredentials
    let store: any ProposalIntake
    let log: BrokerLog
    let mutationPolicy: AWSGateway.MutationPolicy
    /// Where pushed repositories are fetched to show their commits.
    let cacheDirectory: String
    let protected: [Glob]
    /// The profile's `github.repos`, one list per layer that scopes reads.
    let repoScopes: [[Glob]]
    /// With a team gate: pushes are the gate's to send, and this host's credentials may only
    /// read, which a server refuses the push's advertisement (GitHub answers 403 to a token
    /// without write access); the broker makes that advertisement from the fetch's own.
    let pushesGoToGate: Bool

    /// Pushes carry packs: larger than API bodies, still bounded (the proposal keeps it).
    static let maximumBody = 64 << 20
    public static let defaultProtected = ["refs/heads/main", "refs/heads/master", "refs/heads/release/*", "refs/heads/production"]

    public init(sessionID: String, token: String, credentials: GitHubCredentials, store: any ProposalIntake,
                log: BrokerLog, cacheDirectory: String, mutationPolicy: AWSGateway.MutationPolicy = .propose,
                protected: [String] = GitHubGateway.defaultProtected, repoScopes: [[Glob]] = [], pushesGoToGate: Bool = false) {
        self.pushesGoToGate = pushesGoToGate
        self.sessionID = sessionID
        self.token = token
        self.credentials = credentials
        self.store = store
        self.log = log
        self.cacheDirectory = cacheDirectory
        self.mutationPolicy = mutationPolicy
        self.protected = protected.map(Glob.init)
        self.repoScopes = repoScopes
    }

    /// REST reads that name no repository and read nothing of one: allowed under a scope.
    static let unscopedReads: Set<String> = ["/", "/user", "/rate_limit", "/meta", "/octocat", "/zen"]

    /// A read under the profile's repository scope: unchanged, refused, or (a GraphQL query,
    /// which can read any repository) made a proposal.
    func scoped(_ ruling: Ruling, _ surface: Surface, path: String, gitRequest: GitSmartHTTP) -> Ruling {
        guard ruling.decision == .read, !repoScopes.isEmpty else { return ruling }
        let why: String?
        switch surface {
        case .rest(let below):
            if Self.unscopedReads.contains(below) { return ruling }
            why = GitHubRepoScope.refusal(repository: GitHubRepoScope.repository(restPath: below), what: "GET \(below)", scopes: repoScopes)
        case .graphql:
            if let why = GitHubRepoScope.refusal(repository: nil, what: "a GraphQL query", scopes: repoScopes) {
                return Ruling(.sensitive, "\(ruling.rule): \(why), so it waits for a human")
            }
            return ruling
        case .git:
            let repository: String?
            switch gitRequest {
            case .advertisement(let repo, _), .uploadPack(let repo), .receivePack(let repo): repository = GitHubRepoScope.repository(gitPath: repo)
            case .other, .ambiguous:
                repository = GitHubRepoScope.repository(gitPath: "/" + path.split(separator: "/").prefix(2).joined(separator: "/"))
            }
            why = GitHubRepoScope.refusal(repository: repository, what: path, scopes: repoScopes)
        }
        return why.map { Ruling(.deny, $0) } ?? ruling
    }

    public static func newToken() -> String { "airlock_session_" + RandomID.make(32) }

    struct Refusal: Error {
        var status: Int
        var message: String
        var api: Bool
    }

    /// GitHub's error shape for the API (gh prints `message`), plain text for git.
    static func refusal(_ status: Int, _ message: String, api: Bool) -> GatewayReply {
        if api {
            let body = JSON.object([("message", .string(message)), ("errors", .array([.object([("message", .string(message))])])),
                                    ("documentation_url", .string("docs/github.md"))]).serialized()
            return .respond(status: status, headers: [("Content-Type", "application/json; charset=utf-8")], body: Array(body.utf8))
        }
        return .respond(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array((message + "\n").utf8))
    }

    public func handle(_ request: BrokerHTTPRequest, host: String) -> GatewayReply {
        do {
            return try decide(request, host: host)
        } catch let refusal as Refusal {
            log.write("github \(host) \(request.method) \(request.target.prefix(300)): \(refusal.status) \(refusal.message)")
            return Self.refusal(refusal.status, refusal.message, api: refusal.api)
        } catch {
            log.write("github \(host) \(request.method) \(request.target.prefix(300)): broker error: \(error)")
            return Self.refusal(502, "Airlock broker: \(error)", api: true)
        }
    }

    enum Surface { case rest(String), graphql, git }

    /// Where a request goes on its host (docs/github.md, "The endpoint"): api.github.com is
    /// all API, github.com all git (and web pages), an enterprise host both. GraphQL is only
    /// ever the exact path; variants (`/graphql/`, `/GraphQL`) reach the REST reader, which
    /// refuses them.
    func surface(host: String, path: String) -> Surface { Self.surface(host: host, path: path) }

    static func surface(host: String, path: String) -> Surface {
        if GitHubCredentials.isAPIRoot(host) { return path == "/graphql" ? .graphql : .rest(path) }
        if host == GitHubCredentials.github { return .git }
        if path == "/api/graphql" { return .graphql }
        if path == "/api/v3" || path.hasPrefix("/api/v3/") { return .rest(path == "/api/v3" ? "/" : String(path.dropFirst("/api/v3".count))) }
        if path.hasPrefix("/api/uploads/") { return .rest(String(path.dropFirst("/api/uploads".count))) }
        return .git
    }

    func decide(_ request: BrokerHTTPRequest, host: String) throws -> GatewayReply {
        let path = request.path, query = request.query
        let surface = surface(host: host, path: path)
        var api = true
        if case .git = surface { api = false }
        // One reading: the host the client connected to is the host it names.
        let hosts = request.values("host").map { $0.lowercased().hasSuffix(":443") ? String($0.lowercased().dropLast(4)) : $0.lowercased() }
        guard hosts == [host] else {
            throw Refusal(status: 400, message: "Airlock: this connection was opened to \(host), but the request names \(hosts.joined(separator: ", ")); nothing was sent", api: api)
        }
        // The agent's credentials are never forwarded: none, or the session's own.
        let authorization = request.values("authorization")
        guard authorization.count <= 1, authorization.first.map(isSessionCredential) ?? true else {
            throw Refusal(status: 401, message: "Airlock: a credential that is not this session's was sent to \(host); the broker adds the human's own and forwards no other", api: api)
        }
        // One reading: the method is the request's own, and a GraphQL request's operation is
        // in its body alone (a query string would be a second place to read one from).
        if let override = UpstreamReading.methodOverride(request.headers) {
            throw Refusal(status: 400, message: "Airlock: \(override) asks for another method than the request's own (\(request.method)); such requests have two readings and are refused", api: api)
        }
        if case .graphql = surface, request.target.contains("?") {
            throw Refusal(status: 400, message: "Airlock: GraphQL is read from the POST body alone; a query string on \(path) would be a second place to read the operation from, so the request is refused", api: true)
        }
        if let encoding = request.values("content-encoding").first, encoding.lowercased() != "identity", case .graphql = surface {
            throw Refusal(status: 415, message: "Airlock: GraphQL bodies with Content-Encoding \(encoding) are refused; send the body plain", api: true)
        }
        var (ruling, summary) = Self.classify(surface, host: host, method: request.method, path: path, query: query, body: request.body)
        // git's protocol only on a git surface: the same path on an API host is not a push or
        // a fetch (the REST reader refuses it), and never gets git's credentials.
        var gitRequest = GitSmartHTTP.other
        if case .git = surface { gitRequest = GitSmartHTTP.read(method: request.method, path: path, query: query) }
        ruling = scoped(ruling, surface, path: path, gitRequest: gitRequest)
        log.write("github \(host) \(request.method) \(path)\(query.isEmpty ? "" : "?" + query): \(ruling.decision.rawValue) (\(ruling.rule))")
        switch ruling.decision {
        case .read:
            if pushesGoToGate, case .advertisement(let repository, "git-receive-pack") = gitRequest {
                return try receivePackAdvertisement(host: host, repository: repository)
            }
            var authorization: String?
            switch gitRequest {
            case .advertisement(let repository, _), .uploadPack(let repository), .receivePack(let repository):
                authorization = credentials.gitAuthorization(host: host, path: repository)
            case .other, .ambiguous:
                if api { authorization = credentials.apiToken(for: host).map { "token " + $0 } }
            }
            var read = outbound(GitHubPinnedRequest(host: host, method: request.method, path: path, query: query,
                                                    headers: request.headers.filter { !KubernetesGateway.isDropped($0.name) },
                                                    body: request.body), authorization: authorization)
            read.retrySafe = true
            return .forward(read)
        case .deny:
            try store.recordRefusal(sessionID: sessionID, summary: summary, rule: ruling.rule)
            throw Refusal(status: 403, message: "Airlock: \(summary) is not allowed: \(ruling.rule). No proposal was made.", api: api)
        case .mutation, .sensitive:
            if case .refuse(let why) = mutationPolicy {
                try store.recordRefusal(sessionID: sessionID, summary: summary, rule: why)
                throw Refusal(status: 403, message: "Airlock: \(summary) is not allowed: \(why)", api: api)
            }
            if case .execute(let proposalID) = mutationPolicy {
                // An approved command's own call: sent with the human's credentials, audited
                // under the proposal.
                try store.recordExecutionCall(proposalID: proposalID, sessionID: sessionID, summary: summary, rule: ruling.rule)
                log.write("github \(summary): sent as part of approved proposal \(proposalID)")
                let authorization: String?
                switch gitRequest {
                case .receivePack(let repository): authorization = credentials.gitAuthorization(host: host, path: repository)
                default: authorization = credentials.apiToken(for: host).map { "token " + $0 }
                }
                return .forward(outbound(GitHubPinnedRequest(host: host, method: request.method, path: path, query: query,
                                                             headers: request.headers.filter { !KubernetesGateway.isDropped($0.name) },
                                                             body: request.body), authorization: authorization))
            }
            if case .receivePack(let repository) = gitRequest {
                return try proposePush(request, host: host, repository: repository, ruling: ruling)
            }
            let pinned = GitHubPinnedRequest(host: host, method: request.method.uppercased(), path: path, query: query,
                                             headers: request.headers.filter { GitHubPinnedRequest.pinnedHeaders.contains($0.name.lowercased()) },
                                             body: request.body)
            let proposal = try store.propose(ProposalDraft(sessionID: sessionID, kind: .api, summary: summary, ruling: ruling,
                                                             payload: ProposalPayload.github(pinned).bytes, upstream: "https://\(host)"))
            if let executed = GatewayReply.executed(proposal) {
                log.write("proposal \(proposal.id): \(summary) was allowed by policy and executed: HTTP \(proposal.result?.httpStatus ?? 0)")
                return executed
            }
            log.write("proposal \(proposal.id): \(summary) is pending approval")
            // A stored proposal is an answer like any other: returned, not thrown.
            return Self.refusal(403, Self.pendingText(summary, ruling: ruling, id: proposal.id), api: api)
        }
    }

    static func pendingText(_ summary: String, ruling: Ruling, id: String) -> String {
        "Airlock: \(summary) needs a human's approval (\(ruling.decision.rawValue): \(ruling.rule)). Proposal \(id) is pending. Nothing was changed. "
            + "A human inspects it with `airlock show \(id)` and approves it with `airlock approve \(id)` (or denies it with `airlock deny \(id)`). "
            + "Wait for the decision and its result with `airlock wait \(id)`."
    }

    func isSessionCredential(_ value: String) -> Bool {
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return false }
        let scheme = parts[0].lowercased(), secret = String(parts[1])
        if scheme == "token" || scheme == "bearer" { return KubernetesGateway.constantTimeEqual(secret, token) }
        if scheme == "basic", let decoded = Base64.decode(secret) {
            let text = String(decoding: decoded, as: UTF8.self)
            return KubernetesGateway.constantTimeEqual(String(text.drop { $0 != ":" }.dropFirst()), token)
        }
        return false
    }

    /// A GraphQL POST: one JSON object with one reading (no key twice), `query` a string,
    /// `operationName` a string or absent. Anything else (a GET, a batch, a form) is a change
    /// or refused, never a read.
    static func graphQLRuling(_ request: BrokerHTTPRequest) -> Ruling { graphQLRuling(method: request.method, body: request.body) }

    static func graphQLRuling(method: String, body: [UInt8]) -> Ruling {
        guard method.uppercased() == "POST" else {
            return Ruling(.deny, "GraphQL by \(method.uppercased()): only POST is read; nothing was sent")
        }
        guard case .object(let pairs)? = try? JSON.parseStrict(bytes: body),
              let query = pairs.first(where: { $0.0 == "query" })?.1.string else {
            return Ruling(.mutation, "GraphQL request that is not one JSON object with a query: counted as a change")
        }
        let name = pairs.first { $0.0 == "operationName" }?.1
        if let name, name.string == nil, name != .null {
            return Ruling(.mutation, "GraphQL request whose operationName is not a string: counted as a change")
        }
        return GitHubClassifier.classifyGraphQL(document: query, operationName: name?.string)
    }

    /// A request's ruling and summary on its surface (the profile's repository scopes aside):
    /// the one reading the host's broker and the team gate share.
    static func classify(_ surface: Surface, host: String, method: String, path: String, query: String, body: [UInt8]) -> (Ruling, String) {
        switch surface {
        case .rest(let below):
            return (GitHubClassifier.classifyREST(method: method, path: below, query: query), "github:\(method.uppercased()) \(below)")
        case .graphql:
            let ruling = graphQLRuling(method: method, body: body)
            // "github:GraphQL mutation PullRequestMerge", or a plain label when it did not parse.
            let named = ["GraphQL query", "GraphQL mutation", "GraphQL subscription"].contains { ruling.rule.hasPrefix($0) }
            return (ruling, "github:" + (named ? String(ruling.rule.prefix { $0 != ":" }) : "GraphQL request"))
        case .git:
            return (GitSmartHTTP.classify(method: method, path: path, query: query), "git:\(method.uppercased()) \(path) on \(host)")
        }
    }

    /// A pinned API request as the team gate reads it again (docs/gate.md, "Kubernetes and
    /// GitHub on the gate"): the broker's own checks and classifier; a git request is no API
    /// request (pushes are git-push payloads), and a refusal says why.
    public static func reading(_ pinned: GitHubPinnedRequest) -> Result<(ruling: Ruling, summary: String), AirlockError> {
        let surface = surface(host: pinned.host, path: pinned.path)
        if case .git = surface {
            return .failure(AirlockError("\(pinned.path) on \(pinned.host) is not the API: a push is proposed as a git-push", code: .badRequest))
        }
        if let override = UpstreamReading.methodOverride(pinned.headers) {
            return .failure(AirlockError("\(override) asks for another method than the request's own; such a request has two readings", code: .ambiguousRequest))
        }
        if case .graphql = surface, !pinned.query.isEmpty {
            return .failure(AirlockError("GraphQL is read from the POST body alone; a query string would be a second place to read it from", code: .ambiguousRequest))
        }
        let (ruling, summary) = classify(surface, host: pinned.host, method: pinned.method, path: pinned.path, query: pinned.query, body: pinned.body)
        return .success((ruling, summary))
    }

    func outbound(_ pinned: GitHubPinnedRequest, authorization: String?) -> OutboundRequest {
        pinned.outbound(connectHost: credentials.connectHost(pinned.host), trust: credentials.trust(), authorization: authorization)
    }
}

/// Sending a pinned GitHub request to its host.
extension GitHubPinnedRequest {
    func outbound(connectHost: String, trust: NIOSSLContext?, authorization: String?) -> OutboundRequest {
        var request = OutboundRequest(scheme: "https", host: connectHost, port: 443, method: method,
                                      target: query.isEmpty ? path : path + "?" + query, headers: [("Host", host)] + headers, body: body)
        request.trust = trust
        request.serverName = host
        if let authorization { request.headers.append(("Authorization", authorization)) }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { request.headers.append(("Content-Length", String(body.count))) }
        // The token as sent (none is an identity too: anonymous): docs/design.md §4.5.
        request.identity = "github " + host + " " + SigV4.hexSHA256(Array((authorization ?? "").utf8))
        return request
    }
}
