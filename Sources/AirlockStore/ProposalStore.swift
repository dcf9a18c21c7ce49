import AirlockCore
import AirlockPolicy
import Glibc

/// The gate's memory (docs/design.md §5, docs/gate.md, docs/architecture.md "The store by
/// role"): sessions, proposals and their transitions, identities and controls, and the
/// hash-chained audit log. Split by who needs what: a broker holds a `ProposalIntake` (and an
/// execution sandbox on a team gate only a `CallRecorder`); deciding and executing take a
/// `DecisionStore`; enrolment and the kill switch a `GateDirectory`; verifying an `AuditLog`.
/// `ProposalStore` is all four: the in-memory (tests), SQLite (the embedded default, in the
/// state directory) and PostgreSQL drivers, which keep the same promises, checked by one test
/// suite run on each (`ProposalStoreContractTests`):
/// - a change and its audit entry are durable together, before the call returns;
/// - `apply` re-reads the state inside its transaction, so of two racing executors exactly
///   one gets `approved → executing` (the claim);
/// - a proposal's payload and digest never change after `propose`.
public protocol ProposalStore: ProposalIntake, DecisionStore, GateDirectory, AuditLog {}

/// What a broker's gateways record besides proposals, audited (docs/design.md invariant 7).
public protocol CallRecorder: AnyObject, Sendable {
    func record(_ call: RecordedCall) throws(AirlockError)
}

public enum RecordedCall: Sendable, Equatable {
    /// A request refused by policy (a hard deny): no proposal, but audited.
    case refusal(sessionID: String, summary: String, rule: String)
    /// An API call made by an approved command's execution (terraform apply's calls): let
    /// through because of that proposal, and audited under it.
    case executionCall(proposalID: String, sessionID: String, summary: String, rule: String)
}

extension CallRecorder {
    public func recordRefusal(sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try record(.refusal(sessionID: sessionID, summary: summary, rule: rule))
    }

    public func recordExecutionCall(proposalID: String, sessionID: String, summary: String, rule: String) throws(AirlockError) {
        try record(.executionCall(proposalID: proposalID, sessionID: sessionID, summary: summary, rule: rule))
    }
}

/// All a broker needs: its session, its proposals and their outcome.
public protocol ProposalIntake: CallRecorder {
    func recordSession(_ session: Session) throws(AirlockError)
    /// Stores a new pending proposal and its audit entry; returns it once durable. Refused
    /// when its session already has `pendingLimit` pending, or is revoked (a `session:ID`
    /// control), both checked in the same transaction.
    func propose(_ draft: ProposalDraft, pendingLimit: Int) throws(AirlockError) -> Proposal
    func proposal(id: String) throws(AirlockError) -> Proposal?
    /// The proposal once it is final, or as it is when `timeout` seconds have passed (0: as it
    /// is now). Executions that can no longer finish are marked `unknown` first.
    func wait(id: String, timeout: Double) throws(AirlockError) -> Proposal?
}

/// Deciding and executing: the lifecycle, leases, previews, listings.
public protocol DecisionStore: AnyObject, Sendable {
    func session(id: String) throws(AirlockError) -> Session?
    /// The ids of the sessions recorded by `user` (an agent host's actor name).
    func sessionIDs(user: String) throws(AirlockError) -> [String]
    func proposal(id: String) throws(AirlockError) -> Proposal?
    /// Newest first. `states` nil means all.
    func proposals(states: Set<ProposalState>?, session: String?) throws(AirlockError) -> [Proposal]
    /// A proposal's newest preview record (outside its digest; replaced when re-checked), nil
    /// when it has none. `preview(of:)` also reads the preview earlier releases kept inside
    /// the payload.
    func previewRecord(_ id: String) throws(AirlockError) -> JSON?
    /// Stores a new preview for a proposal (the newest is the one shown).
    func setPreview(_ preview: JSON, of id: String) throws(AirlockError)

    /// The approvers counted toward a pending proposal that needs several (docs/policy.md,
    /// "Who may approve"), in order: its `approval-counted` audit entries after its last
    /// `approvals-void`.
    func countedApprovals(_ id: String) throws(AirlockError) -> [String]
    /// Counts `actor`'s approval of a pending proposal (an audit entry), re-reading its state
    /// and the approvals counted under the write lock: refused when it is not pending or
    /// `actor` was counted already. Returns every approver counted, this one last.
    func countApproval(_ id: String, actor: String, note: String?) throws(AirlockError) -> [String]
    /// Voids the approvals counted so far (its target drifted: they approved something else);
    /// audited when there were any.
    func voidApprovals(_ id: String, reason: String) throws(AirlockError)

