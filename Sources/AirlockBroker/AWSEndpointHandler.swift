import AirlockCore
import AirlockPolicy
import NIOCore
import NIOHTTP1
import NIOPosix
import Glibc

/// The broker's AWS endpoint on the sandbox's loopback: collects a request (bounded),
/// asks the gateway off the event loop, then answers or streams the upstream's response
/// back with back-pressure.
final class AWSEndpointHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Bodies the gate may have to keep (a proposal pins them) are bounded. S3 uploads above
    /// it go multipart (the AWS CLI does this itself above 8 MiB).
    static let maximumBody = 64 << 20

    let gateway: AWSGateway
    let pool: NIOThreadPool
    let budget: BodyBudget
    /// Set when this connection is TLS to an AWS host name, terminated by the broker (the
    /// egress proxy's CONNECT): every request on it must name that host.
    let interceptedHost: String?
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var refusing = false
    /// Bytes of `budget` this connection holds (its request body, until answered).
    private var reserved = 0

    init(gateway: AWSGateway, pool: NIOThreadPool, budget: BodyBudget, interceptedHost: String? = nil) {
        self.gateway = gateway
        self.pool = pool
        self.budget = budget
        self.interceptedHost = interceptedHost
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func release() {
        if reserved > 0 { budget.release(reserved) }
        reserved = 0
    }

    /// Takes `count` more bytes of the session's body budget, or answers 503 SlowDown (SDKs
    /// back off and retry): many large uploads at once must not exhaust the broker's memory.
    private func reserve(_ count: Int, _ context: ChannelHandlerContext, head: HTTPRequestHead) -> Bool {
        guard budget.take(count) else {
            refuse(context, head: head, status: 503, awsCode: "SlowDown",
                   message: "Airlock: the broker holds \(BodyBudget.limit >> 20) MiB of request bodies already; retry shortly")
            return false
        }
        reserved += count
        return true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            refusing = false
            self.head = head
            body.clear()
            if let interceptedHost {
                // One reading: the host the client connected to is the host it names.
                let hosts = head.headers["host"]
                let named = hosts.first.map { $0.lowercased().hasSuffix(":443") ? String($0.lowercased().dropLast(4)) : $0.lowercased() }
                guard hosts.count == 1, named == interceptedHost else {
                    refuse(context, head: head, status: 400, code: .ambiguousRequest,
                           message: "Airlock: this connection was opened to \(interceptedHost), but the request names the host \(hosts.joined(separator: ", ")); nothing was forwarded or stored")
                    return
                }
            }
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > Self.maximumBody {
                refuse(context, head: head, status: 413, code: .requestTooLarge,
                       message: "Airlock: request bodies above \(Self.maximumBody >> 20) MiB are refused (this one is \(length) bytes); upload large objects in parts (aws s3 cp does above 8 MiB)")
                return
            }
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > 0, !reserve(length, context, head: head) {
                return
            }
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            guard !refusing, let head else { return }
            if body.readableBytes + chunk.readableBytes > Self.maximumBody {
                refuse(context, head: head, status: 413, code: .requestTooLarge,
                       message: "Airlock: request bodies above \(Self.maximumBody >> 20) MiB are refused")
                return
            }
            // Without a Content-Length the budget is taken as the bytes come.
            if body.readableBytes + chunk.readableBytes > reserved, !reserve(body.readableBytes + chunk.readableBytes - reserved, context, head: head) {
                return
            }
            body.writeBuffer(&chunk)
        case .end:
            guard !refusing, let head else { return }
            self.head = nil
            let request = AWSRequest(
                method: head.method.rawValue, target: head.uri,
                headers: head.headers.map { (name: $0.name, value: $0.value) },
                body: body.readBytes(length: body.readableBytes) ?? [])
            body.clear()
            let keepAlive = head.isKeepAlive
            let gateway = self.gateway
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let host = interceptedHost
            pool.runIfActive(eventLoop: context.eventLoop) { gateway.handle(request, host: host) }.whenComplete { result in
                let (handler, context) = bound.value
                handler.release()
                switch result {
                case .success(.respond(let status, let headers, let body)):
                    handler.respond(context, version: head.version, status: status, headers: headers, body: body,
                                    keepAlive: keepAlive, headOnly: head.method == .HEAD)
                case .success(.forward(let outbound)):
                    UpstreamRelay.start(outbound, downstream: context, version: head.version, keepAlive: keepAlive)
                case .failure(let error):
                    handler.respond(context, version: head.version, status: 500, headers: [], body: Array("Airlock broker error: \(error)\n".utf8),
                                    keepAlive: false, headOnly: false)
                }
            }
        }
    }

    private func refuse(_ context: ChannelHandlerContext, head: HTTPRequestHead, status: Int, code: AirlockError.Code, message: String) {
        refuse(context, head: head, status: status, awsCode: code.rawValue, message: message)
    }

    /// `awsCode`: AWS's own code (`SlowDown`) or an Airlock one.
    private func refuse(_ context: ChannelHandlerContext, head: HTTPRequestHead, status: Int, awsCode code: String, message: String) {
        refusing = true
        gateway.log.write("aws \(head.method.rawValue) \(head.uri): refused: \(message)")
        let rendered = AWSErrorResponse(status: status, code: code, message: message).render(for: nil, requestID: RandomID.make(16))
        respond(context, version: head.version, status: status, headers: rendered.headers, body: rendered.body,
                keepAlive: false, headOnly: false)
    }

    func respond(_ context: ChannelHandlerContext, version: HTTPVersion, status: Int, headers: [(String, String)],
                 body: [UInt8], keepAlive: Bool, headOnly: Bool) {
        var responseHeaders = HTTPHeaders(headers)
        responseHeaders.replaceOrAdd(name: "Content-Length", value: String(body.count))
        responseHeaders.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status),
                                                             headers: responseHeaders))), promise: nil)
        if !headOnly && !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        if !keepAlive { done.whenComplete { _ in bound.value.close(promise: nil) } }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        gateway.log.write("aws endpoint connection error: \(error)")
        context.close(promise: nil)
    }
}

