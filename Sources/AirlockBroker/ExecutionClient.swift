import AirlockCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Sends one request and collects the whole response: what an approved proposal's execution
/// needs (the result is stored for the agent and shown to the human).
public enum ExecutionClient {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    static let maximumResponse = 64 << 20

    /// What became of one request: answered, or failed before a byte of it left (the
    /// connection or TLS handshake failed: safe to call "not sent"), or failed after (whether
    /// the upstream acted on it is not known). Executions record the difference as a value.
    public enum Exchange: Sendable {
        case answered(Response)
        case notSent(String)
        case uncertain(String)
    }

    /// Whether the request was written to a connection: set on the event loop, read after
    /// the future completes.
    final class Progress: Sendable {
        let written = Mutex(false)
    }

    /// Blocks until the response is complete, or the request fails (and says how).
    public static func exchange(_ request: OutboundRequest, timeoutSeconds: Int64 = 300, trust: NIOSSLContext? = nil) -> Exchange {
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: Response.self)
        let progress = Progress()
        UpstreamConnector.connect(scheme: request.scheme, host: request.host, port: request.port, on: eventLoop,
                                  trust: request.trust ?? trust, serverName: request.serverName) { _ in
            [Collector(promise: promise)]
        }.whenComplete { result in
            switch result {
            case .success(let channel):
                progress.written.withLock { $0 = true }
                channel.write(HTTPClientRequestPart.head(UpstreamConnector.head(for: request)), promise: nil)
                if !request.body.isEmpty {
                    channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: request.body))), promise: nil)
                }
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                eventLoop.scheduleTask(in: .seconds(timeoutSeconds)) {
                    promise.fail(AirlockError("no answer from \(request.host) within \(timeoutSeconds) s"))
                    channel.close(promise: nil)
                }
            case .failure(let error):
                promise.fail(error)
            }
        }
        do {
            return .answered(try promise.futureResult.wait())
        } catch {
            let why = (error as? AirlockError)?.message ?? "cannot reach \(request.scheme)://\(request.host):\(request.port): \(error)"
            return progress.written.withLock { $0 } ? .uncertain(why) : .notSent(why)
        }
    }

    /// Blocks until the response is complete (or the request fails): for requests whose
    /// failure needs no more than a message (previews, discovery, the gate client).
    public static func send(_ request: OutboundRequest, timeoutSeconds: Int64 = 300, trust: NIOSSLContext? = nil) throws(AirlockError) -> Response {
        switch exchange(request, timeoutSeconds: timeoutSeconds, trust: trust) {
        case .answered(let response): return response
        case .notSent(let why), .uncertain(let why): throw AirlockError(why)
        }
    }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<Response>
        var response = Response(status: 0, headers: [], body: [])
        var done = false

        init(promise: EventLoopPromise<Response>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                response.status = Int(head.status.code)
                response.headers = head.headers.map { (name: $0.name, value: $0.value) }
            case .body(var buffer):
                if response.body.count + buffer.readableBytes > maximumResponse {
                    finish(context, .failure(AirlockError("the response is larger than \(maximumResponse >> 20) MiB")))
                    return
                }
                response.body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                finish(context, .success(response))
            }
        }

        func finish(_ context: ChannelHandlerContext, _ result: Result<Response, Error>) {
            guard !done else { return }
            done = true
            promise.completeWith(result)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            finish(context, .failure(AirlockError("the connection closed before the response was complete")))
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            finish(context, .failure(error))
        }
    }
}
