import AirlockCore
/// A Kubernetes API request read the way the API server reads it (its RequestInfo: verb,
/// API group and version, namespace, resource, name, subresource), then classified
/// (docs/kubernetes.md): get/list/watch read, `secrets` and `serviceaccounts/token`
/// sensitive, create/update/patch/delete/deletecollection mutation, exec, attach,
/// port-forward, proxy and ephemeral containers denied unless a profile allows them,
/// impersonation denied. Pure: values in, a ruling out.
///
/// One reading or none: a path the API server and Airlock could read differently (empty or
/// dot segments, percent-encoded slashes or dots, a query key given twice) is refused, never
/// guessed at.
public struct KubernetesRequest: Sendable, Equatable {
    public enum Verb: String, Sendable, CaseIterable {
        case get, list, watch, create, update, patch, delete, deletecollection
    }

    public var verb: Verb
    /// "" for the core group (`/api/v1`).
    public var group: String
    public var version: String
    public var namespace: String?
    public var resource: String
    public var name: String?
    public var subresource: String?

    public init(verb: Verb, group: String, version: String, namespace: String?, resource: String, name: String?, subresource: String?) {
        self.verb = verb
        self.group = group
        self.version = version
        self.namespace = namespace
        self.resource = resource
        self.name = name
        self.subresource = subresource
    }

    /// `resource` or `resource/subresource`, as RBAC names it.
    public var qualifiedResource: String { subresource.map { resource + "/" + $0 } ?? resource }

    public enum Reading: Sendable, Equatable {
        /// A resource request.
        case resource(KubernetesRequest)
        /// A non-resource path: discovery (`/api`, `/apis/...` without a resource), `/version`,
        /// `/openapi/...`, health.
        case nonResource(path: String)
        /// No single reading: refused.
        case ambiguous(String)
    }

    /// Subresources of a namespace itself (`/api/v1/namespaces/NAME/status`), which the API
    /// server does not read as a resource inside the namespace.
    static let namespaceSubresources: Set<String> = ["status", "finalize"]

    /// Reads `method path?query` (the path as sent, percent-encoding included).
    public static func read(method: String, path: String, query: String) -> Reading {
        if let problem = pathProblem(path) { return .ambiguous(problem) }
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let key = String(pair.prefix { $0 != "=" })
            let value = pair.contains("=") ? String(pair.drop { $0 != "=" }.dropFirst()) : ""
            if parameters[key] != nil { return .ambiguous("the query names \(key) twice") }
            parameters[key] = value
        }
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        if parts.last == "" { parts.removeLast() }  // a trailing slash, as the API server allows
        guard let prefix = parts.first, prefix == "api" || prefix == "apis" else { return .nonResource(path: path) }
        var group = ""
        var rest = Array(parts.dropFirst())
        if prefix == "apis" {
            guard rest.count >= 2 else { return .nonResource(path: path) }
            group = rest.removeFirst()
        }
        guard !rest.isEmpty else { return .nonResource(path: path) }
        let version = rest.removeFirst()
        guard !rest.isEmpty else { return .nonResource(path: path) }
        var watchPrefix = false
        if rest.first == "watch" {
            // The deprecated /api/v1/watch/... form.
            watchPrefix = true
            rest.removeFirst()
            guard !rest.isEmpty else { return .ambiguous("a watch of nothing") }
        }
        var namespace: String?
        if rest[0] == "namespaces", rest.count > 1 {
            namespace = rest[1]
            if rest.count > 2 && !namespaceSubresources.contains(rest[2]) {
                rest = Array(rest.dropFirst(2))
            } else {
                // The namespace object itself (and its status/finalize).
                namespace = nil
                rest = ["namespaces"] + rest.dropFirst()
            }
        }
        let resource = rest[0]
        let name = rest.count > 1 ? rest[1] : nil
        let subresource = rest.count > 2 ? rest[2...].joined(separator: "/") : nil
        if rest.count > 3 && !(subresource?.hasPrefix("proxy/") ?? false) {
            return .ambiguous("\(path) has more segments than resource/name/subresource")
        }
        for part in [resource, version] + (name.map { [$0] } ?? []) where part.isEmpty {
            return .ambiguous("\(path) has an empty segment")
        }
        let watchQuery = parameters["watch"].map { $0 == "true" || $0 == "1" } ?? false
        let verb: Verb
        switch method.uppercased() {
        case "GET", "HEAD":
            if watchPrefix || watchQuery { verb = .watch } else { verb = name == nil ? .list : .get }
        case "POST": verb = .create
        case "PUT": verb = .update
        case "PATCH": verb = .patch
        case "DELETE": verb = name == nil ? .deletecollection : .delete
        default: return .ambiguous("\(method) is not a Kubernetes API method")
        }
        if watchPrefix && !(method.uppercased() == "GET" || method.uppercased() == "HEAD") {
            return .ambiguous("\(method) of a /watch/ path")
        }
        return .resource(KubernetesRequest(verb: verb, group: group, version: version, namespace: namespace,
                                           resource: resource, name: name, subresource: subresource))
    }

    /// Why a path has no single reading, if it has none.
    public static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "the path must start with /" }
        let lowered = path.lowercased()
        for encoded in ["%2f", "%2e", "%5c", "%00", "%25"] where lowered.contains(encoded) {
            return "the path percent-encodes a slash, dot, backslash, NUL or percent sign (\(encoded))"
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for (index, part) in parts.enumerated() {
            if part == "." || part == ".." { return "the path has a . or .. segment" }
            if part.isEmpty && index != parts.count - 1 { return "the path has an empty segment (//)" }
            if part.contains("\\") || part.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                return "the path has a backslash or control character"
            }
        }
        return nil
    }
}

