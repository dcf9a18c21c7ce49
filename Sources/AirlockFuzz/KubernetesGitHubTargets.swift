import AirlockCore
import AirlockPolicy

/// Fuzz targets for the Kubernetes, GraphQL and git readings (docs/fuzzing.md).
extension FuzzTargets {
    /// `METHOD PATH?QUERY` on the first line, headers after: a read is never of a path with a
    /// dot or empty segment or an encoded slash, secrets are never a plain read, and the
    /// reading is the same every time.
    static func kubernetes(_ data: [UInt8]) {
        guard data.count <= 1 << 16 else { return }
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = lines.first else { return }
        let parts = first.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return }
        let target = String(parts[1])
        let path = String(target.prefix { $0 != "?" })
        let query = target.contains("?") ? String(target.drop { $0 != "?" }.dropFirst()) : ""
        let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), String(line[line.index(after: colon)...]))
        }
        let ruling = KubernetesClassifier.classify(method: String(parts[0]), path: path, query: query, headers: headers)
        guard ruling == KubernetesClassifier.classify(method: String(parts[0]), path: path, query: query, headers: headers) else {
            fatalError("two readings of one request")
        }
        if case .resource(let request) = KubernetesRequest.read(method: String(parts[0]), path: path, query: query) {
            guard KubernetesRequest.pathProblem(path) == nil else { fatalError("read a resource from a path with no single reading: \(path)") }
            if ruling.decision == .read && request.group.isEmpty && request.resource == "secrets" { fatalError("secrets read as a plain read") }
            if ruling.decision == .read && ["exec", "attach", "portforward"].contains(request.subresource ?? "") { fatalError("exec read as a read") }
        }
        if KubernetesClassifier.impersonates(headers) != nil && ruling.decision != .deny { fatalError("impersonation not refused") }
    }

    /// A GraphQL document: the reading is total and stable, and a document that reads as a
    /// query stops reading as one when a mutation is added beside it.
    static func graphql(_ data: [UInt8]) {
        guard data.count <= 1 << 16, let text = String(validating: data, as: UTF8.self) else { return }
        let ruling = GitHubClassifier.classifyGraphQL(document: text, operationName: nil)
        guard ruling == GitHubClassifier.classifyGraphQL(document: text, operationName: nil) else { fatalError("two readings of one document") }
        if ruling.decision == .read {
            let widened = text + "\nmutation Added { deleteRepository(input: {}) { clientMutationId } }"
            if GitHubClassifier.classifyGraphQL(document: widened, operationName: nil).decision == .read {
                fatalError("a document with a mutation beside its query read as a read: \(text.prefix(200))")
            }
            if GitHubClassifier.classifyGraphQL(document: widened, operationName: "Added").decision != .mutation {
                fatalError("the added mutation, named, is not a mutation: \(text.prefix(200))")
            }
        }
    }

    /// A receive-pack body: what parses serializes to bytes that parse to the same request.
    static func gitPush(_ data: [UInt8]) {
        guard data.count <= 1 << 20 else { return }
        guard case .success(let request) = GitReceivePack.parse(data) else { return }
        guard case .success(let again) = GitReceivePack.parse(request.serialized()), again == request else {
            fatalError("a push request did not survive its round trip")
        }
        for update in request.updates where !GitReceivePack.isValidRef(update.ref) { fatalError("an invalid ref was accepted") }
    }
}
