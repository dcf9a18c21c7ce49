import AirlockCore
import NIOCore

/// One side of a CONNECT tunnel: what it reads, its partner writes. A side stops reading
/// while its partner cannot write (back-pressure: memory stays bounded whatever the size), and
/// an end-of-input on one side half-closes the other (a client that shuts down its sending
/// side still gets the whole response).
final class TunnelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: TunnelHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private let record: ConnectionRecord
    private let isAgentSide: Bool
    private var inputClosed = false

    private init(record: ConnectionRecord, isAgentSide: Bool) {
        self.record = record
        self.isAgentSide = isAgentSide
    }

    static func pair(record: ConnectionRecord) -> (agent: TunnelHandler, upstream: TunnelHandler) {
        let agent = TunnelHandler(record: record, isAgentSide: true)
        let upstream = TunnelHandler(record: record, isAgentSide: false)
        agent.partner = upstream
        upstream.partner = agent
        return (agent, upstream)
    }

    /// Idle and total time limits.
    static func arm(downstream: Channel, upstream: Channel, limits: EgressProxy.Limits, record: ConnectionRecord) {
        let eventLoop = downstream.eventLoop
        let total = eventLoop.scheduleTask(in: .seconds(limits.totalTimeout)) {
            downstream.close(promise: nil)
            upstream.close(promise: nil)
        }
        let idle = IdleTimer(limit: limits.idleTimeout, downstream: downstream, upstream: upstream, record: record)
        idle.start()
        downstream.closeFuture.and(upstream.closeFuture).whenComplete { _ in
            total.cancel()
            idle.stop()
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if isAgentSide { record.up += buffer.readableBytes } else { record.down += buffer.readableBytes }
        record.lastActivity = Clock.monotonicSeconds()
        partner?.partnerWrite(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerClose()
        record.sideClosed()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            partner?.partnerHalfClose()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if partner?.isWritable ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }

    // MARK: Called by the partner

    private func partnerWrite(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerHalfClose() {
        guard let context else { return }
        context.close(mode: .output, promise: nil)
        if inputClosed { context.close(promise: nil) }
    }

    private func partnerClose() {
        context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }
}

/// Closes a tunnel nobody used for `limit` seconds.
final class IdleTimer: @unchecked Sendable {
    let limit: Int64
    let downstream: Channel
    let upstream: Channel
    let record: ConnectionRecord
    private var task: RepeatedTask?

    init(limit: Int64, downstream: Channel, upstream: Channel, record: ConnectionRecord) {
        self.limit = limit
        self.downstream = downstream
        self.upstream = upstream
        self.record = record
    }

    func start() {
        let check = TimeAmount.seconds(max(1, min(limit, 5)))
        task = downstream.eventLoop.scheduleRepeatedTask(initialDelay: check, delay: check) { [self] _ in
            if Clock.monotonicSeconds() - record.lastActivity > Double(limit) {
                record.proxy.log.write("egress \(record.label): idle for \(limit) s; closed")
                downstream.close(promise: nil)
                upstream.close(promise: nil)
            }
        }
    }

    func stop() { task?.cancel() }
}
