import AirlockCore
import AirlockGate
import AirlockPolicy
import AirlockStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix

/// A request context that knows the connection's peer: a proxy's sign-in header is believed
/// only from a configured proxy address (docs/web.md, "Sign-in").
public protocol WebRequestContext: RequestContext {
    var peerAddress: String? { get }
}

public struct WebContext: WebRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }
}

/// The approvers' web page (docs/web.md): routes under /ui/ on the gate (or on `airlock ui`'s
/// loopback port). Server-rendered; the only script is /ui/static/app.js.
///
///     GET  /ui/                      the live queue          GET  /ui/events   server-sent events
///     GET  /ui/queue                 the queue's table        GET  /ui/audit    the log, filtered
///     GET  /ui/proposals/ID          a proposal               POST /ui/proposals/ID/decide
///     GET  /ui/signin, /ui/oidc/start, /ui/oidc/callback, /ui/login/TOKEN; POST /ui/login, /ui/signout
public struct WebApp: Sendable {
    public let backend: any WebBackend
    public let config: GateWebConfig
    public let oidc: OIDCSignIn?
    public let logger: Logger
    /// The origin browsers use (https on a real gate): HSTS is sent when it is https.
    public let baseURL: String

    public init(backend: any WebBackend, config: GateWebConfig, baseURL: String, logger: Logger) throws(AirlockError) {
        self.backend = backend
        self.config = config
        self.baseURL = baseURL
        self.logger = logger
        oidc = try config.oidc.map { (oidc) throws(AirlockError) in try OIDCSignIn(oidc, redirectURI: baseURL + "/ui/oidc/callback") }
    }

    // MARK: Routes

    public func register<Context: WebRequestContext>(on router: Router<Context>) {
        let app = self
        router.get("/") { _, _ in app.redirect("/ui/") }
        router.get("favicon.ico") { _, _ in Response(status: .noContent) }
        router.get("ui/static/app.js") { _, _ in app.asset(WebAssets.script, type: "text/javascript; charset=utf-8") }
        router.get("ui/static/app.css") { _, _ in app.asset(WebAssets.style, type: "text/css; charset=utf-8") }
        router.get("ui/") { request, context in
            await app.signedIn(request, context) { session throws(AirlockError) in
                app.page(title: "Changes", page: "queue", session: session, body: try WebViews.queue(app.backend, session))
            }
        }
        router.get("ui/queue") { request, context in
            await app.signedIn(request, context, onMissing: .status) { _ throws(AirlockError) in
                app.html(.ok, try WebViews.queueTable(app.backend))
            }
        }
        router.get("ui/events") { request, context in await app.events(request, context) }
        router.get("ui/proposals/:id") { request, context in
            let id = context.parameters.get("id") ?? ""
            let done = request.uri.queryParameters.get("done")
            return await app.signedIn(request, context) { session throws(AirlockError) in
                guard let proposal = try app.backend.store.proposal(id: id) else {
                    return app.message(.notFound, "No such proposal", error: "There is no proposal \(id).", session: session)
                }
                let flash: String? = switch done {
                case "approve": proposal.state == .pending ? "Your approval is counted; the rules need more approvers." : "Approved: \(proposal.state.rawValue)."
                case "deny": "Denied."
                default: nil
                }
                return app.page(title: proposal.summary, page: "proposal", session: session,
                                body: try WebViews.proposal(app.backend, session, proposal, flash: flash))
            }
        }
        router.post("ui/proposals/:id/decide") { request, context in
            let id = context.parameters.get("id") ?? ""
            return await app.decide(request, context, id: id)
        }
        router.get("ui/audit") { request, context in
            let query = request.uri.queryParameters
            return await app.signedIn(request, context) { session throws(AirlockError) in
                app.page(title: "Audit log", page: "audit", session: session,
                         body: try WebViews.audit(app.backend, proposal: query.get("proposal") ?? "", actor: query.get("actor") ?? "",
                                                  event: query.get("event") ?? ""))
            }
        }
        for (path, frozen) in [("ui/freeze", true), ("ui/thaw", false)] {
            router.post(RouterPath(path)) { request, context in
                await app.formAction(request, context) { session, _ throws(AirlockError) in
                    guard session.role == .admin else {
                        throw AirlockError("only an admin (web.roles.admin) freezes or thaws the gate", code: .forbidden)
                    }
                    try app.backend.setFrozen(session, frozen, reason: "from the web page")
                    return app.redirect("/ui/")
                }
            }
        }
        router.post("ui/signout") { request, context in
            await app.formAction(request, context) { _, _ throws(AirlockError) in
                if let cookie = WebCookies.parse(request.headers[.cookie])[WebCookies.session] {
                    try app.backend.signIns.removeWebSession(hash: WebCookies.hash(cookie))
                }
                var response = app.message(.ok, "Signed out", text: "You are signed out.", next: ("/ui/signin", "Sign in again"))
                response.headers.append(HTTPField(name: .setCookie, value: WebCookies.clearSession()))
                return response
            }
        }
        registerSignIn(on: router)
    }