/// What the Kubernetes endpoint does with a request (pure).
public enum KubernetesClassifier {
    /// Headers that make the API server act as someone else: refused outright.
    public static func impersonates(_ headers: [(name: String, value: String)]) -> String? {
        for (name, _) in headers {
            let lowered = name.lowercased()
            if lowered == "impersonate-user" || lowered == "impersonate-group" || lowered == "impersonate-uid"
                || lowered.hasPrefix("impersonate-extra-") {
                return name
            }
        }
        return nil
    }

    /// Subresources that reach into a running workload or a node: refused unless a profile
    /// names them in `kubernetes.allow` (as `pods/exec`, …).
    public static let interactive: Set<String> = ["pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "services/proxy",
                                                  "nodes/proxy", "pods/ephemeralcontainers"]

    /// `allowed`: interactive subresources a profile permits. `readNamespaces`: when set, reads
    /// of namespaced resources outside these are refused (a profile's scope).
    /// `body`: the request's body (a DELETE's body is its DeleteOptions, which the API server
    /// reads instead of the query).
    public static func classify(method: String, path: String, query: String, headers: [(name: String, value: String)],
                                body: [UInt8] = [], allowed: Set<String> = [], readNamespaces: Set<String>? = nil) -> Ruling {
        if let header = impersonates(headers) {
            return Ruling(.deny, "impersonation (\(header)) is refused: the broker acts only as the human's own identity")
        }
        switch KubernetesRequest.read(method: method, path: path, query: query) {
        case .ambiguous(let why):
            return Ruling(.deny, "no single reading: \(why)")
        case .nonResource(let path):
            let upper = method.uppercased()
            if upper == "GET" || upper == "HEAD" { return Ruling(.read, "discovery and non-resource read (\(path))") }
            return Ruling(.mutation, "\(upper) \(path): not a read")
        case .resource(let request):
            let ruling = classify(request, allowed: allowed, readNamespaces: readNamespaces)
            // Only where the API server's generic storage handles dryRun: the object itself,
            // its status and scale. Other subresources (eviction, binding, an aggregated
            // API's own) have handlers of their own that might act anyway.
            if ruling.decision == .mutation, request.subresource == nil || ["status", "scale"].contains(request.subresource!),
               [.create, .update, .patch, .delete, .deletecollection].contains(request.verb),
               (request.verb == .delete || request.verb == .deletecollection) && !body.isEmpty
                   ? deleteOptionsAreDryRun(body, contentType: headers.first { $0.name.lowercased() == "content-type" }?.value)
                   : isServerDryRun(query: query, deleteWithBody: false) {
                return Ruling(.read, "\(request.verb.rawValue) \(request.qualifiedResource) as a server-side dry run (dryRun=All): nothing is stored")
            }
            return ruling
        }
    }

