import Foundation
import Testing

/// The broker's Kubernetes endpoint (docs/kubernetes.md) with real kubectl in the sandbox,
/// called directly (the shim bypassed) and through its shim, and with Python's http.client
/// on the endpoint and on a CONNECT to the API server's own address. The API server is the
/// stand-in (Tests/Support/kube_standin.py): no real one can run here. It demands the human's
/// token even for reads, so every read that succeeds went through the broker.
@Suite struct KubernetesEndpointTests {
    static let kubectl = ["/usr/local/bin/kubectl", "/usr/bin/kubectl"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The human's kubeconfig: two contexts on the stand-in, one with a token, one with an
    /// exec plugin (run by the broker, outside the sandbox).
    static func humanConfig(port: Int, caData: String, plugin: String) -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: standin
          cluster:
            server: https://127.0.0.1:\(port)
            certificate-authority-data: \(caData)
            tls-server-name: kube.test
        contexts:
        - name: prod
          context: {cluster: standin, user: person, namespace: default}
        - name: staging
          context: {cluster: standin, user: plugin}
        current-context: prod
        users:
        - name: person
          user: {token: host-secret-token}
        - name: plugin
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1
              command: \(plugin)
              interactiveMode: Never

        """
    }

    /// What the agent tries by hand: requests a kubeconfig-less client could make.
    static let rawClient = #"""
        import http.client, json, os, re, ssl, sys
        port = int(sys.argv[1])
        token = re.search(r'token: "([^"]+)"', open(os.environ["KUBECONFIG"]).read()).group(1)
        context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        def call(name, method, path, headers=None, body=None, connect=False):
            headers = dict(headers or {})
            try:
                if connect:
                    # The API server's own address, through the egress proxy (HTTPS_PROXY).
                    conn = http.client.HTTPSConnection("127.0.0.1", 3128, context=context, timeout=30)
                    conn.set_tunnel("127.0.0.1", port)
                else:
                    conn = http.client.HTTPSConnection("127.0.0.1", 6443, context=context, timeout=30)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                result = {"name": name, "status": response.status, "body": response.read().decode("utf-8", "replace")[:600]}
            except Exception as error:
                result = {"name": name, "status": 0, "body": repr(error)}
            print(json.dumps(result), flush=True)
        bearer = {"Authorization": "Bearer " + token}
        call("exec", "POST", "/contexts/0/api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true", bearer)
        call("impersonate", "GET", "/contexts/0/api/v1/namespaces/default/configmaps", {**bearer, "Impersonate-User": "admin"})
        call("no-token", "GET", "/contexts/0/api/v1/namespaces/default/configmaps")
        call("wrong-token", "GET", "/contexts/0/api/v1/namespaces/default/configmaps", {"Authorization": "Bearer host-secret-token"})
        call("bad-context", "GET", "/contexts/01/api", bearer)
        call("gzip-body", "POST", "/contexts/0/api/v1/namespaces/default/configmaps", {**bearer, "Content-Encoding": "gzip"}, b"x")
        # dryRun in the query, options in the body: the API server reads the body and deletes.
        call("delete-dry-query-real-body", "DELETE", "/contexts/0/api/v1/namespaces/default/configmaps/settings?dryRun=All",
             {**bearer, "Content-Type": "application/json"}, b'{"propagationPolicy":"Background"}')
        call("connect-read", "GET", "/api/v1/namespaces/default/configmaps", bearer, connect=True)
        call("connect-no-token", "GET", "/api/v1/namespaces/default/configmaps", connect=True)
        call("connect-delete", "DELETE", "/api/v1/namespaces/default/configmaps/settings", bearer, connect=True)
        """#

    @Test func kubectlReadsPassWithTheHumansTokenAndChangesWaitForApproval() throws {
        guard Launch.anyAvailable() else { return }
        guard Self.kubectl != nil else {
            Issue.record("kubectl is not installed (it is on this project's machine image; see docs/kubernetes.md): the Kubernetes endpoint test needs it")
            return
        }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let kube = try KubeStandIn(directory: scene.root, environment: ["KUBE_STANDIN_SEED": "1", "KUBE_STANDIN_REQUIRE_TOKEN_FOR_READS": "1"])
        let plugin = scene.root + "/token-plugin.sh"
        scene.write(plugin, """
            #!/bin/sh
            echo ran >> \(scene.root)/plugin-ran
            echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"host-secret-token"}}'

            """, mode: 0o755)
        let config = scene.root + "/human-kubeconfig"
        scene.write(config, Self.humanConfig(port: kube.port, caData: kube.caData, plugin: plugin), mode: 0o600)
        scene.write(scene.workspace + "/raw.py", Self.rawClient)
        let human = scene.environment.merging(["KUBECONFIG": config]) { $1 }
        var before: [[String: String]] = []
        var shown = Outcome(status: -1, stdout: "", stderr: "")
        var approval = shown
        var secretShown = shown
        let profile = scene.egressProfile("kubernetes:\n  read_namespaces: [default]\n", name: "kube-scope.yaml")
        let out = scene.run(["/bin/sh", "-c", """
            K=/run/airlock/tools/kubectl  # the real binary, the shim bypassed
            cat "$KUBECONFIG" > kubeconfig.seen; env > env.seen; cat \(config) > human.seen 2>&1
            kubectl get deployments -o name > shim-get.out 2> shim-get.err; echo $? > shim-get.rc
            $K get deployment prod -o json > get.out 2> get.err; echo $? > get.rc
            $K --context staging get configmaps -o name > staging.out 2> staging.err; echo $? > staging.rc
            $K get secret db-password -o yaml > secret.out 2> secret.err; echo $? > secret.rc
            $K delete deployment prod --dry-run=server > dry.out 2> dry.err; echo $? > dry.rc
            $K get deployments -w -o name > watch.out 2> watch.err & WATCH=$!
            sleep 1
            $K delete deployment prod > delete.out 2> delete.err; echo $? > delete.rc
            $K exec prod-0 -- sh > exec.out 2> exec.err; echo $? > exec.rc
            $K get configmaps -n prod > scope.out 2> scope.err; echo $? > scope.rc
            python3 raw.py \(kube.port) > raw.out 2> raw.err
            grep -o 'Proposal [0-9a-f]*' delete.err | cut -d' ' -f2 > id.txt
            grep -o 'Proposal [0-9a-f]*' secret.err | cut -d' ' -f2 > secret-id.txt
            touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            sleep 2; cp watch.out watch.after; kill $WATCH
            """], options: ["--profile", profile], timeout: 300, extraEnvironment: ["KUBECONFIG": config]) { _ in
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            before = kube.requests
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            shown = runProcess(Stage.airlock, ["show", id, "--state-dir", scene.stateDir], environment: human, directory: scene.workspace)
            secretShown = runProcess(Stage.airlock, ["show", scene.file("secret-id.txt").trimmingCharacters(in: .whitespacesAndNewlines),
                                                     "--state-dir", scene.stateDir], environment: human, directory: scene.workspace)
            approval = runProcess(Stage.airlock, ["approve", id, "--state-dir", scene.stateDir], environment: human,
                                  directory: scene.workspace, timeout: 120)
        }
        #expect(out.status == 0, "\(out)")
        let raw = Dictionary(scene.file("raw.out").split(separator: "\n").compactMap { line -> (String, [String: Any])? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let name = object["name"] as? String
            else { return nil }
            return (name, object)
        }, uniquingKeysWith: { a, _ in a })
        func status(_ name: String) -> Int { raw[name]?["status"] as? Int ?? -1 }
        func body(_ name: String) -> String { raw[name]?["body"] as? String ?? "" }

        // The sandbox holds no real credential or server address; its kubeconfig names the broker.
        let seen = scene.file("kubeconfig.seen")
        #expect(seen.contains("server: \"https://127.0.0.1:6443/contexts/0\"") && seen.contains("name: \"staging\""), "\(seen)")
        #expect(!seen.contains("host-secret-token") && !seen.contains(":\(kube.port)") && !seen.contains(plugin))
        #expect(!scene.file("env.seen").contains("host-secret-token") && !scene.file("env.seen").contains("human-kubeconfig"))
        #expect(!scene.file("human.seen").contains("host-secret-token"), "the human's kubeconfig is readable in the sandbox")

        // Reads pass (shim or not), with the human's token, which the stand-in demands.
        #expect(scene.file("shim-get.rc") == "0\n" && scene.file("shim-get.out").contains("deployment.apps/prod"), "\(scene.file("shim-get.err"))")
        #expect(scene.file("get.rc") == "0\n" && scene.file("get.out").contains("\"replicas\": 3"), "\(scene.file("get.err"))")
        #expect(scene.file("staging.rc") == "0\n" && scene.file("staging.out").contains("configmap/settings"), "\(scene.file("staging.err"))")
        #expect(FileManager.default.fileExists(atPath: scene.root + "/plugin-ran"), "the exec plugin ran outside the sandbox")
        #expect(!before.isEmpty && before.allSatisfy { $0["authorization"] == "Bearer host-secret-token" },
                "every request reached the API server with the human's token, none with the session's: \(before.map { $0["authorization"] ?? "" })")
        // A server-side dry run is a read: kubectl says so, nothing was deleted.
        #expect(scene.file("dry.rc") == "0\n" && scene.file("dry.out").contains("server dry run"), "\(scene.file("dry.err"))")

        // Secrets are gated even to read; the delete is a proposal; exec is refused outright.
        #expect(scene.file("secret.rc") != "0\n" && scene.file("secret.err").contains("Proposal "), "\(scene.file("secret.err"))")
        #expect(!scene.file("secret.out").contains("aHVudGVyMg=="), "the secret's value reached the agent")
        #expect(secretShown.stdout.contains("sensitive") && secretShown.stdout.contains("get secrets/db-password in default"), "\(secretShown)")
        #expect(scene.file("delete.rc") != "0\n" && scene.file("delete.err").contains("Proposal "), "\(scene.file("delete.err"))")
        #expect(scene.file("exec.rc") != "0\n", "\(scene.file("exec.err"))")
        #expect(!before.contains { $0["path"]?.contains("/exec") == true }, "an exec reached the API server")
        // The profile scopes reads to namespace default: prod is refused before it is sent.
        #expect(scene.file("scope.rc") != "0\n" && scene.file("scope.err").contains("scopes reads to default"), "\(scene.file("scope.err"))")
        #expect(!before.contains { $0["path"]?.hasPrefix("/api/v1/namespaces/prod/") == true }, "a read outside the scope was sent")
        #expect(status("exec") == 403 && body("exec").contains("reaches into a running workload"), "\(body("exec"))")
        #expect(status("impersonate") == 403 && body("impersonate").contains("impersonation"), "\(body("impersonate"))")
        #expect(status("no-token") == 401 && status("wrong-token") == 401, "\(raw)")
        #expect(status("bad-context") == 404 && status("gzip-body") == 415, "\(raw)")
        #expect(status("delete-dry-query-real-body") == 403 && body("delete-dry-query-real-body").contains("Proposal "),
                "a DELETE whose body holds its options is not a dry run, whatever the query says: \(body("delete-dry-query-real-body"))")
        // The API server's own address through the proxy: terminated by the broker, gated alike.
        #expect(status("connect-read") == 200 && body("connect-read").contains("settings"), "\(body("connect-read"))")
        #expect(status("connect-no-token") == 401 && body("connect-no-token").contains("Airlock"), "\(body("connect-no-token"))")
        #expect(status("connect-delete") == 403 && body("connect-delete").contains("Proposal "), "\(body("connect-delete"))")

        // Before approval every DELETE that reached the server was a dry run (the previews).
        let deletes = before.filter { $0["method"] == "DELETE" }
        #expect(!deletes.isEmpty && deletes.allSatisfy { ($0["body"] ?? "").contains("\"dryRun\":[\"All\"]") || ($0["query"] ?? "").contains("dryRun=All") },
                "\(deletes)")
        // The DELETE with dryRun in its query and real options in its body was previewed with
        // dryRun in the body, where the server reads it.
        #expect(deletes.contains { $0["path"]?.hasPrefix("/api/v1/namespaces/default/configmaps/settings?dryRun=All") == true
                    && ($0["body"] ?? "").contains("\"dryRun\":[\"All\"]") && ($0["body"] ?? "").contains("propagationPolicy") }, "\(deletes)")

        // The human sees the request and the server's dry run as a diff against the live object.
        #expect(shown.stdout.contains("DELETE /apis/apps/v1/namespaces/default/deployments/prod") && shown.stdout.contains("context prod"), "\(shown)")
        #expect(shown.stdout.contains("dry run of this request (dryRun=All): HTTP 200") && shown.stdout.contains("-    \"replicas\": 3"), "\(shown)")
        #expect(!shown.stdout.contains("host-secret-token"))

        // Approved: sent once, with the human's token, not dry; the agent's wait returns.
        #expect(approval.status == 0, "\(approval)")
        let realDeletes = kube.requests.filter { $0["method"] == "DELETE" && $0["path"]?.hasPrefix("/apis/apps/v1/namespaces/default/deployments/prod") == true
            && !($0["body"] ?? "").contains("dryRun") && !($0["query"] ?? "").contains("dryRun") }
        #expect(realDeletes.count == 1 && realDeletes.first?["authorization"] == "Bearer host-secret-token", "\(realDeletes)")
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        // The watch started before the delete streamed its event live.
        let watched = scene.file("watch.after").split(separator: "\n").filter { $0 == "deployment.apps/prod" }
        #expect(watched.count >= 2, "the watch did not stream the deletion: \(scene.file("watch.after")) \(scene.file("watch.err"))")
    }
}
