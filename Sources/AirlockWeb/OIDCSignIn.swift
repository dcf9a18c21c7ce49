import AirlockBroker
import AirlockCore
import AirlockPolicy
import Crypto
import Foundation
import JWTKit
import NIOSSL
import Synchronization

/// Sign-in with the team's OpenID Connect provider (docs/web.md, "Sign-in"): the
/// authorization code flow with PKCE (S256), state and nonce; the ID token's signature
/// verified by jwt-kit against the provider's JWKS, and its issuer, audience, expiry, nonce
/// and algorithm checked here. What is refused, and why:
///
/// - an algorithm not in `web.oidc.algorithms` (never `none`, never HMAC: a provider's
///   public key used as an HMAC secret is the classic forgery), or one that is not the
///   key's own;
/// - a key id the JWKS does not hold (fetched again once, at most every 30 s, for a
///   provider that rotated its keys);
/// - another issuer, an audience that is not this client (several audiences need `azp`
///   to be this client), an expired token, one issued in the future, another nonce.
///
/// HTTP to the provider uses the broker's own client (ConnectionPool: keep-alive, TLS with
/// the system's roots or `web.oidc.ca`); AsyncHTTPClient would add its build (about three
/// minutes on this machine kind) for three requests a sign-in.
public final class OIDCSignIn: Sendable {
    public struct Identity: Sendable, Equatable {
        public var subject: String
        public var username: String?
        public var groups: [String]
    }

    struct Discovery: Sendable {
        var authorization: String
        var token: String
        var jwks: String
    }

    let config: GateWebConfig.OIDC
    let secret: String
    let redirectURI: String
    let trust: NIOSSLContext?
    private let cached = Mutex<(discovery: Discovery?, keys: [String: JSON], fetchedAt: Double)>((nil, [:], -1_000))
    private let pools = Mutex<[String: ConnectionPool]>([:])

    public init(_ config: GateWebConfig.OIDC, redirectURI: String) throws(AirlockError) {
        self.config = config
        self.redirectURI = redirectURI
        do {
            secret = String(try readTextFile(config.clientSecretFile, limit: 4096).filter { !$0.isWhitespace })
        } catch {
            throw AirlockError("cannot read web.oidc.client_secret_file: \(error.message)", hint: "the client secret the provider issued for this gate, in a file of mode 0600")
        }
        guard !secret.isEmpty else { throw AirlockError("web.oidc.client_secret_file \(config.clientSecretFile) is empty") }
        if let ca = config.caFile {
            do {
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.trustRoots = .file(ca)
                trust = try NIOSSLContext(configuration: tls)
            } catch {
                throw AirlockError("cannot use web.oidc.ca \(ca): \(error)")
            }
        } else {
            trust = nil
        }
    }

    // MARK: The flow

    /// A new sign-in's secrets: kept in the browser's /ui/oidc cookie until the callback.
    public struct Pending: Sendable, Equatable {
        public var state: String
        public var nonce: String
        public var verifier: String

        public static func make() -> Pending {
            Pending(state: WebCookies.token(), nonce: WebCookies.token(),
                    verifier: RandomID.make(64, alphabet: "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"))
        }

        /// The three joined by "." (none of them holds one: the verifier's alphabet leaves
        /// RFC 7636's "." and "~" out).
        public var cookie: String { "\(state).\(nonce).\(verifier)" }

        public init(state: String, nonce: String, verifier: String) {
            self.state = state
            self.nonce = nonce
            self.verifier = verifier
        }

