import Crypto

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
            var fields: [String: String] = [:]
            for part in authorization.dropFirst(algorithm.count + 1).split(separator: ",") {
                let kv = part.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { throw .malformed("bad Authorization field") }
                fields[String(kv[0]).trimmingSpaces()] = String(kv[1]).trimmingSpaces()
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
        let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scope.count == 5, scope[4] == "aws4_request", scope[1].count == 8 else {
            throw .malformed("credential scope is not KEY/DATE/REGION/SERVICE/aws4_request")
        }
        return Signature(accessKeyID: scope[0], date: scope[1], region: scope[2], service: scope[3],
                         signedHeaders: signedHeaders.split(separator: ";").map { $0.lowercased() },
                         signature: signature.lowercased(), timestamp: timestamp, presigned: presigned)
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
        let canonical = canonicalRequest(
            method: request.method, path: request.path, query: request.query,
            headers: request.headers, signedHeaders: signature.signedHeaders, payloadHash: payloadHash,
            uriEncodedTwice: uriEncodedTwice, excludeQueryKey: signature.presigned ? "X-Amz-Signature" : nil)
        let expected = sign(canonicalRequest: canonical, timestamp: signature.timestamp, scope: signature.scope,
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
        var lines = [method.uppercased(), canonicalURI(path, encodeTwice: uriEncodedTwice),
                     canonicalQuery(query, excluding: excludeQueryKey)]
        for name in signedHeaders {
            let values = headers.filter { $0.name.lowercased() == name }.map { value in
                value.value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            }
            lines.append("\(name):\(values.joined(separator: ","))")
        }
        lines.append("")
        lines.append(signedHeaders.joined(separator: ";"))
        lines.append(payloadHash)
        return lines.joined(separator: "\n")
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
        var output: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) where segment != "." {
            if segment == ".." {
                if !output.isEmpty { output.removeLast() }
            } else {
                output.append(segment)
            }
        }
        let first = path.hasPrefix("/") ? "/" : ""
        let last = path.hasSuffix("/") && !output.isEmpty ? "/" : ""
        return first + output.joined(separator: "/") + last
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
        var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    static func sign(canonicalRequest: String, timestamp: String, scope: String, key: SymmetricKey) -> String {
        let stringToSign = [algorithm, timestamp, scope, hexSHA256(Array(canonicalRequest.utf8))].joined(separator: "\n")
        return hex(Array(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key)))
    }

    public static func hexSHA256(_ bytes: [UInt8]) -> String {
        hex(Array(SHA256.hash(data: bytes)))
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes { out += [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]] }
        return String(decoding: out, as: UTF8.self)
    }

    static func isHexDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { PercentEncoding.hexValue($0) != nil }
    }

    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}
