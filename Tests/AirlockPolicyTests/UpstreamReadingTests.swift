import AirlockPolicy
import Foundation
import Testing

/// One reading, the upstream's (docs/design.md, invariant 8): percent-encoded paths as the
/// Kubernetes API server (Go's net/http) and GitHub's router decode them, and dry runs whose
/// answer is a read. Every row that is not refused is checked again against an independent
/// decoder (Foundation's `removingPercentEncoding`): the broker must classify the decoded path
/// the way it classified the raw one.
@Suite struct EncodedPathTests {
    static let kubernetes: [(method: String, path: String, query: String, decision: Decision)] = [
        // The attacks: an encoded letter makes `secrets` something else to a naive reader.
        ("GET", "/api/v1/namespaces/prod/secret%73/db", "", .deny),
        ("GET", "/api/v1/namespaces/prod/%73ecrets", "", .deny),
        ("GET", "/api/v1/%73ecrets", "", .deny),
        ("GET", "/api/v1/namespaces/prod/secret%73", "watch=1", .deny),
        ("GET", "/api/v1/namespaces/prod/secret%53/db", "", .deny),
        ("GET", "/api/v1/namespaces/prod/secrets%2Fdb", "", .deny),
        // Every structural segment: prefix, group, version, watch, namespaces, namespace, subresource.
        ("GET", "/%61pi/v1/namespaces/prod/secrets", "", .deny),
        ("GET", "/ap%69/v1/secrets", "", .deny),
        ("GET", "/apis/app%73/v1/namespaces/prod/deployments", "", .deny),
        ("GET", "/api/v%31/secrets", "", .deny),
        ("GET", "/api/v1/%77atch/secrets", "", .deny),
        ("GET", "/api/v1/namespace%73/prod/secrets", "", .deny),
        ("GET", "/api/v1/namespaces/pr%6fd/configmaps", "", .deny),
        ("GET", "/api/v1/namespaces/prod/pods/web/lo%67", "", .deny),
        ("POST", "/api/v1/namespaces/prod/pods/web/exe%63", "", .deny),
        ("POST", "/api/v1/namespaces/prod/serviceaccounts/deployer/toke%6e", "", .deny),
        ("GET", "/version%3F", "", .deny),
        ("GET", "/healthz%20", "", .deny),
        // Invalid escapes and other second readings.
        ("GET", "/api/v1/namespaces/prod/configmaps/x%zz", "", .deny),
        ("GET", "/api/v1/namespaces/prod/configmaps/x%", "", .deny),
        ("GET", "/api/v1/namespaces/prod/secrets/db#x", "", .deny),
        ("GET", "/api/v1/namespaces/prod/configmaps", "a=1;b=2", .deny),
        ("GET", "/api/v1/pods", "watch=1&%77atch=0", .deny),
        ("GET", "/api/v1/pods", "labelSelector=a%zz", .deny),
        // An object's name may be encoded: decoded once, classified as the server routes it.
        ("GET", "/api/v1/namespaces/prod/configmaps/my%2Dsettings", "", .read),
        ("GET", "/api/v1/namespaces/prod/configmaps/a%20b", "", .read),
        ("GET", "/api/v1/namespaces/prod/secrets/db%2Dx", "", .sensitive),
        ("DELETE", "/api/v1/namespaces/prod/configmaps/c%6d", "", .mutation),
        // Query keys are read decoded, as Go reads them.
        ("GET", "/api/v1/namespaces/prod/secrets", "%77atch=1", .sensitive),
        ("PATCH", "/api/v1/namespaces/prod/configmaps/c", "dry%52un=All", .read),
        ("PATCH", "/api/v1/namespaces/prod/secrets/db", "dry%52un=All", .sensitive),
    ]

