import AirlockPolicy
import Testing

/// The Kubernetes and GitHub classification tables (issue: Kubernetes and GitHub through the
/// broker): every rule with a request that hits it, and the requests an agent would craft to
/// read one way to Airlock and another to the server.
@Suite struct KubernetesClassifierTests {
    static let table: [(method: String, path: String, query: String, decision: Decision)] = [
        // Discovery and non-resource reads.
        ("GET", "/api", "", .read), ("GET", "/apis", "", .read), ("GET", "/api/v1", "", .read), ("GET", "/apis/apps/v1", "", .read),
        ("GET", "/version", "", .read), ("GET", "/openapi/v3/apis/apps/v1", "", .read), ("GET", "/healthz", "", .read),
        ("POST", "/version", "", .mutation),
        // Reads.
        ("GET", "/api/v1/namespaces/prod/pods", "", .read), ("GET", "/api/v1/namespaces/prod/pods/web-1", "", .read),
        ("GET", "/api/v1/namespaces/prod/pods/web-1/log", "", .read),
        ("GET", "/apis/apps/v1/namespaces/prod/deployments/web", "", .read), ("GET", "/apis/apps/v1/deployments", "", .read),
        ("GET", "/api/v1/namespaces/prod/pods", "watch=true", .read), ("GET", "/api/v1/watch/namespaces/prod/pods", "", .read),
        ("GET", "/api/v1/namespaces", "", .read), ("GET", "/api/v1/namespaces/prod", "", .read), ("GET", "/api/v1/nodes/n1", "", .read),
        ("GET", "/apis/apps/v1/namespaces/prod/deployments/web/scale", "", .read),
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "", .read),
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "", .read),
        // Sensitive.
        ("GET", "/api/v1/namespaces/prod/secrets", "", .sensitive), ("GET", "/api/v1/namespaces/prod/secrets/db", "", .sensitive),
        ("GET", "/api/v1/secrets", "watch=1", .sensitive), ("GET", "/api/v1/watch/secrets", "", .sensitive),
        ("POST", "/api/v1/namespaces/prod/serviceaccounts/deployer/token", "", .sensitive),
        // Changes.
        ("POST", "/api/v1/namespaces/prod/configmaps", "", .mutation), ("PUT", "/api/v1/namespaces/prod/configmaps/c", "", .mutation),
        ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web", "", .mutation),
        ("DELETE", "/apis/apps/v1/namespaces/prod/deployments/prod", "", .mutation),
        ("DELETE", "/api/v1/namespaces/prod/pods", "", .mutation), ("DELETE", "/api/v1/namespaces/prod", "", .mutation),
        ("PUT", "/api/v1/namespaces/prod/finalize", "", .mutation),
        // A write of a Secret is answered with the Secret: once approved, the agent receives it.
        ("POST", "/api/v1/namespaces/prod/secrets", "", .sensitive), ("PATCH", "/api/v1/namespaces/prod/secrets/db", "", .sensitive),
        ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web/scale", "", .mutation),
        ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", "", .mutation),
        ("GET", "/api/v1/namespaces/prod/pods/web-1/unknownsub", "", .mutation),
        // Into workloads and nodes: refused without a profile's allowance.
        ("POST", "/api/v1/namespaces/prod/pods/web-1/exec", "command=sh", .deny), ("GET", "/api/v1/namespaces/prod/pods/web-1/exec", "", .deny),
        ("POST", "/api/v1/namespaces/prod/pods/web-1/attach", "", .deny), ("POST", "/api/v1/namespaces/prod/pods/web-1/portforward", "", .deny),
        ("GET", "/api/v1/namespaces/prod/pods/web-1/proxy/metrics", "", .deny), ("GET", "/api/v1/nodes/n1/proxy/stats", "", .deny),
        ("GET", "/api/v1/namespaces/prod/services/web/proxy", "", .deny),
        ("PATCH", "/api/v1/namespaces/prod/pods/web-1/ephemeralcontainers", "", .deny),
        // No single reading.
        ("GET", "/api/v1/namespaces/prod//pods", "", .deny), ("GET", "/api/v1/namespaces/prod/./secrets", "", .deny),
        ("GET", "/api/v1/namespaces/prod/pods/../secrets/db", "", .deny), ("GET", "/api/v1/namespaces/prod/pods%2F..%2Fsecrets", "", .deny),
        ("GET", "/api/v1/namespaces/prod/%2e%2e/secrets", "", .deny), ("GET", "/api/v1/pods", "watch=false&watch=true", .deny),
        ("GET", "/api/v1/namespaces/prod/pods/a/b/c", "", .deny), ("TRACE", "/api/v1/pods", "", .deny),
        ("POST", "/api/v1/watch/pods", "", .deny),
    ]

    @Test func everyRuleOfTheTable() {
        for row in Self.table {
            let ruling = KubernetesClassifier.classify(method: row.method, path: row.path, query: row.query, headers: [])
            #expect(ruling.decision == row.decision, "\(row.method) \(row.path)?\(row.query): \(ruling)")
            #expect(!ruling.rule.isEmpty)
        }
    }

    @Test func readsTheRequestAsTheAPIServerDoes() {
        let read = KubernetesRequest.read(method: "DELETE", path: "/apis/apps/v1/namespaces/prod/deployments/prod", query: "")
        #expect(read == .resource(KubernetesRequest(verb: .delete, group: "apps", version: "v1", namespace: "prod",
                                                    resource: "deployments", name: "prod", subresource: nil)))
        let status = KubernetesRequest.read(method: "PUT", path: "/api/v1/namespaces/prod/status", query: "")
        #expect(status == .resource(KubernetesRequest(verb: .update, group: "", version: "v1", namespace: nil,
                                                      resource: "namespaces", name: "prod", subresource: "status")))
        let watch = KubernetesRequest.read(method: "GET", path: "/api/v1/watch/namespaces/prod/pods/", query: "")
        #expect(watch == .resource(KubernetesRequest(verb: .watch, group: "", version: "v1", namespace: "prod",
                                                     resource: "pods", name: nil, subresource: nil)))
    }

    @Test func impersonationIsRefusedWhateverTheVerb() {
        for header in ["Impersonate-User", "impersonate-group", "Impersonate-Uid", "Impersonate-Extra-scopes"] {
            let ruling = KubernetesClassifier.classify(method: "GET", path: "/api/v1/pods", query: "", headers: [(header, "admin")])
            #expect(ruling.decision == .deny, "\(header)")
        }
    }

    /// The gateways forward a method as sent and classify it upper-cased: one not in capitals
    /// has two readings (Go's router matches methods case-sensitively) and is refused.
    @Test func aMethodNotInCapitalsIsRefused() {
        for method in ["get", "Get", "delete", "pAtch"] {
            #expect(KubernetesClassifier.classify(method: method, path: "/api/v1/namespaces/dev/pods", query: "", headers: []).decision == .deny, "\(method)")
            #expect(GitSmartHTTP.classify(method: method, path: "/acme/app.git/info/refs", query: "service=git-upload-pack").decision == .deny, "\(method)")
        }
    }

    @Test func aProfileAllowsExecAndScopesReads() {
        let exec = KubernetesClassifier.classify(method: "POST", path: "/api/v1/namespaces/dev/pods/p/exec", query: "", headers: [],
                                                 allowed: ["pods/exec"])
        #expect(exec.decision == .mutation)
        let scope: Set<String> = ["dev"]
        #expect(KubernetesClassifier.classify(method: "GET", path: "/api/v1/namespaces/dev/pods", query: "", headers: [],
                                              readNamespaces: scope).decision == .read)
        #expect(KubernetesClassifier.classify(method: "GET", path: "/api/v1/namespaces/prod/pods", query: "", headers: [],
                                              readNamespaces: scope).decision == .deny)
        // A list without a namespace is every namespace's (`kubectl get configmaps -A`), a
        // watch too; a custom resource's as well (its scope is unknown here): refused under a
        // scope. Built-in cluster-scoped resources are not namespaced reads.
        for path in ["/api/v1/configmaps", "/apis/apps/v1/deployments", "/apis/example.com/v1/widgets"] {
            for query in ["", "watch=true"] {
                let ruling = KubernetesClassifier.classify(method: "GET", path: path, query: query, headers: [], readNamespaces: scope)
                #expect(ruling.decision == .deny && ruling.rule.contains("across all namespaces"), "\(path)?\(query): \(ruling)")
            }
        }
        let dryRunAcross = KubernetesClassifier.classify(method: "DELETE", path: "/api/v1/configmaps", query: "dryRun=All", headers: [],
                                                         readNamespaces: scope)
        #expect(dryRunAcross.decision == .deny, "\(dryRunAcross)")
        for path in ["/api/v1/nodes", "/api/v1/persistentvolumes", "/apis/rbac.authorization.k8s.io/v1/clusterroles"] {
            #expect(KubernetesClassifier.classify(method: "GET", path: path, query: "", headers: [], readNamespaces: scope).decision == .read, "\(path)")
        }
        #expect(KubernetesClassifier.classify(method: "GET", path: "/api/v1/configmaps", query: "", headers: []).decision == .read)
    }
}

