import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockSandbox
import AirlockStore

/// The one approve path on the local store with the human's own credentials for the
/// proposal's kind (`airlock approve`, `airlock review`, and a policy's `@airlock_allow` in the
/// session's broker): only the runner that kind needs, its credentials read here.
public enum LocalApproval {
    public static func approval(for proposal: Proposal, store: SQLiteProposalStore, environment: [String: String],
                                awsProfile: String?) throws(AirlockError) -> Approval {
        var runners = Runners()
        switch try? ProposalPayload(bytes: proposal.payload) {
        case .command?:
            // terraform apply (or kubectl …) of what was pinned, in an execution sandbox.
            runners.command = CommandRunner(store: store, stateDir: store.stateDir, environment: environment, awsProfile: awsProfile)
        case .aws?, .s3Multipart?:
            let library = ProfileLibrary(environment: environment, home: environment["HOME"] ?? "/")
            let catalog = try AWSCatalogFiles.locate(environment: environment, profileSearchPath: library.searchPath)
            runners.aws = AWSRunner(catalog: catalog, credentials: HostCredentials(environment: environment, profile: awsProfile),
                                    blobs: DirectoryBlobStore(directory: store.stateDir + "/blobs"))
        case .kubernetes?:
            if let clusters = (try? KubernetesClusters.load(environment: environment)) ?? nil {
                runners.kubernetes = KubernetesRunner(clusters: clusters, previews: { proposal in (try? store.preview(of: proposal)) ?? nil })
            }
        case .github?, .gitPush?:
            runners.github = GitHubRunner(credentials: GitHubCredentials(environment: environment))
        case nil:
            break  // the executor records why it cannot be read
        }
        return Approval(store: store, executor: Executor(store: store, runners: runners))
    }

    /// `actor` approves `id` (the proposal runs when enough distinct approvers have).
    public static func approve(_ id: String, by actor: String, reason: String?, awsProfile: String?, store: SQLiteProposalStore,
                               environment: [String: String]) throws(AirlockError) -> Proposal {
        guard let proposal = try store.proposal(id: id) else {
            throw AirlockError("no proposal \(id)", hint: "`airlock proposals` lists the pending ones", code: .refused)
        }
        return try approval(for: proposal, store: store, environment: environment, awsProfile: awsProfile).approve(id, by: actor, note: reason)
    }

    /// Runs a proposal its policy allowed without a human.
    public static func approveByPolicy(_ proposal: Proposal, awsProfile: String?, store: SQLiteProposalStore,
                                       environment: [String: String]) throws(AirlockError) -> Proposal {
        try approval(for: proposal, store: store, environment: environment, awsProfile: awsProfile).approveByPolicy(proposal.id)
    }
}
