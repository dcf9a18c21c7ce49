import AirlockCore
import AirlockPolicy
import AirlockStore
@testable import AirlockWeb
import Crypto
import Foundation
import Testing

/// The web page's pure parts and sign-in checks (docs/web.md): escaping, the ID token's
/// verification (ES256 tokens signed here, every way a token is refused), gate.yaml's web:
/// section, and the sign-in store contract on SQLite, PostgreSQL and memory.
@Suite struct WebSignInTests {
    // MARK: Escaping

    @Test func agentTextIsEscapedByScalarNotByCharacter() {
        // `"` + U+0301 is one Character; its `"` must still be escaped.
        let key = "x\"\u{301} onmouseover=alert(1) \"><img src=x onerror=alert(1)>"
        let escaped = HTMLText.escape(key)
        #expect(!escaped.unicodeScalars.contains("\""))
        #expect(!escaped.contains("<") && !escaped.contains(">"))
        #expect(escaped.contains("&quot;\u{301}"))
        // The templates use it for every value, attributes included.
        let html = WebTemplates.render("queueTable", ["rows": [["id": key, "summary": "<script>alert(1)</script>", "state": "pending",
                                                                "approvals": "", "session": "s", "created": "t", "labels": [String]()]],
                                                      "generation": "1"])
        #expect(!html.contains("<script>alert(1)") && !html.contains("<img"), "\(html)")
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!html.unicodeScalars.split(separator: "\"").contains { $0.starts(with: "\u{301}".unicodeScalars) }, "a quote was left open")
    }

    @Test func requestTextDecodesFormParametersAndPathsApartOnOneLineEach() {
        // A parameter holding a newline and a forged note, a bidi override in the path.
        let body = "Action=DeleteStack&StackName=%3Cscript%3Ealert(1)%3C%2Fscript%3E&Note=x%0A%23%20StackName%20%3D%20dev"
        let payload = JSON.object([("type", .string("aws-request")), ("service", .string("cloudformation")), ("signing_name", .string("cloudformation")),
                                   ("context", .string("prod-admin")), ("method", .string("POST")), ("path", .string("/b/a%20b%2Bc%E2%80%AE")),
                                   ("headers", .array([.array([.string("Content-Type"), .string("application/x-www-form-urlencoded")])])),
                                   ("body_base64", .string(Base64.encode(Array(body.utf8))))])
        let (text, decoded) = WebViews.request(Array(payload.serialized().utf8))
        #expect(decoded.contains("StackName = <script>alert(1)</script>\n"), "\(decoded)")
        #expect(decoded.contains("Note = x\\u{A}# StackName = dev\n"), "a newline in a value stays on its line: \(decoded)")
        #expect(decoded.contains("path: /b/a b+c\u{202E}"), "\(decoded)")
        #expect(text.contains(body), "the bytes sent are shown as they are")
        #expect(text.contains("# context: prod-admin") && text.contains("# signing_name: cloudformation"), "every field: \(text)")
        // On the page the override is shown, not obeyed.
        #expect(HTMLText.escape("a\u{202E}b\u{200B}") == "a⟦U+202E⟧b⟦U+200B⟧")
        #expect(PercentEncoding.decode("%+F%-0%41") == "%+F%-0A", "only two hex digits decode")
    }

    @Test func formsAndCookiesParse() {
        #expect(WebApp.formFields("csrf=a%2Bb&reason=two+words&csrf=second") == ["csrf": "a+b", "reason": "two words"])
        #expect(WebCookies.parse("a=1; airlock_session=xyz; a=2") == ["a": "1", "airlock_session": "xyz"])
        #expect(SigV4.constantTimeEquals("abc", "abc") && !SigV4.constantTimeEquals("abc", "abd") && !SigV4.constantTimeEquals("abc", "abcd"))
        #expect(PercentEncoding.encode("a b/c~") == "a%20b%2Fc~")
        // RFC 7636 appendix B's example.
        let pending = OIDCSignIn.Pending(state: "s", nonce: "n", verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        #expect(pending.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(OIDCSignIn.Pending(cookie: pending.cookie) == pending)
        #expect(OIDCSignIn.Pending(cookie: "a.b") == nil)
    }

    // MARK: gate.yaml

    static func parse(_ web: String) throws(AirlockError) -> GateConfig {
        try GateConfig.parse("listen: 127.0.0.1:8443\nstore: {sqlite: /s}\nstate_dir: /d\n" + web, source: "gate.yaml")
    }

    @Test func webSectionParsesAndRefusesWhatIsUnsafe() throws {
        let config = try Self.parse("""
            web:
              url: https://gate.example.com/
              oidc: {issuer: "https://idp.example.com", client_id: airlock, client_secret_file: /etc/airlock/secret}
              proxy: {addresses: [10.0.0.5, "::1"]}
              roles: {admin: [sre], approver: [deployers], viewer: [engineering]}
            """)
        #expect(config.webURL == "https://gate.example.com")
        #expect(config.web.enrol == .admin, "only accounts an admin bound, by default")
        #expect(try Self.parse("web: {enrol: provider}").web.enrol == .provider)
        #expect(try Self.parse("web: {oidc: {issuer: \"https://idp/\", client_id: a, client_secret_file: /s}, roles: {viewer: [x]}}").web.oidc?.issuer == "https://idp/",
                "the issuer exactly as the provider names itself")
        #expect(config.web.role(groups: ["engineering"]) == .viewer)
        #expect(config.web.role(groups: ["engineering", "sre"]) == .admin)
        #expect(config.web.role(groups: ["deployers"]) == .approver)
        #expect(config.web.role(groups: ["sales"]) == nil)
        #expect(config.web.isProxy("10.0.0.5") && config.web.isProxy("::ffff:10.0.0.5") && config.web.isProxy("::1"))
        #expect(!config.web.isProxy("10.0.0.6") && !config.web.isProxy(nil))
        #expect(try Self.parse("").webURL == "http://127.0.0.1:8443")
        let refused: [(String, String)] = [
            ("web: {oidc: {issuer: http://idp.example.com, client_id: a, client_secret_file: /s}, roles: {viewer: [x]}}", "https"),
            ("web: {oidc: {issuer: https://i, client_id: a, client_secret_file: /s, algorithms: [none]}, roles: {viewer: [x]}}", "none and HMAC"),
            ("web: {oidc: {issuer: https://i, client_id: a, client_secret_file: /s, algorithms: [HS256]}, roles: {viewer: [x]}}", "none and HMAC"),
            ("web: {oidc: {issuer: https://i, client_id: a, client_secret_file: /s}}", "web.roles is required"),
            ("web: {proxy: {addresses: [proxy.example.com]}, roles: {viewer: [x]}}", "IP addresses"),
            ("web: {url: http://gate.example.com}", "https"),
            ("web: {roles: {owner: [x]}}", "no key owner"),
            ("web: {enrol: anyone}", "web.enrol must be"),
            ("web: {proxy: {addresses: [10.0.0.1], user_header: \"X-User: x\"}, roles: {viewer: [x]}}", "header name"),
        ]
        for (text, expected) in refused {
            #expect(throws: AirlockError.self) { _ = try Self.parse(text) }
            do throws(AirlockError) { _ = try Self.parse(text) } catch { #expect(error.message.contains(expected), "\(text): \(error.message)") }
        }
    }

    // MARK: ID tokens

    struct Issuer {
        let key = P256.Signing.PrivateKey()
        let other = P256.Signing.PrivateKey()
        var jwk: JSON {
            let raw = Array(key.publicKey.rawRepresentation)
            return .object([("kty", .string("EC")), ("crv", .string("P-256")), ("kid", .string("ec-1")), ("alg", .string("ES256")),
                            ("x", .string(OIDCSignIn.base64url(Array(raw.prefix(32))))), ("y", .string(OIDCSignIn.base64url(Array(raw.suffix(32)))))])
        }

        func token(header: [(String, JSON)] = [("alg", .string("ES256")), ("kid", .string("ec-1"))], claims: [(String, JSON)],
                   signer: P256.Signing.PrivateKey? = nil, signature: String? = nil) -> String {
            let head = OIDCSignIn.base64url(Array(JSON.object(header).serialized().utf8))
            let body = OIDCSignIn.base64url(Array(JSON.object(claims).serialized().utf8))
            let input = head + "." + body
            let signed = try! (signer ?? key).signature(for: Array(input.utf8))
            return input + "." + (signature ?? OIDCSignIn.base64url(Array(signed.rawRepresentation)))
        }
    }

    static func claims(_ changes: [String: JSON] = [:], now: Int = Int(Date().timeIntervalSince1970)) -> [(String, JSON)] {
        var fields: [(String, JSON)] = [("iss", .string("https://idp.example.com")), ("aud", .string("airlock")), ("sub", .string("sub-alice")),
                                        // An hour: the verification's awaits may wait minutes behind other tests.
                                        ("exp", .number(Double(now + 3600))), ("iat", .number(Double(now))), ("nonce", .string("the-nonce")),
                                        ("preferred_username", .string("alice")), ("groups", .array([.string("deployers")]))]
        for (key, value) in changes {
            if let index = fields.firstIndex(where: { $0.0 == key }) { fields[index].1 = value } else { fields.append((key, value)) }
        }
        return fields.filter { if case .null = $0.1 { return false }; return true }
    }

    static func verifier(_ issuer: Issuer) throws -> OIDCSignIn {
        let secret = NSTemporaryDirectory() + "oidc-secret-\(UUID().uuidString)"
        try "s3cret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        let signIn = try OIDCSignIn(GateWebConfig.OIDC(issuer: "https://idp.example.com", clientID: "airlock", clientSecretFile: secret),
                                    redirectURI: "https://gate/ui/oidc/callback")
        // As if fetched now and kept: a test whose awaits wait behind a busy machine's other
        // tests (minutes, in a full run) must not go to the network for an unknown kid.
        signIn.remember(authorization: "https://idp/authorize", token: "https://idp/token", jwks: "https://idp/jwks", keys: [issuer.jwk],
                        fetchedAt: Clock.monotonicSeconds() + 7200)
        return signIn
    }

    @Test func aGoodTokenIsAcceptedWithItsClaims() async throws {
        let issuer = Issuer()
        let identity = try await Self.verifier(issuer).verify(issuer.token(claims: Self.claims()), nonce: "the-nonce")
        #expect(identity == OIDCSignIn.Identity(subject: "sub-alice", username: "alice", groups: ["deployers"]))
    }

    @Test func everyBadTokenIsRefusedSayingWhy() async throws {
        let issuer = Issuer()
        let signIn = try Self.verifier(issuer)
        let now = Int(Date().timeIntervalSince1970)
        let cases: [(String, String, String)] = [
            ("wrong issuer", issuer.token(claims: Self.claims(["iss": .string("https://evil.example.com")])), "issuer"),
            ("wrong audience", issuer.token(claims: Self.claims(["aud": .string("someone-else")])), "audience"),
            ("two audiences, no azp", issuer.token(claims: Self.claims(["aud": .array([.string("airlock"), .string("other")])])), "audience"),
            ("expired", issuer.token(claims: Self.claims(["exp": .number(Double(now - 600)), "iat": .number(Double(now - 1200))])), "exp"),
            ("issued in the future", issuer.token(claims: Self.claims(["iat": .number(Double(now + 7200)), "exp": .number(Double(now + 9000))])), "future"),
            ("another nonce", issuer.token(claims: Self.claims(["nonce": .string("not-the-nonce")])), "nonce"),
            ("no nonce", issuer.token(claims: Self.claims(["nonce": .null])), "nonce"),
            ("alg none", issuer.token(header: [("alg", .string("none")), ("kid", .string("ec-1"))], claims: Self.claims(), signature: ""), "algorithm none"),
            ("HS256", issuer.token(header: [("alg", .string("HS256")), ("kid", .string("ec-1"))], claims: Self.claims()), "algorithm HS256"),
            ("RS256 on an EC key", issuer.token(header: [("alg", .string("RS256")), ("kid", .string("ec-1"))], claims: Self.claims()), "for ES256"),
            ("unknown key id", issuer.token(header: [("alg", .string("ES256")), ("kid", .string("ec-2"))], claims: Self.claims()), "not in the provider's JWKS"),
            ("no key id", issuer.token(header: [("alg", .string("ES256"))], claims: Self.claims()), "no key id"),
            ("another key's signature", issuer.token(claims: Self.claims(), signer: issuer.other), "signature"),
            ("not a JWT", "a.b", "not a signed JWT"),
        ]
        for (name, token, why) in cases {
            do throws(AirlockError) {
                let identity = try await signIn.verify(token, nonce: "the-nonce")
                Issue.record("\(name): accepted as \(identity)")
            } catch {
                #expect(error.code == .unauthenticated && error.message.lowercased().contains(why.lowercased()), "\(name): \(error.message)")
            }
        }
    }

    // MARK: The sign-in store

    enum Driver: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case memory, sqlite, postgres
        var testDescription: String { rawValue }

        func make() throws -> (any WebSignInStore, any WebSignInStore) {
            switch self {
            case .memory:
                let store = MemorySignIns()
                return (store, store)
            case .sqlite, .postgres:
                let (a, b) = try (self == .sqlite ? StoreDriver.sqlite : StoreDriver.postgres).make()
                return (try #require(a as? any WebSignInStore), try #require(b as? any WebSignInStore))
            }
        }
    }

    @Test(arguments: Driver.allCases)
    func sessionsLinksAndSubjectsKeepTheirPromises(_ driver: Driver) throws {
        let (store, other) = try driver.make()
        let now = Clock.epochMilliseconds()
        let session = WebSession(name: "alice", role: .approver, source: "link", csrf: "c", expiresAt: now + 60_000)
        try store.addWebSession(hash: "h1", session)
        #expect(try other.webSession(hash: "h1", now: now) == session)
        #expect(try other.webSession(hash: "h1", now: now + 61_000) == nil, "an ended session is no session")
        #expect(try other.webSession(hash: "h2", now: now) == nil)
        try other.removeWebSession(hash: "h1")
        #expect(try store.webSession(hash: "h1", now: now) == nil)

        try store.addLoginLink(hash: "l1", name: "bob", expiresAt: now + 60_000, by: "user:admin")
        #expect(try other.loginLinkName(hash: "l1", now: now) == "bob", "looking does not use it")
        #expect(try other.consumeLoginLink(hash: "l1", now: now) == "bob")
        #expect(try store.consumeLoginLink(hash: "l1", now: now) == nil, "a link works once")
        try store.addLoginLink(hash: "l2", name: "bob", expiresAt: now + 1_000, by: "user:admin")
        #expect(try store.consumeLoginLink(hash: "l2", now: now + 2_000) == nil, "an expired link")

        // Two handles (two replicas) racing for one link: exactly one wins.
        try store.addLoginLink(hash: "l3", name: "carol", expiresAt: now + 60_000, by: "user:admin")
        let wins = Mutex2(0)
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            if (try? (index % 2 == 0 ? store : other).consumeLoginLink(hash: "l3", now: now)) == "carol" { wins.add() }
        }
        #expect(wins.value == 1)

        try store.bindSubject(kind: "https://idp", subject: "sub-1", name: "alice", by: "oidc:https://idp")
        try other.bindSubject(kind: "https://idp", subject: "sub-1", name: "alice", by: "oidc:https://idp")
        #expect(try other.boundName(kind: "https://idp", subject: "sub-1") == "alice")
        #expect(throws: AirlockError.self, "a second account cannot take alice's name") {
            try other.bindSubject(kind: "https://idp", subject: "sub-2", name: "alice", by: "oidc:https://idp")
        }
        try other.bindSubject(kind: "https://other-idp", subject: "sub-2", name: "alice", by: "oidc:https://other-idp")
    }
}

/// A counter several threads bump.
final class Mutex2: @unchecked Sendable {
    private let lock = NSLock()
    private var count: Int
    init(_ count: Int) { self.count = count }
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
