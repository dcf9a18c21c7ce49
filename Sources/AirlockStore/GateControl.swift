import AirlockCore
import AirlockPolicy

/// A kill-switch setting of a team gate (docs/gate.md, "Kill switch"), in the store so every
/// replica obeys it: `freeze` (no execution starts) or `session:ID` (that session is revoked:
/// it can propose nothing more). Set and cleared by an approver, audited.
public struct GateControl: Sendable, Equatable {
    public static let freeze = "freeze"
    public static func session(_ id: String) -> String { "session:" + id }

    public var name: String
    public var setBy: String
    public var setAt: String
    public var reason: String?

    public init(name: String, setBy: String, setAt: String, reason: String?) {
        self.name = name
        self.setBy = setBy
        self.setAt = setAt
        self.reason = reason
    }

    public var json: JSON {
        .object([("name", .string(name)), ("set_by", .string(setBy)), ("set_at", .string(setAt)),
                 ("reason", reason.map(JSON.string) ?? .null)])
    }
}

/// How many proposals are in each state, by kind (for /metrics), counted by the store.
public struct ProposalCount: Sendable, Equatable {
    public var state: ProposalState
    public var kind: Proposal.Kind
    public var count: Int

    public init(state: ProposalState, kind: Proposal.Kind, count: Int) {
        self.state = state
        self.kind = kind
        self.count = count
    }
}