/// Request bodies the AWS endpoint holds at once, across a session's connections.
public final class BodyBudget: @unchecked Sendable {
    static let limit = 512 << 20
    private var mutex = pthread_mutex_t()
    private var used = 0

    public init() { pthread_mutex_init(&mutex, nil) }

    func take(_ count: Int) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard used + count <= Self.limit else { return false }
        used += count
        return true
    }

    func release(_ count: Int) {
        pthread_mutex_lock(&mutex)
        used -= count
        pthread_mutex_unlock(&mutex)
    }
}

/// Streams one upstream response to the agent: the upstream connection is read only as fast
/// as the agent's connection drains (large S3 downloads stay in bounded memory).
final class UpstreamRelay: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let downstream: NIOLoopBound<ChannelHandlerContext>
    private let version: HTTPVersion
    private let keepAlive: Bool
    private var sentHead = false
    private var finished = false

    init(downstream: ChannelHandlerContext, version: HTTPVersion, keepAlive: Bool) {
        self.downstream = NIOLoopBound(downstream, eventLoop: downstream.eventLoop)
        self.version = version
        self.keepAlive = keepAlive
    }

    static func start(_ request: OutboundRequest, downstream: ChannelHandlerContext, version: HTTPVersion, keepAlive: Bool) {
        let relay = NIOLoopBound(UpstreamRelay(downstream: downstream, version: version, keepAlive: keepAlive),
                                 eventLoop: downstream.eventLoop)
        let boundDownstream = NIOLoopBound(downstream, eventLoop: downstream.eventLoop)
        UpstreamConnector.connect(scheme: request.scheme, host: request.host, port: request.port, on: downstream.eventLoop,
                                  trust: request.trust, serverName: request.serverName) { _ in
            [relay.value]
        }.whenComplete { result in
            switch result {
            case .success(let upstream):
                // An agent that hangs up (a watch it stopped) ends the upstream request too.
                boundDownstream.value.channel.closeFuture.whenComplete { _ in upstream.close(promise: nil) }
                upstream.write(HTTPClientRequestPart.head(UpstreamConnector.head(for: request)), promise: nil)
                if !request.body.isEmpty {
                    upstream.write(HTTPClientRequestPart.body(.byteBuffer(upstream.allocator.buffer(bytes: request.body))), promise: nil)
                }
                upstream.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            case .failure(let error):
                relay.value.failBeforeHead(boundDownstream.value, "Airlock: cannot reach \(request.scheme)://\(request.host):\(request.port): \(error)")
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let downstream = self.downstream.value
        switch unwrapInboundIn(data) {
        case .head(let head):
            var headers = HTTPHeaders()
            for header in head.headers where !UpstreamConnector.hopByHop.contains(header.name.lowercased()) {
                headers.add(name: header.name, value: header.value)
            }
            headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
            sentHead = true
            downstream.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: version, status: head.status, headers: headers))),
                             promise: nil)
        case .body(let buffer):
            let write = downstream.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))))
            if !downstream.channel.isWritable {
                // Back-pressure: stop reading upstream until the agent has taken this chunk.
                context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
                let upstream = context.channel
                write.whenComplete { _ in
                    upstream.setOption(.autoRead, value: true).whenComplete { _ in }
                    upstream.read()
                }
            }
        case .end:
            finished = true
            let done = downstream.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
            if !keepAlive {
                let channel = downstream.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard !finished else { return }
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
