import AirlockCore
import AirlockPolicy
import Glibc
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes
import Synchronization

/// What one replica holds open (docs/gate.md, "Bounds and timeouts"), shared by every
/// connection: open connections in all and per client address. Measured before this bound: a
/// host holding 1,200 waits under a 1024-descriptor limit crashed a replica (descriptors ran
/// out under NIO and the store); now connections stop 256 descriptors short of the limit and
/// one address may hold half of them, so an approver on another address still gets in.
final class ConnectionBounds: Sendable {
    let total: Int
    let perPeer: Int
    let headerTimeout: TimeAmount
    let plaintext: Bool
    let open = Mutex<(count: Int, peers: [String: Int])>((0, [:]))

    init(total: Int, perPeer: Int, headerTimeoutSeconds: Int, plaintext: Bool) {
        self.total = total
        self.perPeer = perPeer
        self.headerTimeout = .seconds(Int64(headerTimeoutSeconds))
        self.plaintext = plaintext
    }

    /// Takes a place for a connection from `peer`, or names the bound it reached.
    func enter(_ peer: String) -> String? {
        let (refused, count) = open.withLock { state -> (String?, Int) in
            if state.count >= total { return ("limits.connections", state.count) }
            let mine = state.peers[peer, default: 0]
            if mine >= perPeer { return ("limits.connections_per_peer", state.count) }
            state.count += 1
            state.peers[peer] = mine + 1
            return (nil, state.count)
        }
        Gauge(label: "airlock_gate_connections_open").record(count)
        return refused
    }

    func leave(_ peer: String) {
        let count = open.withLock { state -> Int in
            state.count -= 1
            let mine = state.peers[peer, default: 1] - 1
            state.peers[peer] = mine > 0 ? mine : nil
            return state.count
        }
        Gauge(label: "airlock_gate_connections_open").record(count)
    }

    var count: Int { open.withLock { $0.count } }

    /// The answer to a connection past a bound, written before any request is read (on a
    /// plain-HTTP listener; a TLS one closes instead: nothing can be said before a handshake).
    static func refusal(_ bound: String) -> String {
        let body = "{\"error\":{\"code\":\"\(AirlockError.Code.overloaded.rawValue)\",\"message\":\"the gate holds as many connections as it takes (\(bound)); try again shortly\"}}\n"
        return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
    }
}

/// The first handler of every connection (after TLS): counts it against the bounds, refusing
/// it past them, and closes it when a request's head does not arrive whole within the header
/// timeout of its first byte (or of the accept, for the first request): a slow sender cannot
/// hold a connection for longer. Between requests the idle timeout (Hummingbird's, which
/// never cuts a request in progress such as a long poll) applies instead.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase { case awaitingHead, inRequest, idle }

    let bounds: ConnectionBounds
    var peer: String?
    var phase = Phase.awaitingHead
    var timer: Scheduled<Void>?

    init(bounds: ConnectionBounds) {
        self.bounds = bounds
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context)
        context.fireChannelActive()
    }

    func admit(_ context: ChannelHandlerContext) {
        guard peer == nil else { return }
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if let bound = bounds.enter(address) {
            Counter(label: "airlock_gate_refused_total", dimensions: [("bound", String(bound.dropFirst("limits.".count)))]).increment()
            peer = ""
            if bounds.plaintext {
                let text = ConnectionBounds.refusal(bound)
                var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
                buffer.writeString(text)
                let promise = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
                let channel = context.channel
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
            return
        }
        peer = address
        arm(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if let peer, !peer.isEmpty { bounds.leave(peer) }
        peer = ""
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused connection's bytes go nowhere.
        guard let peer, !peer.isEmpty else { return }
        if phase == .idle {
            phase = .awaitingHead
            arm(context)
        }
        context.fireChannelRead(data)
    }

    func arm(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: bounds.headerTimeout) { [self] in
            timer = nil
            guard phase == .awaitingHead else { return }
            Counter(label: "airlock_gate_refused_total", dimensions: [("bound", "header_timeout_seconds")]).increment()
            context.close(promise: nil)
        }
    }

    /// The head arrived whole (HeadWatcher saw it).
    func headReceived() {
        phase = .inRequest
        timer?.cancel()
        timer = nil
    }

    /// The response was written: the next bytes start a new head.
    func responseEnded() {
        if phase == .inRequest { phase = .idle }
    }
}

/// After the HTTP decoder: tells the connection's guard when a head has arrived and when the
/// response to it has been written.
final class HeadWatcher: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    var guardHandler: ConnectionGuard?

    func handlerAdded(context: ChannelHandlerContext) {
        guardHandler = try? context.pipeline.syncOperations.handler(type: ConnectionGuard.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { guardHandler?.headReceived() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { guardHandler?.responseEnded() }
        context.write(data, promise: promise)
    }
}

/// HTTP/1 with the guard first: Hummingbird's HTTP1Channel, its idle timeout set, behind a
/// ConnectionGuard (and, with TLS, TLSChannel wraps this one, so the guard reads plaintext).
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let base: HTTP1Channel
    let bounds: ConnectionBounds

    init(responder: @escaping HTTPChannelHandler.Responder, bounds: ConnectionBounds, idleTimeoutSeconds: Int) {
        self.bounds = bounds
        base = HTTP1Channel(responder: responder, configuration: .init(additionalChannelHandlers: [HeadWatcher()],
                                                                        idleTimeout: .seconds(Int64(idleTimeoutSeconds))))
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ConnectionGuard(bounds: bounds))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// The process's descriptor limit, raised to its hard limit (systemd's default soft limit is
/// 1024; connections, the store's pool and execution sandboxes all take descriptors).
enum DescriptorLimit {
    static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(min(limit.rlim_cur, 1 << 30))
    }
}