    /// Applies a lifecycle event atomically (the state is re-read under the write lock).
    /// Returns the updated proposal, or throws with why the event cannot apply. `executor`
    /// names who claims an execution; `leaseUntil` (epoch ms), when given, is how long the
    /// claim holds unless renewed (gate replicas); without one the claim is a local process's.
    @discardableResult
    func apply(_ event: ProposalEvent, to id: String, actor: String, note: String?,
               result: ExecutionResult?, executor: String?, leaseUntil: Int64?) throws(AirlockError) -> Proposal

    /// Extends an execution's lease; throws when `owner` no longer holds it (it ran out and
    /// the proposal is `unknown`, or another executor holds it): the executor must stop.
    func renewLease(_ id: String, owner: String, until: Int64) throws(AirlockError)

    /// Marks a leased execution `unknown` only if, re-read under the write lock, its lease
    /// still ended before `now` (a renewal that raced the recovery wins). Returns whether it did.
    func loseLapsedExecution(_ id: String, before now: Int64, note: String) throws(AirlockError) -> Bool

    /// The proposals being executed, with who claimed each and until when.
    func executions() throws(AirlockError) -> [Execution]

    /// Proposals by state and kind, counted by the store.
    func proposalCounts() throws(AirlockError) -> [ProposalCount]

    /// Pending proposals of every session `user` (an agent host's actor name) recorded.
    func pendingCount(user: String) throws(AirlockError) -> Int

    /// Changes other processes made, as they are announced (nil: this driver has no such
    /// feed; the PostgreSQL one does).
    var changes: ProposalChanges? { get }
}

/// Who may use a team gate, and the kill switch.
public protocol GateDirectory: AnyObject, Sendable {
    /// Enrolls an agent host or an approver of a team gate, audited. Refused when the name is
    /// taken for that role, revoked names included: a name means one identity in the log.
    func addIdentity(_ identity: GateIdentity, by actor: String) throws(AirlockError)
    /// The identity holding this token hash, if it is not revoked.
    func identity(tokenHash: String) throws(AirlockError) -> GateIdentity?
    func identities() throws(AirlockError) -> [GateIdentity]
    /// Revokes it (audited); its token is refused from then on. Returns it as revoked.
    @discardableResult
    func revokeIdentity(name: String, role: GateAccess.Role, by actor: String) throws(AirlockError) -> GateIdentity

    /// Sets (`on`) or clears a kill-switch control, audited; idempotent.
    func setControl(_ name: String, on: Bool, by actor: String, reason: String?) throws(AirlockError)
    func controls() throws(AirlockError) -> [GateControl]
}

/// The hash-chained log and its signed checkpoints.
public protocol AuditLog: AnyObject, Sendable {
    func auditEntries() throws(AirlockError) -> [AuditEntry]
    /// Entries numbered `seq` and after, in order.
    func auditEntries(fromSeq seq: Int) throws(AirlockError) -> [AuditEntry]
    /// The newest entry's number and hash (nil: the log is empty).
    func auditHead() throws(AirlockError) -> (seq: Int, hash: String)?
    /// Stores a signed checkpoint of the chain (one per entry number: a second for the same
    /// head, from another replica, is ignored).
    func addCheckpoint(_ checkpoint: AuditCheckpoint) throws(AirlockError)
    func checkpoints() throws(AirlockError) -> [AuditCheckpoint]
    /// All proposals as stored, for checking them against the log.
    func allProposalRows() throws(AirlockError) -> [Proposal]
    /// The `proposed` entry of one proposal (what the log says was proposed).
    func proposedEntry(_ id: String) throws(AirlockError) -> AuditEntry?
}

/// A claimed execution: its executor (a process identity, or a replica's name) and lease.
public struct Execution: Sendable, Equatable {
    public var id: String
    public var executor: String?
    /// Epoch milliseconds; nil for a local process's claim (judged by whether it is alive).
    public var leaseUntil: Int64?

    public init(id: String, executor: String?, leaseUntil: Int64?) {
        self.id = id
        self.executor = executor
        self.leaseUntil = leaseUntil
    }
}

/// Proposals one session may have pending at once (docs/gate.md): an agent in a loop must
/// not bury the human's queue or fill the disk.
public enum ProposalLimits {
    public static let pendingPerSession = 200
}

extension ProposalIntake {
    public func propose(_ draft: ProposalDraft) throws(AirlockError) -> Proposal {
        try propose(draft, pendingLimit: ProposalLimits.pendingPerSession)
    }
}

