import AirlockCore
import AirlockPolicy
import AirlockStore
import Glibc
import NIOCore
import NIOPosix

/// The agent's side of the gate, on `/run/airlock/agent.sock` inside the sandbox: `status`
/// and `wait` for the session's own proposals. There is no approve verb (docs/design.md §2.3).
/// One JSON line in, one JSON line out.
public final class AgentAPI: @unchecked Sendable {
    let sessionID: String
    let store: any ProposalIntake
    let log: BrokerLog
    /// Proposes a command a shim could not run itself ({"op": "command", "tool", "argv",
    /// "cwd"}); nil when this session intercepts no tools.
    let commands: (@Sendable (JSON) -> JSON)?
    static let maximumWait = 24 * 3600.0
    /// Connections and waits one session may hold open at once (docs/gate.md): each is a
    /// thread of the broker, which must keep serving the agent's AWS calls.
    static let connectionLimit = 64
    static let waitLimit = 32
    let connections = SessionCounter()
    let waits = SessionCounter()
    /// Called with a proposal that reached a final state before the agent is told (with a
    /// team gate: copies an approved command's new state into the workspace); returns the
    /// proposal as the agent sees it.
    public var finished: (@Sendable (Proposal) -> Proposal)?

    public init(sessionID: String, store: any ProposalIntake, log: BrokerLog,
                commands: (@Sendable (JSON) -> JSON)? = nil) {
        self.sessionID = sessionID
        self.store = store
        self.log = log
        self.commands = commands
    }

    /// Blocking: answers one request line.
    func answer(_ line: String) -> JSON {
        guard let request = try? JSON.parse(line), let op = request["op"]?.string else {
            return Self.failure("expected one JSON line: {\"op\": \"wait\"|\"status\"|\"command\", …}")
        }
        if op == "command" {
            guard let commands else { return Self.failure("this session intercepts no commands") }
            return commands(request)
        }
        guard let id = request["id"]?.string, !id.isEmpty, id.count <= 64 else { return Self.failure("no proposal id") }
        do {
            // As it is now (interrupted executions recovered first): the session's own only.
            guard let proposal = try store.wait(id: id, timeout: 0), proposal.sessionID == sessionID else {
                return Self.failure("no proposal \(id) in this session")
            }
            switch op {
            case "status":
                return Self.success(proposal.state.isFinal ? finished?(proposal) ?? proposal : proposal)
            case "wait":
                guard waits.enter(limit: Self.waitLimit) else {
                    return Self.failure("\(Self.waitLimit) waits of this session are open already; wait for one to end (one `airlock wait` per proposal)")
                }
                defer { waits.leave() }
                let timeout = min(request["timeout"]?.int.map(Double.init) ?? Self.maximumWait, Self.maximumWait)
                // The store's wait: the gate's long poll with a team gate, a look every 200 ms locally.
                let current = proposal.state.isFinal ? proposal : try store.wait(id: id, timeout: timeout) ?? proposal
                return Self.success(current.state.isFinal ? finished?(current) ?? current : current)
            default:
                return Self.failure("unknown op \(op): the agent API knows status and wait")
            }
        } catch {
            log.write("agent api: \(error)")
            return Self.failure(error.message)
        }
    }

    static func failure(_ message: String) -> JSON {
        .object([("ok", .bool(false)), ("error", .string(message))])
    }

    static func success(_ proposal: Proposal) -> JSON {
        .object([("ok", .bool(true)), ("proposal", ProposalJSON.agentView(proposal))])
    }
}

/// A bounded count of things in flight, shared by a session's connections.
public final class SessionCounter: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var value = 0

    public init() { pthread_mutex_init(&mutex, nil) }

    public func enter(limit: Int) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard value < limit else { return false }
        value += 1
        return true
    }

    public func leave() {
        pthread_mutex_lock(&mutex)
        value -= 1
        pthread_mutex_unlock(&mutex)
    }
}

/// Proposals as JSON (docs/design.md §6: at least id, state, kind, summary, decision_reason,
/// created_at, digest, and once executed result).
public enum ProposalJSON {
    public static func agentView(_ proposal: Proposal) -> JSON {
        var fields: [(String, JSON)] = [
            ("id", .string(proposal.id)), ("state", .string(proposal.state.rawValue)), ("kind", .string(proposal.kind.rawValue)),
            ("type", .string((try? ProposalPayload(bytes: proposal.payload))?.type ?? "unknown")),
            ("summary", .string(proposal.summary)), ("decision", .string(proposal.decision.rawValue)),
            ("decision_reason", .string(proposal.rule)), ("created_at", .string(proposal.createdAt)),
            ("updated_at", .string(proposal.updatedAt)), ("digest", .string(proposal.digest)),
        ]
        if let note = proposal.decisionNote { fields.append(("note", .string(note))) }
        if let result = proposal.result { fields.append(("result", result.json)) }
        return .object(fields)
    }

    public static func humanView(_ proposal: Proposal) -> JSON {
        guard case .object(var fields) = agentView(proposal) else { return .null }
        fields.append(("session", .string(proposal.sessionID)))
        fields.append(("upstream", .string(proposal.upstream)))
        if let decidedBy = proposal.decidedBy { fields.append(("decided_by", .string(decidedBy))) }
        return .object(fields)
    }
}

/// Serves the agent API on a listening unix socket (made inside the sandbox by its init).
final class AgentAPIHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let api: AgentAPI
    let pool: NIOThreadPool
    var pending = ByteBuffer()
    var answered = false
    var counted = false

    init(api: AgentAPI, pool: NIOThreadPool) {
        self.api = api
        self.pool = pool
    }

    func channelActive(context: ChannelHandlerContext) {
        counted = api.connections.enter(limit: AgentAPI.connectionLimit)
        if !counted {
            reply(context, AgentAPI.failure("\(AgentAPI.connectionLimit) connections to the agent API are open already; try again when one has ended"))
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            counted = false
            api.connections.leave()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        guard !answered else { return }
        pending.writeBuffer(&chunk)
        guard pending.readableBytes <= 1 << 20 else {
            reply(context, AgentAPI.failure("request too long"))
            return
        }
        guard let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return }
        let line = String(decoding: pending.readableBytesView[..<newline], as: UTF8.self)
        answered = true
        let api = self.api
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        // A thread of its own: `wait` blocks until a human decides and `command` while a plan
        // is made; neither may hold the pool the AWS endpoint needs.
        let promise = context.eventLoop.makePromise(of: JSON.self)
        DetachedThread.run { promise.succeed(api.answer(line)) }
        promise.futureResult.whenSuccess { json in
            let (handler, context) = bound.value
            handler.reply(context, json)
        }
    }

    func reply(_ context: ChannelHandlerContext, _ json: JSON) {
        answered = true
        let buffer = context.channel.allocator.buffer(string: json.serialized() + "\n")
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in bound.value.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// The client side, used by `airlock wait`/`status` inside the sandbox (plain blocking I/O).
public enum AgentAPIClient {
    public static func call(socketPath: String, request: JSON) throws(AirlockError) -> JSON {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AirlockError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw AirlockError("socket path too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            throw AirlockError("cannot reach the Airlock broker at \(socketPath): \(String(cString: strerror(errno)))",
                               hint: "`airlock wait` works inside `airlock run`, while its session is running")
        }
        let line = Array((request.serialized() + "\n").utf8)
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        do {
            return try JSON.parse(bytes: Array(response.prefix { $0 != 10 }))
        } catch {
            throw AirlockError("the broker's answer is not JSON: \(error)")
        }
    }
}
