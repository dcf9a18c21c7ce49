import Foundation
import Testing

/// The Secret and token leaks through Kubernetes, written as the attack (docs/kubernetes.md,
/// "One reading or none" and "Dry runs"): an agent inside `airlock run` sends hand-made
/// requests (Python's http.client, on the endpoint and by CONNECT to the API server's own
/// address) and real kubectl through its shim. The API server is the stand-in
/// (Tests/Support/kube_standin.py; no real one can run here), which decodes paths and honours
/// dry runs as kube-apiserver does: a dry-run write answers with the object, a dry-run
/// DeleteCollection with the list. One session runs every attack; each finding is its own test.
@Suite struct KubernetesLeakTests {
    /// base64 of the seeded Secrets' passwords (prod-hunter2, hunter2) and the stand-in's token prefix.
    static let secretValues = ["cHJvZC1odW50ZXIy", "aHVudGVyMg==", "prod-hunter2", "minted-token-"]

    struct Attack: Sendable {
        var ran = false
        var results: [String: (status: Int, body: String)] = [:]
        var files: [String: String] = [:]
        var requests: [[String: String]] = []
        var proposalList = ""
        var shown: [String: String] = [:]
        var failure = ""
    }

    static let rawClient = #"""
        import http.client, json, os, re, ssl, sys
        port = int(sys.argv[1])
        token = re.search(r'token: "([^"]+)"', open(os.environ["KUBECONFIG"]).read()).group(1)
        context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        bearer = {"Authorization": "Bearer " + token}
        def call(name, method, path, headers=None, body=None, connect=False):
            headers = {**bearer, **(headers or {})}
            try:
                if connect:
                    conn = http.client.HTTPSConnection("127.0.0.1", 3128, context=context, timeout=30)
                    conn.set_tunnel("127.0.0.1", port)
                else:
                    conn = http.client.HTTPSConnection("127.0.0.1", 6443, context=context, timeout=30)
                    path = "/contexts/0" + path
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                result = {"name": name, "status": response.status, "body": response.read().decode("utf-8", "replace")[:2000]}
            except Exception as error:
                result = {"name": name, "status": 0, "body": repr(error)}
            print(json.dumps(result), flush=True)
        json_type = {"Content-Type": "application/json"}
        # 1: an encoded letter, so that a naive reader sees an unknown resource.
        call("encoded-resource-name", "GET", "/api/v1/namespaces/prod/secret%73/db")
        call("encoded-resource-first", "GET", "/api/v1/namespaces/prod/%73ecrets")
        call("encoded-cluster-list", "GET", "/api/v1/%73ecrets")
        call("encoded-watch", "GET", "/api/v1/namespaces/prod/secret%73?watch=1&timeoutSeconds=2")
        call("encoded-connect", "GET", "/api/v1/namespaces/prod/secret%73/db", connect=True)
        # 2: a dry-run write answers with the whole object.
        call("dry-merge", "PATCH", "/api/v1/namespaces/prod/secrets/db?dryRun=All", {"Content-Type": "application/merge-patch+json"}, b"{}")
        call("dry-json-patch", "PATCH", "/api/v1/namespaces/prod/secrets/db?dryRun=All", {"Content-Type": "application/json-patch+json"}, b"[]")
        call("dry-apply", "PATCH", "/api/v1/namespaces/prod/secrets/db?dryRun=All&fieldManager=agent&force=true",
             {"Content-Type": "application/apply-patch+yaml"}, b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"}}')
        call("dry-labels", "PATCH", "/api/v1/namespaces/prod/secrets/db?dryRun=All", {"Content-Type": "application/strategic-merge-patch+json"},
             b'{"metadata":{"labels":{"seen":"yes"}}}')
        call("dry-merge-connect", "PATCH", "/api/v1/namespaces/prod/secrets/db?dryRun=All", {"Content-Type": "application/merge-patch+json"}, b"{}",
             connect=True)
        # 3: a dry-run DeleteCollection answers with everything it would delete.
        call("dry-deletecollection-query", "DELETE", "/api/v1/namespaces/prod/secrets?dryRun=All")
        call("dry-deletecollection-body", "DELETE", "/api/v1/namespaces/prod/secrets", json_type,
             b'{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}')
        call("dry-deletecollection-selector", "DELETE", "/api/v1/namespaces/prod/secrets?dryRun=All&fieldSelector=metadata.name%3Ddb")
        # 6: a method override; a service account token minted.
        call("method-override", "POST", "/api/v1/namespaces/prod/configmaps", {"X-HTTP-Method-Override": "GET", **json_type}, b"{}")
        call("method-override-connect", "GET", "/api/v1/namespaces/prod/configmaps", {"X-HTTP-Method": "DELETE"}, connect=True)
        call("token", "POST", "/api/v1/namespaces/prod/serviceaccounts/deployer/token", json_type,
             b'{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","spec":{}}')
        """#

    static let attack: Attack = run()

    static func run() -> Attack {
        var attack = Attack()
        guard KubernetesEndpointTests.kubectl != nil else {
            attack.failure = "kubectl is not installed (it is on this project's machine image; see docs/kubernetes.md): the Kubernetes leak tests need it"
            return attack
        }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let kube: KubeStandIn
        do {
            kube = try KubeStandIn(directory: scene.root, environment: ["KUBE_STANDIN_SEED": "1", "KUBE_STANDIN_REQUIRE_TOKEN_FOR_READS": "1"])
        } catch {
            attack.failure = "the stand-in did not start: \(error)"
            return attack
        }
        let config = scene.root + "/human-kubeconfig"
        scene.write(config, KubernetesEndpointTests.humanConfig(port: kube.port, caData: kube.caData, plugin: "/bin/false"), mode: 0o600)
        scene.write(scene.workspace + "/raw.py", rawClient)
        scene.write(scene.workspace + "/secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n")
        let out = scene.run(["/bin/sh", "-c", """
            python3 raw.py \(kube.port) > raw.out 2> raw.err
            kubectl apply --server-side --dry-run=server -o yaml -f secret.yaml > shim-apply.out 2> shim-apply.err; echo $? > shim-apply.rc
            kubectl create token deployer -n prod > shim-token.out 2> shim-token.err; echo $? > shim-token.rc
            """], timeout: 240, extraEnvironment: ["KUBECONFIG": config])
        attack.ran = out.status == 0
        if out.status != 0 { attack.failure = "\(out)" }
        for line in scene.file("raw.out").split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let name = object["name"] as? String else { continue }
            attack.results[name] = (object["status"] as? Int ?? -1, object["body"] as? String ?? "")
        }
        for name in ["raw.err", "shim-apply.out", "shim-apply.err", "shim-apply.rc", "shim-token.out", "shim-token.err", "shim-token.rc"] {
            attack.files[name] = scene.file(name)
        }
        attack.requests = kube.requests
        let human = scene.environment.merging(["KUBECONFIG": config]) { $1 }
        attack.proposalList = runProcess(Stage.airlock, ["proposals", "--all", "--json", "--state-dir", scene.stateDir], environment: human,
                                         directory: scene.workspace).stdout
        for (name, result) in attack.results {
            guard let id = result.body.firstMatch(of: /Proposal ([0-9a-f]+)/)?.1 else { continue }
            attack.shown[name] = runProcess(Stage.airlock, ["show", String(id), "--state-dir", scene.stateDir], environment: human,
                                            directory: scene.workspace).stdout
        }
        if let id = scene.file("shim-token.err").firstMatch(of: /Proposal ([0-9a-f]+)/)?.1 {
            attack.shown["shim-token"] = runProcess(Stage.airlock, ["show", String(id), "--state-dir", scene.stateDir], environment: human,
                                                    directory: scene.workspace).stdout
        }
        return attack
    }

    /// What reached the sandbox: every answer and every file the agent wrote.
    static var everythingTheAgentSaw: String {
        attack.results.values.map(\.body).joined(separator: "\n") + attack.files.values.joined(separator: "\n")
    }

    static func ready() -> Bool {
        guard attack.ran else {
            Issue.record(Comment(rawValue: "the attack session did not run: \(attack.failure)"))
            return false
        }
        return true
    }

    /// A proposal that waits for a human, as a sensitive read, and its preview made no read.
    static func expectSensitiveProposal(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let result = attack.results[name]
        #expect(result?.status == 403 && result?.body.contains("Proposal ") == true, "\(name): \(String(describing: result))",
                sourceLocation: sourceLocation)
        #expect(attack.shown[name]?.contains("sensitive") == true, "\(name) is not shown as sensitive: \(attack.shown[name] ?? "")",
                sourceLocation: sourceLocation)
    }

    static func expectNothingSensitiveReached(sourceLocation: SourceLocation = #_sourceLocation) {
        for value in secretValues {
            #expect(!everythingTheAgentSaw.contains(value), "\(value) reached the sandbox", sourceLocation: sourceLocation)
        }
        let reads = attack.requests.filter { ($0["decoded_path"] ?? "").contains("/secrets") || ($0["decoded_path"] ?? "").hasSuffix("/token") }
        #expect(reads.isEmpty, "the API server saw a sensitive request before any approval: \(reads)", sourceLocation: sourceLocation)
        let changes = attack.requests.filter { $0["method"] != "GET" }
        #expect(changes.isEmpty, "the API server saw a change before any approval: \(changes)", sourceLocation: sourceLocation)
    }

    @Test func percentEncodedResourceNamesAreRefused() {
        guard Self.ready() else { return }
        for name in ["encoded-resource-name", "encoded-resource-first", "encoded-cluster-list", "encoded-watch", "encoded-connect"] {
            let result = Self.attack.results[name]
            #expect(result?.status == 403 && result?.body.contains("percent-encoding outside an object's name") == true,
                    "\(name): \(String(describing: result))")
        }
        Self.expectNothingSensitiveReached()
    }

    @Test func aDryRunWriteOfASecretIsASensitiveRead() {
        guard Self.ready() else { return }
        for name in ["dry-merge", "dry-json-patch", "dry-apply", "dry-labels", "dry-merge-connect"] {
            Self.expectSensitiveProposal(name)
        }
        // kubectl through its shim: the shim lets a server dry run through as a read, the endpoint does not.
        #expect(Self.attack.files["shim-apply.rc"] != "0\n" && Self.attack.files["shim-apply.err"]?.contains("Proposal ") == true,
                "\(Self.attack.files["shim-apply.err"] ?? "")")
        Self.expectNothingSensitiveReached()
    }

    @Test func aDryRunDeleteCollectionOfSecretsIsASensitiveRead() {
        guard Self.ready() else { return }
        for name in ["dry-deletecollection-query", "dry-deletecollection-body", "dry-deletecollection-selector"] {
            Self.expectSensitiveProposal(name)
        }
        Self.expectNothingSensitiveReached()
    }

    @Test func methodOverrideHeadersAreRefused() {
        guard Self.ready() else { return }
        for name in ["method-override", "method-override-connect"] {
            let result = Self.attack.results[name]
            #expect(result?.status == 403 && result?.body.contains("asks for another method") == true, "\(name): \(String(describing: result))")
        }
        #expect(!Self.attack.requests.contains { ($0["decoded_path"] ?? "").hasSuffix("/configmaps") }, "an overridden request was forwarded")
    }

    @Test func aServiceAccountTokenIsASensitiveProposal() {
        guard Self.ready() else { return }
        Self.expectSensitiveProposal("token")
        #expect(Self.attack.shown["token"]?.contains("mints a service account token") == true, "\(Self.attack.shown["token"] ?? "")")
        // `kubectl create token` through the shim: a command proposal shown as sensitive.
        #expect(Self.attack.files["shim-token.rc"] != "0\n" && Self.attack.files["shim-token.err"]?.contains("Proposal ") == true,
                "\(Self.attack.files["shim-token.err"] ?? "")")
        #expect(Self.attack.shown["shim-token"]?.contains("sensitive") == true, "\(Self.attack.shown["shim-token"] ?? "")")
        Self.expectNothingSensitiveReached()
    }
}