@Suite struct GitHubClassifierTests {
    static let rest: [(String, String, Decision)] = [
        ("GET", "/repos/acme/web", .read), ("HEAD", "/repos/acme/web/pulls", .read), ("GET", "/user", .read),
        ("GET", "/repos/acme/web/contents/README.md?ref=main", .read),
        ("POST", "/repos/acme/web/issues", .mutation), ("PUT", "/repos/acme/web/pulls/7/merge", .mutation),
        ("PATCH", "/repos/acme/web", .mutation), ("DELETE", "/repos/acme/web", .mutation), ("OPTIONS", "/repos/acme/web", .mutation),
        ("GET", "/repos/acme/web/actions/secrets", .sensitive), ("GET", "/repos/acme/web/actions/secrets/public-key", .sensitive),
        ("POST", "/repos/acme/web/actions/runners/registration-token", .sensitive),
        ("POST", "/app/installations/1/access_tokens", .sensitive), ("GET", "/orgs/acme/personal-access-tokens", .sensitive),
        ("GET", "/repos/acme/web/../secrets", .deny), ("GET", "/repos/acme//web", .deny), ("GET", "/repos/acme/web%2F..%2Fx", .deny),
        // One reading: a method not in capitals is forwarded as sent, so it is refused; Rails
        // routes a format (`secrets.json`) and Rack splits queries on ';' too.
        ("get", "/repos/acme/web", .deny), ("Post", "/repos/acme/web/issues", .deny),
        ("GET", "/repos/acme/web/actions/secrets.json", .sensitive), ("GET", "/repos/acme/web/actions/secrets;x=1", .sensitive),
        ("GET", "/repos/acme/web/pulls?state=open;_method=DELETE", .deny), ("GET", "/repos/acme/web/pulls?state=%zz", .deny),
        ("GET", "/graphql.json?query=%7Bviewer%7D", .deny),
    ]

