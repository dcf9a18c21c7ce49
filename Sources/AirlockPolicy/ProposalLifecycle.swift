/// docs/design.md §5: `pending → approved → executing → succeeded | failed | unknown`,
/// `pending → denied | expired`. Pure: which transitions exist and who may make them.
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

    /// The state this event applies to.
    public var requiredState: ProposalState {
        switch self {
        case .approve, .deny, .expire: return .pending
        case .startExecution: return .approved
        case .succeed, .fail, .lose: return .executing
        }
    }
}

public enum ProposalLifecycle {
    /// The state after `event`, or nil when the event does not apply to `state`.
    public static func next(_ state: ProposalState, on event: ProposalEvent) -> ProposalState? {
        event.requiredState == state ? event.resultingState : nil
    }

    /// Why an event cannot apply, in words for the person who tried.
    public static func refusal(_ state: ProposalState, on event: ProposalEvent) -> String {
        switch (state, event) {
        case (.approved, .approve), (.executing, .approve), (.succeeded, .approve), (.failed, .approve):
            return "it was already approved (now \(state.rawValue)); it runs once, never twice"
        case (.unknown, _):
            return "its execution was interrupted: whether it took effect upstream is unknown, and Airlock never runs it again; check upstream and make a new proposal if needed"
        case (.denied, _): return "it was denied"
        case (.expired, _): return "it expired before anyone decided"
        default: return "it is \(state.rawValue)"
        }
    }
}
