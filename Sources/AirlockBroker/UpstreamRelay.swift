import AirlockCore
import NIOCore
import NIOHTTP1

/// Sends one forwarded request upstream and streams its response to the agent: the upstream
/// connection is read only as fast as the agent's connection drains (large S3 downloads and
/// Kubernetes watches stay in bounded memory). The connection comes from `UpstreamPool` when
/// one of the request's endpoint and identity is idle (reads only), and goes back to it when
/// the whole response was relayed and the server keeps it alive (docs/design.md §4.5).
/// Everything here runs on the agent connection's event loop.
final class UpstreamRelay: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let downstream: NIOLoopBound<ChannelHandlerContext>
    private let version: HTTPVersion
    private let keepAlive: Bool
    /// Until the answer's head: the request, to send again on a new connection.
    private var request: OutboundRequest?
    private var key: UpstreamPool.Key?
    private let pool: UpstreamPool
    private var sentHead = false
    private(set) var finished = false
    /// Riding a kept connection: closed before any answer, the request (a read) is sent again
    /// on a new one, once.
    private var reused = false
    private var upstreamKeepAlive = false
    /// The connection carrying the request now.
    private var upstream: Channel?

    private init(request: OutboundRequest, downstream: ChannelHandlerContext, version: HTTPVersion, keepAlive: Bool, pool: UpstreamPool) {
        self.request = request
        self.key = UpstreamPool.key(for: request)
        self.pool = pool
        self.downstream = NIOLoopBound(downstream, eventLoop: downstream.eventLoop)
        self.version = version
        self.keepAlive = keepAlive
    }

    /// On `downstream`'s event loop.
    static func start(_ request: OutboundRequest, downstream: ChannelHandlerContext, version: HTTPVersion, keepAlive: Bool,
                      pool: UpstreamPool = .shared) {
        let relay = UpstreamRelay(request: request, downstream: downstream, version: version, keepAlive: keepAlive, pool: pool)
        let bound = NIOLoopBound(relay, eventLoop: downstream.eventLoop)
        // An agent that hangs up (a watch it stopped) ends the upstream request too. A relay
        // that finished has let go of its connection (it may be serving another request).
        downstream.channel.closeFuture.whenComplete { _ in
            let relay = bound.value
            guard !relay.finished else { return }
            relay.finished = true
            relay.upstream?.close(promise: nil)
            relay.upstream = nil
        }
        if let key = relay.key, request.retrySafe, let channel = pool.take(key, on: downstream.eventLoop) {
            relay.reused = true
            relay.send(on: channel)
        } else {
            relay.open()
        }
    }

    /// A new connection for the request.
    private func open() {
        guard let request else { return }
        let bound = NIOLoopBound(self, eventLoop: downstream.value.eventLoop)
        UpstreamConnector.connect(scheme: request.scheme, host: request.host, port: request.port, on: downstream.value.eventLoop,
                                  trust: request.trust, serverName: request.serverName) { _ in [] }
            .whenComplete { result in
                let relay = bound.value
                switch result {
                case .success(let channel):
                    relay.send(on: channel)
                case .failure(let error):
                    relay.failBeforeHead(relay.downstream.value, "Airlock: cannot reach \(request.scheme)://\(request.host):\(request.port): \(error)")
                }
            }
    }

    private func send(on channel: Channel) {
        guard !finished, let request else {
            // The agent went away meanwhile.
            channel.close(promise: nil)
            return
        }
        upstream = channel
        do {
            try channel.pipeline.syncOperations.addHandler(self)
        } catch {
            channel.close(promise: nil)
            failBeforeHead(downstream.value, "Airlock: the upstream connection to \(request.host) failed: \(error)")
            return
        }
        channel.write(HTTPClientRequestPart.head(UpstreamConnector.head(for: request)), promise: nil)
        if !request.body.isEmpty {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: request.body))), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard context.channel === upstream, !finished else { return }
        let downstream = self.downstream.value
        switch unwrapInboundIn(data) {
        case .head(let head):
            sentHead = true
            request = nil
            // An informational answer (1xx) is not followed here as HTTP frames it: such a
            // connection is not kept.
            upstreamKeepAlive = head.isKeepAlive && head.status.code >= 200
            downstream.write(NIOAny(HTTPServerResponsePart.head(UpstreamConnector.relayedHead(head, version: version, keepAlive: keepAlive))),
                             promise: nil)
        case .body(let buffer):
            UpstreamConnector.relay(buffer, to: downstream, from: context.channel)
        case .end:
            finished = true
            upstream = nil
            let done = downstream.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
            if !keepAlive {
                let channel = downstream.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
            guard let key, upstreamKeepAlive, context.channel.isActive else {
                context.close(promise: nil)
                return
            }
            // The relay leaves; the guard holds the connection until the agent has taken the
            // last byte (by then every back-pressure callback above has run), then it is kept.
            let channel = context.channel
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            do {
                try channel.pipeline.syncOperations.addHandler(IdleGuard(), name: IdleGuard.name)
            } catch {
                channel.close(promise: nil)
                return
            }
            let pool = self.pool
            done.whenComplete { result in
                if case .success = result, channel.isActive { pool.put(channel, key: key) } else { channel.close(promise: nil) }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard context.channel === upstream, !finished else { return }
        upstream = nil
        if reused && !sentHead {
            // A kept connection the server had closed meanwhile: the read again, on a new one.
            reused = false
            open()
            return
        }
        finished = true
        // The upstream went away mid-response: the agent must not mistake a cut body for a whole one.
        if sentHead { downstream.value.close(promise: nil) } else { failBeforeHead(downstream.value, "Airlock: the upstream closed the connection without answering") }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func failBeforeHead(_ downstream: ChannelHandlerContext, _ message: String) {
        guard !sentHead else { return }
        sentHead = true
        finished = true
        request = nil
        let rendered = AWSErrorResponse(status: 502, code: .upstreamUnavailable, message: message).render(for: nil, requestID: RandomID.make(16))
        var headers = HTTPHeaders(rendered.headers)
        headers.add(name: "Content-Length", value: String(rendered.body.count))
        headers.add(name: "Connection", value: "close")
        downstream.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: version, status: .badGateway, headers: headers))), promise: nil)
        downstream.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(downstream.channel.allocator.buffer(bytes: rendered.body)))), promise: nil)
        let channel = downstream.channel
        downstream.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
