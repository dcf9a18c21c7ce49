/// IPv4 and IPv6 addresses and ranges, for deciding where the egress proxy may connect.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6([UInt8])  // 16 bytes

    /// Parses dotted-quad IPv4 or IPv6 text (with `::`, and an embedded IPv4 tail). No zones.
    public init?(_ text: String) {
        if let v4 = Self.parseV4(Substring(text)) {
            self = .v4(v4)
        } else if let v6 = Self.parseV6(text) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    static func parseV4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let octet = UInt32(part), octet <= 255,
                  part == "0" || part.first != "0"
            else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func parseV6(_ raw: String) -> [UInt8]? {
        var text = Substring(raw)
        if text.hasPrefix("[") && text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        guard text.contains(":"), !text.contains("%") else { return nil }
        var tail: [UInt8] = []
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains("."),
           let v4 = parseV4(text[text.index(after: lastColon)...]) {
            tail = [UInt8(v4 >> 24), UInt8(v4 >> 16 & 0xFF), UInt8(v4 >> 8 & 0xFF), UInt8(v4 & 0xFF)]
            text = text[...lastColon]
            if text.hasSuffix(":") && !text.hasSuffix("::") { text = text.dropLast() }
        }
        let halves = text.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !group.isEmpty, group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                out.append(value)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        let rest = halves.count == 2 ? groups(halves[1]) : []
        guard let rest else { return nil }
        let needed = 8 - tail.count / 2
        var all: [UInt16]
        if halves.count == 2 {
            guard head.count + rest.count < needed else { return nil }
            all = head + Array(repeating: 0, count: needed - head.count - rest.count) + rest
        } else {
            guard head.count == needed else { return nil }
            all = head
        }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } + tail
    }

    public var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
        case .v6(let bytes):
            return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        }
    }

    /// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is.
    /// This address alone, as a CIDR range.
    public var singleRange: String {
        if case .v4 = self { return "\(self)/32" }
        return "\(self)/128"
    }

    public var unmapped: IPAddress {
        if case .v6(let bytes) = self, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return .v4(UInt32(bytes[12]) << 24 | UInt32(bytes[13]) << 16 | UInt32(bytes[14]) << 8 | UInt32(bytes[15]))
        }
        return self
    }

    /// Why this address is not on the public internet, or nil when it is.
    public var specialPurpose: String? {
        switch unmapped {
        case .v4(let a):
            func within(_ base: UInt32, _ bits: UInt32) -> Bool { bits == 0 || a >> (32 - bits) == base >> (32 - bits) }
            if within(0x7F00_0000, 8) { return "loopback" }
            if within(0x0A00_0000, 8) || within(0xAC10_0000, 12) || within(0xC0A8_0000, 16) { return "private" }
            if within(0xA9FE_0000, 16) { return "link-local (cloud metadata lives here)" }
            if within(0x6440_0000, 10) { return "shared address space (carrier-grade NAT)" }
            if within(0x0000_0000, 8) { return "\"this network\"" }
            if within(0xE000_0000, 4) { return "multicast" }
            if within(0xF000_0000, 4) { return "reserved" }
            if within(0xC000_0000, 24) { return "IETF protocol assignments" }
            if within(0xC612_0000, 15) { return "benchmarking" }
            return nil
        case .v6(let b):
            if b[0..<15].allSatisfy({ $0 == 0 }) && (b[15] == 1 || b[15] == 0) { return b[15] == 1 ? "loopback" : "unspecified" }
            if b[0] & 0xFE == 0xFC { return "private (unique local)" }
            if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "link-local" }
            if b[0] == 0xFF { return "multicast" }
            if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8 { return "documentation" }
            if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B { return "NAT64 (wraps an IPv4 address)" }
            return nil
        }
    }
}

/// An address range: `10.0.0.0/8`, `fd00::/8`, or one address.
public struct IPRange: Sendable, Hashable, CustomStringConvertible {
    public let base: IPAddress
    public let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let base = IPAddress(String(parts[0])) else { return nil }
        let maximum: Int
        if case .v4 = base { maximum = 32 } else { maximum = 128 }
        let prefix = parts.count == 2 ? Int(parts[1]) : maximum
        guard let prefix, (0...maximum).contains(prefix) else { return nil }
        self.base = base
        self.prefix = prefix
    }

    public var description: String { "\(base)/\(prefix)" }

    public func contains(_ address: IPAddress) -> Bool {
        switch (base, address.unmapped) {
        case let (.v4(b), .v4(a)):
            return prefix == 0 || a >> (32 - UInt32(prefix)) == b >> (32 - UInt32(prefix))
        case let (.v6(b), .v6(a)):
            var remaining = prefix
            for index in 0..<16 where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if a[index] & mask != b[index] & mask { return false }
                remaining -= bits
            }
            return true
        default:
            return false
        }
    }
}

extension Substring {
    /// Splits on the first `::` (at most two parts).
    func components(separatedByDoubleColon: Void) -> [Substring] {
        var index = startIndex
        while index < endIndex {
            let next = self.index(after: index)
            if self[index] == ":" && next < endIndex && self[next] == ":" {
                return [self[startIndex..<index], self[self.index(after: next)...]]
            }
            index = next
        }
        return [self]
    }
}