extension DecisionStore {
    public func proposals(states: Set<ProposalState>? = nil, session: String? = nil) throws(AirlockError) -> [Proposal] {
        try proposals(states: states, session: session)
    }

    @discardableResult
    public func apply(_ event: ProposalEvent, to id: String, actor: String, note: String? = nil,
                      result: ExecutionResult? = nil, executor: String? = nil, leaseUntil: Int64? = nil) throws(AirlockError) -> Proposal {
        try apply(event, to: id, actor: actor, note: note, result: result, executor: executor, leaseUntil: leaseUntil)
    }

    /// Executions that can no longer finish are marked `unknown` (never re-run): a leased
    /// one whose lease ran out before `now` (epoch ms), wherever its executor ran; an
    /// unleased (local) one whose process on this host is gone. Returns the ids marked.
    @discardableResult
    public func recoverInterruptedExecutions(now: Int64 = Clock.epochMilliseconds()) throws(AirlockError) -> [String] {
        var marked: [String] = []
        for execution in try executions() {
            let why: String
            if let lease = execution.leaseUntil {
                guard lease < now else { continue }
                let lapsed = "the executor (\(execution.executor ?? "?"))'s lease ran out before it recorded a result"
                if (try? loseLapsedExecution(execution.id, before: now, note: lapsed)) == true { marked.append(execution.id) }
                continue
            } else {
                if let executor = execution.executor, Actor.isAlive(executor) { continue }
                why = "the executing process (\(execution.executor ?? "?")) ended before recording a result"
            }
            do {
                // The why is in the result too: what the approver and the agent are shown.
                try apply(.lose, to: execution.id, actor: "airlock", note: why, result: ExecutionResult(output: [], error: why))
                marked.append(execution.id)
            } catch {
                continue  // someone else recorded it meanwhile
            }
        }
        return marked
    }

    /// What the approver is shown of a proposal: its newest preview record, else the preview an
    /// earlier release wrote inside the payload (ProposalPayload.legacyPreview).
    public func preview(of proposal: Proposal) throws(AirlockError) -> JSON? {
        if let record = try previewRecord(proposal.id) { return record }
        return ProposalPayload.legacyPreview(proposal.payload)
    }

    public var changes: ProposalChanges? { nil }

    public func pendingCount(user: String) throws(AirlockError) -> Int {
        var count = 0
        for session in try sessionIDs(user: user) { count += try proposals(states: [.pending], session: session).count }
        return count
    }

    /// The local drivers' wait (ProposalIntake): looks every 200 ms, or as soon as `changes`
    /// announces the proposal (PostgreSQL's notifications), recovering interrupted executions
    /// at each look.
    public func waitByLooking(id: String, timeout: Double) throws(AirlockError) -> Proposal? {
        let deadline = Clock.monotonicSeconds() + max(0, timeout)
        while true {
            try recoverInterruptedExecutions()
            let generation = changes?.generation(id)
            guard let current = try proposal(id: id) else { return nil }
            if current.state.isFinal || Clock.monotonicSeconds() >= deadline { return current }
            var slept = 0
            while slept < 200 && Clock.monotonicSeconds() < deadline {
                usleep(20_000)
                slept += 20
                if let generation, changes?.generation(id) != generation { break }
            }
        }
    }
}

/// What the drivers (in memory, SQLite, PostgreSQL) share beyond their storage: `record`
/// dispatches to how each stores a refusal and an execution's call, and `wait` looks
/// (`waitByLooking`). The gate client records and waits its own way (over the gate's API).
public protocol ProposalStoreDriver: ProposalStore {
    func storeRefusal(sessionID: String, summary: String, rule: String) throws(AirlockError)
    func storeExecutionCall(proposalID: String, sessionID: String, summary: String, rule: String) throws(AirlockError)
}

extension ProposalStoreDriver {
    public func record(_ call: RecordedCall) throws(AirlockError) {
        switch call {
        case .refusal(let sessionID, let summary, let rule):
            try storeRefusal(sessionID: sessionID, summary: summary, rule: rule)
        case .executionCall(let proposalID, let sessionID, let summary, let rule):
            try storeExecutionCall(proposalID: proposalID, sessionID: sessionID, summary: summary, rule: rule)
        }
    }

    public func wait(id: String, timeout: Double) throws(AirlockError) -> Proposal? {
        try waitByLooking(id: id, timeout: timeout)
    }
}

extension GateDirectory {
    public func control(_ name: String) throws(AirlockError) -> GateControl? {
        try controls().first { $0.name == name }
    }
}

extension AuditLog {
    public func proposedEntry(_ id: String) throws(AirlockError) -> AuditEntry? {
        try auditEntries().first { $0.proposalID == id && $0.event == "proposed" }
    }

