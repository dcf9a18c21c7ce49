import Foundation
import Testing

/// Kubernetes changes, GitHub changes and git pushes on the team gate (docs/gate.md,
/// "Kubernetes and GitHub on the gate"). The agent host holds read-only credentials only; the
/// gate holds the writers', maps the API server and the GitHub hosts it executes on, makes
/// every preview itself and executes each approved change once. The upstreams are stand-ins
/// (no Kubernetes API server or GitHub runs here: Tests/Support/kube_standin.py and
/// github_standin.py decode requests as the real servers do and answer dry runs) and a real
/// git smart-HTTP server; each records the credential of every request, and a read-only
/// credential is refused any change, as RBAC and a read-only token would be.
@Suite struct GateKindsTests {
    /// A kubeconfig with one context on the stand-in.
    static func kubeconfig(_ kube: KubeStandIn, context: String, token: String) -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: standin
          cluster:
            server: https://127.0.0.1:\(kube.port)
            certificate-authority-data: \(kube.caData)
            tls-server-name: kube.test
        contexts:
        - name: \(context)
          context: {cluster: standin, user: \(context)-user, namespace: default}
        current-context: \(context)
        users:
        - name: \(context)-user
          user: {token: \(token)}

        """
    }

    struct World {
        let scene: Scene
        let kube: KubeStandIn
        let gate: TeamGate
        let github: Process
        let git: Process
        let githubLog: String
        let gitLog: String
        let bare: String
        let hostEnvironment: [String: String]
        let host: String
        let alice: String

        func stop() {
            for process in [github, git] {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
    }

    /// The stand-ins, the git server and a gate mapping them, with the host's read-only side.
    /// `address`: the loopback address GitHub's stand-in binds (port 443), git's the next one:
    /// each test its own, as tests run side by side.
    static func world(address: Int) throws -> World {
        let scene = Scene(.root)
        try FileManager.default.createDirectory(atPath: scene.root + "/kube", withIntermediateDirectories: true)
        let kube = try KubeStandIn(directory: scene.root + "/kube", environment: [
            "KUBE_STANDIN_SEED": "1", "KUBE_STANDIN_REQUIRE_TOKEN_FOR_READS": "1",
            "KUBE_STANDIN_TOKEN": "gate-kube-token", "KUBE_STANDIN_READ_TOKENS": "host-read-token",
        ])
        let (cert, key, ca) = try GitHubFixtures.certificates(in: scene)
        let githubLog = scene.root + "/github-requests.jsonl"
        let github = try GitHubFixtures.start([Stage.repoRoot + "/Tests/Support/github_standin.py", githubLog, cert, key, "127.0.0.\(address):443"],
                                              environment: ["GITHUB_STANDIN_REQUIRE_TOKEN": "1", "GITHUB_STANDIN_TOKEN": "gate-github-token",
                                                            "GITHUB_STANDIN_READ_TOKENS": "host-read-token"])
        let repositories = scene.root + "/repositories"
        let made = runProcess("/usr/bin/python3", [Stage.repoRoot + "/Tests/Support/git_http_server.py", "init", repositories, "acme/app"],
                              environment: ["PATH": "/usr/bin:/bin"], directory: scene.root, timeout: 60)
        guard made.status == 0 else { throw TestUpstreamError("git init: \(made)") }
        let gitLog = scene.root + "/git-requests.jsonl"
        // The writer is the gate's token as GitHub's git takes it; the host may only fetch.
        let git = try GitHubFixtures.start([Stage.repoRoot + "/Tests/Support/git_http_server.py", repositories, "x-access-token", "gate-github-token",
                                            gitLog, "--cert", cert, "--key", key, "--bind", "127.0.0.\(address + 1):443", "--reader", "reader:read-only"])
        let resolve = "api.github.com=127.0.0.\(address);github.com=127.0.0.\(address + 1)"
        let gateFiles = makeTemporaryDirectory(prefix: "airlock-gate-kinds")
        _ = FileManager.default.createFile(atPath: gateFiles + "/kubeconfig", contents: Data(Self.kubeconfig(kube, context: "gate-admin", token: "gate-kube-token").utf8))
        _ = FileManager.default.createFile(atPath: gateFiles + "/github-token", contents: Data("gate-github-token\n".utf8))
        chmod(gateFiles + "/kubeconfig", 0o600)
        chmod(gateFiles + "/github-token", 0o600)
        let gate = try TeamGate(store: "sqlite", upstream: "http://127.0.0.1:9", extra: """
            kubernetes:
              kubeconfig: \(gateFiles)/kubeconfig
              clusters:
                - {server: "https://127.0.0.1:\(kube.port)", context: gate-admin}
            github:
              - {host: github.com, token_file: \(gateFiles)/github-token}

