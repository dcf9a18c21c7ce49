import AirlockCore
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization
import Glibc

/// Kept-alive upstream connections for forwarded requests, per endpoint and per credential
/// identity (docs/design.md §4.5). A connection is only ever handed to a request with the same
/// key: a Kubernetes client certificate belongs to the TLS session, so a connection opened as
/// one user and reused as another would act as the first. Connections are taken and returned
/// on their own event loop (the broker's one); the lock only guards the table.
public final class UpstreamPool: Sendable {
    public struct Key: Hashable, Sendable {
        var scheme: String
        var host: String
        var port: Int
        var serverName: String?
        /// The TLS context (trust roots and any client certificate): a connection made with one
        /// is never reused under another, whatever the identity says.
        var trust: ObjectIdentifier?
        var identity: String
    }

    struct Entry {
        var channel: Channel
        var since: Double
    }

    let idle = Mutex<[Key: [Entry]]>([:])
    let maximumPerKey: Int
    let maximumTotal: Int
    let idleSeconds: Double
    /// false: every forwarded request gets a connection of its own (AIRLOCK_UPSTREAM_POOL=off,
    /// for an upstream that mishandles keep-alive, and for `scripts/bench kubernetes` to
    /// measure both ways in one run).
    let enabled: Bool

    /// Well below the idle timeouts of AWS (about 60 s), kube-apiserver (90 s) and GitHub, so
    /// a kept connection is rarely one the server is closing; a read that meets one anyway is
    /// sent again on a new connection.
    public init(maximumPerKey: Int = 8, maximumTotal: Int = 64, idleSeconds: Double = 20, enabled: Bool = true) {
        self.enabled = enabled
        self.maximumPerKey = maximumPerKey
        self.maximumTotal = maximumTotal
        self.idleSeconds = idleSeconds
    }

    /// The broker's pool (one per process, like its event loop).
    public static let shared = UpstreamPool(enabled: getenv("AIRLOCK_UPSTREAM_POOL").map { String(cString: $0) } != "off")

    /// The key `request` may be pooled under, or nil: no identity, or framing that leaves the
    /// end of the request to anything but an exact Content-Length (the next request on the
    /// connection would otherwise be read as part of this one's body, or the reverse).
    public static func key(for request: OutboundRequest) -> Key? {
        guard let identity = request.identity, !identity.isEmpty else { return nil }
        var lengths: [String] = []
        for header in request.headers {
            let name = header.name.lowercased()
            if name == "content-length" { lengths.append(header.value) }
            if name == "transfer-encoding" || name == "connection" || name == "upgrade" || name == "expect" { return nil }
        }
        if lengths.isEmpty {
            guard request.body.isEmpty else { return nil }
        } else {
            guard lengths.count == 1, lengths[0] == String(request.body.count) else { return nil }
        }
        return Key(scheme: request.scheme, host: request.host, port: request.port, serverName: request.serverName,
                   trust: request.trust.map(ObjectIdentifier.init), identity: identity)
    }

    /// An idle connection of `key` on `eventLoop` (the caller's), its idle guard removed; nil
    /// when there is none.
    func take(_ key: Key, on eventLoop: EventLoop) -> Channel? {
        eventLoop.preconditionInEventLoop()
        guard enabled else { return nil }
        let now = Clock.monotonicSeconds()
        var expired: [Channel] = []
        let found: Channel? = idle.withLock { table in
            guard var entries = table[key] else { return nil }
            var found: Channel?
            while let entry = entries.popLast() {
                if now - entry.since > idleSeconds || !entry.channel.isActive {
                    expired.append(entry.channel)
                } else if entry.channel.eventLoop === eventLoop {
                    found = entry.channel
                    break
                } else {
                    expired.append(entry.channel)
                }
            }
            table[key] = entries.isEmpty ? nil : entries
            return found
        }
        for channel in expired { channel.close(promise: nil) }
        guard let found else { return nil }
        // On the channel's loop a handler leaves its pipeline at once; the future is done.
        found.pipeline.syncOperations.removeHandler(name: IdleGuard.name, promise: nil)
        return found
    }

    /// Keeps `channel` (active, its response wholly read and relayed, an `IdleGuard` already
    /// in its pipeline) for the next request of `key`.
    func put(_ channel: Channel, key: Key) {
        channel.eventLoop.preconditionInEventLoop()
        guard enabled else {
            channel.close(promise: nil)
            return
        }
        do { try channel.syncOptions?.setOption(.autoRead, value: true) } catch {
            channel.close(promise: nil)
            return
        }
        channel.read()
        let now = Clock.monotonicSeconds()
        let evicted: [Channel] = idle.withLock { table in
            var evicted: [Channel] = []
            table[key, default: []].append(Entry(channel: channel, since: now))
            if table[key]!.count > maximumPerKey { evicted.append(table[key]!.removeFirst().channel) }
            var total = table.values.reduce(0) { $0 + $1.count }
            while total > maximumTotal {
                // The longest idle goes first.
                guard let oldest = table.min(by: { ($0.value.first?.since ?? .infinity) < ($1.value.first?.since ?? .infinity) })?.key
                else { break }
                evicted.append(table[oldest]!.removeFirst().channel)
                if table[oldest]!.isEmpty { table[oldest] = nil }
                total -= 1
            }
            return evicted
        }
        for old in evicted { old.close(promise: nil) }
        // Closed when it has sat idle too long, if nobody took it meanwhile.
        let seconds = idleSeconds
        channel.eventLoop.scheduleTask(in: .milliseconds(Int64(seconds * 1000) + 100)) { [self] in
            let stale: Bool = idle.withLock { table in
                guard let index = table[key]?.firstIndex(where: { $0.channel === channel }),
                      Clock.monotonicSeconds() - table[key]![index].since > seconds else { return false }
                table[key]!.remove(at: index)
                if table[key]!.isEmpty { table[key] = nil }
                return true
            }
            if stale { channel.close(promise: nil) }
        }
    }

    /// Idle connections kept now (for tests and the session log).
    public var idleCount: Int { idle.withLock { $0.values.reduce(0) { $0 + $1.count } } }
}

/// Sits in an idle connection's pipeline: anything the server sends while no request is out
/// (a 408, a stray byte) would be read as the next request's answer, so it closes the
/// connection instead; so does an error.
final class IdleGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    static let name = "airlock-upstream-idle"

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
