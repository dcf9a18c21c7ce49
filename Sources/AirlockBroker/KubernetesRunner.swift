import AirlockCore
import AirlockPolicy
import AirlockStore

/// Sends an approved Kubernetes request, exactly as pinned, to the server it was made for,
/// with the approver's credentials of that context (docs/kubernetes.md): refused when the
/// context now names another server (the kubeconfig changed between proposal and approval),
/// or the payload names another server than the proposal's upstream (a store edited underneath).
public struct KubernetesRunner: PayloadRunner {
    public let clusters: KubernetesClusters

    public init(clusters: KubernetesClusters) {
        self.clusters = clusters
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
        let response = try ExecutionClient.exchange(pinned.outbound(target)).answer()
        return ExecutionResult(httpStatus: response.status, contentType: response.header("content-type"), output: response.body)
    }
}
