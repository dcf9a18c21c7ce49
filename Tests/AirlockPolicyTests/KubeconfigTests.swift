import AirlockCore
import AirlockPolicy
import Foundation
import Testing

/// The human's kubeconfig as the broker reads it, and the sandbox's, which must hold nothing
/// real (docs/kubernetes.md, "The endpoint").
@Suite struct KubeconfigTests {
    // kubectl's own layout: sequences at the key's indentation, a client certificate, an exec
    // plugin, a token file relative to the file's directory.
    static let written = """
        apiVersion: v1
        clusters:
        - cluster:
            certificate-authority-data: Q0EtUEVN
            server: https://10.0.0.1:6443
          name: prod-cluster
        - cluster:
            server: https://staging.example.com/k8s/
            tls-server-name: api.staging
            insecure-skip-tls-verify: true
          name: staging-cluster
        contexts:
        - context:
            cluster: prod-cluster
            user: admin
            namespace: shop
          name: prod
        - context:
            cluster: staging-cluster
            user: sso
          name: staging
        - context:
            cluster: missing-cluster
            user: admin
          name: broken
        - context:
            cluster: prod-cluster
            user: basic
          name: with-password
        current-context: prod
        kind: Config
        users:
        - name: admin
          user:
            client-certificate-data: Q0VSVA==
            client-key: keys/admin.key
        - name: sso
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1beta1
              command: aws
              args: [eks, get-token, --cluster-name, staging]
              env:
              - name: AWS_PROFILE
                value: staging
        - name: basic
          user: {username: admin, password: secret}

        """

    @Test func readsContextsClustersAndUsersAsKubectlWritesThem() throws {
        let config = try Kubeconfig.parse(Self.written, base: "/home/person/.kube")
        #expect(config.contexts.map(\.name) == ["prod", "staging", "with-password"], "a context whose cluster is missing is left out")
        #expect(config.currentContext == "prod")
        let prod = config.contexts[0]
        #expect(prod.cluster.server == "https://10.0.0.1:6443" && prod.namespace == "shop")
        #expect(prod.cluster.certificateAuthorityData == Array("CA-PEM".utf8))
        #expect(prod.user.clientCertificateData == Array("CERT".utf8))
        #expect(prod.user.clientKey == "/home/person/.kube/keys/admin.key", "relative paths resolve against the file's directory")
        let staging = config.contexts[1]
        #expect(staging.cluster.insecureSkipTLSVerify && staging.cluster.tlsServerName == "api.staging")
        #expect(staging.user.exec?.command == "aws" && staging.user.exec?.args == ["eks", "get-token", "--cluster-name", "staging"])
        #expect(staging.user.exec?.env.first?.name == "AWS_PROFILE" && staging.user.exec?.apiVersion == "client.authentication.k8s.io/v1beta1")
        #expect(config.contexts[2].user.unsupported?.contains("basic authentication") == true)
    }

    @Test func readsTheJSONForm() throws {
        let json = """
            {"apiVersion": "v1", "kind": "Config", "current-context": "a",
             "clusters": [{"name": "c", "cluster": {"server": "https://k.example:443"}}],
             "users": [{"name": "u", "user": {"token": "t0k3n"}}],
             "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}]}
            """
        let config = try Kubeconfig.parse(json, base: "/")
        #expect(config.contexts.count == 1 && config.contexts[0].user.token == "t0k3n" && config.currentContext == "a")
    }

    @Test func mergesFilesAsKubectlDoes() throws {
        let first = try Kubeconfig.parse("contexts:\n- name: a\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://one'}\nusers:\n- name: u\n  user: {token: one}\n", base: "/")
        let second = try Kubeconfig.parse("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n- name: b\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://two'}\nusers:\n- name: u\n  user: {token: two}\n", base: "/")
        let merged = Kubeconfig.merged([first, second])
        #expect(merged.contexts.map(\.name) == ["a", "b"])
        #expect(merged.contexts[0].cluster.server == "https://one", "the first file's context of a name wins")
        #expect(merged.currentContext == "a")
    }