    public func auditEntries(fromSeq seq: Int) throws(AirlockError) -> [AuditEntry] {
        try auditEntries().filter { $0.seq >= seq }
    }

    /// Checks the chain and that every proposal row agrees with what the log says of it.
    public func verifyAudit() throws(AirlockError) -> AuditChain.Report {
        let entries = try auditEntries()
        return AuditChain.verify(entries: entries, proposals: try allProposalRows())
    }
}

extension DecisionStore where Self: AuditLog {
    /// What the rules asked of a proposal when it was proposed (its `proposed` audit entry);
    /// one approver and no deadline of its own for a proposal made before rules.
    public func requirement(of id: String) throws(AirlockError) -> PolicyRequirement {
        guard let entry = try proposedEntry(id), let detail = try? JSON.parse(entry.detail),
              let requirement = detail["requirement"].flatMap(PolicyRequirement.init(json:)) else { return .legacy }
        return requirement
    }
}

extension ProposalStore {
    /// Expires what waited past its deadline (ProposalDeadlines): `pending → expired`,
    /// `approved → expired`, each a transition and an audit entry by `airlock`. `now` is epoch
    /// milliseconds (the caller's clock, injected in tests). Returns the ids expired; one
    /// another process decided meanwhile is left as it became.
    @discardableResult
    public func expireOverdue(_ deadlines: ProposalDeadlines = ProposalDeadlines(), now: Int64 = Clock.epochMilliseconds()) throws(AirlockError) -> [String] {
        var expired: [String] = []
        for proposal in try proposals(states: [.pending, .approved], session: nil) {
            // Each proposal's own deadline (its rules' @expires, in its proposed entry) too.
            let own = deadlines.tightened(by: try requirement(of: proposal.id))
            guard own.pending != nil || own.approved != nil,
                  let created = Clock.epochMilliseconds(parsing: proposal.createdAt),
                  let updated = Clock.epochMilliseconds(parsing: proposal.updatedAt),
                  let why = own.expiry(state: proposal.state, created: Double(created) / 1000, updated: Double(updated) / 1000,
                                       now: Double(now) / 1000) else { continue }
            do {
                try apply(.expire, to: proposal.id, actor: "airlock", note: why)
                expired.append(proposal.id)
            } catch where error.code == .conflict {
                continue  // decided or claimed meanwhile
            }
        }
        return expired
    }

    /// Why a proposal's row no longer matches what its `proposed` audit entry recorded (its
    /// digest, summary, upstream, kind), if it does not: the row was rewritten in the
    /// database after the proposal. Nil when they match.
    public func rowMismatch(_ proposal: Proposal) throws(AirlockError) -> String? {
        guard let entry = try proposedEntry(proposal.id) else { return "the audit log has no proposed entry for \(proposal.id)" }
        guard let detail = try? JSON.parseStrict(bytes: Array(entry.detail.utf8)) else { return "its proposed entry is not JSON" }
        for (field, value) in [("digest", proposal.digest), ("summary", proposal.summary), ("upstream", proposal.upstream),
                               ("kind", proposal.kind.rawValue)] where detail[field]?.string != value {
            return "its \(field) is not the one the audit log recorded when it was proposed"
        }
        return nil
    }

    /// The kill switch for one session: it is revoked first (so it can propose nothing
    /// more, checked inside `propose`'s transaction), then every pending proposal of it is
    /// denied. Returns the ids denied.
    @discardableResult
    public func revokeSession(_ id: String, by actor: String, reason: String?) throws(AirlockError) -> [String] {
        try setControl(GateControl.session(id), on: true, by: actor, reason: reason)
        var denied: [String] = []
        for proposal in try proposals(states: [.pending], session: id) {
            do {
                try apply(.deny, to: proposal.id, actor: actor, note: "session \(id) revoked" + (reason.map { ": " + $0 } ?? ""))
                denied.append(proposal.id)
            } catch {
                continue  // decided meanwhile
            }
        }
        return denied
    }

    /// Revokes an identity; for an agent host also each of its sessions, denying their
    /// pending proposals (a revoked host's queued work goes with it). Returns the ids denied.
    public func revokeIdentityAndWork(name: String, role: GateAccess.Role, by actor: String) throws(AirlockError) -> (GateIdentity, [String]) {
        let revoked = try revokeIdentity(name: name, role: role, by: actor)
        var denied: [String] = []
        if role == .host {
            for session in try sessionIDs(user: revoked.actor) {
                denied += try revokeSession(session, by: actor, reason: "host \(revoked.name) revoked")
            }
        }
        return (revoked, denied)
    }
}
