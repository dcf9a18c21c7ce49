import AirlockCore
import AirlockPolicy
import AirlockStore

/// Why a runner produced no answer (docs/architecture.md, "Executing"): a value, never read
/// back from a message's words.
public enum RunFailure: Error, Sendable, Equatable {
    /// Nothing of the proposal left this host: the result says "not sent: …".
    case notSent(String)
    /// A command proposal whose run did not start: "not run: …".
    case notRun(String)
    /// Bytes left, then the exchange failed: whether the upstream acted on it is not known.
    case uncertain(String)
}

/// Checked right before anything of an approved proposal leaves: the replica still holds
/// its lease (one paused past it, then marked `unknown` by another, must not send), and
/// nothing holds it back (the gate's freeze).
public struct SendCheck: Sendable {
    let renewer: LeaseRenewer?
    let holdReason: (@Sendable () -> String?)?

    public init(renewer: LeaseRenewer?, holdReason: (@Sendable () -> String?)?) {
        self.renewer = renewer
        self.holdReason = holdReason
    }

    public func check() throws(RunFailure) {
        if let renewer, !renewer.renew() { throw .notSent("this replica's lease on the execution ran out") }
        if let reason = holdReason?() { throw .notSent(reason) }
    }
}

/// Sends one kind of approved payload (docs/architecture.md, "Executing"): the executor has
/// claimed the proposal and checked its digest; the runner checks `send` before each request
/// leaves and answers with the result, or says why there is none.
public protocol PayloadRunner: Sendable {
    func run(_ payload: ProposalPayload, of proposal: Proposal, send: SendCheck) throws(RunFailure) -> ExecutionResult
    /// What the run needs and cannot find here now (a staged part, a command's artifact in the
    /// blob store), nil when it has everything. Asked before approving and before claiming, so
    /// a missing artifact leaves the proposal as it was, never a final failure.
    func missing(_ payload: ProposalPayload) -> String?
    /// What changed in the target since `shown` (the preview the approver read), read again
    /// now; nil when nothing did or the runner cannot tell (docs/previews.md).
    func drift(_ payload: ProposalPayload, of proposal: Proposal, shown: JSON?) -> PreviewDriftFound?
}

extension PayloadRunner {
    public func missing(_ payload: ProposalPayload) -> String? { nil }
    public func drift(_ payload: ProposalPayload, of proposal: Proposal, shown: JSON?) -> PreviewDriftFound? { nil }
}

/// A target that changed since its preview: the new preview (stored in place of the old) and
/// what changed, in words.
public struct PreviewDriftFound: Sendable {
    public var preview: JSON
    public var changes: [String]
}

/// The runner for each kind this executor can run here (nil: not here, and the proposal
/// fails, unsent, saying so).
public struct Runners: Sendable {
    public var aws: (any PayloadRunner)?
    public var kubernetes: (any PayloadRunner)?
    public var github: (any PayloadRunner)?
    public var command: (any PayloadRunner)?

    public init(aws: (any PayloadRunner)? = nil, kubernetes: (any PayloadRunner)? = nil, github: (any PayloadRunner)? = nil,
                command: (any PayloadRunner)? = nil) {
        self.aws = aws
        self.kubernetes = kubernetes
        self.github = github
        self.command = command
    }

    /// Which runner a kind needs, and what is missing when there is none.
    func runner(for payload: ProposalPayload) -> Result<any PayloadRunner, RunFailure> {
        let found: (any PayloadRunner)?
        let missing: RunFailure
        switch payload {
        case .aws, .s3Multipart:
            found = aws
            missing = .notSent("no AWS credentials here to execute with")
        case .kubernetes:
            found = kubernetes
            missing = .notSent("no kubeconfig here to execute Kubernetes requests with (KUBECONFIG or ~/.kube/config)")
        case .github, .gitPush:
            found = github
            missing = .notSent("no GitHub credentials here to execute with")
        case .command:
            found = command
            missing = .notRun("this Airlock does not run command proposals here")
        }
        return found.map { .success($0) } ?? .failure(missing)
    }
}

