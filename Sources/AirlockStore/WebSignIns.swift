import AirlockCore
import AirlockPolicy

/// A person signed in to the web page (docs/web.md, "Sign-in"). The browser holds a random
/// cookie; the store keeps only its SHA-256 (like approver tokens: a copy of the store signs
/// nobody in), the person's name, their role on the page, how they signed in, the CSRF token
/// bound to this session, and when it ends.
public struct WebSession: Sendable, Equatable {
    public var name: String
    public var role: GateWebConfig.Role
    /// "oidc", "proxy", "link" or "local".
    public var source: String
    public var csrf: String
    /// Milliseconds since the epoch.
    public var expiresAt: Int64

    public init(name: String, role: GateWebConfig.Role, source: String, csrf: String, expiresAt: Int64) {
        self.name = name
        self.role = role
        self.source = source
        self.csrf = csrf
        self.expiresAt = expiresAt
    }

    /// How the person appears in the audit log: the same actor as their approver token, so
    /// one person counts once whichever way they came in (docs/policy.md, "Who may approve").
    public var actor: String { "user:" + name }
}

/// Where web sessions, one-time login links and the identity provider's subjects live: the
/// gate's store (every replica sees the same), or memory for `airlock ui`.
public protocol WebSignInStore: Sendable {
    func addWebSession(hash: String, _ session: WebSession) throws(AirlockError)
    /// The session, if it has not ended (expired or signed out).
    func webSession(hash: String, now: Int64) throws(AirlockError) -> WebSession?
    func removeWebSession(hash: String) throws(AirlockError)

    /// A one-time link for `name`, valid until `expiresAt`; audited.
    func addLoginLink(hash: String, name: String, expiresAt: Int64, by actor: String) throws(AirlockError)
    /// The name a link signs in as, without using it (the page that asks "continue?").
    func loginLinkName(hash: String, now: Int64) throws(AirlockError) -> String?
    /// Uses the link: its name the first time, nil for an unknown, used or expired link.
    /// Atomic: two browsers racing for one link, one wins.
    func consumeLoginLink(hash: String, now: Int64) throws(AirlockError) -> String?

    /// The Airlock name an identity provider's subject (`kind` is the issuer) is bound to.
    func boundName(kind: String, subject: String) throws(AirlockError) -> String?
    /// Binds a subject to a name, once: a name bound to another subject of the same kind is
    /// refused (one identity per person), and the binding is audited.
    func bindSubject(kind: String, subject: String, name: String, by actor: String) throws(AirlockError)
}

public enum WebSignInRecords {
    public static func nameTaken(_ name: String, kind: String) -> AirlockError {
        AirlockError("the name \(name) is already bound to another account of \(kind); one name is one person",
                     hint: "an admin can revoke the old binding's user (airlock gate user revoke \(name)) or the provider can send another name",
                     code: .forbidden)
    }

    public static func linkDetail(name: String, expiresAt: Int64) -> JSON {
        .object([("name", .string(name)), ("expires_at", .string(Clock.format(seconds: Int(expiresAt / 1000), milliseconds: Int(expiresAt % 1000))))])
    }

    public static func bindDetail(kind: String, subject: String, name: String) -> JSON {
        .object([("name", .string(name)), ("issuer", .string(kind)), ("subject", .string(subject))])
    }
}