    /// Whether a DELETE's body (its DeleteOptions, `kubectl delete --dry-run=server`) makes it
    /// a dry run: JSON with exactly one reading, `"dryRun": ["All"]`, and no other key that a
    /// case-insensitive decoder would take for it. Anything else (YAML, protobuf, a key twice)
    /// is not read as dry.
    public static func deleteOptionsAreDryRun(_ body: [UInt8], contentType: String?) -> Bool {
        guard let type = contentType.map({ String($0.prefix { $0 != ";" }).trimmingSpaces().lowercased() }), type == "application/json",
              case .object(let pairs)? = try? JSON.parseStrict(bytes: body) else { return false }
        let named = pairs.filter { $0.0.lowercased() == "dryrun" }
        return named.count == 1 && named[0].0 == "dryRun" && named[0].1 == .array([.string("All")])
    }

    /// Whether the API server will only dry-run this request: the query holds `dryRun=All`
    /// exactly once (keys and values read percent-decoded, as the server reads them) and no
    /// other dryRun value. A DELETE with a body is never one: the server then takes its
    /// options from the body and ignores the query (docs/kubernetes.md, "one reading").
    public static func isServerDryRun(query: String, deleteWithBody: Bool) -> Bool {
        guard !deleteWithBody else { return false }
        var values: [String] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let key = String(pair.prefix { $0 != "=" })
            let value = pair.contains("=") ? String(pair.drop { $0 != "=" }.dropFirst()) : ""
            // Go's query parser drops a pair it cannot decode: such a query is not read as a dry run.
            guard PercentEncoding.isValidEscaping(Array(key.utf8)[...]), PercentEncoding.isValidEscaping(Array(value.utf8)[...]) else {
                return false
            }
            if PercentEncoding.decode(key, plusIsSpace: true) == "dryRun" { values.append(PercentEncoding.decode(value, plusIsSpace: true)) }
        }
        return values == ["All"]
    }

    public static func classify(_ request: KubernetesRequest, allowed: Set<String> = [], readNamespaces: Set<String>? = nil) -> Ruling {
        let what = request.qualifiedResource + (request.group.isEmpty ? "" : "." + request.group)
        let described = "\(request.verb.rawValue) \(what)"
        let qualified = request.qualifiedResource
        if interactive.contains(qualified) || qualified.hasPrefix("pods/proxy/") || qualified.hasPrefix("services/proxy/")
            || qualified.hasPrefix("nodes/proxy/") {
            let base = qualified.split(separator: "/").prefix(2).joined(separator: "/")
            if allowed.contains(base) { return Ruling(.mutation, "\(described): allowed by the profile, still a change to approve") }
            return Ruling(.deny, "\(described) reaches into a running workload or node; a profile must allow \(base)")
        }
        // Reviews the API server answers about the caller itself (`kubectl auth can-i`,
        // `kubectl auth whoami`): created, never stored.
        if request.verb == .create && request.subresource == nil
            && ((request.group == "authorization.k8s.io" && ["selfsubjectaccessreviews", "selfsubjectrulesreviews"].contains(request.resource))
                || (request.group == "authentication.k8s.io" && request.resource == "selfsubjectreviews")) {
            return Ruling(.read, "\(described): a question about the caller's own rights, nothing is stored")
        }
        if request.group.isEmpty && request.resource == "serviceaccounts" && request.subresource == "token" {
            return Ruling(.sensitive, "\(described) mints a service account token")
        }
        switch request.verb {
        case .get, .list, .watch:
            if request.group.isEmpty && request.resource == "secrets" {
                return Ruling(.sensitive, "\(described): secrets are gated even to read")
            }
            if let scope = readNamespaces, let namespace = request.namespace, !scope.contains(namespace) {
                return Ruling(.deny, "\(described) in namespace \(namespace): the profile scopes reads to \(scope.sorted().joined(separator: ", "))")
            }
            if request.subresource != nil && !["log", "status", "scale"].contains(request.subresource!) {
                return Ruling(.mutation, "\(described): an unknown subresource counts as a change")
            }
            return Ruling(.read, described)
        case .create, .update, .patch, .delete, .deletecollection:
            return Ruling(.mutation, described)
        }
    }
}
