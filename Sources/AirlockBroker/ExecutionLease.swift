import AirlockCore
import AirlockStore
import Glibc
import Synchronization

/// How a gate replica holds an execution (docs/gate.md, "Replicas"): claimed under its
/// name with an expiry, renewed while the call runs. If the replica dies, the lease runs
/// out and any replica's recovery marks the proposal `unknown`; it is never run again.
/// Without a lease (a local `airlock` process) the claim is judged by the claimer's pid.
public struct ExecutionLease: Sendable, Equatable {
    /// The replica's name in the store (`executor`), unique among replicas.
    public var owner: String
    public var seconds: Int

    public init(owner: String, seconds: Int) {
        self.owner = owner
        self.seconds = seconds
    }

    public func expiry(from now: Int64 = Clock.epochMilliseconds()) -> Int64 { now + Int64(seconds) * 1000 }
}

/// Renews one claimed execution's lease every third of its length on a thread of its own,
/// until stopped. `held()` is false once a renewal was refused: the store no longer counts
/// this replica as the executor (its lease ran out and it was marked `unknown`).
public final class LeaseRenewer: Sendable {
    private struct State { var stopped = false; var lost = false; var heldUntil: Int64 = 0 }
    private let state = Mutex(State())
    private let store: any ProposalStore
    private let id: String
    private let lease: ExecutionLease

    /// `claimedUntil`: the expiry the claim was granted with.
    public init(store: any ProposalStore, id: String, lease: ExecutionLease, claimedUntil: Int64) {
        self.store = store
        self.id = id
        self.lease = lease
        state.withLock { $0.heldUntil = claimedUntil }
    }

    public func start() {
        let interval = max(1, lease.seconds * 1000 / 3)
        DetachedThread.run { [self] in
            while true {
                var slept = 0
                while slept < interval {
                    if state.withLock({ $0.stopped }) { return }
                    usleep(50_000)
                    slept += 50
                }
                if !renew() { return }
            }
        }
    }

    /// One renewal now (the executor calls it before each send, so a replica that was
    /// paused past its lease does not send after another replica marked the proposal).
    /// Only the store saying the lease is gone loses it; a failed renewal (the database
    /// unreachable a moment) is retried while the last granted lease still holds.
    @discardableResult
    public func renew() -> Bool {
        if state.withLock({ $0.lost }) { return false }
        let now = Clock.epochMilliseconds()
        do {
            try store.renewLease(id, owner: lease.owner, until: lease.expiry(from: now))
            state.withLock { $0.heldUntil = lease.expiry(from: now) }
            return true
        } catch {
            let gone = error.code == .leaseLost || state.withLock { $0.heldUntil } <= Clock.epochMilliseconds()
            if gone { state.withLock { $0.lost = true } }
            return !gone
        }
    }

    public func stop() { state.withLock { $0.stopped = true } }
}

extension ProposalStore {
    /// Claims an approved proposal for execution (approved → executing, once): under `lease`
    /// with its renewer started (a gate replica; the caller stops it), or by this process's
    /// identity (a local `airlock`).
    public func claimExecution(_ id: String, actor: String, lease: ExecutionLease?, note: String? = nil) throws(AirlockError) -> (claimed: Proposal, renewer: LeaseRenewer?) {
        let claimedUntil = lease?.expiry()
        let claimed = try apply(.startExecution, to: id, actor: actor, note: note, executor: lease?.owner ?? Actor.processIdentity(), leaseUntil: claimedUntil)
        let renewer = lease.map { LeaseRenewer(store: self, id: id, lease: $0, claimedUntil: claimedUntil ?? 0) }
        renewer?.start()
        return (claimed, renewer)
    }
}