    // MARK: Who is asking

    enum Missing { case signInPage, status }

    /// The signed-in person for this request: a trusted proxy's header (from a proxy address
    /// only), else the session cookie. A session whose person was revoked is no session.
    func session<Context: WebRequestContext>(_ request: Request, _ context: Context) async -> (WebSession?, setCookie: String?, refusal: String?) {
        let backend = self.backend, config = self.config
        if config.isProxy(context.peerAddress), let proxy = config.proxy, let userField = HTTPField.Name(proxy.userHeader),
           let groupsField = HTTPField.Name(proxy.groupsHeader), let user = request.headers[userField], !user.isEmpty {
            // One of each: a proxy that appends to a client's own header instead of
            // replacing it would otherwise let the client add groups (or a second name).
            guard request.headers[values: userField].count == 1, request.headers[values: groupsField].count <= 1 else {
                return (nil, nil, "the sign-in proxy sent \(proxy.userHeader) or \(proxy.groupsHeader) more than once; it must replace a client's own")
            }
            let groups = (request.headers[groupsField] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let cookie = WebCookies.parse(request.headers[.cookie])[WebCookies.session]
            return await WebBlocking.run { () -> (WebSession?, String?, String?) in
                do throws(AirlockError) {
                    guard GateIdentity.isValidName(user) else { return (nil, nil, "the proxy's user \(user) is not a usable name") }
                    guard let role = config.role(groups: groups) else { return (nil, nil, "none of \(user)'s groups maps to a role (web.roles)") }
                    if let cookie, let existing = try backend.signIns.webSession(hash: WebCookies.hash(cookie), now: Clock.epochMilliseconds()),
                       existing.source == "proxy", existing.name == user, existing.role == role, try backend.personActive(user) {
                        return (existing, nil, nil)
                    }
                    let name = try self.admit(kind: "proxy", subject: user, name: user)
                    let (value, session) = try self.newSession(name: name, role: role, source: "proxy")
                    return (session, WebCookies.sessionCookie(value, maxAge: config.sessionHours * 3600), nil)
                } catch {
                    return (nil, nil, error.message + (error.hint.map { " (\($0))" } ?? ""))
                }
            }
        }
        guard let cookie = WebCookies.parse(request.headers[.cookie])[WebCookies.session], cookie.count <= 128 else { return (nil, nil, nil) }
        return await WebBlocking.run { () -> (WebSession?, String?, String?) in
            do throws(AirlockError) {
                guard let session = try backend.signIns.webSession(hash: WebCookies.hash(cookie), now: Clock.epochMilliseconds()) else {
                    return (nil, nil, nil)
                }
                // Revoked (airlock gate user revoke): every way in ends, this cookie too.
                guard try backend.personActive(session.name) else { return (nil, nil, "user:\(session.name) was revoked") }
                return (session, nil, nil)
            } catch {
                return (nil, nil, error.message)
            }
        }
    }

    func newSession(name: String, role: GateWebConfig.Role, source: String) throws(AirlockError) -> (cookie: String, session: WebSession) {
        let value = WebCookies.token()
        let session = WebSession(name: name, role: role, source: source, csrf: WebCookies.token(),
                                 expiresAt: Clock.epochMilliseconds() + Int64(config.sessionHours) * 3_600_000)
        try backend.signIns.addWebSession(hash: WebCookies.hash(value), session)
        logger.notice("web sign-in", metadata: ["user": "\(name)", "role": "\(role.rawValue)", "source": "\(source)"])
        return (value, session)
    }

    /// `body` for a signed-in person, off the event loop; otherwise the sign-in page (a
    /// page) or 401 (a fragment the script fetches).
    func signedIn<Context: WebRequestContext>(_ request: Request, _ context: Context, onMissing: Missing = .signInPage,
                                              _ body: @escaping @Sendable (WebSession) throws(AirlockError) -> Response) async -> Response {
        let (found, setCookie, refusal) = await session(request, context)
        guard let found else {
            if onMissing == .status || refusal != nil {
                return message(.unauthorized, "Not signed in", error: refusal ?? "Sign in first.", next: ("/ui/signin", "Sign in"))
            }
            return redirect("/ui/signin")
        }
        var response = await WebBlocking.run { () -> Response in
            do throws(AirlockError) { return try body(found) } catch { return self.failure(error, session: found) }
        }
        if let setCookie { response.headers.append(HTTPField(name: .setCookie, value: setCookie)) }
        return response
    }

    /// A form post by a signed-in person: same-origin, with this session's CSRF token.
    func formAction<Context: WebRequestContext>(_ request: Request, _ context: Context,
                                                _ body: @escaping @Sendable (WebSession, [String: String]) throws(AirlockError) -> Response) async -> Response {
        var request = request
        let (found, _, refusal) = await session(request, context)
        guard let found else {
            return message(.unauthorized, "Not signed in", error: refusal ?? "Sign in first; nothing was decided.", next: ("/ui/signin", "Sign in"))
        }
        // Browsers say where a request comes from: a cross-site one is refused outright
        // (SameSite=Strict already kept the cookie from it; this is the second lock).
        if crossSite(request) {
            return message(.forbidden, "Refused", error: "This form was posted from another site; nothing was decided.", session: found)
        }
        let form: [String: String]
        do {
            let buffer = try await request.collectBody(upTo: 64 << 10)
            form = Self.formFields(String(buffer: buffer))
        } catch {
            return message(.contentTooLarge, "Refused", error: "The form is larger than 64 KiB; nothing was decided.", session: found)
        }
        guard let csrf = form["csrf"], SigV4.constantTimeEquals(csrf, found.csrf) else {
            return message(.forbidden, "Refused", error: "The form's CSRF token is missing or not this session's; nothing was decided. Reload the page and try again.",
                           session: found)
        }
        return await WebBlocking.run { () -> Response in
            do throws(AirlockError) { return try body(found, form) } catch { return self.failure(error, session: found) }
        }
    }

    /// Posted from another site: `Sec-Fetch-Site: cross-site`, or an Origin that is not this host.
    func crossSite(_ request: Request) -> Bool {
        request.headers[HTTPField.Name("Sec-Fetch-Site")!] == "cross-site" || !sameOrigin(request)
    }

    /// Origin (when sent) names the host this request was sent to.
    func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority else { return false }
        return origin == "http://" + host || origin == "https://" + host
    }

