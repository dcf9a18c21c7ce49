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

    /// Reads `method path?query` (the path as sent, percent-encoding included) as the API
    /// server's RequestInfo reads the decoded `req.URL.Path` (docs/kubernetes.md, "One reading
    /// or none"): percent-encoding is refused everywhere but in an object's name, which is
    /// decoded once; the query is read as Go reads it (keys decoded), a key given twice refused.
    public static func read(method: String, path: String, query: String) -> Reading {
        if let problem = pathProblem(path) { return .ambiguous(problem) }
        var parameters: [String: String] = [:]
        switch UpstreamReading.goQuery(query) {
        case .failure(let problem): return .ambiguous(problem.description)
        case .success(let pairs):
            for (key, value) in pairs {
                if parameters[key] != nil { return .ambiguous("the query names \(key) twice") }
                parameters[key] = value
            }
        }
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        if parts.last == "" { parts.removeLast() }  // a trailing slash, as the API server allows
        guard let prefix = parts.first, prefix == "api" || prefix == "apis" else {
            // `/%61pi/v1/...` is `/api/v1/...` to the server: no encoding outside an object's name.
            if path.contains("%") { return .ambiguous(Self.encodedStructure(path)) }
            return .nonResource(path: path)
        }
        var group = ""
        var rest = Array(parts.dropFirst())
        if prefix == "apis" {
            guard rest.count >= 2 else { return path.contains("%") ? .ambiguous(Self.encodedStructure(path)) : .nonResource(path: path) }
            group = rest.removeFirst()
        }
        guard !rest.isEmpty else { return path.contains("%") ? .ambiguous(Self.encodedStructure(path)) : .nonResource(path: path) }
        let version = rest.removeFirst()
        guard !rest.isEmpty else { return path.contains("%") ? .ambiguous(Self.encodedStructure(path)) : .nonResource(path: path) }
        var structure = [prefix, group, version]
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
                structure += ["namespaces", rest[1]]
                rest = Array(rest.dropFirst(2))
            } else {
                // The namespace object itself (and its status/finalize).
                namespace = nil
                rest = ["namespaces"] + rest.dropFirst()
            }
        }
        let resource = rest[0]
        var name = rest.count > 1 ? rest[1] : nil
        let subresource = rest.count > 2 ? rest[2...].joined(separator: "/") : nil
        structure += [resource] + (subresource.map { [$0] } ?? [])
        if let encoded = structure.first(where: { $0.contains("%") }) {
            return .ambiguous(Self.encodedStructure(encoded))
        }
        if let raw = name {
            // The one segment that may be encoded (a name kubectl escaped): decoded once, as Go does.
            guard let decoded = UpstreamReading.decodeSegment(Substring(raw)) else {
                return .ambiguous("the object's name \(raw) is not valid percent-encoding")
            }
            name = decoded
        }
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

    /// Why percent-encoding outside a name is refused: the API server decodes the whole path
    /// before it reads the group, version, namespace, resource and subresource.
    static func encodedStructure(_ segment: String) -> String {
        "percent-encoding outside an object's name (\(segment)): the API server decodes the path before it reads the resource, "
            + "so the broker refuses what it could read as another resource"
    }

    /// Why a path has no single reading, if it has none.
    public static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "the path must start with /" }
        // Go's ParseRequestURI keeps a '#' in the path; other parsers cut the path there.
        if path.contains("#") { return "the path has a '#'" }
        guard PercentEncoding.isValidEscaping(Array(path.utf8)[...]) else {
            return "the path has a % that is not followed by two hex digits"
        }
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
    /// of namespaced resources outside these are refused (a profile's scope). `sensitive`:
    /// resources a profile gates even to read (`configmaps`, `widgets.example.com`), on top of
    /// Secrets. `body`: the request's body (a DELETE's body is its DeleteOptions, which the API
    /// server reads instead of the query).
    public static func classify(method: String, path: String, query: String, headers: [(name: String, value: String)],
                                body: [UInt8] = [], allowed: Set<String> = [], readNamespaces: Set<String>? = nil,
                                sensitive: Set<String> = []) -> Ruling {
        if let header = impersonates(headers) {
            return Ruling(.deny, "impersonation (\(header)) is refused: the broker acts only as the human's own identity")
        }
        if let header = UpstreamReading.methodOverride(headers) {
            return Ruling(.deny, "no single reading: \(header) asks for another method than the request's own")
        }
        if let problem = UpstreamReading.methodProblem(method) { return Ruling(.deny, "no single reading: \(problem)") }
        switch KubernetesRequest.read(method: method, path: path, query: query) {
        case .ambiguous(let why):
            return Ruling(.deny, "no single reading: \(why)")
        case .nonResource(let path):
            let upper = method.uppercased()
            if upper == "GET" || upper == "HEAD" { return Ruling(.read, "discovery and non-resource read (\(path))") }
            return Ruling(.mutation, "\(upper) \(path): not a read")
        case .resource(let request):
            let ruling = classify(request, allowed: allowed, readNamespaces: readNamespaces, sensitive: sensitive)
            guard ruling.decision == .mutation || ruling.decision == .sensitive, dryRunHonoured(request) else { return ruling }
            let dry = (request.verb == .delete || request.verb == .deletecollection) && !body.isEmpty
                ? deleteOptionsAreDryRun(body, contentType: headers.first { $0.name.lowercased() == "content-type" }?.value)
                : isServerDryRun(query: query, deleteWithBody: false)
            return dry ? dryRunRuling(request, readNamespaces: readNamespaces, sensitive: sensitive) : ruling
        }
    }

    /// Where the API server's generic storage handles dryRun: writes of the object itself, its
    /// status and scale. Other subresources (eviction, binding, token, an aggregated API's
    /// own) have handlers of their own that might act anyway.
    public static func dryRunHonoured(_ request: KubernetesRequest) -> Bool {
        [.create, .update, .patch, .delete, .deletecollection].contains(request.verb)
            && (request.subresource == nil || ["status", "scale"].contains(request.subresource!))
    }

    /// A server-side dry run stores nothing, but its answer is the object as it would be
    /// stored (a create, update, patch or apply), the object it would delete, or for a
    /// DeleteCollection the list of everything it would delete: as much as a read of the same
    /// target, so it is ruled as that read (docs/kubernetes.md, "Dry runs"). Of a sensitive
    /// resource it is a sensitive read; outside the namespaces a profile scopes reads to it is
    /// refused; otherwise it is a read.
    static func dryRunRuling(_ request: KubernetesRequest, readNamespaces: Set<String>?, sensitive: Set<String>) -> Ruling {
        let what = request.qualifiedResource + (request.group.isEmpty ? "" : "." + request.group)
        let answer = request.verb == .deletecollection ? "the list of every object it would delete" : "the object"
        let described = "\(request.verb.rawValue) \(what) as a server-side dry run (dryRun=All)"
        if isSensitive(request, sensitive: sensitive) {
            return Ruling(.sensitive, "\(described): the API server answers with \(answer), so it is a read of \(request.resource), gated even to read")
        }
        if let outside = outsideReadScope(request, readNamespaces: readNamespaces) {
            return Ruling(.deny, "\(described) answers with \(answer), \(outside)")
        }
        return Ruling(.read, "\(described): nothing is stored; the answer is \(answer), no more than a read shows")
    }

    /// Built-in resources that live outside namespaces: read without one, they are not a read
    /// across namespaces. Any other resource without a namespace (a list of configmaps at
    /// /api/v1/configmaps) is, for all the API server knows, every namespace's.
    static let clusterScoped: Set<String> = [
        "nodes", "namespaces", "persistentvolumes", "componentstatuses", "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io", "customresourcedefinitions.apiextensions.k8s.io",
        "storageclasses.storage.k8s.io", "csidrivers.storage.k8s.io", "csinodes.storage.k8s.io", "volumeattachments.storage.k8s.io",
        "priorityclasses.scheduling.k8s.io", "ingressclasses.networking.k8s.io", "runtimeclasses.node.k8s.io",
        "apiservices.apiregistration.k8s.io", "certificatesigningrequests.certificates.k8s.io",
        "mutatingwebhookconfigurations.admissionregistration.k8s.io", "validatingwebhookconfigurations.admissionregistration.k8s.io",
        "validatingadmissionpolicies.admissionregistration.k8s.io", "validatingadmissionpolicybindings.admissionregistration.k8s.io",
        "flowschemas.flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
    ]

    /// Why a read (or a dry run answering like one) falls outside the namespaces a profile
    /// scopes reads to, if it does: in another namespace, or across all of them.
    static func outsideReadScope(_ request: KubernetesRequest, readNamespaces: Set<String>?) -> String? {
        guard let scope = readNamespaces else { return nil }
        let scoped = scope.sorted().joined(separator: ", ")
        if let namespace = request.namespace {
            return scope.contains(namespace) ? nil : "in namespace \(namespace): the profile scopes reads to \(scoped)"
        }
        let name = request.group.isEmpty ? request.resource : request.resource + "." + request.group
        if clusterScoped.contains(name) { return nil }
        return "across all namespaces: the profile scopes reads to \(scoped); name one (-n NAMESPACE)"
    }

    /// Secrets (the core group's), and what a profile names in `kubernetes.sensitive`
    /// (`resource` for the core group, `resource.group` otherwise).
    public static func isSensitive(_ request: KubernetesRequest, sensitive: Set<String>) -> Bool {
        let name = request.group.isEmpty ? request.resource : request.resource + "." + request.group
        return (request.group.isEmpty && request.resource == "secrets") || sensitive.contains(name)
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

    public static func classify(_ request: KubernetesRequest, allowed: Set<String> = [], readNamespaces: Set<String>? = nil,
                                sensitive: Set<String> = []) -> Ruling {
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
            if isSensitive(request, sensitive: sensitive) {
                return Ruling(.sensitive, "\(described): \(request.resource) are gated even to read")
            }
            if let outside = outsideReadScope(request, readNamespaces: readNamespaces) {
                return Ruling(.deny, "\(described) \(outside)")
            }
            if request.subresource != nil && !["log", "status", "scale"].contains(request.subresource!) {
                return Ruling(.mutation, "\(described): an unknown subresource counts as a change")
            }
            return Ruling(.read, described)
        case .create, .update, .patch, .delete, .deletecollection:
            // The API server answers a write with the object as stored (a DeleteCollection with
            // the list it deleted): once approved, that answer reaches the agent through
            // `airlock wait`, so the human is told it is also a read of the secret.
            if isSensitive(request, sensitive: sensitive) {
                return Ruling(.sensitive, "\(described): changes \(request.resource), and the answer the agent receives carries them")
            }
            return Ruling(.mutation, described)
        }
    }
}
