import AirlockCore
import AirlockPolicy
import AirlockStore
import HTTPTypes
import Hummingbird
import NIOCore

/// Sign-in (docs/web.md, "Sign-in"): OpenID Connect, one-time links, sign-out. Each
/// refusal says why and sets no session; nothing is decided by any of these routes.
extension WebApp {
    func registerSignIn<Context: WebRequestContext>(on router: Router<Context>) {
        let app = self
        router.get("ui/signin") { _, _ in
            var context: [String: Any] = [:]
            if let oidc = app.config.oidc { context["oidc"] = ["issuer": oidc.issuer] }
            if app.config.proxy != nil { context["proxy"] = true }
            if app.backend.place == .local { context["local"] = true }
            return app.page(title: "Sign in", page: "signin", session: nil, body: WebTemplates.render("signin", context))
        }

        router.get("ui/oidc/start") { _, _ in
            guard let oidc = app.oidc else {
                return app.message(.notFound, "Not configured", error: "This gate has no identity provider (web.oidc in gate.yaml).")
            }
            let pending = OIDCSignIn.Pending.make()
            let url = await WebBlocking.run { () -> Result<String, AirlockError> in
                do throws(AirlockError) { return .success(try oidc.authorizeURL(pending)) } catch { return .failure(error) }
            }
            switch url {
            case .failure(let error): return app.failure(error, session: nil)
            case .success(let url):
                var headers = app.securityHeaders()
                headers[.location] = url
                headers.append(HTTPField(name: .setCookie, value: WebCookies.oidcCookie(pending.cookie)))
                return Response(status: .found, headers: headers)
            }
        }

        router.get("ui/oidc/callback") { request, _ in
            var response = await app.oidcCallback(request)
            // The sign-in's secrets are used once, whatever happened.
            response.headers.append(HTTPField(name: .setCookie, value: WebCookies.clearOIDC()))
            return response
        }

        router.get("ui/login/:token") { _, context in
            let token = context.parameters.get("token") ?? ""
            let name = await WebBlocking.run { () -> String? in
                guard token.count <= 128 else { return nil }
                return try? app.backend.signIns.loginLinkName(hash: WebCookies.hash(token), now: Clock.epochMilliseconds())
            }
            guard let name else {
                return app.message(.unauthorized, "This link does not sign anyone in",
                                   error: "The link is unknown, was used already, or expired; each link works once.",
                                   text: "Ask an admin for a new one: airlock gate user link NAME")
            }
            // A page, not the sign-in itself: link previews (chat unfurls) fetch with GET and
            // would otherwise use the link up.
            return app.page(title: "Sign in", page: "login", session: nil,
                            body: WebTemplates.render("login", ["name": name, "token": token]))
        }

        router.post("ui/login") { request, _ in
            // Login CSRF: another site posting its own link's token would sign this browser
            // in as someone else, whose name the decisions would then carry.
            if app.crossSite(request) {
                return app.message(.forbidden, "Refused", error: "This sign-in was posted from another site.")
            }
            var request = request
            let form = WebApp.formFields(String(buffer: (try? await request.collectBody(upTo: 4096)) ?? ByteBuffer()))
            let token = form["token"] ?? ""
            let outcome = await WebBlocking.run { () -> Result<(String, WebSession), AirlockError> in
                do throws(AirlockError) {
                    guard token.count <= 128, let name = try app.backend.signIns.consumeLoginLink(hash: WebCookies.hash(token), now: Clock.epochMilliseconds()) else {
                        throw AirlockError("the link is unknown, was used already, or expired; each link works once", code: .unauthenticated)
                    }
                    guard try app.backend.personActive(name) else {
                        throw AirlockError("user:\(name) is not an active approver here (revoked, or never enrolled)", code: .unauthenticated)
                    }
                    return .success(try app.newSession(name: name, role: .approver, source: "link"))
                } catch {
                    return .failure(error)
                }
            }
            return app.signedInResponse(outcome)
        }
    }

