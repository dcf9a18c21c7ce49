/// Cedar's `ipaddr` extension type: an IPv4 or IPv6 address with a prefix length (32 or 128
/// when none is written), compared as written (`10.0.0.1/24` is not `10.0.0.0/24`), as the
/// reference engine does.
public struct CedarIP: Sendable, Hashable, CustomStringConvertible {
    public var isV4: Bool
    public var address: UInt128
    public var prefix: Int

    var width: Int { isV4 ? 32 : 128 }

    /// The first and last address of the range the prefix covers.
    var range: (first: UInt128, last: UInt128) {
        let hostBits = width - prefix
        let hostMask: UInt128 = hostBits >= 128 ? ~0 : (UInt128(1) << hostBits) - 1
        return (address & ~hostMask, address | hostMask)
    }

    public func isInRange(_ other: CedarIP) -> Bool {
        guard isV4 == other.isV4 else { return false }
        let mine = range, theirs = other.range
        return mine.first >= theirs.first && mine.last <= theirs.last
    }

    public var isLoopback: Bool {
        isV4 ? (address >> 24) == 127 && prefix >= 8 : address == 1 && prefix >= 128
    }

    public var isMulticast: Bool {
        isV4 ? (address >> 28) == 0xE && prefix >= 4 : (address >> 120) == 0xFF && prefix >= 8
    }

    /// Parses what `ip("…")` accepts: dotted IPv4 (no leading zeros), IPv6 in its usual
    /// forms, either with `/prefix`; an IPv4 address inside IPv6 is refused, as the reference
    /// refuses it.
    public static func parse(_ text: String) -> CedarIP? {
        if text.contains(":") && text.contains(".") { return nil }
        var addressPart = Substring(text)
        var prefix: Int?
        if let slash = text.firstIndex(of: "/") {
            addressPart = text[..<slash]
            let digits = text[text.index(after: slash)...]
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  digits.count == 1 || digits.first != "0", let value = Int(digits) else { return nil }
            prefix = value
        }
        if let v4 = parseV4(addressPart) {
            guard (prefix ?? 32) <= 32 else { return nil }
            return CedarIP(isV4: true, address: UInt128(v4), prefix: prefix ?? 32)
        }
        if let v6 = parseV6(addressPart) {
            guard (prefix ?? 128) <= 128 else { return nil }
            return CedarIP(isV4: false, address: v6, prefix: prefix ?? 128)
        }
        return nil
    }

    static func parseV4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  part.count == 1 || part.first != "0", let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func parseV6(_ text: Substring) -> UInt128? {
        func groups(_ piece: Substring) -> [UInt16]? {
            if piece.isEmpty { return [] }
            var out: [UInt16] = []
            for group in piece.split(separator: ":", omittingEmptySubsequences: false) {
                guard !group.isEmpty, group.count <= 4, group.allSatisfy({ $0.isHexDigit && $0.isASCII }),
                      let value = UInt16(group, radix: 16) else { return nil }
                out.append(value)
            }
            return out
        }
        let halves = text.components(separatedBy: "::")
        var all: [UInt16]
        switch halves.count {
        case 1:
            guard let only = groups(Substring(halves[0])), only.count == 8 else { return nil }
            all = only
        case 2:
            guard let head = groups(Substring(halves[0])), let tail = groups(Substring(halves[1])), head.count + tail.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        default:
            return nil
        }
        return all.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    public var description: String {
        if isV4 {
            let octets = (0..<4).map { String((address >> (24 - 8 * $0)) & 0xFF) }
            return octets.joined(separator: ".") + "/\(prefix)"
        }
        let groups = (0..<8).map { String((address >> (112 - 16 * $0)) & 0xFFFF, radix: 16) }
        return groups.joined(separator: ":") + "/\(prefix)"
    }
}

/// Cedar's `decimal` extension type: at most four fractional digits, within a 64-bit count
/// of ten-thousandths.
public enum CedarDecimal {
    public static func parse(_ text: String) -> Int64? {
        let scalars = Array(text.unicodeScalars)
        var index = 0
        let negative = scalars.first == "-"
        if negative { index = 1 }
        var whole: [Unicode.Scalar] = []
        while index < scalars.count, ("0"..."9").contains(scalars[index]) { whole.append(scalars[index]); index += 1 }
        guard !whole.isEmpty, index < scalars.count, scalars[index] == "." else { return nil }
        index += 1
        var fraction: [Unicode.Scalar] = []
        while index < scalars.count, ("0"..."9").contains(scalars[index]) { fraction.append(scalars[index]); index += 1 }
        guard index == scalars.count, (1...4).contains(fraction.count) else { return nil }
        guard let wholeValue = Int64((negative ? "-" : "") + String(String.UnicodeScalarView(whole))) else { return nil }
        let (scaled, overflow) = wholeValue.multipliedReportingOverflow(by: 10_000)
        guard !overflow else { return nil }
        var fractionValue = Int64(String(String.UnicodeScalarView(fraction)))!
        for _ in fraction.count..<4 { fractionValue *= 10 }
        let (result, overflow2) = negative ? scaled.subtractingReportingOverflow(fractionValue) : scaled.addingReportingOverflow(fractionValue)
        return overflow2 ? nil : result
    }

    public static func format(_ value: Int64) -> String {
        let magnitude = value.magnitude
        let whole = magnitude / 10_000, fraction = magnitude % 10_000
        var digits = String(fraction)
        while digits.count < 4 { digits = "0" + digits }
        return (value < 0 ? "-" : "") + "\(whole)." + digits
    }
}
