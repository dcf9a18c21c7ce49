import AirlockCore
import AirlockPolicy
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The egress proxy (HTTPS_PROXY/HTTP_PROXY inside the sandbox): CONNECT tunnels and plain
/// HTTP forwarding to allowed hosts only, with names resolved here (the sandbox has no DNS)
/// and non-public addresses refused (DNS rebinding, cloud metadata) unless a profile opened
/// them. Every connection and refusal goes to the session log.
public final class EgressProxy: @unchecked Sendable {
    public struct Limits: Sendable {
        public var headerTimeout: Int64
        public var idleTimeout: Int64
        public var totalTimeout: Int64
        public var maxTunnels: Int
        public static let maximumBody = 64 << 20
        /// Reads grow up to 256 KiB when data streams (fewer system calls for large
        /// downloads), and at most 1 MiB waits to be written per direction: a tunnel holds
        /// at most a few MiB whatever it carries.
        public static let readBuffers = AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 16384, maximum: 1 << 20)
        public static let waterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 256 << 10, high: 1 << 20)

        public init(headerTimeout: Int, idleTimeout: Int, totalTimeout: Int, maxTunnels: Int) {
            self.headerTimeout = Int64(headerTimeout)
            self.idleTimeout = Int64(idleTimeout)
            self.totalTimeout = Int64(totalTimeout)
            self.maxTunnels = maxTunnels
        }
    }

    let policy: EgressPolicy
    let limits: Limits
    let resolver: EgressResolver
    let log: BrokerLog
    /// Where CONNECTs to AWS hosts go (TLS terminated by the broker, requests handed to the
    /// AWS gateway): set by the session before the proxy serves.
    private var interceptionSlot: AWSInterception?
    public var awsInterception: AWSInterception? {
        get { locked { interceptionSlot } }
        set { locked { interceptionSlot = newValue } }
    }
    /// Where CONNECTs to the human's Kubernetes API servers go (TLS terminated by the broker,
    /// requests handed to the Kubernetes gateway bound to that context): never a tunnel.
    private var kubernetesSlot: KubernetesInterception?
    public var kubernetesInterception: KubernetesInterception? {
        get { locked { kubernetesSlot } }
        set { locked { kubernetesSlot = newValue } }
    }
    /// Where CONNECTs to GitHub hosts go (TLS terminated, requests handed to the GitHub gateway).
    private var githubSlot: GitHubInterception?
    public var githubInterception: GitHubInterception? {
        get { locked { githubSlot } }
        set { locked { githubSlot = newValue } }
    }
    private var mutex = pthread_mutex_t()
    private var active = 0
    private var refusals: [String: Int] = [:]
    private var allowedCount = 0

    public init(policy: EgressPolicy, limits: Limits, resolver: EgressResolver, log: BrokerLog) {
        self.policy = policy
        self.limits = limits
        self.resolver = resolver
        self.log = log
        cap = limits.maxTunnels
        pthread_mutex_init(&mutex, nil)
    }

    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }

    private var cap: Int

    /// Raises this process's open-file limit to its hard limit (each connection holds two
    /// descriptors) and lowers the connection cap if even that is too few. Called once the
    /// agent has started, so the agent keeps the limits it was given.
    public func fitDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        let available = Int(clamping: limit.rlim_cur)
        // Room for the broker's own files, the store, the log and the other listeners.
        let fitting = max(1, (available - 128) / 2)
        locked {
            if fitting < cap {
                log.write("egress: at most \(fitting) connections at once (open-file limit \(available)), not \(cap)")
                cap = fitting
            }
        }
    }

    public var connectionCap: Int { locked { cap } }

    /// Takes a connection slot; false when the cap is reached.
    func acquire() -> Bool {
        locked {
            guard active < cap else { return false }
            active += 1
            allowedCount += 1
            return true
        }
    }

    func release() { locked { active -= 1 } }

    func noteRefusal(_ target: String, _ rule: String) {
        locked { refusals[target, default: 0] += 1 }
        log.write("egress refused \(target): \(rule)")
    }

    /// For the end of `airlock run`: connections refused, by target, most first.
    public func refusalSummary() -> [(target: String, count: Int)] {
        locked { refusals.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, $0.value) } }
    }

    public var activeConnections: Int { locked { active } }

    /// After the agent ended: lets the connections it left close and log their byte counts
    /// (their sockets are gone; the event loops need a moment), for at most `timeout`
    /// seconds. Without it a session's last download could be missing from its log (seen
    /// on a loaded CI machine: the process exited first).
    public func drain(timeout: Double) {
        let deadline = Clock.monotonicSeconds() + timeout
        while activeConnections > 0 && Clock.monotonicSeconds() < deadline { usleep(5_000) }
    }
}

