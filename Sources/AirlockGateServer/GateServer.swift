import AirlockBroker
import AirlockCore
import AirlockGate
import AirlockPolicy
import AirlockStore
import Glibc
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// The gate's HTTPS API (docs/gate.md, "Team gate"). Every route authenticates a bearer
/// token and asks `GateService`; the service's calls block, so they run on NIO's thread pool,
/// never on an event loop.
///
///     GET  /healthz, /readyz
///     GET  /v1/whoami                        both
///     POST /v1/sessions                      host     {"id", "workspace", "profiles"}
///     POST /v1/proposals                     host     {"session_id", "payload_base64"}
///     GET  /v1/proposals[?state=pending]     approver
///     GET  /v1/proposals/ID                  both (a host: its own sessions' only)
///     GET  /v1/proposals/ID/wait?timeout=S   both
///     POST /v1/proposals/ID/approve|deny     approver {"reason"}
enum GateServer {
    static let bodyLimit = 17 << 20

    static func serve(_ service: GateService) async throws(AirlockError) {
        var logger = Logger(label: "airlock.gate")
        logger.logLevel = .notice
        let router = Router()
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { _, _ -> Response in
            // One indexed lookup: the store answers.
            let ready = await blocking { () -> Bool in
                do { _ = try service.store.proposal(id: "readyz"); return true } catch { return false }
            }
            return Response(status: ready ? .ok : .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: ready ? "ready\n" : "store unreachable\n")))
        }
        router.get("v1/whoami") { request, _ -> Response in
            await answer(request, .whoami, service) { identity throws(GateFailure) in
                .object([("name", .string(identity.name)), ("role", .string(identity.role.rawValue))])
            }
        }
        router.post("v1/sessions") { request, _ -> Response in
            let body = try await jsonBody(request)
            return await answer(request, .recordSession, service, status: .created) { identity throws(GateFailure) in
                try service.recordSession(identity, try body.get())
            }
        }
        router.post("v1/proposals") { request, _ -> Response in
            let body = try await jsonBody(request)
            return await answer(request, .propose, service, status: .created) { identity throws(GateFailure) in
                try service.propose(identity, try body.get())
            }
        }
        router.get("v1/proposals") { request, _ -> Response in
            let states = request.uri.queryParameters.get("state").map { Set($0.split(separator: ",").compactMap { ProposalState(rawValue: String($0)) }) }
            return await answer(request, .list, service) { identity throws(GateFailure) in try service.list(identity, states: states) }
        }
        router.get("v1/proposals/:id") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            return await answer(request, .show, service, hostAction: .waitOwn) { identity throws(GateFailure) in
                view(try service.proposal(identity, id), for: identity)
            }
        }
        router.get("v1/proposals/:id/wait") { request, context -> Response in
            // Polled here, asleep between looks: a wait must not hold one of the thread
            // pool's few threads for its whole length.
            let id = context.parameters.get("id") ?? ""
            let timeout = Double(max(0, min(request.uri.queryParameters.get("timeout").flatMap { Int($0) } ?? 60, 3600)))
            let deadline = Clock.monotonicSeconds() + timeout
            while true {
                let looked: Result<(JSON, Bool), GateFailure> = await authenticated(request, .show, service, hostAction: .waitOwn) { identity throws(GateFailure) in
                    let proposal = try service.proposal(identity, id)
                    return (view(proposal, for: identity), proposal.state.isFinal)
                }
                switch looked {
                case .success((let json, let final)) where final || Clock.monotonicSeconds() >= deadline:
                    return render(.success(json), status: .ok)
                case .failure(let failure):
                    return render(.failure(failure), status: .ok)
                case .success:
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        for decision in ["approve", "deny"] {
            router.post("v1/proposals/:id/\(decision)") { request, context -> Response in
                let id = context.parameters.get("id") ?? ""
                let body = try await jsonBody(request)
                return await answer(request, decision == "approve" ? .approve : .deny, service) { identity throws(GateFailure) in
                    let note = (try? body.get())?["reason"]?.string
                    let outcome = decision == "approve" ? try service.approve(identity, id, note: note) : try service.deny(identity, id, note: note)
                    return ProposalJSON.humanView(outcome)
                }
            }
        }

        let config = service.config
        let server: HTTPServerBuilder
        if let certificate = config.tlsCertificate, let key = config.tlsKey {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
                let tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                server = try .tls(.http1(), tlsConfiguration: tls)
            } catch {
                throw AirlockError("cannot load the gate's TLS certificate or key (\(certificate), \(key)): \(error)")
            }
        } else {
            server = .http1()
        }
        let scheme = config.tlsCertificate == nil ? "http" : "https"
        let app = Application(
            router: router, server: server,
            configuration: ApplicationConfiguration(address: .hostname(config.host, port: config.port), serverName: "airlock-gate"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? config.port
                writeStandardError("airlock gate: listening on \(scheme)://\(config.host):\(port)\n")
            },
            logger: logger)
        do {
            try await app.runService()
        } catch {
            throw AirlockError("the gate server stopped: \(error)")
        }
    }

    /// Approvers see everything; a host sees what an agent sees.
    static func view(_ proposal: Proposal, for identity: GateIdentity) -> JSON {
        guard identity.role == .host else {
            // An approver inspects what exactly would run: the pinned request too.
            guard case .object(var fields) = ProposalJSON.humanView(proposal) else { return .null }
            fields.append(("payload_base64", .string(Base64.encode(proposal.payload))))
            return .object(fields)
        }
        // The host's own session (GateService only shows a host its own).
        guard case .object(var fields) = ProposalJSON.agentView(proposal) else { return .null }
        fields.append(("session", .string(proposal.sessionID)))
        return .object(fields)
    }

    static func jsonBody(_ request: Request) async throws -> Result<JSON, GateFailure> {
        var request = request
        let buffer = try await request.collectBody(upTo: bodyLimit)
        let bytes = Array(buffer.readableBytesView)
        if bytes.isEmpty { return .success(.object([])) }
        guard let json = try? JSON.parseStrict(bytes: bytes) else {
            return .failure(GateFailure(400, "AirlockBadRequest", "the body is not one JSON document"))
        }
        return .success(json)
    }

    static func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        do {
            return try await NIOThreadPool.singleton.runIfActive(body)
        } catch {
            return body()
        }
    }

    /// Authenticates for `action` (for a host, `hostAction` when the route has one) and runs
    /// `body`, both off the event loop.
    static func authenticated<T: Sendable>(_ request: Request, _ action: GateAccess.Action, _ service: GateService,
                                           hostAction: GateAccess.Action? = nil,
                                           _ body: @escaping @Sendable (GateIdentity) throws(GateFailure) -> T) async -> Result<T, GateFailure> {
        let authorization = request.headers[.authorization]
        return await blocking {
            do throws(GateFailure) {
                return .success(try body(try service.authenticate(authorization, for: action, hostAction: hostAction)))
            } catch {
                return .failure(error)
            }
        }
    }

    static func answer(_ request: Request, _ action: GateAccess.Action, _ service: GateService, status: HTTPResponse.Status = .ok,
                       hostAction: GateAccess.Action? = nil,
                       _ body: @escaping @Sendable (GateIdentity) throws(GateFailure) -> JSON) async -> Response {
        render(await authenticated(request, action, service, hostAction: hostAction, body), status: status)
    }

    /// The JSON answer, or the failure as `{"error": {"code", "message"}}` with its status.
    static func render(_ result: Result<JSON, GateFailure>, status: HTTPResponse.Status) -> Response {
        switch result {
        case .success(let json):
            return Response(status: status, headers: [.contentType: "application/json"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: json.serialized() + "\n")))
        case .failure(let failure):
            return Response(status: HTTPResponse.Status(code: failure.status), headers: [.contentType: "application/json"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: failure.json.serialized() + "\n")))
        }
    }
}
