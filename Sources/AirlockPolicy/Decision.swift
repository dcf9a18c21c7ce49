/// What the gate does with a request or command (docs/design.md §4.1), always with the rule that
/// decided, in words a person can check.
public enum Decision: String, Sendable, Comparable, CaseIterable {
    /// Passes straight through.
    case read
    /// Becomes a proposal: changes something.
    case mutation
    /// Becomes a proposal: reads something that must not reach the agent unseen.
    case sensitive
    /// Refused outright.
    case deny

    /// Privilege order, for ambiguous requests: the most privileged candidate decides.
    var rank: Int {
        switch self {
        case .read: return 0
        case .mutation: return 1
        case .sensitive: return 2
        case .deny: return 3
        }
    }

    public static func < (a: Decision, b: Decision) -> Bool { a.rank < b.rank }

    /// Whether the request waits behind the gate.
    public var needsApproval: Bool { self == .mutation || self == .sensitive }
}

public struct Ruling: Sendable, Equatable {
    public var decision: Decision
    /// The rule that decided, e.g. "IAM access level Write (ec2:RunInstances)".
    public var rule: String

    public init(_ decision: Decision, _ rule: String) {
        self.decision = decision
        self.rule = rule
    }
}
