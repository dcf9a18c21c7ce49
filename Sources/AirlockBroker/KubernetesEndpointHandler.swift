import AirlockCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// The broker's Kubernetes endpoint (TLS on the sandbox's loopback, or a CONNECT to an API
/// server's address): collects a request (bounded), asks the gateway off the event loop,
/// then answers or streams the cluster's response (a watch stays open) with back-pressure.
final class KubernetesEndpointHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The API server refuses bodies above 3 MiB; a little more is read so that it says so.
    static let maximumBody = 8 << 20

    let gateway: KubernetesGateway
    let pool: NIOThreadPool
    let boundContext: Int?
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var refusing = false

    init(gateway: KubernetesGateway, pool: NIOThreadPool, boundContext: Int? = nil) {
        self.gateway = gateway
        self.pool = pool
        self.boundContext = boundContext
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            refusing = false
            self.head = head
            body.clear()
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > Self.maximumBody {
                refuse(context, head: head, "Airlock: request bodies above \(Self.maximumBody >> 20) MiB are refused (this one is \(length) bytes)")
                return
            }
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            guard !refusing, let head else { return }
            if body.readableBytes + chunk.readableBytes > Self.maximumBody {
                refuse(context, head: head, "Airlock: request bodies above \(Self.maximumBody >> 20) MiB are refused")
                return
            }
            body.writeBuffer(&chunk)
        case .end:
            guard !refusing, let head else { return }
            self.head = nil
            let request = KubernetesGateway.Request(method: head.method.rawValue, target: head.uri,
                                                    headers: head.headers.map { (name: $0.name, value: $0.value) },
                                                    body: body.readBytes(length: body.readableBytes) ?? [])
            body.clear()
            let keepAlive = head.isKeepAlive
            let gateway = self.gateway
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let boundContext = self.boundContext
            pool.runIfActive(eventLoop: context.eventLoop) { gateway.handle(request, boundContext: boundContext) }.whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(.respond(let status, let headers, let body)):
                    handler.respond(context, version: head.version, status: status, headers: headers, body: body, keepAlive: keepAlive)
                case .success(.forward(let outbound)):
                    UpstreamRelay.start(outbound, downstream: context, version: head.version, keepAlive: keepAlive)
                case .failure(let error):
                    handler.respond(context, version: head.version, status: 500, headers: [], body: Array("Airlock broker error: \(error)\n".utf8),
                                    keepAlive: false)
                }
            }
        }
    }

    private func refuse(_ context: ChannelHandlerContext, head: HTTPRequestHead, _ message: String) {
        refusing = true
        gateway.log.write("kubernetes \(head.method.rawValue) \(head.uri.prefix(300)): refused: \(message)")
        guard case .respond(let status, let headers, let body) = KubernetesGateway.status(413, reason: "RequestEntityTooLarge", message: message) else { return }
        respond(context, version: head.version, status: status, headers: headers, body: body, keepAlive: false)
    }

    func respond(_ context: ChannelHandlerContext, version: HTTPVersion, status: Int, headers: [(String, String)], body: [UInt8], keepAlive: Bool) {
        var responseHeaders = HTTPHeaders(headers)
        responseHeaders.replaceOrAdd(name: "Content-Length", value: String(body.count))
        responseHeaders.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status),
                                                             headers: responseHeaders))), promise: nil)
        if !body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil) }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { _ in context.close(promise: nil) } }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        gateway.log.write("kubernetes endpoint connection error: \(error)")
        context.close(promise: nil)
    }
}
