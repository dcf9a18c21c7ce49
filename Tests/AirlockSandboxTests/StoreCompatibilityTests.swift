import Foundation
import Testing

/// Stores users already have on disk (issue 19): a state directory and a gate's pg_dump
/// written by the binaries of commit fc0b570, holding proposals of every kind in every state
/// that code could leave them in (Tests/Fixtures/fc0b570: make.sh, the script that made
/// them, and manifest.json, which says which proposal is which). The code of today reads,
/// lists, shows, verifies, approves and executes them against the same upstreams on the
/// same fixed addresses: moto, the Kubernetes and GitHub API stand-ins (nothing real runs
/// here; they decode requests as the real servers do) and a real git smart-HTTP server
/// holding the repository as it was when the pushes were proposed. Root only (port 443).
@Suite(.serialized) struct StoreCompatibilityTests {
    static let fixtures = Stage.repoRoot + "/Tests/Fixtures/fc0b570"

    struct Entry {
        let kind: String
        let index: Int
        let id: String
        let state: String
    }

    static func manifest() throws -> (entries: [String: [Entry]], bucket: String, resolve: String) {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/manifest.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var entries: [String: [Entry]] = [:]
        for (store, list) in json["stores"] as? [String: [[String: Any]]] ?? [:] {
            entries[store] = list.compactMap {
                guard let kind = $0["kind"] as? String, let index = $0["index"] as? Int, let id = $0["id"] as? String,
                      let state = $0["state"] as? String else { return nil }
                return Entry(kind: kind, index: index, id: id, state: state)
            }
        }
        return (entries, json["bucket"] as? String ?? "", json["resolve"] as? String ?? "")
    }

    /// The upstreams the fixtures' proposals name, on their fixed addresses, and the human's
    /// environment to approve with (credentials for each).
    final class Upstreams: @unchecked Sendable {
        let moto: Moto
        let kube: KubeStandIn
        let github: Process
        let git: Process
        let githubLog: String
        let gitLog: String
        let repositories: String
        let environment: [String: String]

