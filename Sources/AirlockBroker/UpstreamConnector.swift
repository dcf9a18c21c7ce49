import AirlockCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Opens HTTP/1.1 connections to AWS (TLS, system trust store) or a local endpoint, with
/// TCP_NODELAY (docs/design.md §4.4: without it Nagle and delayed ACKs cost ~40 ms a call).
enum UpstreamConnector {
    static let tlsContext: NIOSSLContext? = try? NIOSSLContext(configuration: .makeClientConfiguration())

    /// `trust`: a TLS context of its own (the team gate's CA) instead of the system's roots.
    static func connect(
        scheme: String, host: String, port: Int, on eventLoop: EventLoop, trust: NIOSSLContext? = nil, serverName: String? = nil,
        handlers: @escaping @Sendable (Channel) -> [ChannelHandler]
    ) -> EventLoopFuture<Channel> {
        ClientBootstrap(group: eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(15))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if scheme == "https" {
                        guard let context = trust ?? tlsContext else { throw AirlockError("TLS is not available") }
                        // No SNI for an address (NIOSSL refuses one); the certificate is then
                        // checked against the address.
                        let name = serverName ?? host
                        let tls = try NIOSSLClientHandler(context: context, serverHostname: Self.isAddress(name) ? nil : name)
                        try channel.pipeline.syncOperations.addHandler(tls)
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandlers(handlers(channel))
                }
            }
            .connect(host: host, port: port)
    }

    static func isAddress(_ host: String) -> Bool {
        host.contains(":") || (host.split(separator: ".").count == 4 && host.allSatisfy { $0 == "." || $0.isNumber })
    }

    static func head(for request: OutboundRequest) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        for header in request.headers { headers.add(name: header.name, value: header.value) }
        return HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: request.method), uri: request.target,
                               headers: headers)
    }

    /// The upstream's response head as the agent gets it: its connection headers dropped,
    /// `Connection` saying whether the agent's own connection stays open.
    static func relayedHead(_ head: HTTPResponseHead, version: HTTPVersion, keepAlive: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        for header in head.headers where !hopByHop.contains(header.name.lowercased()) {
            headers.add(name: header.name, value: header.value)
        }
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        return HTTPResponseHead(version: version, status: head.status, headers: headers)
    }

    /// Writes a chunk of the upstream's body to the agent with back-pressure: while the agent's
    /// connection is full, the upstream is not read (large bodies stay in bounded memory).
    /// On the two channels' shared event loop.
    static func relay(_ buffer: ByteBuffer, to downstream: ChannelHandlerContext, from upstream: Channel) {
        let write = downstream.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))))
        guard !downstream.channel.isWritable else { return }
        try? upstream.syncOptions?.setOption(.autoRead, value: false)
        write.whenComplete { _ in
            try? upstream.syncOptions?.setOption(.autoRead, value: true)
            upstream.read()
        }
    }

    /// Response headers that describe the upstream connection, not the response.
    static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
                                        "te", "trailer", "proxy-authenticate"]
}