/// Runs an approved proposal exactly once (docs/design.md §5, docs/architecture.md
/// "Executing"), whatever its kind: claims it (approved → executing, atomically; under the
/// replica's lease, renewed meanwhile, on a gate), checks its digest, reads its payload, has
/// the kind's runner send it, and records the result (succeeded or failed; a send that may
/// have reached the upstream and then failed is `unknown`, never retried).
public struct Executor: Sendable {
    public let store: any ProposalStore
    /// A gate replica's lease on each claim; nil for a local process (docs/gate.md, "Replicas").
    public let lease: ExecutionLease?
    /// Asked before each request leaves: a reason not to send now (the gate's freeze).
    public var holdReason: (@Sendable () -> String?)?
    public var runners: Runners

    public init(store: any ProposalStore, lease: ExecutionLease? = nil, runners: Runners) {
        self.store = store
        self.lease = lease
        self.runners = runners
    }

    /// What the proposal's runner lacks here now (ready: nil). A payload that cannot be read
    /// or has no runner is the execution's to report, not this.
    public func missing(_ proposal: Proposal) -> String? {
        guard let payload = try? ProposalPayload(bytes: proposal.payload), case .success(let runner) = runners.runner(for: payload) else { return nil }
        return runner.missing(payload)
    }

    public func drift(_ proposal: Proposal, shown: JSON?) -> PreviewDriftFound? {
        guard let payload = try? ProposalPayload(bytes: proposal.payload), case .success(let runner) = runners.runner(for: payload) else { return nil }
        return runner.drift(payload, of: proposal, shown: shown)
    }

    /// `note`: recorded on the claim's audit entry (why this actor starts it).
    public func execute(_ id: String, actor: String, note: String? = nil) throws(AirlockError) -> Proposal {
        if let current = try store.proposal(id: id), current.state == .approved, let missing = missing(current) {
            throw Self.notReady(id, missing, approved: true)
        }
        let (claimed, renewer) = try store.claimExecution(id, actor: actor, lease: lease, note: note)
        defer { renewer?.stop() }
        let outcome: Result<ExecutionResult, RunFailure> = Result { () throws(RunFailure) -> ExecutionResult in
            guard SigV4.hexSHA256(claimed.payload) == claimed.digest else {
                throw .notSent("the payload does not match its digest \(claimed.digest): the store was changed")
            }
            let payload: ProposalPayload
            do throws(ProposalPayload.Problem) { payload = try ProposalPayload(bytes: claimed.payload) } catch {
                throw .notSent("the payload cannot be read: \(error.description)")
            }
            let runner = try runners.runner(for: payload).get()
            return try runner.run(payload, of: claimed, send: SendCheck(renewer: renewer, holdReason: holdReason))
        }
        do {
            switch outcome {
            case .success(let result):
                return try store.apply(result.succeeded ? .succeed : .fail, to: id, actor: actor, result: result)
            case .failure(.notSent(let why)):
                return try store.apply(.fail, to: id, actor: actor, note: why, result: ExecutionResult(output: [], error: "not sent: \(why)"))
            case .failure(.notRun(let why)):
                return try store.apply(.fail, to: id, actor: actor, note: why, result: ExecutionResult(output: [], error: "not run: \(why)"))
            case .failure(.uncertain(let why)):
                return try store.apply(.lose, to: id, actor: actor, note: "sent, then \(why); whether it took effect is unknown")
            }
        } catch where error.code == .conflict || error.code == .leaseLost {
            // The claim was lost meanwhile (a replica's lease ran out and another's recovery
            // marked it unknown): the store's word stands, and it is what the approver sees.
            guard let current = try store.proposal(id: id) else { throw error }
            return current
        }
    }
}

extension Executor {
    /// Nothing was started: the proposal stays as it was and can be approved again once what
    /// it needs is back (docs/gate.md, "Shared state").
    public static func notReady(_ id: String, _ missing: String, approved: Bool) -> AirlockError {
        AirlockError("proposal \(id) cannot run yet: \(missing); nothing was \(approved ? "started (it stays approved)" : "approved (it stays pending)")",
                     hint: "restore what is missing (or fix the store), then approve it again", code: .artifactMissing)
    }
}

extension ExecutionClient.Exchange {
    /// The response, or the failure as the executor records it.
    func answer() throws(RunFailure) -> ExecutionClient.Response {
        switch self {
        case .answered(let response): return response
        case .notSent(let why): throw .notSent(why)
        case .uncertain(let why): throw .uncertain(why)
        }
    }
}
