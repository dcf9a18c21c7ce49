import AirlockBroker
import AirlockCore
import AirlockExecution
import AirlockGate
import AirlockPolicy
import AirlockStore
import AirlockWeb
import Glibc
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle

/// The gate's HTTPS API (docs/gate.md, "Team gate"). Every route authenticates a bearer
/// token and asks `GateService`; the service's calls block, so they run on NIO's thread pool,
/// never on an event loop.
///
///     GET  /healthz, /readyz
///     GET  /v1/whoami                        both
///     POST /v1/sessions                      host     {"id", "workspace", "profiles"}
///     POST /v1/proposals                     host     {"session_id", "payload_base64"}
///     POST /v1/sessions/ID/commands          host     a command and its workspace snapshot (SnapshotArchive)
///     GET  /v1/proposals/ID/outputs/N        both     an executed command's new state
///     POST /v1/sessions/ID/blobs             host     one staged S3 multipart part (bytes, streamed to the blob store)
///     GET  /v1/proposals[?state=pending]     approver
///     GET  /v1/proposals/ID                  both (a host: its own sessions' only)
///     GET  /v1/proposals/ID/wait?timeout=S   both
///     POST /v1/proposals/ID/approve|deny     approver {"reason"}
///     GET  /v1/groups, /v1/groups/G          approver  (bursts decided at once: docs/previews.md)
///     POST /v1/groups/G/approve|deny         approver {"members": DIGEST, "reason"}
///     POST /v1/freeze {"reason"}, /v1/thaw   approver  (kill switch: no execution starts)
///     POST /v1/sessions/ID/revoke            approver  (and deny all its pending) {"reason"}
///     POST /v1/hosts/NAME/revoke, /v1/users/NAME/revoke  approver
///     GET  /v1/controls                      approver
///     GET  /v1/audit                         approver  (the log, signed checkpoints, public key)
///     GET  /metrics                          Prometheus text (counts only; no auth)
///     /ui/…                                  the approvers' web page (AirlockWeb, docs/web.md)
enum GateServer {
    static let bodyLimit = 17 << 20
    /// A command proposal's snapshot (WorkspaceSnapshot's limit) and its header line.
    static let commandBodyLimit = WorkspaceSnapshot.defaultLimit + (16 << 20)
    /// One S3 multipart part (S3's own limit is 5 GiB; SDKs send 8–64 MiB).
    static let partBodyLimit = 512 << 20

