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
            let host = interceptedHost
            // A plain read with everything at hand is decided here, without the hop to the
            // pool and back; anything else is decided there (AWSGateway.quickRead).
            if let outbound = gateway.quickRead(request, host: host) {
                release()
                UpstreamRelay.start(outbound, downstream: context, version: head.version, keepAlive: keepAlive)
                return
            }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
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
