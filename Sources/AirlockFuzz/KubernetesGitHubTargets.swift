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
        // The upstream's reading: the path decoded whole, as Go's net/http decodes it, read
        // by RequestInfo (an independent rewrite of its rules here). Whatever the broker does
        // not refuse, it must read as the API server would.
        guard ruling.decision != .deny else { return }
        let upstream = Self.goRequestInfo(path)
        switch KubernetesRequest.read(method: String(parts[0]), path: path, query: query) {
        case .resource(let request):
            guard let upstream else { fatalError("read as a resource, but the API server cannot decode \(path)") }
            guard upstream.resource == request.resource, upstream.group == request.group, upstream.version == request.version,
                  upstream.namespace == request.namespace, upstream.name == request.name, upstream.subresource == request.subresource else {
                fatalError("read as \(request), the API server reads \(upstream) from \(path)")
            }
            if upstream.group.isEmpty && upstream.resource == "secrets" && ruling.decision != .sensitive {
                fatalError("the API server reads Secrets from \(path), ruled \(ruling)")
            }
        case .nonResource:
            if let upstream, upstream.isResource { fatalError("read as a non-resource path, the API server reads \(upstream) from \(path)") }
        case .ambiguous:
            fatalError("an ambiguous reading was not refused: \(path)")
        }
    }

    struct UpstreamInfo: Equatable {
        var isResource: Bool
        var group = "", version = "", resource = ""
        var namespace: String?, name: String?, subresource: String?
    }

    /// Go's `url.PathUnescape` then kube-apiserver's RequestInfoFactory.NewRequestInfo, for the
    /// fields that classify (written from requestinfo.go, separately from KubernetesRequest).
    /// Nil when Go could not decode the path.
    static func goRequestInfo(_ raw: String) -> UpstreamInfo? {
        var bytes: [UInt8] = []
        var iterator = Array(raw.utf8).makeIterator()
        func hex(_ c: UInt8) -> UInt8? {
            switch c { case 48...57: return c - 48; case 65...70: return c - 55; case 97...102: return c - 87; default: return nil }
        }
        while let c = iterator.next() {
            if c == 37 {
                guard let h = iterator.next().flatMap(hex), let l = iterator.next().flatMap(hex) else { return nil }
                bytes.append(h << 4 | l)
            } else {
                bytes.append(c)
            }
        }
        let path = String(decoding: bytes, as: UTF8.self)
        var trimmed = Substring(path)
        while trimmed.first == "/" { trimmed = trimmed.dropFirst() }
        while trimmed.last == "/" { trimmed = trimmed.dropLast() }
        var current = trimmed.isEmpty ? [] : trimmed.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let prefix = current.first, prefix == "api" || prefix == "apis" else { return UpstreamInfo(isResource: false) }
        current.removeFirst()
        var info = UpstreamInfo(isResource: true)
        if prefix == "apis" {
            guard current.count >= 3 else { return UpstreamInfo(isResource: false) }
            info.group = current.removeFirst()
        } else if current.count < 2 {
            return UpstreamInfo(isResource: false)
        }
        info.version = current.removeFirst()
        if current.first == "watch" { current.removeFirst() }
        if current.first == "namespaces" {
            if current.count > 1 {
                info.namespace = current[1]
                if current.count > 2 && !["status", "finalize"].contains(current[2]) { current.removeFirst(2) } else { info.namespace = nil }
            }
        }
        guard !current.isEmpty else { return UpstreamInfo(isResource: false) }
        info.resource = current[0]
        if current.count >= 2 { info.name = current[1] }
        if current.count >= 3 { info.subresource = current[2...].joined(separator: "/") }
        return info
    }

    /// A GitHub REST path as its router reads it: decoded whole. Whatever the broker does not
    /// refuse, it must rule on that reading: a secrets or token route is sensitive however it
    /// is spelled, GraphQL is never a REST path, git's protocol never an API path.
    static func githubPath(_ data: [UInt8]) {
        guard data.count <= 1 << 14 else { return }
        let text = String(decoding: data, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return }
        let method = String(parts[0]), target = String(parts[1])
        let ruling = GitHubClassifier.classifyREST(method: method, path: target)
        guard ruling == GitHubClassifier.classifyREST(method: method, path: target) else { fatalError("two readings of one request") }
        guard ruling.decision != .deny else { return }
        let path = String(target.prefix { $0 != "?" })
        guard let decoded = path.removingPercentEncodingStrictly() else { fatalError("not refused, but the router cannot decode \(path)") }
        let segments = decoded.lowercased().split(separator: "/").map(String.init)
        let sensitive: Set<String> = ["secrets", "access_tokens", "registration-token", "remove-token", "personal-access-tokens",
                                      "personal-access-token-requests", "authorizations", "token", "tokens", "keys", "credential-authorizations"]
        if segments.contains(where: sensitive.contains) && ruling.decision != .sensitive {
            fatalError("the router reads a sensitive route from \(path), ruled \(ruling)")
        }
        if segments == ["graphql"] { fatalError("GraphQL was read as a REST path: \(path)") }
        if segments.last.map({ ["git-receive-pack", "git-upload-pack"].contains($0) }) == true { fatalError("git's protocol on an API path: \(path)") }
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

extension String {
    /// %XX decoded; nil when a % is not followed by two hex digits or the bytes are not UTF-8.
    func removingPercentEncodingStrictly() -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(utf8).makeIterator()
        while let c = iterator.next() {
            guard c == 37 else { bytes.append(c); continue }
            guard let high = iterator.next(), let low = iterator.next(),
                  let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
