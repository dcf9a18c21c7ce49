import Foundation
import Testing

/// The secret and token leaks through GitHub, written as the attack (docs/github.md, "One
/// reading or none"): an agent inside `airlock run` sends hand-made requests through the
/// egress proxy's CONNECT to api.github.com and runs real gh. GitHub is the stand-in
/// (Tests/Support/github_standin.py as api.github.com on 127.0.0.8:443, so root only; GitHub
/// is not reachable here), which decodes paths as GitHub's router does, honours
/// X-HTTP-Method-Override as Rack does and reads GraphQL from the URL too. The human's token
/// lives only in gh's hosts.yml, under a GH_CONFIG_DIR (or XDG_CONFIG_HOME) inside the
/// workspace. One session runs every attack; each finding is its own test.
@Suite struct GitHubLeakTests {
    static let token = "host-github-token"

    struct Attack: Sendable {
        var ran = false
        var failure = ""
        var raw: [String: (status: Int, body: String)] = [:]
        var files: [String: String] = [:]
        var requests: [[String: String]] = []
        var log = ""
    }

    static let attack: Attack = run()

    static func run() -> Attack {
        var attack = Attack()
        guard Launch.root.available() else {
            attack.failure = "needs root (the stand-in listens on 127.0.0.8:443)"
            return attack
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gh") else {
            attack.failure = "gh is not installed (apt-get install gh; scripts/test does): the GitHub leak tests need it"
            return attack
        }
        let scene = Scene(.root)
        let server: Process
        let ca: String
        let log = scene.root + "/github-requests.jsonl"
        do {
            let (cert, key, authority) = try GitHubFixtures.certificates(in: scene)
            ca = authority
            server = try GitHubFixtures.start([Stage.repoRoot + "/Tests/Support/github_standin.py", log, cert, key, "127.0.0.8:443"],
                                              environment: ["GITHUB_STANDIN_REQUIRE_TOKEN": "1"])
        } catch {
            attack.failure = "the stand-in did not start: \(error)"
            return attack
        }
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        let hosts = "github.com:\n    oauth_token: \(token)\n    user: person\n    git_protocol: https\n"
        scene.write(scene.workspace + "/.gh-config/hosts.yml", hosts, mode: 0o600)
        scene.write(scene.workspace + "/.xdg/gh/hosts.yml", hosts, mode: 0o600)
        let profile = scene.egressProfile("network:\n  allow: [api.github.com]\n")
        let human = ["AIRLOCK_EGRESS_RESOLVE": "api.github.com=127.0.0.8", "SSL_CERT_FILE": ca, "GITHUB_TOKEN": ""]
        scene.write(scene.workspace + "/raw.py", GitHubFixtures.rawClient(tunnel: "api.github.com") + #"""
            import urllib.parse
            mutation = "mutation { addStar(input: {starrableId: \"R_1\"}) { clientMutationId } }"
            query_body = json.dumps({"query": "query { viewer { login } }"}).encode()
            json_type = {"Content-Type": "application/json"}
            # 1: an encoded letter hides a secrets or keys endpoint from a naive reader.
            call("encoded-repo-secrets", "GET", "/repos/o/r/actions/secret%73")
            call("encoded-public-key", "GET", "/repos/o/r/actions/%73ecrets/public-key")
            call("encoded-user-keys", "GET", "/user/key%73")
            call("encoded-org-secrets", "GET", "/orgs/o/actions/secret%53")
            # 5: GraphQL with a second place to read the operation from.
            call("graphql-query-string", "POST", "/graphql?query=" + urllib.parse.quote(mutation), json_type, query_body)
            call("graphql-operation-name", "POST", "/graphql?operationName=W", json_type,
                 json.dumps({"query": "query R { viewer { login } } " + mutation.replace("mutation", "mutation W", 1)}).encode())
            call("graphql-get-slash", "GET", "/graphql/?query=" + urllib.parse.quote(mutation))
            call("graphql-get-encoded", "GET", "/graphq%6c?query=" + urllib.parse.quote(mutation))
            call("graphql-post-slash", "POST", "/graphql/", json_type, json.dumps({"query": mutation}).encode())
            # 6: a method override; a push sent to the API host.
            call("method-override", "POST", "/repos/o/r", {"X-HTTP-Method-Override": "DELETE"})
            call("method-override-get", "GET", "/repos/o/r", {"X-Method-Override": "DELETE"})
            call("push-to-api-host", "POST", "/o/r.git/git-receive-pack", {"Content-Type": "application/x-git-receive-pack-request"},
                 b"00980000000000000000000000000000000000000000 1111111111111111111111111111111111111111 refs/heads/main\0report-status\n0000PACK")
            """#)
        let out = scene.run(["/bin/sh", "-c", """
            cat .gh-config/hosts.yml > hosts.seen 2>&1; env > env.seen
            gh api repos/o/r > gh-read.out 2> gh-read.err; echo $? > gh-read.rc
            python3 raw.py > raw.out 2> raw.err
            # Real git, pushing to the API host (it asks for the receive-pack advertisement first).
            export GIT_CONFIG_NOSYSTEM=1
            mkdir push && cd push && git init -q && git -c user.name=A -c user.email=a@example.com commit -q --allow-empty -m x
            git push https://api.github.com/o/r.git HEAD:refs/heads/main > ../git-push.out 2>&1; echo $? > ../git-push.rc
            """], options: ["--profile", profile], timeout: 240,
            extraEnvironment: human.merging(["GH_CONFIG_DIR": scene.workspace + "/.gh-config"]) { $1 })
        // The same hosts file found through XDG_CONFIG_HOME.
        let xdg = scene.run(["/bin/sh", "-c", """
            cat .xdg/gh/hosts.yml > xdg-hosts.seen 2>&1
            gh api repos/o/r > xdg-read.out 2> xdg-read.err; echo $? > xdg-read.rc
            """], options: ["--profile", profile], timeout: 120,
            extraEnvironment: human.merging(["XDG_CONFIG_HOME": scene.workspace + "/.xdg"]) { $1 })
        attack.ran = out.status == 0 && xdg.status == 0
        if !attack.ran { attack.failure = "\(out)\n\(xdg)" }
        for line in GitHubFixtures.lines(scene.workspace + "/raw.out") {
            guard let name = line["name"] as? String else { continue }
            attack.raw[name] = (line["status"] as? Int ?? -1, line["body"] as? String ?? "")
        }
        for name in ["git-push.out", "git-push.rc", "hosts.seen", "env.seen", "gh-read.out", "gh-read.err", "gh-read.rc", "raw.err", "xdg-hosts.seen", "xdg-read.out",
                     "xdg-read.err", "xdg-read.rc"] {
            attack.files[name] = scene.file(name)
        }
        attack.requests = GitHubFixtures.lines(log).map { $0.compactMapValues { $0 as? String } }
        let sessions = scene.stateDir + "/sessions"
        attack.log = ((try? FileManager.default.contentsOfDirectory(atPath: sessions)) ?? []).map {
            (try? String(contentsOfFile: sessions + "/" + $0, encoding: .utf8)) ?? ""
        }.joined(separator: "\n")
        return attack
    }

    static func ready() -> Bool {
        guard attack.ran else {
            Issue.record(Comment(rawValue: "the attack session did not run: \(attack.failure)"))
            return false
        }
        return true
    }

    static func expectNothingReached(_ names: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let seen = attack.raw.values.map(\.body).joined() + attack.files.values.joined()
        #expect(!seen.contains("GH-SECRET-MARKER") && !seen.contains(token), "a secret or the human's token reached the sandbox",
                sourceLocation: sourceLocation)
        let sensitive = attack.requests.filter { $0["sensitive"] == "1" }
        #expect(sensitive.isEmpty, "GitHub saw a sensitive read: \(sensitive)", sourceLocation: sourceLocation)
        let changes = attack.requests.filter { $0["method"] != "GET" && !($0["graphql_operation"] ?? "").hasPrefix("query") }
        #expect(changes.isEmpty, "GitHub saw a change: \(changes)", sourceLocation: sourceLocation)
        for name in names {
            #expect(attack.raw[name].map { [400, 403].contains($0.status) && $0.body.contains("Airlock") } == true,
                    "\(name): \(String(describing: attack.raw[name]))", sourceLocation: sourceLocation)
        }
    }

    @Test func percentEncodedSecretEndpointsAreRefused() {
        guard Self.ready() else { return }
        Self.expectNothingReached(["encoded-repo-secrets", "encoded-public-key", "encoded-user-keys", "encoded-org-secrets"])
        #expect(!Self.attack.requests.contains { ($0["path"] ?? "").contains("%") }, "an encoded path was forwarded")
    }

    @Test func theTokenInAWorkspaceHostsFileStaysOutside() {
        guard Self.ready() else { return }
        // gh's hosts.yml under GH_CONFIG_DIR and under XDG_CONFIG_HOME: masked, yet the broker uses it.
        #expect(!(Self.attack.files["hosts.seen"] ?? "").contains(Self.token), "\(Self.attack.files["hosts.seen"] ?? "")")
        #expect(!(Self.attack.files["xdg-hosts.seen"] ?? "").contains(Self.token), "\(Self.attack.files["xdg-hosts.seen"] ?? "")")
        #expect(Self.attack.files["gh-read.rc"] == "0\n" && Self.attack.files["gh-read.out"]?.contains("full_name") == true,
                "\(Self.attack.files["gh-read.err"] ?? "")")
        #expect(Self.attack.files["xdg-read.rc"] == "0\n", "\(Self.attack.files["xdg-read.err"] ?? "")")
        let reads = Self.attack.requests.filter { $0["path"] == "/repos/o/r" && $0["method"] == "GET" }
        #expect(reads.count >= 2 && reads.allSatisfy { $0["authorization"]?.lowercased() == "token \(Self.token)" }, "\(reads)")
        Self.expectNothingReached([])
    }

    @Test func graphQLIsReadFromTheBodyAloneAtExactlyItsPath() {
        guard Self.ready() else { return }
        Self.expectNothingReached(["graphql-query-string", "graphql-operation-name", "graphql-get-slash", "graphql-get-encoded", "graphql-post-slash"])
        #expect(!Self.attack.requests.contains { ($0["path"] ?? "").hasPrefix("/graphq") }, "a GraphQL variant was forwarded")
    }

    @Test func methodOverrideHeadersAreRefused() {
        guard Self.ready() else { return }
        Self.expectNothingReached(["method-override", "method-override-get"])
        #expect(Self.attack.raw["method-override"]?.body.contains("asks for another method") == true, "\(Self.attack.raw)")
    }

    @Test func aPushToTheAPIHostIsRefusedAndNothingIsFetched() {
        guard Self.ready() else { return }
        Self.expectNothingReached(["push-to-api-host"])
        #expect(Self.attack.files["git-push.rc"] != "0\n" && Self.attack.files["git-push.out"]?.contains("403") == true,
                "\(Self.attack.files["git-push.out"] ?? "")")
        #expect(!Self.attack.requests.contains { ($0["path"] ?? "").contains("git-") || ($0["path"] ?? "").contains("/info/refs") },
                "the broker reached the API host with git's protocol: \(Self.attack.requests)")
        let proposed = Self.attack.log.contains(#/proposal [0-9a-f]+: /#)
        #expect(!proposed, "a proposal was made: \(Self.attack.log)")
    }
}
