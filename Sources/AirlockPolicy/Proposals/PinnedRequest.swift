import AirlockCore

/// An AWS request as the gate keeps it: exactly what the agent sent, minus its signature.
/// Its JSON is a proposal's payload, so its SHA-256 is what a human approves; execution
/// re-signs it with real credentials and sends it unchanged otherwise.
public struct PinnedRequest: Sendable, Equatable {
    public var service: String
    public var signingName: String
    public var region: String
    public var operation: String?
    public var method: String
    /// The path below the service's endpoint (the broker's `/svc/<name>` removed).
    public var path: String
    public var query: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public static func == (a: PinnedRequest, b: PinnedRequest) -> Bool {
        a.service == b.service && a.signingName == b.signingName && a.region == b.region && a.operation == b.operation
            && a.method == b.method && a.path == b.path && a.query == b.query && a.body == b.body
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }

    /// Headers never pinned: they are the signature, the connection, or recomputed.
    public static let dropped: Set<String> = [
        "authorization", "x-amz-date", "x-amz-security-token", "host", "content-length", "expect", "connection",
        "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
    ]

    /// Headers no pinned request of any kind keeps (lowercased names): hop-by-hop ones, what
    /// is recomputed at sending, and forwarding ones, which an upstream (or a proxy before it)
    /// reads as where the request came from or was meant for.
    public static func isNeverPinned(_ lowercased: String) -> Bool {
        ["host", "content-length", "expect", "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
         "forwarded", "x-real-ip", "x-original-url", "x-rewrite-url"].contains(lowercased)
            || lowercased.hasPrefix("proxy-") || lowercased.hasPrefix("x-forwarded-")
    }

    /// An origin-form request target's path (RFC 9112 §3.2.1): "/" then a path that does not
    /// start another "/" (that would read as an authority), with no space, control byte, '?'
    /// (the query is its own field) or '#'.
    public static func isOriginForm(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        guard bytes.first == 0x2F, bytes.count < 2 || bytes[1] != 0x2F else { return false }
        return !bytes.contains { $0 <= 0x20 || $0 == 0x7F || $0 == 0x3F || $0 == 0x23 }
    }

    public init(request: AWSRequest, service: AWSService, servicePath: String, region: String, signingName: String, operation: String?) {
        self.service = service.name
        self.signingName = signingName
        self.region = region
        self.operation = operation
        method = request.method
        path = servicePath
        query = request.query
        headers = request.headers.filter { !Self.dropped.contains($0.name.lowercased()) && !Self.isNeverPinned($0.name.lowercased()) }
        body = request.body
    }

    public var json: JSON {
        .object([
            ("type", .string("aws-request")), ("service", .string(service)), ("signing_name", .string(signingName)),
            ("region", .string(region)), ("operation", operation.map(JSON.string) ?? .null), ("method", .string(method)),
            ("path", .string(path)), ("query", .string(query)),
            ("headers", .array(headers.map { .array([.string($0.name), .string($0.value)]) })),
            ("body_base64", .string(Base64.encode(body))),
        ])
    }

    public init?(json: JSON) {
        guard json["type"]?.string == "aws-request", let service = json["service"]?.string,
            let signing = json["signing_name"]?.string, let region = json["region"]?.string,
            let method = json["method"]?.string, let path = json["path"]?.string, let query = json["query"]?.string,
            let bodyText = json["body_base64"]?.string, let body = Base64.decode(bodyText), let headers = Self.headerPairs(json["headers"])
        else { return nil }
        self.service = service
        signingName = signing
        self.region = region
        operation = json["operation"]?.string
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// A pinned request's `headers`: an array of [name, value] pairs of strings, every one of
    /// them (a malformed pair, or none at all, makes the payload unreadable, never shorter).
    public static func headerPairs(_ json: JSON?) -> [(name: String, value: String)]? {
        guard let items = json?.array else { return nil }
        var pairs: [(name: String, value: String)] = []
        for pair in items {
            guard let two = pair.array, two.count == 2, let name = two[0].string, let value = two[1].string else { return nil }
            pairs.append((name, value))
        }
        return pairs
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public var isS3Family: Bool { ["s3", "s3control", "s3express"].contains(signingName) }
}
