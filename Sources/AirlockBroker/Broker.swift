import AirlockCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The broker inside `airlock run` (docs/design.md §1): serves the listening sockets the sandbox's
/// init created in the sandbox's network namespace. One event-loop thread does the I/O;
/// blocking work (catalog files, the store, credential_process) runs on a small pool.
public final class Broker: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool

    public init() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
    }

    /// Serves the AWS endpoint and the agent API on sockets that already listen. Returns at
    /// once; `failed` hears of a socket that cannot be served.
    public func serve(aws awsFD: Int32, gateway: AWSGateway, agentAPI apiFD: Int32, api: AgentAPI,
                      failed: @escaping @Sendable (AirlockError) -> Void) {
        let pool = self.pool
        let budget = BodyBudget()
        // A session's SDKs keep a few connections each.
        let aws = limitedBootstrap(connections: SessionCounter()) { sync in
            try sync.configureHTTPServerPipeline(withErrorHandling: true)
            try sync.addHandler(AWSEndpointHandler(gateway: gateway, pool: pool, budget: budget))
        }
        .withBoundSocket(awsFD)
        let agent = ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AgentAPIHandler(api: api, pool: pool))
                }
            }
            .withBoundSocket(apiFD)
        for future in [aws, agent] {
            future.whenFailure { error in failed(AirlockError("the broker cannot serve the sandbox's sockets: \(error)")) }
        }
    }

    /// Serves the Kubernetes endpoint (TLS with the session CA's certificate for 127.0.0.1)
    /// on a listening socket. Returns at once.
    public func serve(kubernetes fd: Int32, gateway: KubernetesGateway, tls: NIOSSLContext,
                      failed: @escaping @Sendable (AirlockError) -> Void) {
        let pool = self.pool
        limitedBootstrap(connections: SessionCounter()) { sync in
            try sync.addHandler(NIOSSLServerHandler(context: tls))
            try sync.configureHTTPServerPipeline(withErrorHandling: true)
            try sync.addHandler(KubernetesEndpointHandler(gateway: gateway, pool: pool))
        }
        .withBoundSocket(fd)
        .whenFailure { error in failed(AirlockError("the broker cannot serve the Kubernetes endpoint: \(error)")) }
    }

    /// An endpoint's listener: TCP_NODELAY, a deep accept queue, and at most
    /// `awsConnectionLimit` connections at once (thousands are an attack on the broker's
    /// descriptors, refused by closing at once).
    func limitedBootstrap(connections: SessionCounter,
                          handlers: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Self.backlog)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                guard connections.enter(limit: Self.awsConnectionLimit) else { return channel.close() }
                channel.closeFuture.whenComplete { _ in connections.leave() }
                return channel.eventLoop.makeCompletedFuture { try handlers(channel.pipeline.syncOperations) }
            }
    }

    /// Serves the egress proxy on a listening socket. Returns at once.
    public func serve(egress fd: Int32, proxy: EgressProxy, failed: @escaping @Sendable (AirlockError) -> Void) {
        let pool = self.pool
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Self.backlog)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.recvAllocator, value: EgressProxy.Limits.readBuffers)
            .childChannelOption(.writeBufferWaterMark, value: EgressProxy.Limits.waterMark)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)),
                                        name: "airlock-http-decoder")
                    try sync.addHandler(HTTPResponseEncoder(), name: "airlock-http-encoder")
                    try sync.addHandler(EgressProxyHandler(proxy: proxy, pool: pool))
                }
            }
            .withBoundSocket(fd)
            .whenFailure { error in failed(AirlockError("the broker cannot serve the egress proxy: \(error)")) }
    }

    /// Agents open connections in bursts (a package manager fetching in parallel); a short
    /// accept queue would turn a burst into SYN retries of a second or more.
    static let backlog: Int32 = 1024
    /// AWS endpoint connections one session may hold open (docs/gate.md).
    static let awsConnectionLimit = 512

    public func shutdown() {
        try? group.syncShutdownGracefully()
        try? pool.syncShutdownGracefully()
    }
}