    @Test func everyRESTRule() {
        for (method, path, decision) in Self.rest {
            let ruling = GitHubClassifier.classifyREST(method: method, path: path)
            #expect(ruling.decision == decision, "\(method) \(path): \(ruling)")
        }
    }

    static let graphql: [(document: String, name: String?, decision: Decision)] = [
        ("query { viewer { login } }", nil, .read),
        ("{ repository(owner: \"acme\", name: \"web\") { id } }", nil, .read),
        ("query Q($n: Int = 3) @cached { viewer { repositories(first: $n) { nodes { name } } } }", nil, .read),
        ("mutation { mergePullRequest(input: {pullRequestId: \"x\"}) { clientMutationId } }", nil, .mutation),
        ("mutation M { addStar(input: {starrableId: \"x\"}) { clientMutationId } }", "M", .mutation),
        ("subscription { x }", nil, .mutation),
        // The word mutation inside a string, a block string or a comment changes nothing.
        ("query { search(query: \"mutation { deleteRepository }\", type: REPOSITORY) { repositoryCount } }", nil, .read),
        ("query { a(b: \"\"\"mutation {\"\"\") { c } } # mutation { x }", nil, .read),
        ("fragment F on User { login } query { viewer { ...F } }", nil, .read),
        // Two operations: operationName decides; without it, or naming neither, it is a change.
        ("query R { viewer { login } } mutation W { addStar(input: {}) { x } }", "R", .read),
        ("query R { viewer { login } } mutation W { addStar(input: {}) { x } }", "W", .mutation),
        ("query R { viewer { login } } mutation W { addStar(input: {}) { x } }", nil, .mutation),
        ("query R { viewer { login } } mutation W { addStar(input: {}) { x } }", "X", .mutation),
        ("{ a } mutation { b }", nil, .mutation), ("query R { a } query R { b }", "R", .mutation),
        // Does not parse: a change.
        ("", nil, .mutation), ("query { viewer { login }", nil, .mutation), ("query { a(b: \"unterminated) }", nil, .mutation),
        ("type Query { a: Int }", nil, .mutation), ("query { a } }", nil, .mutation), ("query ( { a }", nil, .mutation),
        ("query { a: . }", nil, .mutation), ("query { a } ☃", nil, .mutation),
    ]

    @Test func everyGraphQLRule() {
        for row in Self.graphql {
            let ruling = GitHubClassifier.classifyGraphQL(document: row.document, operationName: row.name)
            #expect(ruling.decision == row.decision, "\(row.document) [\(row.name ?? "-")]: \(ruling)")
        }
    }

    @Test func operationsAreFoundInOrder() throws {
        let found = try GraphQLDocument.operations("query A { a } mutation B { b } { c }").get()
        #expect(found.map(\.kind) == [.query, .mutation, .query])
        #expect(found.map(\.name) == ["A", "B", nil])
    }
}