    static let githubREST: [(method: String, path: String, decision: Decision)] = [
        ("GET", "/repos/o/r/actions/secret%73", .deny),
        ("GET", "/repos/o/r/actions/%73ecrets/public-key", .deny),
        ("GET", "/user/key%73", .deny),
        ("GET", "/user/%6Beys", .deny),
        ("GET", "/orgs/o/actions/secret%53", .deny),
        ("GET", "/rep%6fs/o/r", .deny),
        ("GET", "/repos/o/r/x%zz", .deny),
        ("GET", "/repos/o/r/contents/a%2F..%2Fb", .deny),
        // GraphQL is exactly /graphql by POST: a variant is no REST read.
        ("GET", "/graphql/", .deny), ("GET", "/GraphQL", .deny), ("GET", "/graphq%6c", .deny), ("POST", "/graphql/", .deny),
        // git's protocol on an API path: never a push or a fetch there.
        ("POST", "/o/r.git/git-receive-pack", .deny), ("POST", "/o/r/git-upload-pack", .deny),
        ("GET", "/o/r.git/info/refs?service=git-receive-pack", .deny),
        ("DELETE", "/repos/o/r?_method=GET", .deny), ("POST", "/repos/o/r/issues?_method=DELETE", .deny),
        // Names may be encoded (a space, a colon): decoded once, then classified.
        ("GET", "/repos/o/r/contents/docs%20guide.md", .read), ("GET", "/repos/o/r/labels/bug%3Afix", .read),
        ("GET", "/repos/o/r/actions/secrets/MY%20SECRET", .sensitive), ("PUT", "/repos/o/r/actions/secrets/A%20B", .sensitive),
        ("DELETE", "/repos/o/r/labels/bug%3Afix", .mutation),
        // Found by the github-path fuzz target: an unknown method on a secrets route.
        ("GEE", "/user/keys", .sensitive), ("PROPFIND", "/repos/o/r/actions/secrets", .sensitive),
        ("PO[T", "/o/r.git/git-receive-pack", .deny), ("GET", "/o/r.git/info/refs", .deny),
    ]

    static let git: [(method: String, path: String, query: String, decision: Decision)] = [
        ("POST", "/o/r.git/git-receive-pac%6b", "", .deny),
        ("GET", "/o/r.git/info/ref%73", "service=git-upload-pack", .deny),
        ("GET", "/o/r.git/info/refs", "%73ervice=git-receive-pack", .read),
        ("GET", "/o/r.git/info/refs", "service=git-upload-pack&%73ervice=git-receive-pack", .deny),
        ("POST", "/o/r.git/git-receive-pack", "", .mutation),
    ]

    @Test func kubernetesPaths() {
        for row in Self.kubernetes {
            let ruling = KubernetesClassifier.classify(method: row.method, path: row.path, query: row.query, headers: [])
            #expect(ruling.decision == row.decision, "\(row.method) \(row.path)?\(row.query): \(ruling)")
            guard ruling.decision != .deny, let decoded = row.path.removingPercentEncoding,
                  !decoded.contains("/") || decoded.split(separator: "/").count == row.path.split(separator: "/").count else { continue }
            // The independent decoder's path, re-encoded only where a name needs it, rules alike.
            let plain = decoded.split(separator: "/", omittingEmptySubsequences: false).map {
                $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? String($0)
            }.joined(separator: "/")
            let again = KubernetesClassifier.classify(method: row.method, path: plain, query: row.query.removingPercentEncoding ?? row.query, headers: [])
            #expect(again.decision == ruling.decision, "\(row.path) read as \(ruling.decision), decoded \(plain) as \(again.decision)")
        }
    }

    @Test func gitHubPaths() {
        for row in Self.githubREST {
            let ruling = GitHubClassifier.classifyREST(method: row.method, path: row.path)
            #expect(ruling.decision == row.decision, "\(row.method) \(row.path): \(ruling)")
            guard ruling.decision != .deny, let decoded = row.path.removingPercentEncoding else { continue }
            let plain = decoded.split(separator: "/", omittingEmptySubsequences: false).map {
                $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? String($0)
            }.joined(separator: "/")
            #expect(GitHubClassifier.classifyREST(method: row.method, path: plain).decision == ruling.decision, "\(row.path) vs \(plain)")
        }
        for row in Self.git {
            let ruling = GitSmartHTTP.classify(method: row.method, path: row.path, query: row.query)
            #expect(ruling.decision == row.decision, "\(row.method) \(row.path)?\(row.query): \(ruling)")
        }
        #expect(Self.kubernetes.count + Self.githubREST.count + Self.git.count >= 40)
    }

    @Test func methodOverridesAreRefusedEverywhere() {
        for header in ["X-HTTP-Method-Override", "x-http-method", "X-Method-Override"] {
            #expect(KubernetesClassifier.classify(method: "GET", path: "/api/v1/namespaces/p/configmaps", query: "",
                                                  headers: [(header, "DELETE")]).decision == .deny, "\(header)")
            #expect(UpstreamReading.methodOverride([("Accept", "x"), (header, "DELETE")]) == header)
            let aws = AWSRequest(method: "POST", path: "/", query: "", headers: [("Host", "sts.amazonaws.com"), (header, "GET")], body: [])
            #expect(UpstreamReading.methodOverride(aws.headers) != nil)
        }
        #expect(UpstreamReading.methodOverride([("X-HTTP-Method-Overrides", "x")]) == nil)
    }

    @Test func queriesAreReadAsGoReadsThem() throws {
        let pairs = try UpstreamReading.goQuery("a=1&b%3D=x+y&%64ryRun=All").get()
        #expect(pairs.map(\.key) == ["a", "b=", "dryRun"] && pairs.map(\.value) == ["1", "x y", "All"])
        #expect((try? UpstreamReading.goQuery("a=1;b=2").get()) == nil)
        #expect((try? UpstreamReading.goQuery("a=%G1").get()) == nil)
    }
}

