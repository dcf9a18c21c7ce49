import Foundation
import Testing

/// Certificates for the GitHub host names (github.com, api.github.com, gh.test) from the
/// egress fixtures' test CA, which the human side trusts through SSL_CERT_FILE.
enum GitHubFixtures {
    static func certificates(in scene: Scene) throws -> (cert: String, key: String, ca: String) {
        let tls = scene.root + "/tls"
        let fixtures = runProcess("/usr/bin/python3", [Stage.repoRoot + "/Tests/Support/egress_server.py", "fixtures", tls],
                                  environment: ["PATH": "/usr/bin:/bin"], directory: scene.root, timeout: 60)
        guard fixtures.status == 0 else { throw TestUpstreamError("fixtures: \(fixtures)") }
        scene.write(tls + "/github.ext", "subjectAltName=DNS:github.com,DNS:api.github.com,DNS:gh.test\n")
        let openssl: [[String]] = [
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=github.com", "-keyout", tls + "/github.key", "-out", tls + "/github.csr"],
            ["x509", "-req", "-in", tls + "/github.csr", "-CA", tls + "/ca.pem", "-CAkey", tls + "/ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", tls + "/github.ext", "-out", tls + "/github.pem"],
        ]
        for arguments in openssl {
            let made = runProcess("/usr/bin/openssl", arguments, environment: ["PATH": "/usr/bin:/bin"], directory: scene.root, timeout: 60)
            guard made.status == 0 else { throw TestUpstreamError("openssl: \(made)") }
        }
        return (tls + "/github.pem", tls + "/github.key", tls + "/ca.pem")
    }

    /// Starts a Tests/Support server that prints {"port": N} once listening.
    static func start(_ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = arguments
        process.environment = ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        if output.fileHandleForReading.availableData.isEmpty {
            kill(process.processIdentifier, SIGKILL)
            throw TestUpstreamError("\(arguments.first ?? "server") did not start")
        }
        return process
    }