    /// The provider's redirect back: state, the code redeemed with the PKCE verifier, the ID
    /// token verified, the person admitted and bound to their subject, a session.
    func oidcCallback(_ request: Request) async -> Response {
        guard let oidc else { return message(.notFound, "Not configured", error: "This gate has no identity provider (web.oidc in gate.yaml).") }
        let query = request.uri.queryParameters
        guard let cookie = WebCookies.parse(request.headers[.cookie])[WebCookies.oidc], let pending = OIDCSignIn.Pending(cookie: cookie) else {
            return message(.badRequest, "Sign-in refused", error: "No sign-in was started in this browser (or it took over 10 minutes); start again.",
                           next: ("/ui/signin", "Sign in"))
        }
        guard let state = query.get("state"), SigV4.constantTimeEquals(state, pending.state) else {
            return message(.badRequest, "Sign-in refused", error: "The sign-in's state does not match this browser's; start again.",
                           next: ("/ui/signin", "Sign in"))
        }
        // The provider's own refusal, shown only for this browser's sign-in (else anyone
        // could put words on the gate's page by a link).
        if let error = query.get("error") {
            return message(.unauthorized, "Sign-in refused", error: "The identity provider said: \(error) \(query.get("error_description") ?? "")")
        }
        guard let code = query.get("code"), !code.isEmpty, code.count <= 4096 else {
            return message(.badRequest, "Sign-in refused", error: "The identity provider sent no code.")
        }
        let identity: OIDCSignIn.Identity
        do throws(AirlockError) {
            identity = try await oidc.redeem(code: code, pending: pending)
        } catch {
            logger.warning("web sign-in refused", metadata: ["why": "\(error.message)"])
            return message(.unauthorized, "Sign-in refused", error: error.message, next: ("/ui/signin", "Try again"))
        }
        let config = self.config, issuer = oidc.config.issuer
        let outcome = await WebBlocking.run { () -> Result<(String, WebSession), AirlockError> in
            do throws(AirlockError) {
                guard let claimed = identity.username, GateIdentity.isValidName(claimed) else {
                    throw AirlockError("the provider's \(oidc.config.usernameClaim) claim (\(identity.username ?? "missing")) is not a usable name: letters, digits, . _ - @",
                                       code: .unauthenticated)
                }
                guard let role = config.role(groups: identity.groups) else {
                    throw AirlockError("none of \(claimed)'s groups (\(identity.groups.joined(separator: ", "))) maps to a role on this gate (web.roles)",
                                       code: .forbidden)
                }
                let name = try self.admit(kind: issuer, subject: identity.subject, name: claimed)
                return .success(try self.newSession(name: name, role: role, source: "oidc"))
            } catch {
                return .failure(error)
            }
        }
        return signedInResponse(outcome)
    }

    /// One identity per person (docs/web.md, "Sign-in"): an account of the provider (`kind`
    /// is its issuer, `subject` its `sub`) or a name the proxy sends (`kind` "proxy") is the
    /// person it is bound to, whatever name it claims today. Unbound, it is refused, unless
    /// `web.enrol` is `provider` and the name is new here (no enrolled person of that name,
    /// ignoring case): an account never becomes an approver enrolled by a token or another
    /// sign-in just by claiming their name. An admin binds: `airlock gate user bind`.
    func admit(kind: String, subject: String, name: String) throws(AirlockError) -> String {
        let how = kind == "proxy" ? "--proxy" : "--subject \(subject)"
        if let bound = try backend.signIns.boundName(kind: kind, subject: subject) {
            guard try backend.personActive(bound) else {
                throw AirlockError("user:\(bound) was revoked on this gate; nobody signs in as them again", code: .unauthenticated)
            }
            return bound
        }
        guard config.enrol == .provider else {
            throw AirlockError("this \(kind == "proxy" ? "proxy user" : "account") (\(name)) is not bound to a person on this gate",
                               hint: "an admin runs: airlock gate user bind \(name) \(how)", code: .forbidden)
        }
        guard try !backend.personKnown(name) else {
            throw AirlockError("user:\(name) is already enrolled on this gate (by a token, a link or another sign-in); an account does not become them by claiming the name",
                               hint: "if this account is theirs, an admin runs: airlock gate user bind \(name) \(how)", code: .forbidden)
        }
        let actor = kind == "proxy" ? "proxy" : "oidc:" + kind
        try backend.admitPerson(name, by: actor)
        try backend.signIns.bindSubject(kind: kind, subject: subject, name: name, by: actor)
        return name
    }

    /// A new session: its cookie and a page that moves on to the queue. The move is a
    /// same-site navigation (meta refresh), so the Strict cookie is sent with it; a redirect
    /// would still count as part of the provider's cross-site navigation.
    func signedInResponse(_ outcome: Result<(String, WebSession), AirlockError>) -> Response {
        switch outcome {
        case .failure(let error):
            logger.warning("web sign-in refused", metadata: ["why": "\(error.message)"])
            return message(HTTPResponse.Status(code: error.code == .forbidden ? 403 : 401), "Sign-in refused",
                           error: error.message + (error.hint.map { " (\($0))" } ?? ""), next: ("/ui/signin", "Sign in"))
        case .success(let (cookie, session)):
            var response = message(.ok, "Signed in", text: "Signed in as \(session.name) (\(session.role.rawValue)).", next: ("/ui/", "Go to the queue"),
                                   refresh: "/ui/")
            response.headers.append(HTTPField(name: .setCookie, value: WebCookies.sessionCookie(cookie, maxAge: config.sessionHours * 3600)))
            return response
        }
    }
}
