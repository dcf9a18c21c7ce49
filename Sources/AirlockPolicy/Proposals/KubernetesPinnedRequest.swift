import AirlockCore

/// A Kubernetes request as a proposal keeps it: the context and server it was made for and
/// exactly what the agent sent, minus its token. Its JSON is the payload a human approves.
public struct KubernetesPinnedRequest: Sendable, Equatable {
    public static func == (a: KubernetesPinnedRequest, b: KubernetesPinnedRequest) -> Bool { a.json == b.json }

    public var context: String
    public var server: String
    public var method: String
    public var path: String
    public var query: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public var json: JSON {
        .object([
            ("type", .string("kubernetes-request")), ("context", .string(context)), ("server", .string(server)),
            ("method", .string(method)), ("path", .string(path)), ("query", .string(query)),
            ("headers", .array(headers.map { .array([.string($0.name), .string($0.value)]) })),
            ("body_base64", .string(Base64.encode(body))),
        ])
    }

    public init(context: String, server: String, method: String, path: String, query: String,
                headers: [(name: String, value: String)], body: [UInt8]) {
        self.context = context
        self.server = server
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    public init?(json: JSON) {
        guard json["type"]?.string == "kubernetes-request", let context = json["context"]?.string, let server = json["server"]?.string,
              let method = json["method"]?.string, let path = json["path"]?.string, let query = json["query"]?.string,
              let text = json["body_base64"]?.string, let body = Base64.decode(text),
              let headers = PinnedRequest.headerPairs(json["headers"]) else { return nil }
        self.init(context: context, server: server, method: method, path: path, query: query,
                  headers: headers, body: body)
    }

    /// The same request as a server-side dry run; nil when the server would not read it as one.
    public func dryRun() -> KubernetesPinnedRequest? {
        var dry = self
        if method == "DELETE" && !body.isEmpty {
            // The server reads a DELETE's options from its body and ignores the query then.
            guard case .object(var pairs)? = try? JSON.parseStrict(bytes: body) else { return nil }
            pairs.removeAll { $0.0 == "dryRun" }
            pairs.append(("dryRun", .array([.string("All")])))
            dry.body = Array(JSON.object(pairs).serialized().utf8)
            dry.headers = headers.filter { $0.name.lowercased() != "content-type" } + [("Content-Type", "application/json")]
            return dry
        }
        dry.query = query.isEmpty ? "dryRun=All" : query + "&dryRun=All"
        return KubernetesClassifier.isServerDryRun(query: dry.query, deleteWithBody: false) ? dry : nil
    }
}