        public init?(cookie: String) {
            let parts = cookie.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.count <= 128 }) else { return nil }
            self.init(state: String(parts[0]), nonce: String(parts[1]), verifier: String(parts[2]))
        }

        /// RFC 7636: BASE64URL(SHA256(verifier)).
        public var challenge: String { OIDCSignIn.base64url(Array(SHA256.hash(data: Array(verifier.utf8)))) }
    }

    /// Where the browser goes to sign in.
    public func authorizeURL(_ pending: Pending) throws(AirlockError) -> String {
        let endpoint = try discovery().authorization
        let query = [("response_type", "code"), ("client_id", config.clientID), ("redirect_uri", redirectURI),
                     ("scope", "openid profile email"), ("state", pending.state), ("nonce", pending.nonce),
                     ("code_challenge", pending.challenge), ("code_challenge_method", "S256")]
            .map { "\($0.0)=\(PercentEncoding.encode($0.1))" }.joined(separator: "&")
        return endpoint + (endpoint.contains("?") ? "&" : "?") + query
    }

    /// The code → the verified identity. Blocking (HTTP to the provider).
    public func redeem(code: String, pending: Pending) async throws(AirlockError) -> Identity {
        let found = await WebBlocking.run { () -> Result<Discovery, AirlockError> in
            do throws(AirlockError) { return .success(try self.discovery()) } catch { return .failure(error) }
        }
        let endpoint = try found.get().token
        let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("client_id", config.clientID),
                    ("client_secret", secret), ("code_verifier", pending.verifier)]
            .map { "\($0.0)=\(PercentEncoding.encode($0.1))" }.joined(separator: "&")
        let sent = await WebBlocking.run { () -> Result<ExecutionClient.Response, AirlockError> in
            do throws(AirlockError) {
                return .success(try self.call("POST", endpoint, body: Array(form.utf8), contentType: "application/x-www-form-urlencoded"))
            } catch { return .failure(error) }
        }
        let answer = try sent.get()
        let json = (try? JSON.parseStrict(bytes: answer.body)) ?? .null
        guard answer.status == 200, let token = json["id_token"]?.string else {
            let why = json["error_description"]?.string ?? json["error"]?.string ?? "HTTP \(answer.status)"
            throw AirlockError("the identity provider refused the sign-in code: \(why)", code: .unauthenticated)
        }
        return try await verify(token, nonce: pending.nonce)
    }

    // MARK: The ID token

    /// The claims jwt-kit checks: the signature, `exp` and the audience.
    struct Claims: JWTIdentityToken {
        var iss: IssuerClaim
        var sub: SubjectClaim
        var aud: AudienceClaim
        var exp: ExpirationClaim
        var iat: IssuedAtClaim?
        var nonce: String?
        var azp: String?

        var audience: AudienceClaim { aud }

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
        }
    }

    public func verify(_ token: String, nonce: String, now: Date = Date()) async throws(AirlockError) -> Identity {
        func refuse(_ why: String) -> AirlockError { AirlockError("the ID token was refused: \(why)", code: .unauthenticated) }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Self.unbase64url(String(parts[0])), let header = try? JSON.parseStrict(bytes: headerBytes),
              let payloadBytes = Self.unbase64url(String(parts[1])), let payload = try? JSON.parseStrict(bytes: payloadBytes) else {
            throw refuse("it is not a signed JWT")
        }
        guard let algorithm = header["alg"]?.string, config.algorithms.contains(algorithm), GateWebConfig.signatureAlgorithms.contains(algorithm) else {
            throw refuse("its algorithm \(header["alg"]?.string ?? "(none)") is not accepted (web.oidc.algorithms: \(config.algorithms.joined(separator: ", ")))")
        }
        guard let kid = header["kid"]?.string, !kid.isEmpty else { throw refuse("it names no key id (kid)") }
        // The JWKS is fetched on the blocking pool, never on the cooperative threads.
        let looked = await WebBlocking.run { () -> Result<JSON?, AirlockError> in
            do throws(AirlockError) { return .success(try self.key(kid)) } catch { return .failure(error) }
        }
        guard let key = try looked.get() else { throw refuse("its key id \(kid) is not in the provider's JWKS") }
        if let keyAlgorithm = key["alg"]?.string, keyAlgorithm != algorithm {
            throw refuse("it is signed with \(algorithm), but key \(kid) is for \(keyAlgorithm)")
        }
        let family = ["R": "RSA", "P": "RSA", "E": algorithm == "EdDSA" ? "OKP" : "EC"][String(algorithm.prefix(1))]
        guard key["kty"]?.string == family else { throw refuse("key \(kid) is not a \(family ?? "?") key, as \(algorithm) needs") }
        // The signature, expiry and audience, by jwt-kit, with this one key only.
        let claims: Claims
        do {
            let keys = JWTKeyCollection()
            _ = try await keys.add(jwksJSON: JSON.object([("keys", .array([key]))]).serialized())
            claims = try await keys.verify(Array(token.utf8), as: Claims.self, expectedAudience: config.clientID)
        } catch let error as JWTError {
            throw refuse("\(error.reason ?? error.errorType.description)")
        } catch {
            throw refuse("\(error)")
        }
        guard claims.iss.value == config.issuer else { throw refuse("its issuer \(claims.iss.value) is not \(config.issuer)") }
        if claims.aud.value.count > 1, claims.azp != config.clientID { throw refuse("it has several audiences and azp is not \(config.clientID)") }
        if let issued = claims.iat?.value, issued.timeIntervalSince(now) > 300 { throw refuse("it was issued in the future") }
        guard let claimed = claims.nonce, SigV4.constantTimeEquals(claimed, nonce) else { throw refuse("its nonce is not this sign-in's") }
        guard !claims.sub.value.isEmpty else { throw refuse("it names no subject") }
        var groups: [String] = []
        switch payload[config.groupsClaim] {
        case .array(let items)?: groups = items.compactMap(\.string)
        case .string(let one)?: groups = one.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        default: break
        }
        return Identity(subject: claims.sub.value, username: payload[config.usernameClaim]?.string, groups: groups)
    }

    // MARK: Discovery and keys

    func discovery() throws(AirlockError) -> Discovery {
        if let known = cached.withLock({ $0.discovery }) { return known }
        // OpenID Connect Discovery §4: the issuer without a trailing "/", then the path.
        let url = (config.issuer.hasSuffix("/") ? String(config.issuer.dropLast()) : config.issuer) + "/.well-known/openid-configuration"
        let answer = try call("GET", url)
        guard answer.status == 200, let json = try? JSON.parseStrict(bytes: answer.body) else {
            throw AirlockError("the identity provider's discovery document (\(url)) answered HTTP \(answer.status)", code: .gateError)
        }
        // OpenID Connect Discovery §4.3: the document names the issuer it was asked for.
        guard json["issuer"]?.string == config.issuer, let authorization = json["authorization_endpoint"]?.string,
              let token = json["token_endpoint"]?.string, let jwks = json["jwks_uri"]?.string else {
            throw AirlockError("the identity provider's discovery document does not name issuer \(config.issuer) with its endpoints", code: .gateError)
        }
        let found = Discovery(authorization: authorization, token: token, jwks: jwks)
        cached.withLock { $0.discovery = found }
        return found
    }

    /// The JWK with this key id, fetching the JWKS when it is not known (at most every 30 s).
    func key(_ kid: String) throws(AirlockError) -> JSON? {
        let now = Clock.monotonicSeconds()
        let (known, fetchedAt) = cached.withLock { ($0.keys[kid], $0.fetchedAt) }
        // Kept an hour: a key the provider removed stops being trusted within one.
        if let known, now - fetchedAt < 3600 { return known }
        guard known != nil || now - fetchedAt >= 30 else { return nil }
        let url = try discovery().jwks
        let answer = try call("GET", url)
        guard answer.status == 200, let json = try? JSON.parseStrict(bytes: answer.body), let keys = json["keys"]?.array else {
            throw AirlockError("the identity provider's JWKS (\(url)) answered HTTP \(answer.status)", code: .gateError)
        }
        var byID: [String: JSON] = [:]
        for key in keys { if let id = key["kid"]?.string { byID[id] = key } }
        cached.withLock { $0.keys = byID; $0.fetchedAt = now }
        return byID[kid]
    }

    /// For tests: what discovery and the JWKS would have answered, fetched at `fetchedAt`
    /// (monotonic seconds; later than now keeps them from being fetched again).
    func remember(authorization: String, token: String, jwks: String, keys: [JSON], fetchedAt: Double = Clock.monotonicSeconds()) {
        var byID: [String: JSON] = [:]
        for key in keys { if let id = key["kid"]?.string { byID[id] = key } }
        cached.withLock { $0 = (Discovery(authorization: authorization, token: token, jwks: jwks), byID, fetchedAt) }
    }

    func call(_ method: String, _ url: String, body: [UInt8] = [], contentType: String? = nil) throws(AirlockError) -> ExecutionClient.Response {
        let parsed = try AWSUpstream(parsing: url)
        guard case .endpoint(let scheme, let host, let port, let path) = parsed else { throw AirlockError("\(url) is not an http(s) URL") }
        guard scheme == "https" || ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) else {
            throw AirlockError("the identity provider's \(url) is plain HTTP off loopback", hint: "its endpoints must be https://")
        }
        let key = "\(scheme)://\(host):\(port)"
        let pool = pools.withLock { pools in
            if let existing = pools[key] { return existing }
            let made = ConnectionPool(scheme: scheme, host: host, port: port, trust: trust)
            pools[key] = made
            return made
        }
        var headers: [(name: String, value: String)] = [("Host", port == (scheme == "https" ? 443 : 80) ? host : "\(host):\(port)"),
                                                         ("Accept", "application/json"), ("Content-Length", String(body.count))]
        if let contentType { headers.append(("Content-Type", contentType)) }
        switch pool.exchange(OutboundRequest(scheme: scheme, host: host, port: port, method: method, target: path.isEmpty ? "/" : path,
                                             headers: headers, body: body), timeoutSeconds: 20) {
        case .answered(let response): return response
        case .notSent(let why), .uncertain(let why):
            throw AirlockError("the identity provider cannot be reached: \(why)", code: .gateUnreachable)
        }
    }

    // MARK: Encodings

    static func base64url(_ bytes: [UInt8]) -> String {
        String(Base64.encode(bytes).compactMap { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 == "=" ? nil : $0 })
    }

    static func unbase64url(_ text: String) -> [UInt8]? {
        guard text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }) else { return nil }
        var standard = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        while standard.utf8.count % 4 != 0 { standard += "=" }
        return Base64.decode(standard)
    }
}
