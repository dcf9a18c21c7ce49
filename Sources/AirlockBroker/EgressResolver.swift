import AirlockCore
import AirlockPolicy
import Glibc
import Synchronization

/// Resolves names for the egress proxy, outside the sandbox (the sandbox has no DNS at all).
/// `AIRLOCK_EGRESS_RESOLVE` (`host=addr[,addr];host2=addr`, like curl's --resolve) pins names
/// to addresses: for tests and for names the host cannot resolve. `resolve` blocks: call it
/// off the event loop; `resolvedWithoutBlocking` does not.
public struct EgressResolver: Sendable {
    let pinned: [String: [IPAddress]]
    /// Names resolved in the last 30 s (shared by copies of this resolver): a second
    /// connection to a host needs no lookup and no hop off the event loop. The proxy checks
    /// the addresses against the policy on every connection, cached or not; a name keeps its
    /// first answer for the 30 s (a DNS rebinding within them gets nothing new).
    let recent = RecentAnswers()

    final class RecentAnswers: Sendable {
        static let seconds = 30.0
        static let limit = 1024
        let answers = Mutex<[String: (addresses: [IPAddress], until: Double)]>([:])

        func lookup(_ host: String, now: Double = Clock.monotonicSeconds()) -> [IPAddress]? {
            answers.withLock { table in
                guard let entry = table[host], entry.until > now else { return nil }
                return entry.addresses
            }
        }

        func store(_ host: String, _ addresses: [IPAddress], now: Double = Clock.monotonicSeconds()) {
            answers.withLock { table in
                if table.count >= Self.limit { table = table.filter { $0.value.until > now } }
                if table.count >= Self.limit { table.removeAll() }
                table[host] = (addresses, now + Self.seconds)
            }
        }
    }

    public init(environment: [String: String]) {
        var pinned: [String: [IPAddress]] = [:]
        for entry in (environment["AIRLOCK_EGRESS_RESOLVE"] ?? "").split(separator: ";") {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let addresses = parts[1].split(separator: ",").compactMap { IPAddress(String($0)) }
            if !addresses.isEmpty { pinned[parts[0].lowercased()] = addresses }
        }
        self.pinned = pinned
    }

    /// The address `AIRLOCK_EGRESS_RESOLVE` pins `host` to, if it does.
    public func pinnedAddress(_ host: String) -> IPAddress? { pinned[host.lowercased()]?.first }

    /// What `resolve` would answer, when it is known without a lookup (an address, a pinned
    /// name, localhost, a name resolved in the last 30 s); nil otherwise.
    public func resolvedWithoutBlocking(_ host: String) -> [IPAddress]? {
        if let address = IPAddress(host) { return [address] }
        if let addresses = pinned[host] { return addresses }
        if host == "localhost" { return [.v4(0x7F00_0001)] }
        return recent.lookup(host)
    }

    public func resolve(_ host: String) -> [IPAddress] {
        if let known = resolvedWithoutBlocking(host) { return known }
        let addresses = lookUp(host)
        if !addresses.isEmpty { recent.store(host, addresses) }
        return addresses
    }

    func lookUp(_ host: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0 else { return [] }
        defer { freeaddrinfo(result) }
        var addresses: [IPAddress] = []
        var cursor = result
        while let info = cursor {
            if let sockaddr = info.pointee.ai_addr {
                if info.pointee.ai_family == AF_INET {
                    let value = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                    addresses.append(.v4(value))
                } else if info.pointee.ai_family == AF_INET6 {
                    let bytes = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                    }
                    addresses.append(.v6(bytes))
                }
            }
            cursor = info.pointee.ai_next
        }
        var seen = Set<IPAddress>()
        return addresses.filter { seen.insert($0).inserted }
    }
}
