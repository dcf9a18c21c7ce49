import AirlockCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// HTTP/1.1 connections to one endpoint (the team gate), kept open between requests and
/// reused, one request at a time on each (docs/gate.md, "Team gate"). An agent host's broker
/// proposes and waits over a few long-lived TLS connections instead of one per call.
/// Hand-written over NIO rather than AsyncHTTPClient: the client is one endpoint, one request
/// at a time per connection, no redirects or HTTP/2, and AsyncHTTPClient would add
/// swift-nio-http2, nio-extras and nio-transport-services to the `airlock` binary.
public final class ConnectionPool: Sendable {
    let scheme: String
    let host: String
    let port: Int
    let trust: NIOSSLContext?
    let serverName: String?
    /// Idle connections and when each was last used.
    let idle = Mutex<[(channel: Channel, since: Double)]>([])
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    /// Idle connections kept at most, and for at most this long (well below a server's idle
    /// timeout, so a kept connection is rarely one the server is closing).
    static let maximumIdle = 4
    static let idleSeconds = 8.0

    public init(scheme: String, host: String, port: Int, trust: NIOSSLContext?, serverName: String? = nil) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.trust = trust
        self.serverName = serverName
    }

    /// One request on an idle connection (or a new one). A reused connection found closed
    /// before anything was written is replaced by a new one for any request; one that closed
    /// after the request was written but before any answer (the server closed it meanwhile)
    /// is retried only for a GET or HEAD: a POST may have been taken, and sending it again
    /// could propose twice. Anything else is reported as it went.
    public func exchange(_ request: OutboundRequest, timeoutSeconds: Int64 = 120) -> ExecutionClient.Exchange {
        if let channel = takeIdle() {
            let outcome = send(request, on: channel, timeoutSeconds: timeoutSeconds)
            switch outcome {
            case .notSent: break
            case .closedUnanswered where request.method == "GET" || request.method == "HEAD": break
            default: return outcome.exchange
            }
        }
        let channel: Channel
        do {
            channel = try UpstreamConnector.connect(scheme: scheme, host: host, port: port, on: Self.group.next(), trust: trust,
                                                    serverName: serverName) { _ in [] }.wait()
        } catch {
            return .notSent("cannot reach \(scheme)://\(host):\(port): \(error)")
        }
        return send(request, on: channel, timeoutSeconds: timeoutSeconds).exchange
    }

    enum Outcome {
        case answered(ExecutionClient.Response)
        case notSent(String)
        case uncertain(String)
        /// The connection closed before any byte of an answer.
        case closedUnanswered(String)

        var exchange: ExecutionClient.Exchange {
            switch self {
            case .answered(let response): return .answered(response)
            case .notSent(let why): return .notSent(why)
            case .uncertain(let why), .closedUnanswered(let why): return .uncertain(why)
            }
        }
    }

    func send(_ request: OutboundRequest, on channel: Channel, timeoutSeconds: Int64) -> Outcome {
        let promise = channel.eventLoop.makePromise(of: ExecutionClient.Response.self)
        let collector = PooledCollector.Box()
        do {
            try channel.eventLoop.submit {
                guard channel.isActive else { throw AirlockError("the connection was closed") }
                try channel.pipeline.syncOperations.addHandler(PooledCollector(promise: promise, box: collector))
                channel.write(HTTPClientRequestPart.head(UpstreamConnector.head(for: request)), promise: nil)
                if !request.body.isEmpty {
                    channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: request.body))), promise: nil)
                }
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }.wait()
        } catch {
            // Found closed before a byte of the request was written. The promise is failed
            // here: nobody else will (NIO traps on a promise dropped unfulfilled).
            promise.fail(error)
            channel.close(promise: nil)
            return .notSent("the kept connection to \(host) was closed")
        }
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(timeoutSeconds)) {
            promise.fail(AirlockError("no answer from \(self.host) within \(timeoutSeconds) s"))
            channel.close(promise: nil)
        }
        do {
            let response = try promise.futureResult.wait()
            timeout.cancel()
            if collector.keepAlive.withLock({ $0 }) && channel.isActive { putIdle(channel) } else { channel.close(promise: nil) }
            return .answered(response)
        } catch {
            timeout.cancel()
            channel.close(promise: nil)
            let why = (error as? AirlockError)?.message ?? "\(error)"
            return collector.answered.withLock({ $0 }) ? .uncertain(why) : .closedUnanswered(why)
        }
    }

    func takeIdle() -> Channel? {
        let now = Clock.monotonicSeconds()
        let (fresh, stale): (Channel?, [Channel]) = idle.withLock { list in
            let stale = list.filter { now - $0.since > Self.idleSeconds || !$0.channel.isActive }.map(\.channel)
            list.removeAll { now - $0.since > Self.idleSeconds || !$0.channel.isActive }
            return (list.popLast()?.channel, stale)
        }
        for channel in stale { channel.close(promise: nil) }
        return fresh
    }

    func putIdle(_ channel: Channel) {
        let extra: Channel? = idle.withLock { list in
            list.append((channel, Clock.monotonicSeconds()))
            return list.count > Self.maximumIdle ? list.removeFirst().channel : nil
        }
        extra?.close(promise: nil)
    }
}

/// Collects one response on a kept connection, then leaves the pipeline for the next request.
final class PooledCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    /// What the caller reads after the response: whether any of it came, whether the
    /// connection may be kept.
    final class Box: Sendable {
        let answered = Mutex(false)
        let keepAlive = Mutex(true)
    }

    let promise: EventLoopPromise<ExecutionClient.Response>
    let box: Box
    var response = ExecutionClient.Response(status: 0, headers: [], body: [])
    var done = false

    init(promise: EventLoopPromise<ExecutionClient.Response>, box: Box) {
        self.promise = promise
        self.box = box
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            box.answered.withLock { $0 = true }
            box.keepAlive.withLock { $0 = head.isKeepAlive }
            response.status = Int(head.status.code)
            response.headers = head.headers.map { (name: $0.name, value: $0.value) }
        case .body(var buffer):
            if response.body.count + buffer.readableBytes > ExecutionClient.maximumResponse {
                box.keepAlive.withLock { $0 = false }
                fail(context, AirlockError("the response is larger than \(ExecutionClient.maximumResponse >> 20) MiB"))
                return
            }
            response.body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard !done else { return }
            done = true
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            promise.succeed(response)
        }
    }

    func fail(_ context: ChannelHandlerContext, _ error: Error) {
        guard !done else { return }
        done = true
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context, AirlockError("the connection closed before the response was complete"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(context, error)
    }
}
