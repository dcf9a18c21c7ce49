import AirlockCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// The broker inside `airlock run` (DESIGN §1): serves the listening sockets the sandbox's
/// init created in the sandbox's network namespace. One event-loop thread does the I/O;
/// blocking work (catalog files, the store, credential_process) runs on a small pool.
public final class Broker: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool
    private var channels: [Channel] = []

    public init() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
    }

    /// Serves the AWS endpoint on an already listening TCP socket.
    public func serveAWS(listener fd: Int32, gateway: AWSGateway) throws(AirlockError) {
        let pool = self.pool
        do {
            let channel = try ServerBootstrap(group: group)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(AWSEndpointHandler(gateway: gateway, pool: pool))
                    }
                }
                .withBoundSocket(fd).wait()
            channels.append(channel)
        } catch {
            throw AirlockError("the broker cannot serve the AWS endpoint: \(error)")
        }
    }

    /// Serves the agent API on an already listening unix socket.
    public func serveAgentAPI(listener fd: Int32, api: AgentAPI) throws(AirlockError) {
        let pool = self.pool
        do {
            let channel = try ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AgentAPIHandler(api: api, pool: pool))
                    }
                }
                .withBoundSocket(fd).wait()
            channels.append(channel)
        } catch {
            throw AirlockError("the broker cannot serve the agent API: \(error)")
        }
    }

    public func shutdown() {
        for channel in channels { channel.close(promise: nil) }
        try? group.syncShutdownGracefully()
        try? pool.syncShutdownGracefully()
    }
}
