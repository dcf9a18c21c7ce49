import AirlockCore
import AirlockPolicy
import AirlockStore

/// Sends an approved Kubernetes request, exactly as pinned, to the server it was made for,
/// with the approver's credentials of that context (docs/kubernetes.md): refused when the
/// context now names another server (the kubeconfig changed between proposal and approval),
/// or the payload names another server than the proposal's upstream (a store edited underneath).
public struct KubernetesRunner: PayloadRunner {
    public let clusters: KubernetesClusters
    /// The preview record a proposal's approver read (the store's), for the delete's
    /// preconditions; nil sends the pinned request as it is.
    public var previews: (@Sendable (Proposal) -> JSON?)?

    public init(clusters: KubernetesClusters, previews: (@Sendable (Proposal) -> JSON?)? = nil) {
        self.clusters = clusters
        self.previews = previews
    }

    /// A DELETE of one object, sent with the previewed object's resourceVersion and uid as
    /// preconditions (docs/previews.md, drift): the API server refuses it (409) when the object
    /// changed after the approval's re-check. Stricter than the pinned request, never wider:
    /// only preconditions are added, to options that name none; anything else is sent as pinned.
    public static func preconditioned(_ pinned: KubernetesPinnedRequest, preview: JSON?) -> KubernetesPinnedRequest {
        guard pinned.method == "DELETE", let version = preview?["live_resource_version"]?.string,
              case .resource(let request) = KubernetesRequest.read(method: pinned.method, path: pinned.path, query: pinned.query),
              request.name != nil else { return pinned }
        // Options in the query (propagationPolicy, gracePeriodSeconds…) would be ignored once a
        // body is sent: such a request goes as pinned.
        if pinned.body.isEmpty && !pinned.query.isEmpty { return pinned }
        var pairs: [(String, JSON)] = []
        if !pinned.body.isEmpty {
            guard case .object(let existing)? = try? JSON.parseStrict(bytes: pinned.body) else { return pinned }
            pairs = existing
        }
        guard !pairs.contains(where: { $0.0 == "preconditions" }) else { return pinned }
        var conditions: [(String, JSON)] = [("resourceVersion", .string(version))]
        if let uid = preview?["live_uid"]?.string { conditions.append(("uid", .string(uid))) }
        pairs.append(("preconditions", .object(conditions)))
        var sent = pinned
        sent.body = Array(JSON.object(pairs).serialized().utf8)
        sent.headers = pinned.headers.filter { !["content-type", "content-length"].contains($0.name.lowercased()) } + [("Content-Type", "application/json")]
        return sent
    }

    /// The previewed object read again (docs/previews.md, drift): when its resourceVersion or
    /// uid is not the one the preview showed (changed, replaced or gone), the new preview and
    /// what changed. Nothing is sent to the server but the read and the new dry run.
    public func drift(_ payload: ProposalPayload, of proposal: Proposal, shown: JSON?) -> PreviewDriftFound? {
        guard case .kubernetes(let pinned) = payload, let version = shown?["live_resource_version"]?.string,
              let context = clusters.context(named: pinned.context), context.cluster.server == pinned.server,
              let target = try? clusters.target(context) else { return nil }
        let live = KubernetesPinnedRequest(context: pinned.context, server: pinned.server, method: "GET", path: pinned.path, query: "",
                                           headers: [("Accept", "application/json")], body: [])
        guard let response = try? ExecutionClient.send(live.outbound(target), timeoutSeconds: 30) else { return nil }
        var changes: [String] = []
        if response.status == 404 {
            changes.append("the object is gone")
        } else if response.status == 200 {
            let metadata = (try? JSON.parse(bytes: response.body))?["metadata"]
            let now = metadata?["resourceVersion"]?.string
            if now != version { changes.append("resourceVersion \(version) → \(now ?? "none")") }
            if let uid = shown?["live_uid"]?.string, metadata?["uid"]?.string != uid { changes.append("a different object (uid \(uid) → \(metadata?["uid"]?.string ?? "none"))") }
        }
        guard !changes.isEmpty else { return nil }
        var preview = KubernetesGateway.preview(pinned, context: context, clusters: clusters)
        if case .object(var fields) = preview {
            fields.append(("drift", .array(changes.map(JSON.string))))
            preview = .object(fields)
        }
        return PreviewDriftFound(preview: preview, changes: changes)
    }

    public func run(_ payload: ProposalPayload, of proposal: Proposal, send: SendCheck) throws(RunFailure) -> ExecutionResult {
        guard case .kubernetes(let pinned) = payload else { throw .notSent("the Kubernetes runner does not send \(payload.type) proposals") }
        guard let context = clusters.context(named: pinned.context) else {
            throw .notSent("the kubeconfig here has no context \(pinned.context)")
        }
        guard context.cluster.server == pinned.server, pinned.server == proposal.upstream else {
            throw .notSent("context \(pinned.context) now names the server \(context.cluster.server), not \(pinned.server) it was proposed for")
        }
        let target: KubernetesClusters.Target
        do { target = try clusters.target(context) } catch { throw .notSent(error.message) }
        try send.check()
        let sent = Self.preconditioned(pinned, preview: previews?(proposal))
        let response = try ExecutionClient.exchange(sent.outbound(target)).answer()
        return ExecutionResult(httpStatus: response.status, contentType: response.header("content-type"), output: response.body)
    }
}
