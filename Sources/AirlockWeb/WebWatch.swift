import AirlockCore
import AirlockPolicy
import AirlockStore
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Moves the live queue when the store changed in a way this process was not told of (docs/
/// web.md, "Live queue"): another replica's transition whose notification was lost, or,
/// for `airlock ui`, every change (the broker that proposes is another process, and SQLite
/// has no notifications). Every change appends to the audit log, so its head moving is the
/// one signal; one read per interval per process, however many pages are open.
public struct WebWatch: Service {
    let backend: any WebBackend
    let interval: Duration

    public init(backend: any WebBackend, interval: Duration) {
        self.backend = backend
        self.interval = interval
    }

    public func run() async throws {
        let backend = self.backend
        func head() async -> Int { await WebBlocking.run { ((try? backend.store.auditHead()) ?? nil)?.seq ?? -1 } }
        var last = await head()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            let now = await head()
            if now != last {
                last = now
                backend.changes.bumpAll()
            }
        }
    }
}

/// `airlock ui`: the page for the human's own store, on loopback only (docs/web.md,
/// "Locally"). Prints a one-time link; the port is the kernel's choice unless given.
public enum LocalWebServer {
    public static func serve(backend: LocalWebBackend, port: Int, linkMinutes: Int = 15,
                             announce: @escaping @Sendable (String) -> Void) async throws(AirlockError) {
        let logger = Logger(label: "airlock.ui")
        let web: WebApp
        // The origin is known once the port is: a placeholder until then (only HSTS reads it).
        // A local sign-in lasts 2 hours: other accounts on this machine can reach 127.0.0.1.
        var config = GateWebConfig()
        config.sessionHours = 2
        web = try WebApp(backend: backend, config: config, baseURL: "http://127.0.0.1", logger: logger)
        let router = Router(context: WebContext.self)
        router.middlewares.add(LoopbackHostMiddleware())
        web.register(on: router)
        let token = WebCookies.token()
        try backend.signIns.addLoginLink(hash: WebCookies.hash(token), name: backend.user,
                                         expiresAt: Clock.epochMilliseconds() + Int64(linkMinutes) * 60_000, by: Actor.currentUser())
        let app = Application(
            router: router,
            // 127.0.0.1 only: nothing of this listens beyond the machine.
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port), serverName: "airlock-ui"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                announce("http://127.0.0.1:\(bound)/ui/login/\(token)")
            },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: app), .init(service: WebWatch(backend: backend, interval: .seconds(1)))],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            throw AirlockError("the page stopped: \(error)")
        }
    }
}

/// `airlock ui` answers only requests addressed to 127.0.0.1 or localhost: a web page whose
/// own name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name as Host and is
/// refused before any route (it would carry no session cookie either; this is the second lock).
struct LoopbackHostMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let authority = request.head.authority ?? ""
        let host = authority.hasPrefix("[") ? String(authority.prefix { $0 != "]" }) + "]" : String(authority.prefix { $0 != ":" })
        guard host == "127.0.0.1" || host == "localhost" || host == "[::1]" else {
            return Response(status: .misdirectedRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "airlock ui answers requests for 127.0.0.1 only\n")))
        }
        return try await next(request, context)
    }
}
