import AirlockCore
import AirlockPolicy
import AirlockStore
import Synchronization

/// The cookies the page sets (docs/web.md, "Sign-in"). The session cookie is
/// `HttpOnly; Secure; SameSite=Strict; Path=/`: no script reads it, it never crosses plain
/// HTTP off loopback, and no other site's page can make the browser send it (a forged form
/// post arrives without it). The OpenID Connect cookie is `SameSite=Lax` on /ui/oidc only:
/// the provider's redirect back is a cross-site navigation, which a Strict cookie would miss.
public enum WebCookies {
    public static let session = "airlock_session"
    public static let oidc = "airlock_oidc"

    /// `name=value` pairs of a Cookie header; a name seen twice keeps its first value.
    public static func parse(_ header: String?) -> [String: String] {
        var found: [String: String] = [:]
        for part in (header ?? "").split(separator: ";") {
            let pair = part.trimmingCharacters(in: " ")
            guard let equals = pair.firstIndex(of: "=") else { continue }
            let name = String(pair[..<equals]), value = String(pair[pair.index(after: equals)...])
            if found[name] == nil { found[name] = value }
        }
        return found
    }

    public static func sessionCookie(_ value: String, maxAge: Int) -> String {
        "\(session)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; Secure; SameSite=Strict"
    }

    public static func clearSession() -> String { "\(session)=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict" }

    public static func oidcCookie(_ value: String) -> String {
        "\(oidc)=\(value); Path=/ui/oidc; Max-Age=600; HttpOnly; Secure; SameSite=Lax"
    }

    public static func clearOIDC() -> String { "\(oidc)=; Path=/ui/oidc; Max-Age=0; HttpOnly; Secure; SameSite=Lax" }

    /// 256 bits, URL- and cookie-safe.
    public static func token() -> String { RandomID.make(43, alphabet: "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") }

    public static func hash(_ token: String) -> String { SigV4.hexSHA256(Array(token.utf8)) }
}

private extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var text = self
        while text.first == set { text.removeFirst() }
        while text.last == set { text.removeLast() }
        return text
    }
}

/// `airlock ui`'s sign-ins: one process, one person (the store's owner), so memory. The
/// same contract as the gate's store: hashed sessions, one-time links used atomically.
public final class MemorySignIns: WebSignInStore {
    private struct State {
        var sessions: [String: WebSession] = [:]
        var links: [String: (name: String, expiresAt: Int64, used: Bool)] = [:]
        var subjects: [String: String] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    public func addWebSession(hash: String, _ session: WebSession) throws(AirlockError) { state.withLock { $0.sessions[hash] = session } }

    public func webSession(hash: String, now: Int64) throws(AirlockError) -> WebSession? {
        state.withLock { $0.sessions[hash].flatMap { $0.expiresAt > now ? $0 : nil } }
    }

    public func removeWebSession(hash: String) throws(AirlockError) { _ = state.withLock { $0.sessions.removeValue(forKey: hash) } }

    public func addLoginLink(hash: String, name: String, expiresAt: Int64, by actor: String) throws(AirlockError) {
        state.withLock { $0.links[hash] = (name, expiresAt, false) }
    }

    public func loginLinkName(hash: String, now: Int64) throws(AirlockError) -> String? {
        state.withLock { $0.links[hash].flatMap { !$0.used && $0.expiresAt > now ? $0.name : nil } }
    }

    public func consumeLoginLink(hash: String, now: Int64) throws(AirlockError) -> String? {
        state.withLock { state -> String? in
            guard let link = state.links[hash], !link.used, link.expiresAt > now else { return nil }
            state.links[hash]?.used = true
            return link.name
        }
    }

    public func boundName(kind: String, subject: String) throws(AirlockError) -> String? {
        state.withLock { $0.subjects[kind + "\u{0}" + subject] }
    }

    public func bindSubject(kind: String, subject: String, name: String, by actor: String) throws(AirlockError) {
        try state.withLock { (state: inout State) throws(AirlockError) in
            if let other = state.subjects.first(where: { $0.value == name && $0.key.hasPrefix(kind + "\u{0}") }), other.key != kind + "\u{0}" + subject {
                throw WebSignInRecords.nameTaken(name, kind: kind)
            }
            state.subjects[kind + "\u{0}" + subject] = name
        }
    }
}
