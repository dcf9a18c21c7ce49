/// docs/design.md §5: `pending → approved → executing → succeeded | failed | unknown`,
/// `pending → denied | expired`, `approved → expired` (not executed in time). Pure: which
/// transitions exist and who may make them.
public enum ProposalState: String, Sendable, CaseIterable {
    case pending, approved, executing, succeeded, failed, unknown, denied, expired

    /// No further transition exists.
    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .unknown, .denied, .expired: return true
        case .pending, .approved, .executing: return false
        }
    }
}

public enum ProposalEvent: String, Sendable, CaseIterable {
    case approve, deny, expire
    /// The executor claims an approved proposal (exactly once).
    case startExecution = "start"
    case succeed, fail
    /// The executor vanished mid-execution: what happened upstream is not known, and it is
    /// never run again.
    case lose

    public var resultingState: ProposalState {
        switch self {
        case .approve: return .approved
        case .deny: return .denied
        case .expire: return .expired
        case .startExecution: return .executing
        case .succeed: return .succeeded
        case .fail: return .failed
        case .lose: return .unknown
        }
    }

    /// The states this event applies to.
    public var requiredStates: Set<ProposalState> {
        switch self {
        case .approve, .deny: return [.pending]
        case .expire: return [.pending, .approved]
        case .startExecution: return [.approved]
        case .succeed, .fail, .lose: return [.executing]
        }
    }
}

/// When a proposal stops waiting (docs/design.md §5: expiry is a deny): a pending one not
/// decided within `pending` seconds of being proposed, an approved one not executed within
/// `approved` seconds of its approval. Pure: the caller passes the clock.
public struct ProposalDeadlines: Sendable, Equatable {
    public var pending: Double?
    public var approved: Double?

    public init(pending: Double? = nil, approved: Double? = nil) {
        self.pending = pending
        self.approved = approved
    }

    /// Whether a proposal in `state`, proposed at `created` and last changed at `updated`
    /// (epoch seconds), has expired at `now`; nil when it has not.
    public func expiry(state: ProposalState, created: Double, updated: Double, now: Double) -> String? {
        switch state {
        case .pending:
            guard let pending, now - created >= pending else { return nil }
            return "not decided within \(Self.spell(pending)) of being proposed"
        case .approved:
            guard let approved, now - updated >= approved else { return nil }
            return "approved, but not executed within \(Self.spell(approved)) of the approval"
        default:
            return nil
        }
    }

    /// These deadlines with a proposal's own (its rules' `@expires`): the earlier wins.
    public func tightened(by requirement: PolicyRequirement) -> ProposalDeadlines {
        guard requirement.expiresAfter.isFinite else { return self }
        return ProposalDeadlines(pending: min(pending ?? .infinity, requirement.expiresAfter),
                                 approved: min(approved ?? .infinity, requirement.expiresAfter))
    }

    static func spell(_ seconds: Double) -> String {
        seconds >= 3600 && seconds.truncatingRemainder(dividingBy: 3600) == 0 ? "\(Int(seconds / 3600)) h"
            : seconds >= 60 && seconds.truncatingRemainder(dividingBy: 60) == 0 ? "\(Int(seconds / 60)) min" : "\(Int(seconds)) s"
    }
}

public enum ProposalLifecycle {
    /// The state after `event`, or nil when the event does not apply to `state`.
    public static func next(_ state: ProposalState, on event: ProposalEvent) -> ProposalState? {
        event.requiredStates.contains(state) ? event.resultingState : nil
    }

    /// Why an event cannot apply, in words for the person who tried.
    public static func refusal(_ state: ProposalState, on event: ProposalEvent) -> String {
        switch (state, event) {
        case (.approved, .approve), (.executing, .approve), (.succeeded, .approve), (.failed, .approve):
            return "it was already approved (now \(state.rawValue)); it runs once, never twice"
        case (.unknown, _):
            return "its execution was interrupted: whether it took effect upstream is unknown, and Airlock never runs it again; check upstream and make a new proposal if needed"
        case (.denied, _): return "it was denied"
        case (.expired, _): return "it expired: a deadline passed before it was decided or run"
        default: return "it is \(state.rawValue)"
        }
    }
}