        init(scene: Scene, resolve: String, bucket: String) throws {
            moto = try Moto(host: "127.0.0.30", port: 4566)
            let made = moto.aws(["s3", "mb", "s3://" + bucket])
            guard made.status == 0 else { throw TestUpstreamError("s3 mb: \(made)") }
            try FileManager.default.createDirectory(atPath: scene.root + "/kube", withIntermediateDirectories: true)
            kube = try KubeStandIn(directory: scene.root + "/kube", environment: ["KUBE_STANDIN_BIND": "127.0.0.31:6443"])
            let (cert, key, ca) = try GitHubFixtures.certificates(in: scene)
            githubLog = scene.root + "/github.jsonl"
            github = try GitHubFixtures.start([Stage.repoRoot + "/Tests/Support/github_standin.py", githubLog, cert, key, "127.0.0.32:443"])
            repositories = scene.root + "/repositories"
            try FileManager.default.createDirectory(atPath: repositories, withIntermediateDirectories: true)
            let unpacked = runProcess("/usr/bin/tar", ["-xf", StoreCompatibilityTests.fixtures + "/git-repositories.tar", "-C", repositories],
                                      environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
            guard unpacked.status == 0 else { throw TestUpstreamError("tar: \(unpacked)") }
            gitLog = scene.root + "/git.jsonl"
            git = try GitHubFixtures.start([Stage.repoRoot + "/Tests/Support/git_http_server.py", repositories, "alice", "s3cret", gitLog,
                                            "--cert", cert, "--key", key, "--bind", "127.0.0.33:443"])
            scene.write(scene.home + "/.gitconfig", "[credential]\n\thelper = store\n")
            scene.write(scene.home + "/.git-credentials", "https://alice:s3cret@github.com\n", mode: 0o600)
            environment = scene.environment.merging(Moto.keys) { $1 }.merging([
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "KUBECONFIG": kube.kubeconfig, "GH_TOKEN": "host-github-token",
                "AIRLOCK_EGRESS_RESOLVE": resolve, "SSL_CERT_FILE": ca, "GIT_CONFIG_NOSYSTEM": "1",
            ]) { $1 }
        }

        deinit {
            for process in [github, git] {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }

        /// What each kind's execution of fixture `index` of `pass` left upstream, or nil when
        /// it left nothing: the proof that it ran, and ran once.
        func effect(_ kind: String, _ index: Int, pass: String, bucket: String) -> String? {
            switch kind {
            case "aws-request":
                let queues = moto.aws(["sqs", "list-queues"]).stdout
                return queues.contains("compat-aws-\(index)\"") ? "queue compat-aws-\(index)" : nil
            case "s3-multipart":
                let head = moto.aws(["s3api", "head-object", "--bucket", bucket, "--key", "multipart-\(index).bin"])
                return head.status == 0 && head.stdout.contains("9437184") ? "object multipart-\(index).bin" : nil
            case "kubernetes-request", "command":
                let name = kind == "command" ? "compat-command-\(index)" : "compat-kube-\(index)"
                let creates = kube.requests.filter {
                    $0["method"] == "POST" && !($0["path"] ?? "").contains("dryRun") && ($0["body"] ?? "").contains("\"\(name)\"")
                }
                guard !creates.isEmpty else { return nil }
                return creates.allSatisfy { $0["authorization"] == "Bearer host-secret-token" } ? "\(creates.count) create of \(name)" : "unauthorised"
            case "github-request":
                let posts = GitHubFixtures.lines(githubLog).filter {
                    $0["method"] as? String == "POST" && ($0["body"] as? String ?? "").contains("compat-github-\(index)\"")
                }
                return posts.isEmpty ? nil : "\(posts.count) issue compat-github-\(index)"
            case "git-push":
                let branch = runProcess("/usr/bin/git", ["--git-dir", repositories + "/acme/app.git", "rev-parse", "--verify", "-q",
                                                         "refs/heads/compat-\(pass)-\(index)"],
                                        environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
                return branch.status == 0 ? "branch compat-\(pass)-\(index)" : nil
            default:
                return "unknown kind \(kind)"
            }
        }
    }

    /// What the code of today makes of each state fc0b570 left: the state it lists (an
    /// execution whose executor is gone is `unknown`, never run again), and what approving it
    /// does (nil: it runs and succeeds; else the refusal's words).
    static func expected(_ state: String) -> (listed: String, refusal: String?) {
        switch state {
        case "pending", "approved": return (state, nil)
        case "executing", "unknown": return ("unknown", "never runs it again")
        case "succeeded", "failed": return (state, "already approved")
        case "denied": return (state, "it was denied")
        default: return (state, "?")
        }
    }

    @Test func aStateDirectoryWrittenByFc0b570IsReadShownApprovedAndExecuted() throws {
        guard Launch.root.available(), PythonTools.available() else { return }
        let (manifest, bucket, resolve) = try Self.manifest()
        let entries = try #require(manifest["local"])
        #expect(Set(entries.map(\.kind)).count == 6 && Set(entries.map(\.state)).count == 7, "\(entries.map { "\($0.kind) \($0.state)" })")
        let scene = Scene(.root)
        let copied = runProcess("/bin/cp", ["-a", Self.fixtures + "/local-state/.", scene.stateDir], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        try #require(copied.status == 0, "\(copied)")
        let upstreams = try Upstreams(scene: scene, resolve: resolve, bucket: bucket)
        func airlock(_ arguments: [String]) -> Outcome {
            runProcess(Stage.airlock, arguments + ["--state-dir", scene.stateDir], environment: upstreams.environment,
                       directory: scene.workspace, timeout: 300)
        }
        // Read: every proposal listed with its payload's type and the state it is in now.
        let listed = airlock(["proposals", "--all", "--json"])
        try #require(listed.status == 0, "\(listed)")
        let rows = (((try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8))) as? [String: Any])?["proposals"] as? [[String: Any]]) ?? []
        for entry in entries {
            let row = rows.first { $0["id"] as? String == entry.id }
            #expect(row?["type"] as? String == entry.kind, "\(entry.id): \(String(describing: row))")
            #expect(row?["state"] as? String == Self.expected(entry.state).listed, "\(entry.kind) \(entry.state): \(String(describing: row?["state"]))")
        }
        // Shown, with what fc0b570 embedded in the payload as the preview.
        for entry in entries {
            let shown = airlock(["show", entry.id])
            #expect(shown.status == 0, "\(entry.kind) \(entry.state): \(shown)")
            switch entry.kind {
            case "git-push": #expect(shown.stdout.contains("Compatibility fixture commit"), "\(shown.stdout)")
            case "command": #expect(shown.stdout.contains("compat-command-\(entry.index)"), "\(shown.stdout)")
            case "kubernetes-request": #expect(shown.stdout.contains("compat-kube-\(entry.index)"), "\(shown.stdout)")
            default: break
            }
        }
        // The log fc0b570 chained still verifies, rows and all.
        let verified = airlock(["audit", "verify"])
        #expect(verified.status == 0, "\(verified)")
        // Approve every one: pending and approved-never-claimed run once and succeed; the
        // others are refused, and nothing of theirs reaches an upstream.
        for entry in entries {
            let approved = airlock(["approve", entry.id, "--json"])
            let want = Self.expected(entry.state)
            if let refusal = want.refusal {
                #expect(approved.status != 0 && approved.stderr.contains(refusal), "\(entry.kind) \(entry.state): \(approved)")
                #expect(upstreams.effect(entry.kind, entry.index, pass: "local", bucket: bucket) == nil, "\(entry.kind) \(entry.state) ran")
            } else {
                #expect(approved.status == 0 && approved.stdout.contains("\"succeeded\""), "\(entry.kind) \(entry.state): \(approved)")
                let effect = upstreams.effect(entry.kind, entry.index, pass: "local", bucket: bucket)
                #expect(effect != nil && effect != "unauthorised" && !(effect ?? "").hasPrefix("2 "), "\(entry.kind) \(entry.state): \(String(describing: effect))")
            }
        }
        #expect(airlock(["audit", "verify"]).status == 0)
    }

    @Test func aGateDumpWrittenByFc0b570IsReadShownApprovedAndExecuted() throws {
        guard Launch.root.available(), PythonTools.available() else { return }
        let (manifest, bucket, resolve) = try Self.manifest()
        let entries = try #require(manifest["gate"])
        #expect(Set(entries.map(\.kind)) == ["aws-request", "s3-multipart", "command"] && Set(entries.map(\.state)).count == 7,
                "\(entries.map { "\($0.kind) \($0.state)" })")
        let database = try TeamGate.freshPostgres()
        let restored = runProcess("/usr/bin/psql", ["-v", "ON_ERROR_STOP=1", "-q", database, "-f", Self.fixtures + "/gate.sql"],
                                  environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp", timeout: 120)
        try #require(restored.status == 0, "\(restored)")
        let scene = Scene(.root)
        let folder = makeTemporaryDirectory(prefix: "airlock-gate")
        let copied = runProcess("/bin/cp", ["-a", Self.fixtures + "/gate-state", folder + "/state"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        try #require(copied.status == 0, "\(copied)")
        let upstreams = try Upstreams(scene: scene, resolve: resolve, bucket: bucket)
        let gate = try TeamGate(store: "postgres", upstream: "http://127.0.0.30:4566", keys: upstreams.environment.filter {
            ["KUBECONFIG", "AIRLOCK_EGRESS_RESOLVE", "SSL_CERT_FILE"].contains($0.key)
        }, folder: folder, postgres: database)
        let tokens = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/gate-tokens.json"))) as? [String: String]
        let approver = try #require(tokens?["approver"])
        // The tokens fc0b570 enrolled still sign in: a host's sees nothing to decide.
        for entry in entries {
            var shown = gate.call("GET", "/v1/proposals/\(entry.id)", token: approver)
            // An execution a dead replica held: its lease lapses, and the recovery loop says unknown.
            let deadline = Date().addingTimeInterval(60)
            while entry.state == "executing" && shown.json["state"] as? String == "executing" && Date() < deadline {
                usleep(500_000)
                shown = gate.call("GET", "/v1/proposals/\(entry.id)", token: approver)
            }
            #expect(shown.status == 200 && shown.json["type"] as? String == entry.kind, "\(entry.kind) \(entry.state): \(shown)")
            #expect(shown.json["state"] as? String == Self.expected(entry.state).listed, "\(entry.kind) \(entry.state): \(shown.json)")
        }
        for entry in entries {
            let answer = gate.call("POST", "/v1/proposals/\(entry.id)/approve", token: approver, body: ["reason": "compatibility"])
            let want = Self.expected(entry.state)
            if let refusal = want.refusal {
                let said = (answer.json["error"] as? [String: Any])?["message"] as? String ?? ""
                #expect(answer.status == 409 && said.contains(refusal), "\(entry.kind) \(entry.state): \(answer)")
                #expect(upstreams.effect(entry.kind, entry.index, pass: "gate", bucket: bucket) == nil, "\(entry.kind) \(entry.state) ran")
            } else {
                #expect(answer.status == 200 && answer.json["state"] as? String == "succeeded", "\(entry.kind) \(entry.state): \(answer)")
                let effect = upstreams.effect(entry.kind, entry.index, pass: "gate", bucket: bucket)
                #expect(effect != nil && effect != "unauthorised" && !(effect ?? "").hasPrefix("2 "), "\(entry.kind) \(entry.state): \(String(describing: effect))")
            }
        }
    }
}