    static func serve(_ service: GateService, registry: PrometheusCollectorRegistry) async throws(AirlockError) {
        let logger = service.logger
        // The peer's address in every request's context: the web page believes a sign-in
        // proxy's header only from a configured proxy (docs/web.md).
        let router = Router(context: WebContext.self)
        router.middlewares.add(MetricsMiddleware())
        router.get("healthz") { _, _ in "ok\n" }
        router.get("metrics") { _, _ -> Response in
            // Proposals by state and kind are the store's (every replica's), counted now.
            let counts = await blocking { try? service.store.proposalCounts() }
            if let counts {
                for state in ProposalState.allCases {
                    for kind in [Proposal.Kind.api, .command] {
                        let count = counts.first { $0.state == state && $0.kind == kind }?.count ?? 0
                        Gauge(label: "airlock_gate_proposals", dimensions: [("state", state.rawValue), ("kind", kind.rawValue)]).record(count)
                    }
                }
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("readyz") { _, _ -> Response in
            // One indexed lookup: the store answers.
            let ready = await blocking { () -> Bool in
                do { _ = try service.store.proposal(id: "readyz"); return true } catch { return false }
            }
            return Response(status: ready ? .ok : .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: ready ? "ready\n" : "store unreachable\n")))
        }
        router.get("v1/whoami") { request, _ -> Response in
            await answer(request, .whoami, service) { identity throws(AirlockError) in
                .object([("name", .string(identity.name)), ("role", .string(identity.role.rawValue))])
            }
        }
        router.post("v1/sessions") { request, _ -> Response in
            return try await answerWithBody(request, .recordSession, service, status: .created) { identity, body throws(AirlockError) in
                try service.recordSession(identity, try body.get())
            }
        }
        router.post("v1/proposals") { request, _ -> Response in
            return try await answerWithBody(request, .propose, service, status: .created) { identity, body throws(AirlockError) in
                try service.propose(identity, try body.get())
            }
        }
        router.post("v1/sessions/:id/refusals") { request, context -> Response in
            // A request the host's broker refused: audited here, under the host's session.
            let id = context.parameters.get("id") ?? ""
            return try await answerWithBody(request, .propose, service, status: .created) { identity, body throws(AirlockError) in
                try service.recordRefusal(identity, sessionID: id, try body.get())
            }
        }
        router.post("v1/sessions/:id/commands") { request, context -> Response in
            // The body is the workspace snapshot (SnapshotArchive), not JSON; read only once the
            // token is known (an unauthenticated client never makes the gate hold 272 MiB).
            let id = context.parameters.get("id") ?? ""
            let who = await authenticated(request, .propose, service) { $0 }
            guard case .success(let identity) = who else { return render(who.map { _ in JSON.null }, status: .created) }
            guard case .success(let archive) = await rawBody(request, limit: commandBodyLimit, what: "the snapshot") else {
                return render(.failure(tooLarge("the snapshot", commandBodyLimit)), status: .ok)
            }
            return await run(identity, status: .created) { identity throws(AirlockError) in
                try service.proposeCommand(identity, sessionID: id, archive: archive)
            }
        }
        router.post("v1/sessions/:id/blobs") { request, context -> Response in
            // One staged S3 multipart part, as bytes, written to the blob store as they
            // arrive (a 1 MiB piece at a time in memory, never the whole part).
            let id = context.parameters.get("id") ?? ""
            let begun = await authenticated(request, .propose, service) { identity throws(AirlockError) in
                WriterBox(try service.beginBlob(identity, sessionID: id))
            }
            guard case .success(let box) = begun else { return render(begun.map { _ in JSON.null }, status: .created) }
            var received = 0
            var piece: [UInt8] = []
            func flush() async -> AirlockError? {
                let bytes = piece
                piece = []
                return await blocking { () -> AirlockError? in
                    do throws(AirlockError) { try box.writer.append(bytes); return nil } catch { return error }
                }
            }
            do {
                for try await buffer in request.body {
                    received += buffer.readableBytes
                    guard received <= partBodyLimit else {
                        box.writer.abandon()
                        return render(.failure(tooLarge("a part", partBodyLimit)), status: .ok)
                    }
                    piece += buffer.readableBytesView
                    if piece.count >= BlobChunking.chunkSize, let failure = await flush() {
                        box.writer.abandon()
                        return render(.failure(failure), status: .ok)
                    }
                }
            } catch {
                box.writer.abandon()
                return render(.failure(AirlockError("the part did not arrive whole (\(error)); nothing was kept", code: .badRequest)), status: .ok)
            }
            if !piece.isEmpty, let failure = await flush() {
                box.writer.abandon()
                return render(.failure(failure), status: .ok)
            }
            let finished = await blocking { () -> Result<JSON, AirlockError> in
                do throws(AirlockError) { return .success(try service.finishBlob(box.writer)) } catch { return .failure(error) }
            }
            return render(finished, status: .created)
        }
        router.get("v1/proposals/:id/outputs/:index") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            let index = context.parameters.get("index").flatMap { Int($0) } ?? -1
            return await answer(request, .show, service, hostAction: .waitOwn) { identity throws(AirlockError) in
                try service.output(identity, id, index: index)
            }
        }
        router.get("v1/proposals") { request, _ -> Response in
            let states = request.uri.queryParameters.get("state").map { Set($0.split(separator: ",").compactMap { ProposalState(rawValue: String($0)) }) }
            return await answer(request, .list, service) { identity throws(AirlockError) in try service.list(identity, states: states) }
        }
        router.get("v1/proposals/:id") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            return await answer(request, .show, service, hostAction: .waitOwn) { identity throws(AirlockError) in
                let proposal = try service.proposal(identity, id)
                var shown = view(proposal, for: identity, preview: identity.role == .host ? nil : try service.preview(proposal))
                // An approver sees what the rules ask and who has approved (docs/policy.md).
                if identity.role != .host, case .object(var fields) = shown,
                   let status = try? Approval.status(of: proposal.id, in: service.store, place: .gate),
                   case .object(let extra) = status.requirement.status(counted: status.counted, more: status.more, proposedAt: proposal.createdAt) {
                    fields += extra
                    shown = .object(fields)
                }
                return shown
            }
        }
        router.get("v1/proposals/:id/wait") { request, context -> Response in
            // Polled here, asleep between looks: a wait must not hold one of the thread
            // pool's few threads for its whole length.
            let id = context.parameters.get("id") ?? ""
            let timeout = Double(max(0, min(request.uri.queryParameters.get("timeout").flatMap { Int($0) } ?? 60, 3600)))
            let deadline = Clock.monotonicSeconds() + timeout
            // One of the host's open waits on this replica (limits.waits_per_host), given back
            // when this one answers.
            let entered = await authenticated(request, .show, service, hostAction: .waitOwn) { identity throws(AirlockError) in
                try service.enterWait(identity)
                return identity
            }
            guard case .success(let waiter) = entered else { return render(entered.map { _ in JSON.null }, status: .ok) }
            defer { service.leaveWait(waiter) }
            while true {
                let generation = service.changes.generation(id)
                let looked: Result<(JSON, Bool), AirlockError> = await authenticated(request, .show, service, hostAction: .waitOwn) { identity throws(AirlockError) in
                    let proposal = try service.proposal(identity, id)
                    return (view(proposal, for: identity), proposal.state.isFinal)
                }
                switch looked {
                case .success((let json, let final)) where final || Clock.monotonicSeconds() >= deadline:
                    return render(.success(json), status: .ok)
                case .failure(let failure):
                    return render(.failure(failure), status: .ok)
                case .success((let json, _)):
                    // Woken when this proposal changes on any replica (LISTEN/NOTIFY on
                    // PostgreSQL); the store is read again at least every 2 s regardless.
                    let left = max(0.05, min(2, deadline - Clock.monotonicSeconds()))
                    let woke = await service.changes.wait(id, after: generation, timeout: .milliseconds(Int(left * 1000)))
                    Counter(label: "airlock_gate_wait_wakeups_total", dimensions: [("by", woke ? "change" : "timeout")]).increment()
                    // Shutting down (the sleep is cancelled): answer with what is known now.
                    if Task.isCancelled { return render(.success(json), status: .ok) }
                }
            }
        }
        for decision in ["approve", "deny"] {
            router.post("v1/proposals/:id/\(decision)") { request, context -> Response in
                let id = context.parameters.get("id") ?? ""
                return try await answerWithBody(request, decision == "approve" ? .approve : .deny, service) { identity, body throws(AirlockError) in
                    let note = (try? body.get())?["reason"]?.string
                    let outcome = decision == "approve" ? try service.approve(identity, id, note: note) : try service.deny(identity, id, note: note)
                    return ProposalJSON.humanView(outcome)
                }
            }
        }

        router.get("v1/groups") { request, _ -> Response in
            await answer(request, .list, service) { identity throws(AirlockError) in try service.groups(identity) }
        }
        router.get("v1/groups/:id") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            return await answer(request, .list, service) { identity throws(AirlockError) in try service.group(identity, id).json }
        }
        for decision in ["approve", "deny"] {
            router.post("v1/groups/:id/\(decision)") { request, context -> Response in
                let id = context.parameters.get("id") ?? ""
                return try await answerWithBody(request, decision == "approve" ? .approve : .deny, service) { identity, body throws(AirlockError) in
                    let fields = try? body.get()
                    return try service.decideGroup(identity, id, approve: decision == "approve", members: fields?["members"]?.string,
                                                   note: fields?["reason"]?.string)
                }
            }
        }

        router.post("v1/freeze") { request, _ -> Response in
            return try await answerWithBody(request, .freeze, service) { identity, body throws(AirlockError) in
                try service.setFrozen(identity, true, reason: (try? body.get())?["reason"]?.string)
            }
        }
        router.post("v1/thaw") { request, _ -> Response in
            await answer(request, .freeze, service) { identity throws(AirlockError) in try service.setFrozen(identity, false, reason: nil) }
        }
        router.get("v1/audit") { request, _ -> Response in
            await answer(request, .audit, service) { identity throws(AirlockError) in try service.auditExport(identity) }
        }
        router.get("v1/controls") { request, _ -> Response in
            await answer(request, .list, service) { identity throws(AirlockError) in try service.controls(identity) }
        }
        router.post("v1/sessions/:id/revoke") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            return try await answerWithBody(request, .revoke, service) { identity, body throws(AirlockError) in
                try service.revokeSession(identity, id, reason: (try? body.get())?["reason"]?.string)
            }
        }
        for (path, role) in [("hosts", GateAccess.Role.host), ("users", .approver)] {
            router.post("v1/\(path)/:name/revoke") { request, context -> Response in
                let name = context.parameters.get("name") ?? ""
                return await answer(request, .revoke, service) { identity throws(AirlockError) in
                    try service.revokeIdentity(identity, name: name, role: role)
                }
            }
        }

        let config = service.config
        // The approvers' web page under /ui/ (docs/web.md).
        let webBackend = try GateWebBackend(service: service)
        let web = try WebApp(backend: webBackend, config: config.web, baseURL: config.webURL, logger: logger)
        web.register(on: router)
        // Bounds and timeouts (docs/gate.md, "Bounds and timeouts"): the descriptor limit
        // raised first, connections bounded below it, logged as they are in force.
        let descriptors = DescriptorLimit.raise()
        let (total, perPeer) = config.limits.effective(descriptorLimit: descriptors)
        let bounds = ConnectionBounds(total: total, perPeer: perPeer, headerTimeoutSeconds: config.limits.headerTimeoutSeconds,
                                      plaintext: config.tlsCertificate == nil)
        let idle = config.limits.idleTimeoutSeconds
        logger.notice("bounds", metadata: [
            "descriptor_limit": "\(descriptors)", "connections": "\(total)", "connections_per_peer": "\(perPeer)",
            "header_timeout_seconds": "\(config.limits.headerTimeoutSeconds)", "idle_timeout_seconds": "\(idle)",
            "waits_per_host": "\(config.limits.waitsPerHost)", "pending_per_host": "\(config.limits.pendingPerHost)",
            "pending_per_session": "\(ProposalLimits.pendingPerSession)", "blob_bytes_per_host": "\(config.limits.blobBytesPerHost)",
        ])
        let server: HTTPServerBuilder
        if let certificate = config.tlsCertificate, let key = config.tlsKey {
            let tls: TLSConfiguration
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
                tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                _ = try NIOSSLContext(configuration: tls)
            } catch {
                throw AirlockError("cannot load the gate's TLS certificate or key (\(certificate), \(key)): \(error)")
            }
            server = HTTPServerBuilder { responder in
                try TLSChannel(GuardedHTTP1Channel(responder: responder, bounds: bounds, idleTimeoutSeconds: idle), tlsConfiguration: tls)
            }
        } else {
            server = HTTPServerBuilder { responder in GuardedHTTP1Channel(responder: responder, bounds: bounds, idleTimeoutSeconds: idle) }
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
        // SIGTERM/SIGINT: stop accepting, let in-flight requests (executions) finish for up
        // to the grace period; whatever is still executing then is marked `unknown` below.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: app), .init(service: RecoveryService(service: service)),
                       .init(service: WebWatch(backend: webBackend, interval: .seconds(2)))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(config.shutdownGraceSeconds)
        let group = ServiceGroup(configuration: groupConfiguration)
        var failure: (any Error)?
        do {
            try await group.run()
        } catch {
            failure = error
            logger.error("server stopped", metadata: ["error": "\(error)"])
        }
        let marked = await blocking { service.markOwnExecutionsInterrupted() }
        logger.notice("stopped", metadata: ["replica": "\(service.lease.owner)", "marked_unknown": "\(marked.count)"])
        // A server that could not start (the port taken) or died says so and exits non-zero.
        if let failure { throw AirlockError("the gate server stopped: \(failure)") }
    }

    /// Every replica marks executions whose lease ran out (a killed replica's) `unknown`,
    /// every third of a lease, and sweeps old unused blobs once an hour.
    struct RecoveryService: Service {
        let service: GateService

        func run() async throws {
            let interval = max(1000, service.lease.seconds * 1000 / 3)
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                _ = await blocking { service.recoverExpiredExecutions() }
                _ = await blocking { service.sweepBlobs() }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(interval)) }
            }
            // Shutting down: an execution blocked in its upstream call cannot be cancelled,
            // so the server may not stop by itself. After the grace period, what this
            // replica still executes is marked `unknown` and the process exits (exit 1).
            let grace = service.config.shutdownGraceSeconds
            DetachedThread.run {
                sleep(UInt32(grace) + 1)
                let marked = service.markOwnExecutionsInterrupted()
                service.logger.error("shutdown grace ran out", metadata: ["marked_unknown": "\(marked.count)"])
                exit(1)
            }
        }
    }

    /// Approvers see everything; a host sees what an agent sees.
    static func view(_ proposal: Proposal, for identity: GateIdentity, preview: JSON? = nil) -> JSON {
        guard identity.role == .host else {
            // An approver inspects what exactly would run: the pinned request too, and its preview.
            guard case .object(var fields) = ProposalJSON.humanView(proposal) else { return .null }
            fields.append(("payload_base64", .string(Base64.encode(proposal.payload))))
            fields.append(("preview", preview ?? .null))
            return .object(fields)
        }
        // The host's own session (GateService only shows a host its own).
        guard case .object(var fields) = ProposalJSON.agentView(proposal) else { return .null }
        fields.append(("session", .string(proposal.sessionID)))
        return .object(fields)
    }

    /// A blob being written, handed between the request's task and the blocking pool (one
    /// at a time: the route awaits each step).
    final class WriterBox: @unchecked Sendable {
        let writer: any BlobWriter
        init(_ writer: any BlobWriter) { self.writer = writer }
    }

    /// A body that is bytes, not JSON (a snapshot), up to `limit`.
    static func rawBody(_ request: Request, limit: Int, what: String) async -> Result<[UInt8], AirlockError> {
        var request = request
        do {
            return .success(Array(try await request.collectBody(upTo: limit).readableBytesView))
        } catch {
            return .failure(tooLarge(what, limit))
        }
    }

    static func tooLarge(_ what: String, _ limit: Int) -> AirlockError {
        AirlockError("\(what) is larger than the gate takes (\(limit >> 20) MiB); nothing was proposed", code: .tooLarge)
    }

    static func jsonBody(_ request: Request) async throws -> Result<JSON, AirlockError> {
        var request = request
        let buffer = try await request.collectBody(upTo: bodyLimit)
        let bytes = Array(buffer.readableBytesView)
        if bytes.isEmpty { return .success(.object([])) }
        guard let json = try? JSON.parseStrict(bytes: bytes) else {
            return .failure(AirlockError("the body is not one JSON document", code: .badRequest))
        }
        return .success(json)
    }

    /// The threads the store's blocking calls run on. NIO's shared pool has one per core
    /// (two here): measured, 100 sessions' calls queued behind each other on them while each
    /// waited on a PostgreSQL round trip (BENCHMARKS.md). Sixteen cover the PostgreSQL pool's
    /// eight connections and SQLite's short calls.
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()

    static func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        do {
            return try await pool.runIfActive(body)
        } catch {
            return body()
        }
    }

    /// Authenticates for `action` (for a host, `hostAction` when the route has one) and runs
    /// `body`, both off the event loop.
    static func authenticated<T: Sendable>(_ request: Request, _ action: GateAccess.Action, _ service: GateService,
                                           hostAction: GateAccess.Action? = nil,
                                           _ body: @escaping @Sendable (GateIdentity) throws(AirlockError) -> T) async -> Result<T, AirlockError> {
        let authorization = request.headers[.authorization]
        return await blocking {
            do throws(AirlockError) {
                return .success(try body(try service.authenticate(authorization, for: action, hostAction: hostAction)))
            } catch {
                return .failure(error)
            }
        }
    }

    /// Authenticates first, then reads the JSON body (at most `bodyLimit`), then runs `body`:
    /// a client without a token never makes the gate hold a body.
    static func answerWithBody(_ request: Request, _ action: GateAccess.Action, _ service: GateService, status: HTTPResponse.Status = .ok,
                               _ body: @escaping @Sendable (GateIdentity, Result<JSON, AirlockError>) throws(AirlockError) -> JSON) async throws -> Response {
        let who = await authenticated(request, action, service) { $0 }
        guard case .success(let identity) = who else { return render(who.map { _ in JSON.null }, status: status) }
        let json = try await jsonBody(request)
        return await run(identity, status: status) { identity throws(AirlockError) in try body(identity, json) }
    }

    /// `body` for an identity already authenticated, off the event loop.
    static func run(_ identity: GateIdentity, status: HTTPResponse.Status,
                    _ body: @escaping @Sendable (GateIdentity) throws(AirlockError) -> JSON) async -> Response {
        render(await blocking { () -> Result<JSON, AirlockError> in
            do throws(AirlockError) { return .success(try body(identity)) } catch { return .failure(error) }
        }, status: status)
    }

    static func answer(_ request: Request, _ action: GateAccess.Action, _ service: GateService, status: HTTPResponse.Status = .ok,
                       hostAction: GateAccess.Action? = nil,
                       _ body: @escaping @Sendable (GateIdentity) throws(AirlockError) -> JSON) async -> Response {
        render(await authenticated(request, action, service, hostAction: hostAction, body), status: status)
    }

    /// The JSON answer, or the failure as `{"error": {"code", "message"}}` with its status.
    static func render(_ result: Result<JSON, AirlockError>, status: HTTPResponse.Status) -> Response {
        switch result {
        case .success(let json):
            return Response(status: status, headers: [.contentType: "application/json"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: json.serialized() + "\n")))
        case .failure(let failure):
            return Response(status: HTTPResponse.Status(code: failure.httpStatus), headers: [.contentType: "application/json"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: failure.json.serialized() + "\n")))
        }
    }
}