/// A dry run is a read only when its answer cannot carry what a read of the target could not
/// (docs/kubernetes.md, "Dry runs"): every verb × subresource × dryRun form, for a Secret, a
/// resource a profile marks sensitive, a plain one, and a namespace outside the read scope.
@Suite struct KubernetesDryRunSensitivityTests {
    enum Form: String, CaseIterable { case none, query, encodedQuery, twice, body, queryWithRealBody }

    struct Target { var group: String; var resource: String; var sensitive: Bool }
    static let targets = [Target(group: "", resource: "secrets", sensitive: true),
                          Target(group: "example.com", resource: "widgets", sensitive: true),
                          Target(group: "", resource: "configmaps", sensitive: false),
                          Target(group: "apps", resource: "deployments", sensitive: false)]
    static let verbs: [(method: String, named: Bool)] = [("POST", false), ("PUT", true), ("PATCH", true), ("DELETE", true), ("DELETE", false)]
    static let subresources: [String?] = [nil, "status", "scale", "eviction"]

    /// What the rules say, written from docs/kubernetes.md rather than from the classifier.
    static func expected(_ target: Target, method: String, named: Bool, subresource: String?, form: Form, namespace: String) -> Decision {
        if form == .twice { return .deny }
        let dryHonoured = subresource == nil || subresource == "status" || subresource == "scale"
        let isDelete = method == "DELETE"
        let dry: Bool
        switch form {
        case .none, .twice: dry = false
        case .query, .encodedQuery: dry = true
        case .body: dry = isDelete
        case .queryWithRealBody: dry = !isDelete
        }
        if dry && dryHonoured {
            if target.sensitive { return .sensitive }
            return namespace == "prod" ? .read : .deny
        }
        return target.sensitive ? .sensitive : .mutation
    }

    @Test func everyVerbSubresourceAndForm() {
        var rows = 0
        for target in Self.targets {
            for (method, named) in Self.verbs {
                for subresource in Self.subresources where subresource == nil || named {
                    for form in Form.allCases {
                        for namespace in ["prod", "kube-system"] {
                            // DeleteOptions bodies only go with DELETEs.
                            if form == .body && method != "DELETE" { continue }
                            let base = (target.group.isEmpty ? "/api/v1" : "/apis/\(target.group)/v1") + "/namespaces/\(namespace)/\(target.resource)"
                            let path = base + (named ? "/x" : "") + (subresource.map { "/" + $0 } ?? "")
                            var query = ""
                            var body: [UInt8] = []
                            var headers: [(name: String, value: String)] = []
                            switch form {
                            case .none: break
                            case .query: query = "dryRun=All&fieldManager=kubectl"
                            case .encodedQuery: query = "dry%52un=All"
                            case .twice: query = "dryRun=All&dryRun=All"
                            case .body:
                                body = Array(#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}"#.utf8)
                                headers = [("Content-Type", "application/json")]
                            case .queryWithRealBody:
                                query = "dryRun=All"
                                body = Array((method == "DELETE" ? #"{"propagationPolicy":"Background"}"# : #"{"metadata":{"labels":{"a":"b"}}}"#).utf8)
                                headers = [("Content-Type", "application/json")]
                            }
                            let ruling = KubernetesClassifier.classify(method: method, path: path, query: query, headers: headers, body: body,
                                                                       readNamespaces: ["prod"], sensitive: ["widgets.example.com"])
                            let want = Self.expected(target, method: method, named: named, subresource: subresource, form: form, namespace: namespace)
                            #expect(ruling.decision == want, "\(method) \(path)?\(query) [\(form)]: \(ruling)")
                            rows += 1
                        }
                    }
                }
            }
        }
        #expect(rows > 200)
    }

    @Test func tokenRequestsAreSensitiveWhateverTheForm() {
        for query in ["", "dryRun=All"] {
            let ruling = KubernetesClassifier.classify(method: "POST", path: "/api/v1/namespaces/prod/serviceaccounts/deployer/token", query: query,
                                                       headers: [], readNamespaces: ["prod"])
            #expect(ruling.decision == .sensitive, "\(query): \(ruling)")
        }
    }
}
