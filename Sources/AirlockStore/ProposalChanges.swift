import AirlockCore
import Synchronization

/// Which proposals changed, as a counter per id (docs/gate.md, "Replicas"): a gate's waits
/// look at it in memory and read the store only when their proposal's counter moves. The
/// gate bumps it for its own transitions; the PostgreSQL driver bumps it for every replica's,
/// from LISTEN/NOTIFY. Counters are never removed (one small entry per proposal touched while
/// the process lives).
public final class ProposalChanges: Sendable {
    private let counters = Mutex<[String: UInt64]>([:])
    /// Moves with every bump: the web page's live queue watches it (docs/web.md).
    private let everything = Atomic<UInt64>(0)

    public init() {}

    public func bump(_ id: String) {
        counters.withLock { $0[id, default: 0] &+= 1 }
        everything.add(1, ordering: .releasing)
    }

    /// Bumped for no proposal in particular: something else changed (the audit head moved).
    public func bumpAll() { everything.add(1, ordering: .releasing) }

    /// How many changes this process has seen, of any proposal.
    public var generation: UInt64 { everything.load(ordering: .acquiring) }

    public func generation(_ id: String) -> UInt64 { counters.withLock { $0[id] ?? 0 } }

    /// Returns true when `id` changed after `generation` within `timeout`; looks every 20 ms
    /// (in memory, no store access).
    public func wait(_ id: String, after generation: UInt64, timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if self.generation(id) != generation { return true }
            do { try await Task.sleep(for: .milliseconds(20)) } catch { return false }
        }
        return self.generation(id) != generation
    }
}