            """, keys: ["AIRLOCK_EGRESS_RESOLVE": resolve, "SSL_CERT_FILE": ca])
        let host = gate.enrol("host", "reader-host"), alice = gate.enrol("user", "alice")
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        // The host's own credentials: read-only, all three.
        let hostKubeconfig = scene.root + "/host-kubeconfig"
        scene.write(hostKubeconfig, Self.kubeconfig(kube, context: "prod", token: "host-read-token"), mode: 0o600)
        scene.write(scene.home + "/.gitconfig", "[credential]\n\thelper = store\n")
        scene.write(scene.home + "/.git-credentials", "https://reader:read-only@github.com\n", mode: 0o600)
        let environment = ["KUBECONFIG": hostKubeconfig, "GH_TOKEN": "host-read-token", "AIRLOCK_EGRESS_RESOLVE": resolve, "SSL_CERT_FILE": ca]
        return World(scene: scene, kube: kube, gate: gate, github: github, git: git, githubLog: githubLog, gitLog: gitLog,
                     bare: repositories + "/acme/app.git", hostEnvironment: environment, host: host, alice: alice)
    }

    @Test func kubectlGhAndGitChangesAreProposedPreviewedAndExecutedByTheGate() throws {
        guard Launch.root.available() else { return }
        guard KubernetesEndpointTests.kubectl != nil else {
            Issue.record("kubectl is not installed (it is on this project's machine image; see docs/kubernetes.md): this test needs it")
            return
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gh") else {
            Issue.record("gh is not installed (apt-get install gh; scripts/test does): this test needs it")
            return
        }
        let world = try Self.world(address: 25)
        defer { world.stop() }
        let scene = world.scene, gate = world.gate
        let profile = scene.egressProfile("network:\n  allow: [api.github.com, github.com]\n")
        var shown: [String: [String: Any]] = [:]
        var approved: [String: (status: Int, json: [String: Any])] = [:]
        var listed: [[String: Any]] = []
        let out = scene.run(["/bin/sh", "-c", """
            export GIT_CONFIG_NOSYSTEM=1
            K=/run/airlock/tools/kubectl; G=/run/airlock/tools/gh
            $K get deployment prod -o name > kget.out 2> kget.err; echo $? > kget.rc
            $K delete deployment prod > kdel.out 2> kdel.err; echo $? > kdel.rc
            $G api repos/o/r > gget.out 2> gget.err; echo $? > gget.rc
            $G api repos/o/r/issues -f title='From the agent' > rest.out 2> rest.err; echo $? > rest.rc
            $G pr merge 1 --merge --repo o/r > merge.out 2> merge.err; echo $? > merge.rc
            git clone https://github.com/acme/app.git app > clone.out 2>&1; echo $? > clone.rc
            cd app && echo v2 >> README.md && git add README.md
            git -c user.name=Agent -c user.email=agent@example.com commit -q -m "Update the README through the gate"
            git rev-parse HEAD > ../pinned.txt
            git push origin main > ../push.out 2>&1; echo $? > ../push.rc; cd ..
            for name in kdel rest merge; do grep -o 'Proposal [0-9a-f]*' $name.err | head -1 | cut -d' ' -f2 > $name.id; done
            grep -o 'Proposal [0-9a-f]*' push.out | head -1 | cut -d' ' -f2 > push.id
            touch proposed
            while [ ! -f decided ]; do sleep 0.2; done
            """], options: ["--profile", profile, "--gate", gate.url, "--gate-token-file", scene.root + "/host.token"],
                            timeout: 300, extraEnvironment: world.hostEnvironment) { _ in
            defer { scene.write(scene.workspace + "/decided", "") }
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            listed = gate.call("GET", "/v1/proposals?state=pending", token: world.alice).json["proposals"] as? [[String: Any]] ?? []
            for name in ["kdel", "rest", "merge", "push"] {
                let id = scene.file(name + ".id").trimmingCharacters(in: .whitespacesAndNewlines)
                guard !id.isEmpty else { continue }
                shown[name] = gate.call("GET", "/v1/proposals/\(id)", token: world.alice).json
                approved[name] = gate.call("POST", "/v1/proposals/\(id)/approve", token: world.alice, body: ["reason": "through the gate"])
            }
        }
        #expect(out.status == 0, "\(out)")
        // Reads pass with the host's read-only credentials.
        #expect(scene.file("kget.rc") == "0\n", "\(scene.file("kget.err"))")
        #expect(scene.file("gget.rc") == "0\n" && scene.file("gget.out").contains("\"full_name\""), "\(scene.file("gget.err"))")
        #expect(scene.file("clone.rc") == "0\n", "\(scene.file("clone.out"))")
        // Every change is a proposal on the gate.
        for (name, file) in [("kdel", "kdel.err"), ("rest", "rest.err"), ("merge", "merge.err"), ("push", "push.out")] {
            #expect(scene.file(file).contains("Proposal "), "\(name): \(scene.file(file))")
        }
        #expect(listed.count == 4, "\(listed.map { $0["summary"] ?? "" })")
        // The gate's previews: the server's dry run of the delete, the push's commits as the
        // gate's git saw them.
        let kubePreview = "\(shown["kdel"]?["preview"] ?? "")"
        #expect(kubePreview.contains("diff") && kubePreview.contains("prod") && kubePreview.contains("deleted"), "\(kubePreview.prefix(600))")
        let pushPreview = "\(shown["push"]?["preview"] ?? "")"
        #expect(pushPreview.contains("Update the README through the gate"), "\(pushPreview.prefix(600))")
        let mergeSummary = shown["merge"]?["summary"] as? String ?? ""
        #expect(mergeSummary.contains("GraphQL mutation PullRequestMerge"), "\(shown["merge"] ?? [:])")
        // Approved: each executed once, by the gate, with the gate's credentials.
        for name in ["kdel", "rest", "merge", "push"] {
            let answer = approved[name]
            #expect(answer?.status == 200 && answer?.json["state"] as? String == "succeeded", "\(name): \(String(describing: answer))")
        }
        let kubeChanges = world.kube.requests.filter { $0["method"] != "GET" }
        #expect(kubeChanges.allSatisfy { $0["authorization"] == "Bearer gate-kube-token" }, "\(kubeChanges.map { $0["authorization"] ?? "" })")
        #expect(kubeChanges.filter { $0["method"] == "DELETE" && !($0["query"] ?? "").contains("dryRun") && !($0["body"] ?? "").contains("dryRun") }.count == 1,
                "\(kubeChanges)")
        #expect(world.kube.requests.filter { $0["authorization"] == "Bearer host-read-token" }.allSatisfy { $0["method"] == "GET" })
        let githubRequests = GitHubFixtures.lines(world.githubLog)
        let issues = githubRequests.filter { $0["method"] as? String == "POST" && ($0["path"] as? String ?? "").hasSuffix("/issues") }
        let merges = githubRequests.filter { $0["graphql_operation"] as? String == "mutation PullRequestMerge" }
        #expect(issues.count == 1 && (issues.first?["authorization"] as? String)?.lowercased() == "token gate-github-token", "\(issues)")
        #expect(merges.count == 1 && (merges.first?["authorization"] as? String)?.lowercased() == "token gate-github-token", "\(merges)")
        #expect(!githubRequests.contains { ($0["authorization"] as? String ?? "").contains("host-read-token") && ($0["method"] as? String) != "GET"
                                             && ($0["graphql_operation"] as? String ?? "").hasPrefix("mutation") }, "the host's token made a change")
        let writer = "Basic " + Data("x-access-token:gate-github-token".utf8).base64EncodedString()
        let pushes = GitHubFixtures.lines(world.gitLog).filter { ($0["path"] as? String ?? "").hasSuffix("/git-receive-pack") && $0["method"] as? String == "POST" }
        #expect(pushes.count == 1 && pushes.first?["authorization"] as? String == writer, "\(pushes)")
        let head = runProcess("/usr/bin/git", ["--git-dir", world.bare, "rev-parse", "refs/heads/main"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        #expect(head.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == scene.file("pinned.txt").trimmingCharacters(in: .whitespacesAndNewlines))
        // The host's own store holds none of them.
        let local = scene.airlock(["proposals", "--all", "--json"])
        #expect(!local.stdout.contains("kubernetes") && !local.stdout.contains("git:push"), "\(local)")
    }

    /// A compromised host (its enrollment token, raw HTTP): a server or host the gate does not
    /// map is refused and nothing is sent there; a preview the host writes into its payload is
    /// never what the approver reads.
    @Test func aHostCannotAimTheGateElsewhereOrWriteItsPreview() throws {
        guard Launch.root.available() else { return }
        let world = try Self.world(address: 27)
        defer { world.stop() }
        let gate = world.gate, host = world.host
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "hostile-kinds-1"]).status == 201)
        func propose(_ payload: [String: Any]) -> (status: Int, json: [String: Any]) {
            let bytes = (try? JSONSerialization.data(withJSONObject: payload)) ?? Data()
            return gate.call("POST", "/v1/proposals", token: host, body: ["session_id": "hostile-kinds-1", "payload_base64": bytes.base64EncodedString()])
        }
        func kubernetes(server: String, method: String, path: String, extra: [String: Any] = [:]) -> [String: Any] {
            ["type": "kubernetes-request", "context": "prod", "server": server, "method": method, "path": path, "query": "",
             "headers": [["Content-Type", "application/json"]], "body_base64": ""].merging(extra) { $1 }
        }
        let before = world.kube.requests.count
        // An API server the gate does not map (the host's guess at an internal one).
        let elsewhere = propose(kubernetes(server: "https://10.0.0.1:6443", method: "DELETE", path: "/api/v1/namespaces/default/configmaps/settings"))
        #expect(elsewhere.status == 403 && "\(elsewhere.json)".contains("maps no Kubernetes API server"), "\(elsewhere)")
        // A GitHub host it does not map, and a git push there.
        let otherHost = propose(["type": "github-request", "host": "github.internal.example", "method": "POST", "path": "/api/v3/repos/o/r/issues",
                                 "query": "", "headers": [] as [Any], "body_base64": Data("{}".utf8).base64EncodedString()])
        #expect(otherHost.status == 403 && "\(otherHost.json)".contains("maps no GitHub host"), "\(otherHost)")
        let otherPush = propose(["type": "git-push", "host": "gitlab.example", "repository": "/acme/app.git", "body_base64": "MDAwMA==",
                                 "updates": [] as [Any]])
        #expect(otherPush.status == 403, "\(otherPush)")
        // A read dressed as a change, and a push that is not one.
        #expect(propose(kubernetes(server: "https://127.0.0.1:\(world.kube.port)", method: "GET", path: "/api/v1/namespaces/default/configmaps")).status == 400)
        let garbage = propose(["type": "git-push", "host": "github.com", "repository": "/acme/app.git", "body_base64": "MDAwMA==", "updates": [] as [Any]])
        #expect(garbage.status == 400, "\(garbage)")
        #expect(world.kube.requests.count == before, "the gate sent something for a refused proposal: \(world.kube.requests.suffix(3))")
        // A forged preview inside the payload: stored without it, shown with the gate's.
        let forged = propose(kubernetes(server: "https://127.0.0.1:\(world.kube.port)/", method: "DELETE",
                                        path: "/api/v1/namespaces/default/configmaps/settings",
                                        extra: ["preview": ["diff": "FORGED: nothing changes"]]))
        #expect(forged.status == 201, "\(forged)")
        let shown = gate.call("GET", "/v1/proposals/\(forged.json["id"] as? String ?? "")", token: world.alice).json
        let preview = "\(shown["preview"] ?? "")"
        #expect(!preview.contains("FORGED") && preview.contains("deleted"), "\(preview.prefix(600))")
        let payload = (shown["payload_base64"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(!payload.contains("FORGED") && payload.contains("\"context\":\"gate-admin\""), "\(payload)")
    }
}