    @Test func theSandboxConfigNamesEveryContextAndHoldsNothingReal() throws {
        let config = try Kubeconfig.parse(Self.written, base: "/home/person/.kube")
        let text = config.sandboxConfig(endpoint: "https://127.0.0.1:6443", caPEM: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n",
                                        token: "airlock-session-abc")
        for secret in ["10.0.0.1", "staging.example.com", "Q0VSVA==", "Q0EtUEVN", "aws", "keys/admin.key", "secret"] {
            #expect(!text.contains(secret), "\(secret) leaked into the sandbox's kubeconfig")
        }
        // It reads back: the same context names, each at its own broker path, the session token.
        let back = try Kubeconfig.parse(text, base: "/")
        #expect(back.contexts.map(\.name) == ["prod", "staging", "with-password"])
        #expect(back.contexts.map(\.cluster.server) == ["https://127.0.0.1:6443/contexts/0", "https://127.0.0.1:6443/contexts/1",
                                                        "https://127.0.0.1:6443/contexts/2"])
        #expect(back.contexts.allSatisfy { $0.user.token == "airlock-session-abc" })
        #expect(back.contexts[0].namespace == "shop" && back.currentContext == "prod")
    }

    @Test func hostileNamesStayQuoted() throws {
        // A context name that would add a user line if written unquoted.
        let json = #"{"clusters": [{"name": "c", "cluster": {"server": "https://a"}}], "users": [{"name": "u", "user": {}}], "contexts": [{"name": "x\"\n  token: stolen", "context": {"cluster": "c", "user": "u", "namespace": "n: 1"}}]}"#
        let config = try Kubeconfig.parse(json, base: "/")
        #expect(config.contexts.map(\.name) == ["x\"\n  token: stolen"])
        let back = try Kubeconfig.parse(config.sandboxConfig(endpoint: "https://127.0.0.1:6443", caPEM: "", token: "t"), base: "/")
        #expect(back.contexts.map(\.name) == ["x\"\n  token: stolen"] && back.contexts[0].user.token == "t")
        #expect(back.contexts[0].namespace == "n: 1")
    }

    @Test(arguments: [
        ("https://10.0.0.1:6443", "https", "10.0.0.1", 6443, ""),
        ("https://k.example.com", "https", "k.example.com", 443, ""),
        ("http://K.example.com:8080/base/", "http", "k.example.com", 8080, "/base"),
        ("https://[::1]:6443", "https", "::1", 6443, ""),
    ])
    func serverAddresses(url: String, scheme: String, host: String, port: Int, base: String) {
        let server = Kubeconfig.server(url)
        #expect(server?.scheme == scheme && server?.host == host && server?.port == port && server?.basePath == base, "\(String(describing: server))")
    }

    @Test(arguments: ["ftp://x", "https://", "https://user@host", "https://h:0", "https://h:99999", "https://h/p?q", "k.example.com"])
    func serverAddressesRefused(url: String) {
        #expect(Kubeconfig.server(url) == nil)
    }
}

/// Which writes the API server only dry-runs, read as the server reads the query.
@Suite struct KubernetesDryRunTests {
    @Test(arguments: [
        ("dryRun=All", false, true),
        ("fieldManager=kubectl&dryRun=All", false, true),
        ("dry%52un=All", false, true),
        ("dryRun=A%6cl", false, true),
        ("dryRun=All", true, false),           // a DELETE with a body: the server reads the body's options
        ("", false, false),
        ("dryRun=all", false, false),
        ("dryRun=All&dryRun=All", false, false),
        ("dryRun=All&dry%52un=", false, false),
        ("dryRun=", false, false),
        ("dryRun=All%", false, false),          // undecodable: Go drops the pair
        ("dryRun%=All", false, false),
        ("dryrun=All", false, false),
    ])
    func dryRunQueries(query: String, deleteWithBody: Bool, dry: Bool) {
        #expect(KubernetesClassifier.isServerDryRun(query: query, deleteWithBody: deleteWithBody) == dry)
    }

