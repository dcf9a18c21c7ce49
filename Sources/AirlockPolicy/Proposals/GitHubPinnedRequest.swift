import AirlockCore

/// A GitHub API request as a proposal keeps it: the host and exactly what the agent sent,
/// minus its credential.
public struct GitHubPinnedRequest: Sendable, Equatable {
    public static func == (a: GitHubPinnedRequest, b: GitHubPinnedRequest) -> Bool { a.json == b.json }

    public var host: String
    public var method: String
    public var path: String
    public var query: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public static let pinnedHeaders: Set<String> = ["content-type", "accept", "user-agent", "x-github-api-version", "graphql-features"]

    public init(host: String, method: String, path: String, query: String, headers: [(name: String, value: String)], body: [UInt8]) {
        self.host = host
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    public var json: JSON {
        .object([
            ("type", .string("github-request")), ("host", .string(host)), ("method", .string(method)), ("path", .string(path)),
            ("query", .string(query)), ("headers", .array(headers.map { .array([.string($0.name), .string($0.value)]) })),
            ("body_base64", .string(Base64.encode(body))),
        ])
    }

    public init?(json: JSON) {
        guard json["type"]?.string == "github-request", let host = json["host"]?.string, let method = json["method"]?.string,
              let path = json["path"]?.string, let query = json["query"]?.string, let text = json["body_base64"]?.string,
              let body = Base64.decode(text),
              let headers = PinnedRequest.headerPairs(json["headers"]) else { return nil }
        self.init(host: host, method: method, path: path, query: query,
                  headers: headers, body: body)
    }
}
