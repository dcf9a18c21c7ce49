import AirlockCore

/// An HTTP request as the agent's SDK sent it to the broker, before anything is changed.
public struct AWSRequest: Sendable {
    public var method: String
    /// The raw (percent-encoded) path, without the query.
    public var path: String
    /// The raw query string, without `?` (empty when none).
    public var query: String
    /// Header lines in order, names as received.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, path: String, query: String, headers: [(name: String, value: String)], body: [UInt8]) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// From a request target (`/path?query`).
    public init(method: String, target: String, headers: [(name: String, value: String)], body: [UInt8]) {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.init(method: method, path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : "",
                  headers: headers, body: body)
    }

    public var target: String { query.isEmpty ? path : path + "?" + query }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        // ASCII case folding, as AWS compares names (and no lowercased copy of each name).
        headers.first { SigV4.asciiCaseInsensitiveEqual($0.name, name) }?.value
    }

    /// Decoded query parameters, in order; a key without `=` has a nil value.
    public var queryItems: [(key: String, value: String?)] { Self.parseForm(query) }

    /// `application/x-www-form-urlencoded` (query/ec2 bodies) or a query string.
    public static func parseForm(_ text: String) -> [(key: String, value: String?)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (PercentEncoding.decode(String(kv[0]), plusIsSpace: true),
                    kv.count > 1 ? PercentEncoding.decode(String(kv[1]), plusIsSpace: true) : nil)
        }
    }

    /// Form parameters of a query/ec2 request: the body for a form POST, else the query.
    /// The first value of form parameter `key` (in the body, as formParameters reads it, then
    /// the query), decoding only that one: `Action=` of a query-protocol request without
    /// decoding its every parameter.
    public func firstFormValue(_ key: String) -> String?? {
        if method == "POST" && !body.isEmpty && Self.isFormContentType(header("content-type")),
           let found = Self.firstValue(key, in: body[...]) {
            return found
        }
        return Self.firstValue(key, in: Array(query.utf8)[...])
    }

    /// No Content-Type (or an empty one), or one starting `application/x-www-form-urlencoded`
    /// in any ASCII case: the one test both firstFormValue and formParameters make, so the
    /// classifier and everything after it read the same parameters.
    static func isFormContentType(_ value: String?) -> Bool {
        guard let value, !value.isEmpty else { return true }
        let form = "application/x-www-form-urlencoded".utf8
        guard value.utf8.count >= form.count else { return false }
        return zip(value.utf8, form).allSatisfy { $0 == $1 || ($0 | 0x20 == $1 && $1 >= 0x61 && $1 <= 0x7A) }
    }

    /// Pairs split by "&" and "=" over bytes, walked in place (no array of pairs); a key is
    /// decoded only when it holds "%" or "+".
    static func firstValue(_ key: String, in bytes: ArraySlice<UInt8>) -> String?? {
        let wanted = Array(key.utf8)
        for (rawKey, rawValue) in FormPairs(bytes) {
            let matches = rawKey.contains(0x25) || rawKey.contains(0x2B)
                ? PercentEncoding.decode(String(decoding: rawKey, as: UTF8.self), plusIsSpace: true) == key
                : rawKey.elementsEqual(wanted)
            guard matches else { continue }
            guard let rawValue else { return .some(nil) }
            return .some(PercentEncoding.decode(String(decoding: rawValue, as: UTF8.self), plusIsSpace: true))
        }
        return nil
    }

    public var formParameters: [(key: String, value: String?)] {
        if method == "POST" && Self.isFormContentType(header("content-type")) && !body.isEmpty {
            return Self.parseForm(String(decoding: body, as: UTF8.self)) + queryItems
        }
        return queryItems
    }
}

extension AWSRequest {
    /// Why the body cannot be a request of this protocol, or nil when it can: a query/ec2
    /// form must be well-formed `key=value&…` with valid escapes, a JSON body valid JSON.
    /// A malformed request is refused before anything is classified or stored.
    public func malformation(for wire: AWSProtocol) -> String? {
        switch wire {
        case .query, .ec2:
            let contentType = header("content-type")?.lowercased() ?? ""
            guard method == "POST", !body.isEmpty, contentType.isEmpty || contentType.hasPrefix("application/x-www-form-urlencoded") else {
                return nil
            }
            for pair in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false) {
                let kv = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
                guard !kv[0].isEmpty else { return "the form body has an empty field name" }
                for part in kv where !PercentEncoding.isValidEscaping(part) { return "the form body has an invalid %-escape" }
            }
            return nil
        case .json, .restJSON:
            let contentType = header("content-type")?.lowercased() ?? ""
            guard !body.isEmpty, wire == .json || contentType.contains("json") else { return nil }
            if case .failure(let error) = Result(catching: { () throws(JSON.ParseError) in try JSON.parse(bytes: body) }) {
                return "the JSON body is not valid JSON (\(error))"
            }
            return nil
        case .restXML, .cbor:
            return nil
        }
    }
}

/// Percent-encoding as SigV4 and URLs need it.
public enum PercentEncoding {
    /// RFC 3986 unreserved characters, never encoded.
    static func isUnreserved(_ byte: UInt8) -> Bool {
        (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
            || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E
    }

    static let hex = Array("0123456789ABCDEF".utf8)

    /// Encodes everything but unreserved characters (and `/` when `keepSlash`).
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) || (keepSlash && byte == 0x2F) {
                out.append(byte)
            } else {
                out += [0x25, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes %XX (invalid sequences stay as they are); `+` becomes a space in forms.
    public static func decode(_ text: String, plusIsSpace: Bool = false) -> String {
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if byte == 0x25, i + 2 < bytes.count, let high = hexValue(bytes[i + 1]), let low = hexValue(bytes[i + 2]) {
                out.append(high << 4 | low)
                i += 3
                continue
            }
            out.append(plusIsSpace && byte == 0x2B ? 0x20 : byte)
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isValidEscaping(_ bytes: ArraySlice<UInt8>) -> Bool {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == 0x25 {
                guard index + 2 < bytes.endIndex, hexValue(bytes[index + 1]) != nil, hexValue(bytes[index + 2]) != nil else { return false }
                index += 3
            } else {
                index += 1
            }
        }
        return true
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }
}

/// The `&`-separated pairs of a form or a query, walked over bytes in place: each key, and its
/// value after the first `=` (nil without one), empty pairs skipped. The pairs parseForm
/// decodes, undecoded (firstFormValue's Action=, the resolver's query literals).
struct FormPairs: Sequence, IteratorProtocol {
    let bytes: ArraySlice<UInt8>
    var start: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        start = bytes.startIndex
    }

    mutating func next() -> (key: ArraySlice<UInt8>, value: ArraySlice<UInt8>?)? {
        while start < bytes.endIndex {
            let end = bytes[start...].firstIndex(of: 0x26) ?? bytes.endIndex
            let pair = bytes[start..<end]
            start = end == bytes.endIndex ? end : end + 1
            guard !pair.isEmpty else { continue }
            let equals = pair.firstIndex(of: 0x3D)
            return (pair[..<(equals ?? pair.endIndex)], equals.map { pair[($0 + 1)...] })
        }
        return nil
    }
}
