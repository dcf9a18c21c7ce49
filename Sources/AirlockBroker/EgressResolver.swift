import AirlockCore
import AirlockPolicy
import Glibc

/// Resolves names for the egress proxy, outside the sandbox (the sandbox has no DNS at all).
/// `AIRLOCK_EGRESS_RESOLVE` (`host=addr[,addr];host2=addr`, like curl's --resolve) pins names
/// to addresses: for tests and for names the host cannot resolve. Blocking: call off the
/// event loop.
public struct EgressResolver: Sendable {
    let pinned: [String: [IPAddress]]

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

    public func resolve(_ host: String) -> [IPAddress] {
        if let address = IPAddress(host) { return [address] }
        if let addresses = pinned[host] { return addresses }
        if host == "localhost" { return [.v4(0x7F00_0001)] }
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