    func decide<Context: WebRequestContext>(_ request: Request, _ context: Context, id: String) async -> Response {
        await formAction(request, context) { session, form throws(AirlockError) in
            guard session.role.mayDecide else {
                throw AirlockError("\(session.name) is a viewer here (web.roles): viewers read, approvers decide", code: .forbidden)
            }
            guard let decision = form["decision"], decision == "approve" || decision == "deny" else {
                throw AirlockError("the form says neither approve nor deny", code: .badRequest)
            }
            guard let proposal = try backend.store.proposal(id: id) else { throw AirlockError("there is no proposal \(id)", code: .noSuchProposal) }
            // The decision is for what the page showed: a proposal whose digest is not the
            // one the form carries is not decided (docs/web.md, "Decisions").
            guard let digest = form["digest"], SigV4.constantTimeEquals(digest, proposal.digest) else {
                throw AirlockError("the proposal's digest is not the one on the page you decided on; nothing was decided. Reload it and look again.",
                                   code: .conflict)
            }
            // The payload never changes under one id; what does is the preview (a drift
            // re-check stores a new one and voids the approvals counted): the decision is
            // for the preview the page showed.
            guard let shown = form["preview"], SigV4.constantTimeEquals(shown, WebViews.previewDigest(try backend.store.preview(of: proposal))) else {
                throw AirlockError("the preview changed since the page was shown (the target changed); nothing was decided. Reload it and look again.",
                                   code: .conflict)
            }
            let reason = form["reason"].map { String($0.prefix(2000)) }.flatMap { $0.isEmpty ? nil : $0 }
            do throws(AirlockError) {
                let decided = decision == "approve" ? try backend.approve(session, id, note: reason) : try backend.deny(session, id, note: reason)
                logger.notice("web decision", metadata: ["user": "\(session.name)", "proposal": "\(id)", "decision": "\(decision)",
                                                         "state": "\(decided.state.rawValue)"])
                return redirect("/ui/proposals/\(id)?done=\(decision)")
            } catch {
                // Refused by the approve path (already counted, frozen, drifted, decided by
                // someone else meanwhile): the proposal as it is now, with why.
                let now = try backend.store.proposal(id: id) ?? proposal
                return page(title: now.summary, page: "proposal", session: session,
                            body: try WebViews.proposal(backend, session, now, flash: nil, error: error.message + (error.hint.map { " (\($0))" } ?? "")),
                            status: HTTPResponse.Status(code: error.httpStatus))
            }
        }
    }

