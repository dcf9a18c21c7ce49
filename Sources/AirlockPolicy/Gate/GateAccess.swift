import AirlockCore

/// Who may call what on a team gate (docs/gate.md, "Team gate"): agent hosts propose and wait
/// on their own sessions' proposals; approvers list, inspect and decide. No call an agent host
/// can make approves anything: a host's token is refused for every approver call, whatever
/// else the request says. Pure.
public enum GateAccess {
    public enum Role: String, Sendable, CaseIterable {
        /// An enrolled agent host (`airlock gate host add NAME`).
        case host
        /// A person who decides (`airlock gate user add NAME`).
        case approver
    }

    public enum Action: String, Sendable, CaseIterable {
        /// Who am I: what a launch checks before the agent starts.
        case whoami
        case propose, recordSession, waitOwn
        case list, show, approve, deny, audit
        case revoke, freeze
    }

    public static func allows(_ role: Role, _ action: Action) -> Bool {
        switch (role, action) {
        case (_, .whoami): return true
        case (.host, .propose), (.host, .recordSession), (.host, .waitOwn): return true
        case (.host, _): return false
        case (.approver, .propose), (.approver, .recordSession): return false
        case (.approver, _): return true
        }
    }
}

/// The bearer tokens a gate issues: `airlock_host_…` or `airlock_user_…` and 43 random
/// characters (256 bits). Only their SHA-256 is stored, so a copy of the store lets nobody
/// act as a host or an approver.
public enum GateToken {
    static let alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    public static func prefix(_ role: GateAccess.Role) -> String {
        role == .host ? "airlock_host_" : "airlock_user_"
    }

    public static func make(_ role: GateAccess.Role) -> String {
        prefix(role) + RandomID.make(43, alphabet: alphabet)
    }

    /// The stored form.
    public static func hash(_ token: String) -> String {
        SigV4.hexSHA256(Array(token.utf8))
    }

    /// The role a token's text claims (the store decides whether it is real), nil when it is
    /// not one of Airlock's tokens at all.
    public static func claimedRole(_ token: String) -> GateAccess.Role? {
        for role in GateAccess.Role.allCases where token.hasPrefix(prefix(role)) {
            let rest = token.dropFirst(prefix(role).count)
            guard rest.count == 43, rest.utf8.allSatisfy({ alphabet.utf8.contains($0) }) else { return nil }
            return role
        }
        return nil
    }
}
