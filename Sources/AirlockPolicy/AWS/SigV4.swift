import Crypto
import Synchronization

/// AWS Signature Version 4: verifying what the agent's SDK signed with its session's dummy
/// key, and signing what the broker sends upstream with real credentials. Pure math.
public enum SigV4 {
    public static let algorithm = "AWS4-HMAC-SHA256"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    public struct Credentials: Sendable, Equatable {
        public var accessKeyID: String
        public var secretAccessKey: String
        public var sessionToken: String?

        public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
        }
    }

    /// What a request says about how it was signed (Authorization header or presigned query).
    public struct Signature: Sendable, Equatable {
        public var accessKeyID: String
        public var date: String        // yyyymmdd
        public var region: String
        public var service: String     // the signing name
        public var signedHeaders: [String]
        public var signature: String
        public var timestamp: String   // X-Amz-Date
        public var presigned: Bool

        public var scope: String { "\(date)/\(region)/\(service)/aws4_request" }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case missing
        case malformed(String)
        case unsupported(String)
        case mismatch
        case payloadHashMismatch

        public var description: String {
            switch self {
            case .missing: return "the request is not signed"
            case .malformed(let why): return "malformed signature: \(why)"
            case .unsupported(let what): return "unsupported signing: \(what)"
            case .mismatch: return "the signature does not match"
            case .payloadHashMismatch: return "the body does not match its x-amz-content-sha256"
            }
        }
    }

    /// Reads the signature of a request without checking it.
    public static func parse(_ request: AWSRequest) throws(Failure) -> Signature {
        if let authorization = request.header("authorization") {
            guard authorization.hasPrefix(algorithm + " ") else {
                if authorization.hasPrefix("AWS4-ECDSA-P256-SHA256") { throw .unsupported("SigV4a") }
                if authorization.hasPrefix("AWS ") { throw .unsupported("SigV2") }
                if authorization.hasPrefix("Bearer ") { throw .unsupported("bearer tokens") }
                throw .malformed("unknown algorithm")
            }
            // By bytes: every byte this syntax cares about is ASCII, and Character-by-Character
            // splitting was a third of a verification (BENCHMARKS.md).
            var fields: [String: String] = [:]
            for part in authorization.utf8.dropFirst(algorithm.utf8.count + 1).split(separator: 0x2C) {
                guard let equals = part.firstIndex(of: 0x3D), equals != part.startIndex else { throw .malformed("bad Authorization field") }
                fields[asciiTrimmed(part[..<equals])] = asciiTrimmed(part[part.index(after: equals)...])
            }
            guard let credential = fields["Credential"], let signed = fields["SignedHeaders"],
                let signature = fields["Signature"]
            else { throw .malformed("Authorization lacks Credential, SignedHeaders or Signature") }
            guard let timestamp = request.header("x-amz-date") ?? request.header("date") else {
                throw .malformed("no X-Amz-Date")
            }
            return try make(credential: credential, signedHeaders: signed, signature: signature,
                            timestamp: timestamp, presigned: false)
        }
        let query = request.queryItems
        func item(_ name: String) -> String? { query.first { $0.key == name }?.value }
        guard let queryAlgorithm = item("X-Amz-Algorithm") else {
            // botocore still presigns S3 URLs the SigV2 way in us-east-1 unless s3v4 is configured.
            if item("AWSAccessKeyId") != nil, item("Signature") != nil {
                throw .unsupported("a SigV2 presigned URL (presign with signature_version s3v4: the sandbox's AWS_CONFIG_FILE sets it for s3)")
            }
            throw .missing
        }
        guard queryAlgorithm == algorithm else { throw .unsupported("presigned with \(queryAlgorithm)") }
        guard let credential = item("X-Amz-Credential"), let signed = item("X-Amz-SignedHeaders"),
            let signature = item("X-Amz-Signature"), let timestamp = item("X-Amz-Date")
        else { throw .malformed("presigned URL lacks X-Amz-Credential, SignedHeaders, Signature or Date") }
        return try make(credential: credential, signedHeaders: signed, signature: signature,
                        timestamp: timestamp, presigned: true)
    }

    static func make(credential: String, signedHeaders: String, signature: String, timestamp: String,
                     presigned: Bool) throws(Failure) -> Signature {
        let scope = credential.utf8.split(separator: 0x2F, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        guard scope.count == 5, scope[4] == "aws4_request", scope[1].utf8.count == 8 else {
            throw .malformed("credential scope is not KEY/DATE/REGION/SERVICE/aws4_request")
        }
        return Signature(accessKeyID: scope[0], date: scope[1], region: scope[2], service: scope[3],
                         signedHeaders: signedHeaders.utf8.split(separator: 0x3B).map { asciiLowercased($0) },
                         signature: asciiLowercased(signature.utf8[...]), timestamp: timestamp, presigned: presigned)
    }

    /// Checks the request's signature with `secret`. `uriEncodedTwice` is false for the S3
    /// family, which signs the path as sent.
    public static func verify(_ request: AWSRequest, signature: Signature, secret: String,
                              uriEncodedTwice: Bool) throws(Failure) {
        let payloadHash: String
        if let declared = request.header("x-amz-content-sha256") {
            payloadHash = declared
            if isHexDigest(declared) && hexSHA256(request.body) != declared.lowercased() { throw .payloadHashMismatch }
        } else if signature.presigned {
            payloadHash = unsignedPayload
        } else {
            payloadHash = hexSHA256(request.body)
        }
        let canonical = canonicalRequestBytes(
            method: request.method, path: request.path, query: request.query,
            headers: request.headers, signedHeaders: signature.signedHeaders, payloadHash: payloadHash,
            uriEncodedTwice: uriEncodedTwice, excludeQueryKey: signature.presigned ? "X-Amz-Signature" : nil)
        let expected = sign(canonicalBytes: canonical, timestamp: signature.timestamp, scope: signature.scope,
                            key: signingKey(secret: secret, date: signature.date, region: signature.region,
                                            service: signature.service))
        guard constantTimeEquals(expected, signature.signature) else { throw .mismatch }
    }

    /// Signs `headers` for sending: returns them with Host, X-Amz-Date, the session token and
    /// Authorization set. Every header given is signed except those that proxies rewrite.
    public static func signedHeaders(
        method: String, path: String, query: String, host: String, headers: [(name: String, value: String)],
        payloadHash: String, credentials: Credentials, region: String, service: String, timestamp: String,
        uriEncodedTwice: Bool
    ) -> [(name: String, value: String)] {
        var out = headers.filter { !["authorization", "host", "x-amz-date", "x-amz-security-token"].contains($0.name.lowercased()) }
        out.insert(("Host", host), at: 0)
        out.append(("X-Amz-Date", timestamp))
        if let token = credentials.sessionToken { out.append(("X-Amz-Security-Token", token)) }
        let unsigned: Set<String> = ["user-agent", "expect", "connection", "content-length", "transfer-encoding",
                                     "x-amzn-trace-id", "accept-encoding", "keep-alive"]
        let names = Array(Set(out.map { $0.name.lowercased() }).subtracting(unsigned)).sorted()
        let date = String(timestamp.prefix(8))
        let scope = "\(date)/\(region)/\(service)/aws4_request"
        let canonical = canonicalRequest(method: method, path: path, query: query, headers: out, signedHeaders: names,
                                         payloadHash: payloadHash, uriEncodedTwice: uriEncodedTwice, excludeQueryKey: nil)
        let signature = sign(canonicalRequest: canonical, timestamp: timestamp, scope: scope,
                             key: signingKey(secret: credentials.secretAccessKey, date: date, region: region, service: service))
        out.append(("Authorization", "\(algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(names.joined(separator: ";")), Signature=\(signature)"))
        return out
    }

    public static func canonicalRequest(
        method: String, path: String, query: String, headers: [(name: String, value: String)],
        signedHeaders: [String], payloadHash: String, uriEncodedTwice: Bool, excludeQueryKey: String?
    ) -> String {
        String(decoding: canonicalRequestBytes(method: method, path: path, query: query, headers: headers, signedHeaders: signedHeaders,
                                               payloadHash: payloadHash, uriEncodedTwice: uriEncodedTwice, excludeQueryKey: excludeQueryKey),
               as: UTF8.self)
    }

    /// The canonical request written once into one buffer (measured: building it from an
    /// array of lines, each header filtered by a lowercased copy of every header's name and
    /// its value split and joined again, was most of a verification; BENCHMARKS.md).
    static func canonicalRequestBytes(
        method: String, path: String, query: String, headers: [(name: String, value: String)],
        signedHeaders: [String], payloadHash: String, uriEncodedTwice: Bool, excludeQueryKey: String?
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + path.utf8.count + query.utf8.count + headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 2 })
        for byte in method.utf8 { out.append(byte >= 0x61 && byte <= 0x7A ? byte - 0x20 : byte) }
        out.append(0x0A)
        out += canonicalURI(path, encodeTwice: uriEncodedTwice).utf8
        out.append(0x0A)
        out += canonicalQuery(query, excluding: excludeQueryKey).utf8
        out.append(0x0A)
        for name in signedHeaders {
            out += name.utf8
            out.append(0x3A)
            var first = true
            for header in headers where asciiCaseInsensitiveEqual(header.name, name) {
                if !first { out.append(0x2C) }
                first = false
                // Leading and trailing space dropped, inner runs of spaces and tabs one space.
                var pendingSpace = false, started = false
                for byte in header.value.utf8 {
                    if byte == 0x20 || byte == 0x09 {
                        pendingSpace = started
                    } else {
                        if pendingSpace { out.append(0x20); pendingSpace = false }
                        out.append(byte)
                        started = true
                    }
                }
            }
            out.append(0x0A)
        }
        out.append(0x0A)
        var firstName = true
        for name in signedHeaders {
            if !firstName { out.append(0x3B) }
            firstName = false
            out += name.utf8
        }
        out.append(0x0A)
        out += payloadHash.utf8
        return out
    }

    /// Header names and hex are ASCII: folded as AWS folds them (no Unicode case mapping, which
    /// would also fold the Kelvin sign into "k").
    static func asciiLowercased(_ bytes: Substring.UTF8View) -> String {
        String(decoding: bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    /// Spaces and tabs off both ends.
    static func asciiTrimmed(_ bytes: Substring.UTF8View) -> String {
        var slice = bytes[...]
        while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
        while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
        return String(decoding: slice, as: UTF8.self)
    }

    /// `a` equals `b` ignoring ASCII case, without lowercased copies.
    static func asciiCaseInsensitiveEqual(_ a: String, _ b: String) -> Bool {
        // Lengths first (constant time for native strings): most header names differ in it.
        guard a.utf8.count == b.utf8.count else { return false }
        var x = a.utf8.makeIterator(), y = b.utf8.makeIterator()
        while true {
            switch (x.next(), y.next()) {
            case (nil, nil): return true
            case (let p?, let q?):
                if p == q { continue }
                if p | 0x20 != q | 0x20 || !((p | 0x20) >= 0x61 && (p | 0x20) <= 0x7A) { return false }
            default: return false
            }
        }
    }

    /// Non-S3 services: dot segments removed, then the (already encoded) path encoded again.
    static func canonicalURI(_ path: String, encodeTwice: Bool) -> String {
        let raw = path.isEmpty ? "/" : path
        guard encodeTwice else { return raw }
        return PercentEncoding.encode(removeDotSegments(raw), keepSlash: true)
    }

    /// As botocore does (RFC 3986 §5.2.4, and empty segments dropped): the path is what
    /// the SDK signed, so this must be its normalization exactly.
    static func removeDotSegments(_ path: String) -> String {
        // By bytes ("/" and "." are ASCII): the Character version was a sixth of a verification.
        let bytes = Array(path.utf8)
        var output: [ArraySlice<UInt8>] = []
        for segment in bytes.split(separator: 0x2F, omittingEmptySubsequences: true) where !(segment.count == 1 && segment.first == 0x2E) {
            if segment.count == 2 && segment.first == 0x2E && segment.last == 0x2E {
                if !output.isEmpty { output.removeLast() }
            } else {
                output.append(segment)
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        if bytes.first == 0x2F { out.append(0x2F) }
        for (index, segment) in output.enumerated() {
            if index > 0 { out.append(0x2F) }
            out += segment
        }
        if bytes.last == 0x2F && !output.isEmpty { out.append(0x2F) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Each key and value decoded, then encoded as SigV4 wants, sorted by key then value.
    static func canonicalQuery(_ query: String, excluding: String?) -> String {
        var pairs: [(String, String)] = []
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = PercentEncoding.decode(String(kv[0]))
            if key == excluding { continue }
            let value = kv.count > 1 ? PercentEncoding.decode(String(kv[1])) : ""
            pairs.append((PercentEncoding.encode(key), PercentEncoding.encode(value)))
        }
        pairs.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        return pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    public static func signingKey(secret: String, date: String, region: String, service: String) -> SymmetricKey {
        let name = "\(date)\n\(region)\n\(service)\n\(secret)"
        if let known = keyCache.withLock({ $0[name] }) { return known }
        var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        keyCache.withLock { cache in
            if cache.count >= 256 { cache.removeAll() }
            cache[name] = key
        }
        return key
    }

    /// Derived keys by day, region, service and secret (AWS documents deriving one per day and
    /// scope): four HMACs a request saved. Bounded: emptied at 256 scopes. The secrets are in
    /// this process's memory anyway (the session's dummy key, the host's credentials).
    static let keyCache = Mutex<[String: SymmetricKey]>([:])

    static func sign(canonicalRequest: String, timestamp: String, scope: String, key: SymmetricKey) -> String {
        sign(canonicalBytes: Array(canonicalRequest.utf8), timestamp: timestamp, scope: scope, key: key)
    }

    static func sign(canonicalBytes: [UInt8], timestamp: String, scope: String, key: SymmetricKey) -> String {
        var toSign: [UInt8] = []
        toSign.reserveCapacity(algorithm.utf8.count + timestamp.utf8.count + scope.utf8.count + 67)
        toSign += algorithm.utf8
        toSign.append(0x0A)
        toSign += timestamp.utf8
        toSign.append(0x0A)
        toSign += scope.utf8
        toSign.append(0x0A)
        toSign += hexSHA256(canonicalBytes).utf8
        return hex(Array(HMAC<SHA256>.authenticationCode(for: toSign, using: key)))
    }

    public static func hexSHA256(_ bytes: [UInt8]) -> String {
        hex(Array(SHA256.hash(data: bytes)))
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        // Written in place: appending a two-element array per byte allocated one each.
        String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            for (index, byte) in bytes.enumerated() {
                buffer[index * 2] = hexDigit(byte >> 4)
                buffer[index * 2 + 1] = hexDigit(byte & 0xF)
            }
            return bytes.count * 2
        }
    }

    @inline(__always) static func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x57 + nibble }

    static func isHexDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { PercentEncoding.hexValue($0) != nil }
    }

    /// Compares without leaking where two secrets first differ.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a.utf8, b.utf8) { difference |= x ^ y }
        return difference == 0
    }
}