    // MARK: Live queue

    /// Server-sent events: one `data:` line whenever any proposal changed, on any replica
    /// (the store's notifications and the audit head; docs/web.md, "Live queue"); a comment
    /// every 15 s keeps proxies and the gate's idle timeout from closing it. Ends after an
    /// hour (EventSource reconnects by itself) or when the person is signed out or revoked.
    func events<Context: WebRequestContext>(_ request: Request, _ context: Context) async -> Response {
        let (found, _, refusal) = await session(request, context)
        guard let found else { return message(.unauthorized, "Not signed in", error: refusal ?? "Sign in first.") }
        let changes = backend.changes, backend = self.backend
        let cookie = WebCookies.parse(request.headers[.cookie])[WebCookies.session]
        // Signed out or revoked meanwhile: the stream ends (checked every 30 s).
        let stillSignedIn: @Sendable () async -> Bool = {
            await WebBlocking.run { () -> Bool in
                guard let cookie else { return found.source == "proxy" && ((try? backend.personActive(found.name)) ?? false) }
                guard let now = try? backend.signIns.webSession(hash: WebCookies.hash(cookie), now: Clock.epochMilliseconds()) else { return false }
                return (try? backend.personActive(now.name)) ?? false
            }
        }
        var headers = securityHeaders()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var seen = changes.generation
            try await writer.write(ByteBuffer(string: "retry: 2000\ndata: \(seen)\n\n"))
            let clock = ContinuousClock()
            let ends = clock.now + .seconds(3600)
            var quiet = clock.now
            var checked = clock.now
            while clock.now < ends && !Task.isCancelled {
                if clock.now - checked > .seconds(30) {
                    checked = clock.now
                    guard await stillSignedIn() else { break }
                }
                try await Task.sleep(for: .milliseconds(250))
                let now = changes.generation
                if now != seen {
                    seen = now
                    quiet = clock.now
                    try await writer.write(ByteBuffer(string: "data: \(now)\n\n"))
                } else if clock.now - quiet > .seconds(15) {
                    quiet = clock.now
                    try await writer.write(ByteBuffer(string: ": still here\n\n"))
                }
            }
            try await writer.finish(nil)
        })
    }

    // MARK: Responses

    func securityHeaders() -> HTTPFields {
        var headers = HTTPFields()
        // No inline script or style, nothing from elsewhere, no framing, forms post here only.
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        // same-origin, not no-referrer: with no-referrer a form post's Origin is "null", which the
        // same-origin check refuses; a login link still never leaves in a Referer to another site.
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        headers[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        headers[.cacheControl] = "no-store"
        if baseURL.hasPrefix("https://") { headers[HTTPField.Name("Strict-Transport-Security")!] = "max-age=31536000" }
        return headers
    }

    func html(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = securityHeaders()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    func page(title: String, page: String, session: WebSession?, body: String, status: HTTPResponse.Status = .ok, refresh: String? = nil) -> Response {
        var context: [String: Any] = ["title": title, "page": page, "place": backend.placeName, "body": body]
        if let session { context["user"] = WebViews.user(session) }
        if let refresh { context["refresh"] = refresh }
        return html(status, WebTemplates.render("layout", context))
    }

    func message(_ status: HTTPResponse.Status, _ heading: String, error: String? = nil, text: String? = nil,
                 next: (String, String)? = nil, session: WebSession? = nil, refresh: String? = nil) -> Response {
        var context: [String: Any] = ["heading": heading]
        if let error { context["error"] = error }
        if let text { context["text"] = text }
        if let next { context["next"] = ["href": next.0, "label": next.1] }
        return page(title: heading, page: "message", session: session, body: WebTemplates.render("message", context), status: status, refresh: refresh)
    }

    func failure(_ error: AirlockError, session: WebSession?) -> Response {
        message(HTTPResponse.Status(code: error.httpStatus), "Refused", error: error.message + (error.hint.map { " (\($0))" } ?? ""), session: session)
    }

    func redirect(_ location: String) -> Response {
        var headers = securityHeaders()
        headers[.location] = location
        return Response(status: .seeOther, headers: headers)
    }

    func asset(_ text: String, type: String) -> Response {
        var headers = securityHeaders()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// application/x-www-form-urlencoded → fields (a name seen twice keeps its first value).
    static func formFields(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for (key, value) in AWSRequest.parseForm(body) where !key.isEmpty && fields[key] == nil { fields[key] = value ?? "" }
        return fields
    }
}

/// The store's calls block: they run on a pool of their own, never on an event loop.
enum WebBlocking {
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()

    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        do { return try await pool.runIfActive(body) } catch { return body() }
    }
}