/// What the egress proxy needs to answer an AWS host itself (docs/gate.md): the session's
/// TLS context (its CA's certificates) and the AWS gateway the requests go to.
public final class AWSInterception: @unchecked Sendable {
    let context: NIOSSLContext
    let gateway: AWSGateway
    let pool: NIOThreadPool
    let budget = BodyBudget()

    public init(ca: SessionCA, gateway: AWSGateway, broker: Broker) throws(AirlockError) {
        context = try ca.serverContext()
        self.gateway = gateway
        pool = broker.pool
    }
}

/// What the egress proxy needs to answer a Kubernetes API server's address or a GitHub host
/// itself (docs/kubernetes.md, docs/github.md): a CONNECT there is terminated with a
/// session-CA certificate for that name and served by the gateway, which requires the
/// session's credential or none; nothing is tunnelled to the real server.
public final class GatewayInterception<Gateway: Sendable>: @unchecked Sendable {
    let ca: SessionCA
    let gateway: Gateway
    let pool: NIOThreadPool

    public init(ca: SessionCA, gateway: Gateway, broker: Broker) {
        self.ca = ca
        self.gateway = gateway
        pool = broker.pool
    }
}

public typealias KubernetesInterception = GatewayInterception<KubernetesGateway>
public typealias GitHubInterception = GatewayInterception<GitHubGateway>