    /// A Python client the agent could write: `call(name, method, path, headers, body)` sends
    /// one request through the egress proxy's CONNECT to `tunnel`:443 and prints one JSON line.
    static func rawClient(tunnel: String) -> String {
        #"""
        import http.client, json, os, ssl
        context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        def call(name, method, path, headers=None, body=None):
            conn = http.client.HTTPSConnection("127.0.0.1", 3128, context=context, timeout=30)
            conn.set_tunnel("\#(tunnel)", 443)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                response = conn.getresponse()
                print(json.dumps({"name": name, "status": response.status, "body": response.read().decode("utf-8", "replace")[:400]}), flush=True)
            except Exception as error:
                print(json.dumps({"name": name, "status": 0, "body": repr(error)}), flush=True)

        """#
    }

    static func lines(_ path: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

/// git over HTTPS through the broker (docs/github.md, "git over HTTPS"): real git in the
/// sandbox, a real git smart-HTTP server (Tests/Support/git_http_server.py: `git http-backend`
/// behind basic auth, as github.com, on 127.0.0.6:443, so root only) holding a private
/// repository. The human's credentials live in a git credential helper outside the sandbox.
@Suite struct GitPushTests {
    @Test func cloneWorksWithoutACredentialInsideAndAPushIsPinned() throws {
        guard Launch.root.available() else { return }
        let scene = Scene(.root)
        let (cert, key, ca) = try GitHubFixtures.certificates(in: scene)
        let repositories = scene.root + "/repositories"
        let made = runProcess("/usr/bin/python3", [Stage.repoRoot + "/Tests/Support/git_http_server.py", "init", repositories, "acme/app"],
                              environment: ["PATH": "/usr/bin:/bin"], directory: scene.root, timeout: 60)
        try #require(made.status == 0, "\(made)")
        let bare = repositories + "/acme/app.git"
        let initial = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // A branch the agent will force-push over: one commit the agent's history lacks.
        let work = scene.root + "/topic-work"
        for step in [["clone", "-q", bare, work], ["-C", work, "commit", "-q", "--allow-empty", "-m", "topic only"],
                     ["-C", work, "push", "-q", "origin", "HEAD:refs/heads/topic"]] {
            let ran = runProcess("/usr/bin/git", ["-c", "user.name=Human", "-c", "user.email=h@example.com"] + step,
                                 environment: ["PATH": "/usr/bin:/bin", "HOME": scene.root], directory: scene.root, timeout: 60)
            try #require(ran.status == 0, "\(ran)")
        }
        let log = scene.root + "/git-requests.jsonl"
        let server = try GitHubFixtures.start([Stage.repoRoot + "/Tests/Support/git_http_server.py", repositories, "alice", "s3cret", log,
                                               "--cert", cert, "--key", key, "--bind", "127.0.0.6:443"])
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        // The human's git credentials: a credential helper outside the sandbox.
        scene.write(scene.home + "/.gitconfig", "[credential]\n\thelper = store\n")
        scene.write(scene.home + "/.git-credentials", "https://alice:s3cret@github.com\n", mode: 0o600)
        let human = ["AIRLOCK_EGRESS_RESOLVE": "github.com=127.0.0.6", "SSL_CERT_FILE": ca]
        let profile = scene.egressProfile("network:\n  allow: [github.com]\ngithub:\n  repos: [acme/app]\n")
        scene.write(scene.workspace + "/raw.py", GitHubFixtures.rawClient(tunnel: "github.com") + #"""
            call("no-updates", "POST", "/acme/app.git/git-receive-pack", {"Content-Type": "application/x-git-receive-pack-request"}, b"0000")
            call("foreign-token", "GET", "/acme/app.git/info/refs?service=git-upload-pack", {"Authorization": "token ghp_found_elsewhere"})
            call("two-services", "GET", "/acme/app.git/info/refs?service=git-upload-pack&service=git-receive-pack")
            call("outside-scope", "GET", "/acme/secrets.git/info/refs?service=git-upload-pack")
            """#)
        var shown = Outcome(status: -1, stdout: "", stderr: "")
        var forceShown = shown
        var approval = shown
        var pinnedCommit = ""
        let out = scene.run(["/bin/sh", "-c", """
            # This machine's /etc/gitconfig sends github.com to a local package mirror.
            export GIT_CONFIG_NOSYSTEM=1
            env > env.seen; cat ~/.git-credentials > creds.seen 2>&1
            git clone https://github.com/acme/app.git app > clone.out 2>&1; echo $? > clone.rc
            cd app
            echo "v2" >> README.md && git add README.md
            # Its message tries to act on the approver's terminal (docs/design.md 5.1).
            git -c user.name=Agent -c user.email=agent@example.com commit -q -m "$(printf 'Update the README\\033]52;c;SGVsbG8=\\007\\033[2J\\033]8;;http://x\\007\\342\\200\\256')"
            git rev-parse HEAD > ../pinned.txt
            git push origin main > ../push.out 2>&1; echo $? > ../push.rc
            git push --force origin main:topic > ../force.out 2>&1; echo $? > ../force.rc
            # More work after the proposal: never part of what is approved.
            git -c user.name=Agent -c user.email=agent@example.com commit -q --allow-empty -m "After the proposal"
            git rev-parse HEAD > ../later.txt
            cd .. && python3 raw.py > raw.out 2> raw.err
            grep -o 'Proposal [0-9a-f]*' push.out | head -1 | cut -d' ' -f2 > id.txt
            grep -o 'Proposal [0-9a-f]*' force.out | head -1 | cut -d' ' -f2 > force-id.txt
            touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """], options: ["--profile", profile], timeout: 300, extraEnvironment: human) { _ in
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            pinnedCommit = scene.file("pinned.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            let environment = scene.environment.merging(human) { $1 }
            shown = runProcess(Stage.airlock, ["show", scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines), "--state-dir", scene.stateDir],
                               environment: environment, directory: scene.workspace)
            forceShown = runProcess(Stage.airlock, ["show", scene.file("force-id.txt").trimmingCharacters(in: .whitespacesAndNewlines),
                                                    "--state-dir", scene.stateDir], environment: environment, directory: scene.workspace)
            let before = runProcess("/usr/bin/git", ["--git-dir", bare, "rev-parse", "main"], environment: ["PATH": "/usr/bin:/bin"],
                                    directory: scene.root)
            #expect(before.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == initial, "main moved before approval")
            approval = runProcess(Stage.airlock, ["approve", scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines), "--state-dir", scene.stateDir],
                                  environment: environment, directory: scene.workspace, timeout: 120)
        }
        #expect(out.status == 0, "\(out)")
        // Cloned with no credential in the sandbox: the broker added the human's.
        #expect(scene.file("clone.rc") == "0\n", "\(scene.file("clone.out"))")
        #expect(!scene.file("env.seen").contains("s3cret") && !scene.file("creds.seen").contains("s3cret"), "a credential is visible in the sandbox")
        let requests = GitHubFixtures.lines(log)
        let basic = "Basic " + Data("alice:s3cret".utf8).base64EncodedString()
        #expect(requests.contains { $0["service"] as? String == "git-upload-pack" && $0["status"] as? Int == 200 && $0["authorization"] as? String == basic },
                "\(requests)")
        #expect(!requests.contains { ($0["status"] as? Int) == 401 }, "the server challenged: credentials were missing somewhere: \(requests)")
        // The push is a proposal; git says why and how to wait.
        #expect(scene.file("push.rc") != "0\n" && scene.file("push.out").contains("remote rejected") && scene.file("push.out").contains("Proposal "),
                "\(scene.file("push.out"))")
        #expect(shown.stdout.contains("Update the README") && shown.stdout.contains("README.md | 1 +"), "\(shown)")
        // The commit message as visible escapes: nothing a terminal would act on.
        #expect(shown.stdout.contains("Update the README\\e]52;c;SGVsbG8=\\a\\e[2J\\e]8;;http://x\\a<U+202E>"), "\(shown.stdout)")
        #expect(!shown.stdout.unicodeScalars.contains { [0x1B, 0x07, 0x202E].contains($0.value) }, "raw escapes in show's output")
        #expect(shown.stdout.contains("refs/heads/main") && shown.stdout.contains("protected"), "\(shown)")
        #expect(!shown.stdout.contains("force push"), "\(shown)")
        #expect(forceShown.stdout.contains("refs/heads/topic") && forceShown.stdout.contains("force push"), "\(forceShown)")
        // Approved: main is exactly the pinned commit, not the agent's later one.
        #expect(approval.status == 0, "\(approval)")
        let after = runProcess("/usr/bin/git", ["--git-dir", bare, "rev-parse", "main", "topic"], environment: ["PATH": "/usr/bin:/bin"],
                               directory: scene.root).stdout.split(separator: "\n").map(String.init)
        #expect(after.first == pinnedCommit && !pinnedCommit.isEmpty, "\(after) vs \(pinnedCommit)")
        #expect(after.first != scene.file("later.txt").trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(after.last != pinnedCommit, "the force push was applied without approval")
        #expect(scene.file("wait.rc") == "0\n" && scene.file("wait.txt").contains("ok refs/heads/main"), "\(scene.file("wait.txt"))")
        let pushes = requests.filter { $0["service"] as? String == "git-receive-pack" && $0["method"] as? String == "POST" }
        #expect(pushes.count == 1 && pushes.first?["authorization"] as? String == basic, "one push, by the approval: \(pushes)")
        // Hand-made requests: read strictly, the agent's own credentials never forwarded.
        let raw = scene.file("raw.out")
        #expect(raw.contains(#""name": "no-updates", "status": 400"#), "\(raw)")
        #expect(raw.contains(#""name": "foreign-token", "status": 401"#), "\(raw)")
        #expect(raw.contains(#""name": "two-services", "status": 403"#), "\(raw)")
        // The profile scopes GitHub reads to acme/app: another repository is refused unsent.
        #expect(raw.contains(#""name": "outside-scope", "status": 403"#) && raw.contains("outside the repositories"), "\(raw)")
        #expect(!requests.contains { ($0["path"] as? String)?.contains("secrets") == true })
    }
}

/// gh (real) through the broker's GitHub gateway, as api.github.com: the GitHub stand-in
/// (Tests/Support/github_standin.py; GitHub itself is not reachable here) on 127.0.0.5:443,
/// so root only. It demands the human's token even for reads. gh is called both through its
/// shim and directly (/run/airlock/tools/gh: the shim bypassed).
@Suite struct GitHubAPIGatewayTests {
    @Test func restAndGraphQLQueriesPassAndMutationsArePinned() throws {
        guard Launch.root.available() else { return }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gh") else {
            Issue.record("gh is not installed (apt-get install gh; scripts/test does): the GitHub gateway test needs it")
            return
        }
        let scene = Scene(.root)
        let (cert, key, ca) = try GitHubFixtures.certificates(in: scene)
        let log = scene.root + "/github-requests.jsonl"
        let server = try GitHubFixtures.start([Stage.repoRoot + "/Tests/Support/github_standin.py", log, cert, key, "127.0.0.5:443"],
                                              environment: ["GITHUB_STANDIN_REQUIRE_TOKEN": "1"])
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        let human = ["GH_TOKEN": "host-github-token", "AIRLOCK_EGRESS_RESOLVE": "api.github.com=127.0.0.5", "SSL_CERT_FILE": ca]
        let profile = scene.egressProfile("network:\n  allow: [api.github.com]\n")
        scene.write(scene.workspace + "/raw.py", GitHubFixtures.rawClient(tunnel: "api.github.com") + #"""
            call("plain-read", "GET", "/repos/o/r")
            call("foreign-token", "GET", "/repos/o/r", {"Authorization": "token ghp_found_elsewhere"})
            call("graphql-get", "GET", "/graphql?query=mutation%7BaddStar%7D")
            # Two "query" keys: parsers disagree on which one runs, so it is not a read.
            call("duplicate-query", "POST", "/graphql", {"Content-Type": "application/json"},
                 b'{"query": "query { viewer { login } }", "query": "mutation { addStar(input: {starrableId: \\"R_1\\"}) { clientMutationId } }"}')
            call("token-endpoint", "GET", "/repos/o/r/actions/secrets")
            # The connection is to api.github.com; a request naming another host has two readings.
            call("other-host", "GET", "/repos/o/r", {"Host": "internal.example"})
            """#)
        var shown = Outcome(status: -1, stdout: "", stderr: "")
        var approval = shown
        var before: [[String: Any]] = []
        let out = scene.run(["/bin/sh", "-c", """
            G=/run/airlock/tools/gh  # the real binary, the shim bypassed
            env > env.seen
            gh api repos/o/r > shim-get.out 2> shim-get.err; echo $? > shim-get.rc
            $G api repos/o/r > get.out 2> get.err; echo $? > get.rc
            $G api graphql -f query='query { viewer { login } }' > query.out 2> query.err; echo $? > query.rc
            $G api graphql -f query='mutation { addStar(input: {starrableId: "R_1"}) { clientMutationId } }' > mutation.out 2> mutation.err; echo $? > mutation.rc
            $G pr merge 1 --merge --repo o/r > merge.out 2> merge.err; echo $? > merge.rc
            python3 raw.py > raw.out 2> raw.err
            grep -o 'Proposal [0-9a-f]*' merge.err | head -1 | cut -d' ' -f2 > id.txt
            touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """], options: ["--profile", profile], timeout: 300, extraEnvironment: human) { _ in
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            before = GitHubFixtures.lines(log)
            let environment = scene.environment.merging(human) { $1 }
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            shown = runProcess(Stage.airlock, ["show", id, "--state-dir", scene.stateDir], environment: environment, directory: scene.workspace)
            approval = runProcess(Stage.airlock, ["approve", id, "--state-dir", scene.stateDir], environment: environment,
                                  directory: scene.workspace, timeout: 120)
        }
        #expect(out.status == 0, "\(out)")
        #expect(!scene.file("env.seen").contains("host-github-token"), "the human's token is in the sandbox")
        // Reads pass, shim or not, with the human's token (the stand-in demands it).
        #expect(scene.file("shim-get.rc") == "0\n" && scene.file("shim-get.out").contains("\"full_name\""), "\(scene.file("shim-get.err"))")
        #expect(scene.file("get.rc") == "0\n" && scene.file("get.out").contains("\"full_name\""), "\(scene.file("get.err"))")
        #expect(scene.file("query.rc") == "0\n" && scene.file("query.out").contains("\"login\""), "\(scene.file("query.err"))")
        #expect(!before.isEmpty && before.allSatisfy { ($0["authorization"] as? String)?.lowercased() == "token host-github-token" },
                "\(before.map { $0["authorization"] ?? "" })")
        // A GraphQL mutation and `gh pr merge` are proposals; nothing was changed before approval.
        #expect(scene.file("mutation.rc") != "0\n" && scene.file("mutation.err").contains("Proposal "), "\(scene.file("mutation.err"))")
        #expect(scene.file("merge.rc") != "0\n" && scene.file("merge.err").contains("Proposal "), "\(scene.file("merge.err"))")
        #expect(!before.contains { ($0["graphql_operation"] as? String)?.hasPrefix("mutation") == true }, "a mutation reached GitHub before approval")
        #expect(shown.stdout.contains("mutation PullRequestMerge") && shown.stdout.contains("mergePullRequest"), "\(shown)")
        // Hand-made requests: the human's token on a plain read; no other token forwarded;
        // GraphQL only by POST and with one reading; token endpoints gated.
        let raw = scene.file("raw.out")
        #expect(raw.contains(#""name": "plain-read", "status": 200"#), "\(raw)")
        #expect(raw.contains(#""name": "foreign-token", "status": 401"#), "\(raw)")
        // A GET with the document in its query string: refused before anything else is read.
        #expect(raw.contains(#""name": "graphql-get", "status": 400"#), "\(raw)")
        #expect(raw.contains(#""name": "duplicate-query", "status": 403"#) && raw.contains("Proposal "), "\(raw)")
        #expect(raw.contains(#""name": "token-endpoint", "status": 403"#), "\(raw)")
        #expect(raw.contains(#""name": "other-host", "status": 400"#), "\(raw)")
        // Approved: the merge is sent once, with the human's token; the agent's wait returns.
        #expect(approval.status == 0, "\(approval)")
        let merges = GitHubFixtures.lines(log).filter { $0["graphql_operation"] as? String == "mutation PullRequestMerge" }
        #expect(merges.count == 1 && (merges.first?["authorization"] as? String)?.lowercased() == "token host-github-token", "\(merges)")
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
    }
}
