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