/// One client connection to the proxy.
final class EgressProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum State {
        case awaitingHead
        case readingBody(HTTPRequestHead, EgressTarget)
        case working
        case done
    }

    let proxy: EgressProxy
    let pool: NIOThreadPool
    private var state = State.awaitingHead
    private var body = ByteBuffer()
    private var headerTimer: Scheduled<Void>?

    init(proxy: EgressProxy, pool: NIOThreadPool) {
        self.proxy = proxy
        self.pool = pool
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Slowloris: a request head must arrive whole within the header timeout.
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        headerTimer = context.eventLoop.scheduleTask(in: .seconds(proxy.limits.headerTimeout)) {
            let (handler, context) = bound.value
            if case .awaitingHead = handler.state {
                handler.proxy.log.write("egress: no complete request within \(handler.proxy.limits.headerTimeout) s; closed")
                handler.refuse(context, .requestTimeout, "Airlock proxy: no complete request within \(handler.proxy.limits.headerTimeout) s")
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .awaitingHead = state else { return }
            headerTimer?.cancel()
            // Refused before a byte of it is read, so the client hears why instead of a reset.
            if let length = head.headers.first(name: "Content-Length").flatMap(Int.init), length > EgressProxy.Limits.maximumBody {
                proxy.log.write("egress: \(head.method.rawValue) \(head.uri.prefix(200)) with a \(length)-byte body refused")
                refuse(context, .payloadTooLarge, "Airlock proxy: request bodies above \(EgressProxy.Limits.maximumBody >> 20) MiB are refused")
                return
            }
            do {
                let target = head.method == .CONNECT ? try EgressTarget.connect(head.uri) : try EgressTarget.absolute(head.uri)
                state = .readingBody(head, target)
            } catch {
                proxy.log.write("egress: malformed \(head.method.rawValue) \(head.uri.prefix(200)): \(error)")
                refuse(context, .badRequest, "Airlock proxy: \(error)")
            }
        case .body(var chunk):
            guard case .readingBody = state else { return }
            if body.readableBytes + chunk.readableBytes > EgressProxy.Limits.maximumBody {
                refuse(context, .payloadTooLarge, "Airlock proxy: request bodies above \(EgressProxy.Limits.maximumBody >> 20) MiB are refused")
                return
            }
            body.writeBuffer(&chunk)
        case .end:
            guard case .readingBody(let head, let target) = state else { return }
            state = .working
            // Nothing more is read from the agent until the upstream is connected.
            context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
            decide(context, head: head, target: target)
        }
    }

    private func decide(_ context: ChannelHandlerContext, head: HTTPRequestHead, target: EgressTarget) {
        // AWS hosts are Airlock's to answer: the gate is where AWS calls go, whatever host a
        // client has built in (the aws CLI's queue.amazonaws.com for every `aws sqs`).
        if head.method == .CONNECT, target.port == 443, SessionCA.covers(target.host), let interception = proxy.awsInterception {
            intercept(context, target: target, tls: interception.context, label: "Airlock's AWS gateway") {
                AWSEndpointHandler(gateway: interception.gateway, pool: interception.pool, budget: interception.budget,
                                   interceptedHost: target.host.lowercased())
            }
            return
        }
        // GitHub hosts too: their API and git are gated by the GitHub gateway, with the
        // human's credentials added there, whatever client made the connection.
        if let github = proxy.githubInterception, github.gateway.credentials.covers(target.host) {
            let host = target.host.lowercased()
            // The profile's allowlist still decides whether the agent may reach GitHub at all.
            if case .refuse(let rule, let hint) = proxy.policy.decide(host: target.host, port: target.port) {
                proxy.noteRefusal(target.description, rule)
                refuse(context, .forbidden, Self.refusalText(target, rule: rule, hint: hint))
                return
            }
            guard head.method == .CONNECT, target.port == 443 else {
                proxy.noteRefusal(target.description, "a GitHub host, HTTPS only")
                refuse(context, .forbidden, "Airlock proxy: \(target) is a GitHub host; use https:// (port 443), which the broker answers")
                return
            }
            intercept(context, target: target, ca: github.ca, label: "Airlock's GitHub gateway") {
                KubernetesEndpointHandler(github: github.gateway, host: host, pool: github.pool)
            }
            return
        }
        // The human's API servers are the broker's to answer, by any client: the sandbox's
        // kubeconfig points at the broker, and a client that found a server's address
        // elsewhere must not get a tunnel to it.
        if let kubernetes = proxy.kubernetesInterception,
           let index = kubernetes.gateway.clusters.contextIndex(host: target.host, port: target.port) {
            guard head.method == .CONNECT else {
                proxy.noteRefusal(target.description, "a Kubernetes API server")
                refuse(context, .forbidden, "Airlock proxy: \(target) is a Kubernetes API server of your kubeconfig; reach it with the sandbox's kubeconfig ($KUBECONFIG), through the broker")
                return
            }
            intercept(context, target: target, ca: kubernetes.ca, label: "Airlock's Kubernetes gateway (context \(index))") {
                KubernetesEndpointHandler(gateway: kubernetes.gateway, pool: kubernetes.pool, boundContext: index)
            }
            return
        }
        if case .refuse(let rule, let hint) = proxy.policy.decide(host: target.host, port: target.port) {
            proxy.noteRefusal(target.description, rule)
            refuse(context, .forbidden, Self.refusalText(target, rule: rule, hint: hint))
            return
        }
        let proxy = self.proxy
        // An address, a pinned name or one resolved in the last 30 s needs no lookup: no hop
        // to the pool and back (a tenth of a millisecond of a new connection).
        if let known = proxy.resolver.resolvedWithoutBlocking(target.host) {
            proceed(context, head: head, target: target, addresses: known)
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        pool.runIfActive(eventLoop: context.eventLoop) { proxy.resolver.resolve(target.host) }.whenComplete { result in
            let (handler, context) = bound.value
            handler.proceed(context, head: head, target: target, addresses: (try? result.get()) ?? [])
        }
    }

    /// The addresses `target`'s name resolved to, checked against the policy, then a connection.
    private func proceed(_ context: ChannelHandlerContext, head: HTTPRequestHead, target: EgressTarget, addresses: [IPAddress]) {
        switch proxy.policy.permittedAddresses(addresses, host: target.host) {
        case .failure(let refusal):
            proxy.noteRefusal(target.description, refusal.rule)
            refuse(context, .forbidden, Self.refusalText(target, rule: refusal.rule, hint: refusal.hint))
        case .success(let permitted):
            guard proxy.acquire() else {
                let cap = proxy.connectionCap
                proxy.noteRefusal(target.description, "too many connections (\(cap))")
                refuse(context, .serviceUnavailable, "Airlock proxy: more than \(cap) connections at once (network.max_tunnels); try again")
                return
            }
            connect(context, head: head, target: target, address: permitted[0])
        }
    }

    static func refusalText(_ target: EgressTarget, rule: String, hint: String) -> String {
        "Airlock proxy refused \(target): \(rule). \(hint.prefix(1).uppercased() + hint.dropFirst())."
    }

    private func connect(_ context: ChannelHandlerContext, head: HTTPRequestHead, target: EgressTarget, address: IPAddress) {
        let socketAddress: SocketAddress
        do {
            socketAddress = try SocketAddress(ipAddress: address.description, port: target.port)
        } catch {
            proxy.release()
            refuse(context, .badGateway, "Airlock proxy: cannot use address \(address)")
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let started = Clock.monotonicSeconds()
        let proxy = self.proxy
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.recvAllocator, value: EgressProxy.Limits.readBuffers)
            .channelOption(.writeBufferWaterMark, value: EgressProxy.Limits.waterMark)
            .connectTimeout(.seconds(15))
            .connect(to: socketAddress)
            .whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .failure(let error):
                    proxy.release()
                    proxy.log.write("egress \(target) → \(address): cannot connect: \(error)")
                    handler.refuse(context, .badGateway, "Airlock proxy: cannot connect to \(target) (\(address)): \(error)")
                case .success(let upstream):
                    let record = ConnectionRecord(proxy: proxy, label: "\(head.method == .CONNECT ? "CONNECT" : head.method.rawValue) \(target) → \(address)", started: started)
                    if head.method == .CONNECT {
                        handler.startTunnel(context, upstream: upstream, record: record)
                    } else {
                        handler.forward(context, head: head, target: target, upstream: upstream, record: record)
                    }
                }
            }
    }

    /// As below, with the session CA's certificate for the target's own name (an address or a
    /// name the client may not send by SNI).
    private func intercept(_ context: ChannelHandlerContext, target: EgressTarget, ca: SessionCA, label: String,
                           endpoint: @escaping @Sendable () -> ChannelHandler) {
        do {
            intercept(context, target: target, tls: try ca.context(for: target.host.lowercased()), label: label, endpoint: endpoint)
        } catch {
            refuse(context, .badGateway, "Airlock proxy: \(error)")
        }
    }

    /// 200, then TLS with a certificate of the session's CA for the host, and a gateway's
    /// handler (`endpoint`) behind it, bound to that host.
    private func intercept(_ context: ChannelHandlerContext, target: EgressTarget, tls: NIOSSLContext, label: String,
                           endpoint: @escaping @Sendable () -> ChannelHandler) {
        state = .done
        guard proxy.acquire() else {
            refuse(context, .serviceUnavailable, "Airlock proxy: more than \(proxy.connectionCap) connections at once (network.max_tunnels); try again")
            return
        }
        let record = ConnectionRecord(proxy: proxy, label: "CONNECT \(target) → \(label) (TLS terminated)", started: Clock.monotonicSeconds())
        let channel = context.channel
        let pipeline = context.pipeline
        let established = context.channel.allocator.buffer(string: "HTTP/1.1 200 Connection established\r\n\r\n")
        // Every step runs on this channel's event loop (the pipeline's futures complete there).
        let bound = NIOLoopBound((context: context, handler: self), eventLoop: context.eventLoop)
        pipeline.removeHandler(name: "airlock-http-encoder").flatMap {
            bound.value.context.writeAndFlush(NIOAny(established))
        }.flatMapThrowing {
            let sync = pipeline.syncOperations
            try sync.addHandler(NIOSSLServerHandler(context: tls), position: .last)
            try sync.configureHTTPServerPipeline(position: .last, withErrorHandling: true)
            try sync.addHandler(endpoint(), position: .last)
        }.flatMap {
            pipeline.syncOperations.removeHandler(bound.value.handler)
        }.flatMap {
            // The ClientHello may already be read: it goes on to the TLS handler.
            pipeline.removeHandler(name: "airlock-http-decoder")
        }.whenComplete { result in
            switch result {
            case .success:
                channel.closeFuture.whenComplete { _ in record.finish() }
                channel.setOption(.autoRead, value: true).whenComplete { _ in }
            case .failure(let error):
                record.proxy.log.write("egress: TLS for \(target) could not be set up: \(error)")
                channel.close(promise: nil)
                record.finish()
            }
        }
    }

    /// 200, then the HTTP handlers leave and the two connections are glued byte for byte.
    private func startTunnel(_ context: ChannelHandlerContext, upstream: Channel, record: ConnectionRecord) {
        state = .done
        let downstream = context.channel
        let (agentSide, upstreamSide) = TunnelHandler.pair(record: record)
        let limits = proxy.limits
        let pipeline = context.pipeline
        // The 200 is written as raw bytes once the encoder is gone: the encoder would frame it
        // (chunked) and put a terminator into the tunnel.
        let established = context.channel.allocator.buffer(string: "HTTP/1.1 200 Connection established\r\n\r\n")
        // Every step runs on this channel's event loop, the upstream's too (it was connected
        // on context.eventLoop).
        let bound = NIOLoopBound((context: context, handler: self, agentSide: agentSide, upstreamSide: upstreamSide),
                                 eventLoop: context.eventLoop)
        pipeline.removeHandler(name: "airlock-http-encoder").flatMap {
            bound.value.context.writeAndFlush(NIOAny(established))
        }.flatMapThrowing {
            try upstream.pipeline.syncOperations.addHandler(bound.value.upstreamSide)
        }.flatMapThrowing {
            try pipeline.syncOperations.addHandler(bound.value.agentSide)
        }.flatMap {
            pipeline.syncOperations.removeHandler(bound.value.handler)
        }.flatMap {
            // Bytes the agent sent after CONNECT come out of the decoder as it leaves.
            pipeline.removeHandler(name: "airlock-http-decoder")
        }.whenComplete { result in
            switch result {
            case .success:
                TunnelHandler.arm(downstream: downstream, upstream: upstream, limits: limits, record: record)
                downstream.setOption(.autoRead, value: true).whenComplete { _ in }
            case .failure(let error):
                record.proxy.log.write("egress tunnel setup failed: \(error)")
                downstream.close(promise: nil)
                upstream.close(promise: nil)
                record.finish()
            }
        }
    }

    /// Plain HTTP: the request in origin form, without proxy headers; the response streamed
    /// back; one request per connection.
    private func forward(_ context: ChannelHandlerContext, head: HTTPRequestHead, target: EgressTarget, upstream: Channel,
                         record: ConnectionRecord) {
        state = .done
        var headers = HTTPHeaders()
        for header in head.headers where !Self.dropped.contains(header.name.lowercased()) {
            headers.add(name: header.name, value: header.value)
        }
        headers.replaceOrAdd(name: "Host", value: target.port == 80 ? target.host : "\(target.host):\(target.port)")
        headers.replaceOrAdd(name: "Connection", value: "close")
        // The upstream was connected on context.eventLoop: the relay lives there.
        let relay = NIOLoopBound(ForwardRelay(downstream: context, record: record), eventLoop: context.eventLoop)
        let body = self.body
        let requestHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: target.path ?? "/", headers: headers)
        upstream.pipeline.addHTTPClientHandlers().flatMapThrowing { try upstream.pipeline.syncOperations.addHandler(relay.value) }.whenComplete { result in
            guard case .success = result else {
                upstream.close(promise: nil)
                return
            }
            upstream.write(HTTPClientRequestPart.head(requestHead), promise: nil)
            if body.readableBytes > 0 { upstream.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
            record.up += body.readableBytes
            upstream.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        upstream.closeFuture.whenComplete { _ in record.finish() }
    }

    static let dropped: Set<String> = ["proxy-connection", "proxy-authorization", "connection", "keep-alive", "te",
                                       "trailer", "transfer-encoding", "upgrade", "host"]

    func refuse(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ message: String) {
        state = .done
        headerTimer?.cancel()
        let text = message + "\n"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        headers.add(name: "Connection", value: "close")
        headers.add(name: "X-Airlock-Refusal", value: String(message.prefix(400)).replacingNewlines())
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .awaitingHead = state {
            proxy.log.write("egress: unreadable request: \(error)")
            let status: HTTPResponseStatus = (error as? HTTPParserError) == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
            refuse(context, status, "Airlock proxy: unreadable request (\(error))")
        } else {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        headerTimer?.cancel()
        context.fireChannelInactive()
    }
}

/// Counts one connection's bytes and logs it when it ends.
final class ConnectionRecord: @unchecked Sendable {
    let proxy: EgressProxy
    let label: String
    let started: Double
    var up = 0
    var down = 0
    var lastActivity = Clock.monotonicSeconds()
    private var finished = false
    private var closedSides = 0

    init(proxy: EgressProxy, label: String, started: Double) {
        self.proxy = proxy
        self.label = label
        self.started = started
    }

    /// A tunnel is finished when both of its connections are.
    func sideClosed() {
        closedSides += 1
        if closedSides == 2 { finish() }
    }

    /// Once, from the connection's event loop.
    func finish() {
        guard !finished else { return }
        finished = true
        let seconds = Clock.monotonicSeconds() - started
        // Logged before it stops counting as active: the session's end waits for the count.
        proxy.log.write("egress \(label): \(up) bytes up, \(down) bytes down, \(String(format3: seconds)) s")
        proxy.release()
    }
}

/// The response of a plain HTTP forward, streamed to the agent with back-pressure.
final class ForwardRelay: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let downstream: NIOLoopBound<ChannelHandlerContext>
    private let record: ConnectionRecord

    init(downstream: ChannelHandlerContext, record: ConnectionRecord) {
        self.downstream = NIOLoopBound(downstream, eventLoop: downstream.eventLoop)
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let downstream = self.downstream.value
        switch unwrapInboundIn(data) {
        case .head(let head):
            downstream.write(NIOAny(HTTPServerResponsePart.head(UpstreamConnector.relayedHead(head, version: .http1_1, keepAlive: false))),
                             promise: nil)
        case .body(let buffer):
            record.down += buffer.readableBytes
            UpstreamConnector.relay(buffer, to: downstream, from: context.channel)
        case .end:
            let channel = downstream.channel
            downstream.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        downstream.value.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

extension String {
    /// Three decimals: 1.234.
    init(format3 value: Double) {
        let thousandths = Int((value * 1000).rounded())
        let fraction = String(thousandths % 1000)
        self = "\(thousandths / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
