import AirlockCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// An HTTP request as the Kubernetes and GitHub gateways read it.
public struct BrokerHTTPRequest: Sendable {
    public var method: String
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, target: String, headers: [(name: String, value: String)], body: [UInt8]) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    func values(_ name: String) -> [String] { headers.filter { $0.name.lowercased() == name }.map(\.value) }
    var path: String { String(target.prefix { $0 != "?" }) }
    var query: String { target.contains("?") ? String(target.drop { $0 != "?" }.dropFirst()) : "" }
}

/// The broker's Kubernetes and GitHub endpoints (TLS on the sandbox's loopback, or a CONNECT
/// terminated by the egress proxy): collects a request (bounded), asks the gateway off the
/// event loop, then answers or streams the upstream's response (a watch stays open) with
/// back-pressure.
final class KubernetesEndpointHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The API server refuses bodies above 3 MiB; a little more is read so that it says so.
    static let maximumBody = 8 << 20

    let decide: @Sendable (BrokerHTTPRequest) -> GatewayReply
    /// A plain read decided on the event loop without blocking, or nil (then `decide`, on the pool).
    let quickRead: (@Sendable (BrokerHTTPRequest) -> OutboundRequest?)?
    let tooLarge: @Sendable (String) -> GatewayReply
    let log: BrokerLog
    let pool: NIOThreadPool
    let maximumBody: Int
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var refusing = false

    init(gateway: KubernetesGateway, pool: NIOThreadPool, boundContext: Int? = nil) {
        decide = { request in gateway.handle(request, boundContext: boundContext) }
        quickRead = { request in gateway.quickRead(request, boundContext: boundContext) }
        tooLarge = { message in KubernetesGateway.status(413, reason: "RequestEntityTooLarge", message: message) }
        log = gateway.log
        self.pool = pool
        maximumBody = Self.maximumBody
    }

    init(github: GitHubGateway, host: String, pool: NIOThreadPool) {
        decide = { request in github.handle(request, host: host) }
        quickRead = nil
        tooLarge = { message in GitHubGateway.refusal(413, message, api: true) }
        log = github.log
        self.pool = pool
        maximumBody = GitHubGateway.maximumBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            refusing = false
            self.head = head
            body.clear()
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > maximumBody {
                refuse(context, head: head, "Airlock: request bodies above \(maximumBody >> 20) MiB are refused (this one is \(length) bytes)")
                return
            }
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            guard !refusing, let head else { return }
            if body.readableBytes + chunk.readableBytes > maximumBody {
                refuse(context, head: head, "Airlock: request bodies above \(maximumBody >> 20) MiB are refused")
                return
            }
            body.writeBuffer(&chunk)
        case .end:
            guard !refusing, let head else { return }
            self.head = nil
            let request = BrokerHTTPRequest(method: head.method.rawValue, target: head.uri,
                                                    headers: head.headers.map { (name: $0.name, value: $0.value) },
                                                    body: body.readBytes(length: body.readableBytes) ?? [])
            body.clear()
            let keepAlive = head.isKeepAlive
            if let outbound = quickRead?(request) {
                UpstreamRelay.start(outbound, downstream: context, version: head.version, keepAlive: keepAlive)
                return
            }
            let decide = self.decide
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            pool.runIfActive(eventLoop: context.eventLoop) { decide(request) }.whenComplete { result in
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
        log.write("\(head.method.rawValue) \(head.uri.prefix(300)): refused: \(message)")
        guard case .respond(let status, let headers, let body) = tooLarge(message) else { return }
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
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        if !keepAlive { done.whenComplete { _ in bound.value.close(promise: nil) } }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        log.write("endpoint connection error: \(error)")
        context.close(promise: nil)
    }
}