    @Test(arguments: [
        (#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background","dryRun":["All"]}"#, "application/json", true),
        (#"{"dryRun":["All"]}"#, "application/json; charset=utf-8", true),
        (#"{"propagationPolicy":"Background"}"#, "application/json", false),
        (#"{"dryRun":["All"],"dryRun":[]}"#, "application/json", false),      // a key twice: no single reading
        (#"{"dryRun":["All"],"DryRun":[]}"#, "application/json", false),      // a case-insensitive decoder's second reading
        (#"{"DRYRUN":["All"]}"#, "application/json", false),
        (#"{"dryRun":"All"}"#, "application/json", false),
        (#"{"dryRun":["All","All"]}"#, "application/json", false),
        (#"{"dryRun":["All"]}"#, "application/yaml", false),
        (#"{"dryRun":["All"]}"#, "application/vnd.kubernetes.protobuf", false),
        ("dryRun: [All]", "application/json", false),
    ])
    func deleteOptionBodies(body: String, contentType: String, dry: Bool) {
        #expect(KubernetesClassifier.deleteOptionsAreDryRun(Array(body.utf8), contentType: contentType) == dry)
        let ruling = KubernetesClassifier.classify(method: "DELETE", path: "/apis/apps/v1/namespaces/default/deployments/prod", query: "",
                                                   headers: [("Content-Type", contentType)], body: Array(body.utf8))
        #expect(ruling.decision == (dry ? .read : .mutation), "\(ruling)")
    }

    @Test func aDryRunWriteIsARead() {
        let create = KubernetesClassifier.classify(method: "POST", path: "/apis/apps/v1/namespaces/default/deployments",
                                                   query: "dryRun=All", headers: [])
        #expect(create.decision == .read)
        let patch = KubernetesClassifier.classify(method: "PATCH", path: "/api/v1/namespaces/default/configmaps/x",
                                                  query: "dryRun=All&fieldManager=kubectl-client-side-apply", headers: [])
        #expect(patch.decision == .read)
        // A DELETE whose body holds its options is not dry, whatever the query says.
        let deleteWithBody = KubernetesClassifier.classify(method: "DELETE", path: "/apis/apps/v1/namespaces/default/deployments/prod",
                                                           query: "dryRun=All", headers: [], body: Array("{}".utf8))
        #expect(deleteWithBody.decision == .mutation)
        // Subresources with handlers of their own are not trusted to honour dryRun.
        #expect(KubernetesClassifier.classify(method: "POST", path: "/api/v1/namespaces/d/pods/p/eviction", query: "dryRun=All",
                                              headers: []).decision == .mutation)
        #expect(KubernetesClassifier.classify(method: "PATCH", path: "/apis/apps/v1/namespaces/d/deployments/x/scale", query: "dryRun=All",
                                              headers: []).decision == .read)
        // Secrets and token requests stay gated; exec stays refused.
        #expect(KubernetesClassifier.classify(method: "POST", path: "/api/v1/namespaces/d/serviceaccounts/s/token", query: "dryRun=All",
                                              headers: []).decision == .sensitive)
        #expect(KubernetesClassifier.classify(method: "POST", path: "/api/v1/namespaces/d/pods/p/exec", query: "dryRun=All&command=sh",
                                              headers: []).decision == .deny)
        #expect(KubernetesClassifier.classify(method: "POST", path: "/apis/apps/v1/namespaces/d/deployments", query: "dryRun=All",
                                              headers: [("Impersonate-User", "admin")]).decision == .deny)
    }
}

@Suite struct LineDiffTests {
    @Test func showsChangedLinesWithContext() {
        let old = (1...10).map { "line \($0)" }.joined(separator: "\n") + "\n"
        let new = old.replacingOccurrences(of: "line 5\n", with: "line five\n")
        let diff = LineDiff.unified(old: old, new: new)
        #expect(diff == "--- live\n+++ after\n@@ -2,7 +2,7 @@\n line 2\n line 3\n line 4\n-line 5\n+line five\n line 6\n line 7\n line 8\n", "\(diff)")
    }

    @Test func identicalTextsHaveNoDiffAndDeletionRemovesEverything() {
        #expect(LineDiff.unified(old: "a\nb\n", new: "a\nb\n").isEmpty)
        #expect(LineDiff.unified(old: "a\nb\n", new: "", newName: "deleted") == "--- live\n+++ deleted\n@@ -1,2 +1,0 @@\n-a\n-b\n")
    }

    @Test func distantChangesAreSeparateHunks() {
        let old = (1...30).map(String.init).joined(separator: "\n")
        let new = old.replacingOccurrences(of: "\n2\n", with: "\ntwo\n").replacingOccurrences(of: "\n28\n", with: "\ntwenty-eight\n")
        let diff = LineDiff.unified(old: old, new: new)
        #expect(diff.components(separatedBy: "@@ -").count == 3, "\(diff)")
        #expect(diff.contains("-2\n+two\n") && diff.contains("-28\n+twenty-eight\n"))
    }
}
