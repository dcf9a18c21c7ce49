import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockStore
import Metrics

/// Kubernetes changes, GitHub API changes and git pushes on the team gate (docs/gate.md,
/// "Kubernetes and GitHub on the gate"). A host's payload names the API server or host it was
/// made for; the gate looks that up in its own mapping (gate.yaml `kubernetes`, `github`),
/// refuses what is unmapped, reads the request again with the broker's own classifier, makes
/// the preview itself with its own credentials (a host's preview is never read), and stores
/// the request aimed at its own context and upstream: the executor sends it there, with the
/// gate's credentials, once.
extension GateService {
    /// The gate's kubeconfig (its credentials) and which of its contexts each API server a
    /// host may name is executed with.
    public struct KubernetesSetup: Sendable {
        public var clusters: KubernetesClusters
        public var mapping: [GateConfig.KubernetesCluster]

        public init(clusters: KubernetesClusters, mapping: [GateConfig.KubernetesCluster]) {
            self.clusters = clusters
            self.mapping = mapping
        }

        /// The mapping entry and the gate's context for a server a host names.
        func target(for server: String) -> (entry: GateConfig.KubernetesCluster, context: Kubeconfig.Context)? {
            func plain(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }
            guard let entry = mapping.first(where: { plain($0.server) == plain(server) }),
                  let context = clusters.context(named: entry.context) else { return nil }
            return (entry, context)
        }
    }

    /// Audited as refused under the host's session, and thrown (nothing is stored or sent).
    func refuse(_ sessionID: String, summary: String, _ why: String) throws(AirlockError) -> Never {
        do { try store.recordRefusal(sessionID: sessionID, summary: summary, rule: why) } catch {
            logger.error("refusal not recorded in the audit log", metadata: ["session": "\(sessionID)", "error": "\(error.message)"])
        }
        Counter(label: "airlock_gate_refused_total", dimensions: [("bound", "unmapped_or_denied")]).increment()
        throw AirlockError("\(summary) is not allowed: \(why). No proposal was made.", code: .denied)
    }

    func proposeKubernetes(_ identity: GateIdentity, sessionID: String, _ proposed: KubernetesPinnedRequest, asked: HostRequirement? = nil) throws(AirlockError) -> JSON {
        let described = KubernetesGateway.describe(method: proposed.method, path: proposed.path, query: proposed.query)
        guard let kubernetes, let (entry, context) = kubernetes.target(for: proposed.server) else {
            try refuse(sessionID, summary: "kubernetes:\(described)",
                       "this gate maps no Kubernetes API server \(proposed.server.prefix(200)) (gate.yaml kubernetes.clusters)")
        }
        let ruling = KubernetesClassifier.classify(method: proposed.method, path: proposed.path, query: proposed.query, headers: proposed.headers,
                                                   body: proposed.body, allowed: [], readNamespaces: nil, sensitive: [])
        let summary = "kubernetes:\(described) (\(entry.server))"
        switch ruling.decision {
        case .deny: try refuse(sessionID, summary: summary, ruling.rule)
        case .read: throw AirlockError("\(summary) is a read (\(ruling.rule)): the host's broker sends reads itself; nothing was proposed", code: .badRequest)
        case .mutation, .sensitive: break
        }
        // Aimed at the gate's own context and server: the runner sends it nowhere else.
        let pinned = KubernetesPinnedRequest(context: entry.context, server: context.cluster.server, method: proposed.method,
                                             path: proposed.path, query: proposed.query,
                                             headers: proposed.headers.filter { KubernetesGateway.pinnedHeaders.contains($0.name.lowercased()) },
                                             body: proposed.body)
        let preview = ruling.decision == .mutation ? KubernetesGateway.preview(pinned, context: context, clusters: kubernetes.clusters) : nil
        return try keep(ProposalDraft(sessionID: sessionID, kind: .api, summary: summary, ruling: ruling,
                                      payload: ProposalPayload.kubernetes(pinned).bytes, upstream: context.cluster.server, preview: preview),
                        host: identity, asked: asked)
    }

    func proposeGitHub(_ identity: GateIdentity, sessionID: String, _ proposed: GitHubPinnedRequest, asked: HostRequirement? = nil) throws(AirlockError) -> JSON {
        let host = proposed.host.lowercased()
        guard let github, github.covers(host) else {
            try refuse(sessionID, summary: "github:\(proposed.method) \(proposed.path.prefix(200)) on \(host.prefix(100))",
                       "this gate maps no GitHub host \(host.prefix(100)) (gate.yaml github)")
        }
        let pinned = GitHubPinnedRequest(host: host, method: proposed.method, path: proposed.path, query: proposed.query,
                                         headers: proposed.headers.filter { GitHubPinnedRequest.pinnedHeaders.contains($0.name.lowercased()) },
                                         body: proposed.body)
        let ruling: Ruling, summary: String
        switch GitHubGateway.reading(pinned) {
        case .success(let read): (ruling, summary) = read
        case .failure(let error): throw AirlockError("\(error.message); nothing was proposed", code: error.code ?? .badRequest)
        }
        switch ruling.decision {
        case .deny: try refuse(sessionID, summary: summary, ruling.rule)
        case .read: throw AirlockError("\(summary) is a read (\(ruling.rule)): the host's broker sends reads itself; nothing was proposed", code: .badRequest)
        case .mutation, .sensitive: break
        }
        return try keep(ProposalDraft(sessionID: sessionID, kind: .api, summary: summary, ruling: ruling,
                                      payload: ProposalPayload.github(pinned).bytes, upstream: "https://\(host)"), host: identity, asked: asked)
    }

    func proposeGitPush(_ identity: GateIdentity, sessionID: String, _ proposed: GitPushPayload, asked: HostRequirement? = nil) throws(AirlockError) -> JSON {
        let host = proposed.host.lowercased()
        let path = proposed.repository + "/git-receive-pack"
        guard let github, github.covers(host) else {
            try refuse(sessionID, summary: "git:push to \(host.prefix(100))\(proposed.repository.prefix(200))",
                       "this gate maps no GitHub host \(host.prefix(100)) (gate.yaml github)")
        }
        guard case .receivePack(let repository) = GitSmartHTTP.read(method: "POST", path: path, query: ""), repository == proposed.repository else {
            throw AirlockError("\(proposed.repository.prefix(200)) is not one repository's path; nothing was proposed", code: .badRequest)
        }
        let ruling = GitSmartHTTP.classify(method: "POST", path: path, query: "")
        guard ruling.decision == .mutation || ruling.decision == .sensitive else {
            try refuse(sessionID, summary: "git:push to \(host)\(repository)", ruling.rule)
        }
        // The fetch below costs the gate time and disk: the host's bound is checked first.
        try checkHostPending(identity)
        // The gate's own reading and view: the pack parsed again, the commits shown by git on
        // a copy fetched with the gate's credentials; the host's updates and labels are not read.
        let reading: GitPushReading
        switch GitPushReading.read(body: proposed.body, host: host, repository: repository, credentials: github,
                                   cacheDirectory: config.stateDir + "/cache/git", protected: GitHubGateway.defaultProtected.map(Glob.init)) {
        case .success(let read): reading = read
        case .failure(let refusal): throw AirlockError(refusal.message, code: .badRequest)
        }
        return try keep(ProposalDraft(sessionID: sessionID, kind: .api, summary: reading.summary, ruling: ruling,
                                      payload: ProposalPayload.gitPush(reading.payload).bytes, upstream: "https://\(host)",
                                      preview: reading.preview), host: identity, asked: asked)
    }
}
