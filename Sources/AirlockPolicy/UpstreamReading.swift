/// Reading a request the way its upstream will (docs/design.md, invariant 8): the pieces the
/// Kubernetes and GitHub gateways share. The upstream decodes the path and the query before it
/// routes; the broker must classify that decoded form, or refuse a request it could read
/// another way. Pure.
public enum UpstreamReading {
    /// Headers some frameworks read as the real method (Rails, Rack, Express middleware, Go
    /// libraries). The broker classifies by the request's own method, so a request carrying
    /// one has two readings: refused on every gateway, never forwarded.
    public static let methodOverrideHeaders: Set<String> = ["x-http-method-override", "x-http-method", "x-method-override"]

    /// The first method-override header the request carries, by its name as sent.
    public static func methodOverride(_ headers: [(name: String, value: String)]) -> String? {
        headers.first { methodOverrideHeaders.contains($0.name.lowercased()) }?.name
    }

    /// Why a method has no single reading, if it has none: the gateways classify it upper-cased
    /// and forward it as sent, and Go's and Rails' routers match methods case-sensitively.
    public static func methodProblem(_ method: String) -> String? {
        method == method.uppercased() ? nil : "the method \(method.prefix(20)) is not written in capitals"
    }

    /// A path segment decoded once, as Go's `url.PathUnescape` and Rails' router decode it.
    /// Nil when the escaping is invalid (`%`, `%4`, `%zz`) or the bytes are not UTF-8.
    public static func decodeSegment(_ segment: Substring) -> String? {
        let bytes = Array(segment.utf8)
        guard bytes.contains(0x25) else { return String(segment) }
        guard PercentEncoding.isValidEscaping(bytes[...]) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0x25, let high = PercentEncoding.hexValue(bytes[index + 1]), let low = PercentEncoding.hexValue(bytes[index + 2]) {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    /// Why a path's percent-encoding gives it more than one reading, if it does: invalid
    /// escapes, or an escaped unreserved character (a letter, digit, `-`, `.`, `_`, `~`). No
    /// client needs to encode those (RFC 3986 §2.3), and every route's fixed words are made of
    /// them, so `secret%73` can only be an attempt to be read as `secrets` upstream and as
    /// something else here.
    public static func encodingProblem(_ path: String) -> String? {
        let bytes = Array(path.utf8)
        guard bytes.contains(0x25) else { return nil }
        guard PercentEncoding.isValidEscaping(bytes[...]) else {
            return "the path has a % that is not followed by two hex digits"
        }
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0x25, let high = PercentEncoding.hexValue(bytes[index + 1]), let low = PercentEncoding.hexValue(bytes[index + 2]) {
                let decoded = high << 4 | low
                if PercentEncoding.isUnreserved(decoded) {
                    let shown = String(decoding: bytes[index..<index + 3], as: UTF8.self)
                    return "the path percent-encodes '\(Character(Unicode.Scalar(decoded)))' (\(shown)), which no client needs to encode: the upstream decodes it, so the broker would read another path than the upstream"
                }
                index += 3
            } else {
                index += 1
            }
        }
        return nil
    }

    /// A query as Go's `url.ParseQuery` reads it (the Kubernetes API server's `req.URL.Query()`):
    /// pairs split on `&`, keys and values percent-decoded with `+` as a space. Go drops a pair
    /// it cannot decode and refuses `;` as a separator; either would leave the broker and the
    /// server with different parameters, so both are refused here instead.
    public static func goQuery(_ query: String) -> Result<[(key: String, value: String)], QueryProblem> {
        var pairs: [(key: String, value: String)] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            if pair.contains(";") { return .failure(QueryProblem("the query has a ';', which Go's query parser refuses (the pair would be dropped)")) }
            let key = pair.prefix { $0 != "=" }
            let value = pair.contains("=") ? pair.drop { $0 != "=" }.dropFirst() : ""
            guard PercentEncoding.isValidEscaping(Array(key.utf8)[...]), PercentEncoding.isValidEscaping(Array(value.utf8)[...]) else {
                return .failure(QueryProblem("the query has a % that is not followed by two hex digits (the pair would be dropped upstream)"))
            }
            pairs.append((PercentEncoding.decode(String(key), plusIsSpace: true), PercentEncoding.decode(String(value), plusIsSpace: true)))
        }
        return .success(pairs)
    }

    public struct QueryProblem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
