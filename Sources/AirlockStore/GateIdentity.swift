import AirlockPolicy

/// An agent host or an approver enrolled on a team gate; its token is stored only as its hash.
public struct GateIdentity: Sendable, Equatable {
    public var name: String
    public var role: GateAccess.Role
    public var tokenHash: String
    public var createdAt: String
    public var revokedAt: String?

    public init(name: String, role: GateAccess.Role, tokenHash: String, createdAt: String, revokedAt: String? = nil) {
        self.name = name
        self.role = role
        self.tokenHash = tokenHash
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    /// How it appears in the audit log and in `decided_by`: `host:NAME` or `user:NAME`.
    public var actor: String { (role == .host ? "host:" : "user:") + name }

    /// Names people type: 1–64 letters, digits, `.`, `_`, `-`, and `@` (an identity
    /// provider's or a proxy's e-mail address names a person too).
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.first != 0x40 && name.utf8.allSatisfy {
            ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D || $0 == 0x40
        }
    }
}
