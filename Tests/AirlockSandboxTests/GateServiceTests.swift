import Foundation
import Testing

/// A team gate for one test: the real `airlock-gate` binary serving on loopback, its store
/// SQLite or a real PostgreSQL server (scripts/test starts one), its executions sent to moto
/// with the gate's own keys.
final class TeamGate: @unchecked Sendable {
    let directory: String
    let config: String
    let port: Int
    let process: Process
    let log: String
    /// The test CA's certificate when the gate serves TLS (its name is localhost).
    let caFile: String?
    var url: String { caFile == nil ? "http://127.0.0.1:\(port)" : "https://localhost:\(port)" }
    static var binary: String { (ProcessInfo.processInfo.environment["AIRLOCK_BIN_DIR"] ?? Stage.repoRoot + "/.build/debug") + "/airlock-gate" }

    static func environment() -> [String: String] {
        ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "AIRLOCK_PROFILE_PATH": Stage.repoRoot + "/profiles",
         "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"]
    }

    /// `store`: "sqlite", or "postgres" (a schema per gate in AIRLOCK_TEST_POSTGRES's database).
    /// `extra`: more gate.yaml lines (replica, executions, log).
    /// `keys`: the gate's own AWS credentials (its write rights), for its executions.
    /// `assumeRole`: the role every execution assumes (aws.assume_role).
    /// A database of its own on the test PostgreSQL server (`store: "postgres"` shares one):
    /// for replicas whose test counts what every replica's recovery does, which another
    /// test's gate on the shared database could otherwise do first.
    static func freshPostgres() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["AIRLOCK_TEST_POSTGRES"], let slash = url.lastIndex(of: "/") else {
            throw TestUpstreamError("AIRLOCK_TEST_POSTGRES is not set: scripts/test starts PostgreSQL for these tests")
        }
        let name = "airlock_gate_" + String(UUID().uuidString.prefix(8)).lowercased()
        let made = runProcess("/usr/bin/psql", [url, "-c", "CREATE DATABASE \(name)"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        guard made.status == 0 else { throw TestUpstreamError("could not create a test database: \(made)") }
        return String(url[...slash]) + name
    }

    /// `folder`: where its files live (default a new temporary one). `postgres`: the store's
    /// URL (default AIRLOCK_TEST_POSTGRES) when `store` is "postgres".
    /// `descriptorLimit`: the gate runs under this RLIMIT_NOFILE, soft and hard (systemd's
    /// default for services is 1024).
    init(store: String, upstream: String, tls: Bool = false, extra: String = "", keys: [String: String] = [:],
         assumeRole: String? = nil, folder: String? = nil, postgres: String? = nil, descriptorLimit: Int? = nil, port: Int? = nil) throws {
        directory = folder ?? makeTemporaryDirectory(prefix: "airlock-gate")
        self.port = port ?? Moto.freePort()
        var tlsLine = ""
        if tls {
            // A test CA and a certificate for localhost, made with openssl.
            let script = """
                set -e; cd \(directory)
                openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=airlock-test-ca 2>/dev/null
                openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout gate.key -out gate.csr -subj /CN=localhost 2>/dev/null
                printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
                openssl x509 -req -in gate.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out gate.crt -days 2 -extfile ext.cnf 2>/dev/null
                """
            let made = runProcess("/bin/sh", ["-c", script], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
            guard made.status == 0 else { throw TestUpstreamError("openssl could not make the test CA: \(made)") }
            caFile = directory + "/ca.pem"
            tlsLine = "tls: {certificate: \(directory)/gate.crt, key: \(directory)/gate.key}\n"
        } else {
            caFile = nil
        }
        let storeLine: String
        if store == "postgres" {
            guard let url = postgres ?? ProcessInfo.processInfo.environment["AIRLOCK_TEST_POSTGRES"] else {
                throw TestUpstreamError("AIRLOCK_TEST_POSTGRES is not set: scripts/test starts PostgreSQL for these tests")
            }
            storeLine = "store: {postgres: \"\(url)\"}"
        } else {
            storeLine = "store: {sqlite: \(directory)/store}"
        }
        config = directory + "/gate.yaml"
        try "listen: 127.0.0.1:\(self.port)\n\(tlsLine)\(storeLine)\nstate_dir: \(directory)/state\naws: {upstream: \"\(upstream)\"\(assumeRole.map { ", assume_role: \"\($0)\"" } ?? "")}\n\(extra)"
            .write(toFile: config, atomically: true, encoding: .utf8)
        log = directory + "/gate.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process = Process()
        if let descriptorLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -Sn \(descriptorLimit) && ulimit -Hn \(descriptorLimit) && exec \"$0\" \"$@\"", Self.binary, "serve", "--config", config]
        } else {
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = ["serve", "--config", config]
        }
        process.environment = Self.environment().merging(keys) { $1 }
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        for _ in 0..<200 {
            if call("GET", "/healthz").status == 200 { return }
            usleep(50_000)
        }
        throw TestUpstreamError("the gate did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func admin(_ arguments: [String]) -> Outcome {
        runProcess(Self.binary, arguments + ["--config", config], environment: Self.environment(), directory: "/tmp")
    }

    /// Enrols an identity and returns its token.
    func enrol(_ kind: String, _ name: String) -> String {
        let out = admin([kind, "add", name])
        require(out.status == 0, "\(kind) add \(name): \(out)")
        return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One HTTP call with real curl: status and the JSON answer.
    func call(_ method: String, _ path: String, token: String? = nil, body: Any? = nil) -> (status: Int, json: [String: Any]) {
        var arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, url + path]
        if let caFile { arguments += ["--cacert", caFile] }
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let body, let data = try? JSONSerialization.data(withJSONObject: body) {
            arguments += ["-H", "Content-Type: application/json", "--data-binary", String(decoding: data, as: UTF8.self)]
        }
        let out = runProcess("/usr/bin/curl", arguments, environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp", timeout: 120)
        let lines = out.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int(lines.last ?? "") ?? 0
        let text = lines.dropLast().joined(separator: "\n")
        return (status, (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:])
    }
}

/// The team gate end to end (issue: the gate as a service): agent hosts propose with their
/// enrollment tokens, approvers decide with theirs, the gate executes with its own
/// credentials at its own upstream, and nothing a host sends can approve anything.
@Suite struct GateServiceTests {
    /// A pinned SQS CreateQueue (SQS speaks JSON 1.0), as a host's broker stores it.
    static func createQueue(_ name: String, region: String = "us-east-1") -> String {
        let body = "{\"QueueName\":\"\(name)\"}"
        let payload: [String: Any] = [
            "type": "aws-request", "service": "sqs", "signing_name": "sqs", "region": region, "operation": "CreateQueue",
            "method": "POST", "path": "/", "query": "",
            "headers": [["Content-Type", "application/x-amz-json-1.0"], ["X-Amz-Target", "AmazonSQS.CreateQueue"]],
            "body_base64": Data(body.utf8).base64EncodedString(),
        ]
        return (try! JSONSerialization.data(withJSONObject: payload)).base64EncodedString()
    }

    @Test(arguments: ["sqlite", "postgres"])
    func hostsProposeApproversDecideTheGateExecutes(_ store: String) throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let gate = try TeamGate(store: store, upstream: moto.url)
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        let host = gate.enrol("host", "ci-\(tag)"), otherHost = gate.enrol("host", "laptop-\(tag)")
        let alice = gate.enrol("user", "alice-\(tag)")
        #expect(host.hasPrefix("airlock_host_") && alice.hasPrefix("airlock_user_"))

        #expect(gate.call("GET", "/readyz").status == 200)
        #expect(gate.call("GET", "/v1/proposals").status == 401)
        #expect(gate.call("GET", "/v1/proposals", token: "airlock_user_" + String(repeating: "x", count: 43)).status == 401)

        let session = "s-\(tag)-0001"
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": session, "workspace": "/w"]).status == 201)
        // An upstream in the request is ignored: the gate sends approved calls to its own.
        let proposed = gate.call("POST", "/v1/proposals", token: host,
                                 body: ["session_id": session, "payload_base64": Self.createQueue("gate-\(tag)"), "upstream": "http://127.0.0.1:9"])
        #expect(proposed.status == 201, "\(proposed.json)")
        let id = try #require(proposed.json["id"] as? String)
        #expect(proposed.json["state"] as? String == "pending" && proposed.json["summary"] as? String == "sqs:CreateQueue")

        // A host cannot decide, list, or see another host's work.
        for decision in ["approve", "deny"] {
            let refused = gate.call("POST", "/v1/proposals/\(id)/\(decision)", token: host, body: ["reason": "mine"])
            #expect(refused.status == 403, "\(decision): \(refused)")
        }
        #expect(gate.call("GET", "/v1/proposals", token: host).status == 403)
        #expect(gate.call("GET", "/v1/proposals/\(id)", token: otherHost).status == 404)
        #expect(gate.call("POST", "/v1/proposals", token: otherHost, body: ["session_id": session, "payload_base64": Self.createQueue("x")]).status == 404)
        // An approver cannot propose.
        #expect(gate.call("POST", "/v1/proposals", token: alice, body: ["session_id": session, "payload_base64": Self.createQueue("x")]).status == 403)
        // What the gate cannot read one way is refused, not stored.
        let hostile = gate.call("POST", "/v1/proposals", token: host,
                                body: ["session_id": session, "payload_base64": Self.createQueue("y", region: "evil.example.com")])
        #expect(hostile.status == 400, "\(hostile)")
        #expect(moto.aws(["sqs", "list-queues"]).stdout.contains("gate-\(tag)") == false, "executed before approval")

        let shown = gate.call("GET", "/v1/proposals/\(id)", token: alice)
        #expect(shown.json["upstream"] as? String == moto.url && shown.json["state"] as? String == "pending", "\(shown)")
        let approved = gate.call("POST", "/v1/proposals/\(id)/approve", token: alice, body: ["reason": "fine"])
        #expect(approved.status == 200 && approved.json["state"] as? String == "succeeded", "\(approved)")
        #expect(approved.json["decided_by"] as? String == "user:alice-\(tag)")
        #expect(moto.aws(["sqs", "list-queues"]).stdout.contains("gate-\(tag)"), "the approved call did not reach the upstream")
        #expect(gate.call("POST", "/v1/proposals/\(id)/approve", token: alice).status == 409, "approved twice")

        let waited = gate.call("GET", "/v1/proposals/\(id)/wait?timeout=5", token: host)
        #expect(waited.status == 200 && waited.json["state"] as? String == "succeeded", "\(waited)")
        #expect(waited.json["upstream"] == nil, "a host sees the agent's view")

        // Revoked: refused from then on.
        #expect(gate.admin(["host", "revoke", "ci-\(tag)"]).status == 0)
        #expect(gate.call("GET", "/v1/proposals/\(id)", token: host).status == 401)
        #expect(gate.call("GET", "/v1/proposals/\(id)", token: alice).status == 200)
    }

    /// Two agent hosts, each an `airlock run --gate` session with its own enrollment token:
    /// reads go to AWS with the host's credentials, the mutation appears on the gate (not in
    /// the host's store), an approver's approval executes it there once, and the agent's
    /// `airlock wait` returns the result. The token never reaches the sandbox; another host
    /// sees nothing of it.
    @Test func agentHostsProposeThroughTheGate() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let moto = try Moto()
        _ = moto.aws(["sqs", "create-queue", "--queue-name", "already-there"])
        let gate = try TeamGate(store: "sqlite", upstream: moto.url)
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        let alice = gate.enrol("user", "alice")
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        var tokens: [String] = []
        for host in ["host-a", "host-b"] {
            let token = gate.enrol("host", host)
            tokens.append(token)
            scene.write(scene.root + "/\(host).token", token + "\n", mode: 0o600)
        }
        // Host A keeps its token in the workspace, the one tree the agent can read: masked.
        scene.write(scene.workspace + "/.gate-token", tokens[0] + "\n", mode: 0o600)
        scene.chownTree()
        let script = """
            aws sqs list-queues --output text > reads.txt 2>&1; echo READ-EXIT-$?
            aws sqs create-queue --queue-name hosted-\(tag) > out.txt 2>&1; echo PROPOSE-EXIT-$?
            grep -o 'Proposal [0-9a-f]*' out.txt | cut -d' ' -f2 > id.txt
            airlock wait "$(cat id.txt)" --timeout 120; echo WAIT-EXIT-$?
            cat .gate-token \(scene.workspace)/.gate-token /etc/airlock/gate-token 2>/dev/null; env | grep -c airlock_host_ ; echo TOKEN-PROBED
            curl -sS -m 10 --noproxy '' -x http://127.0.0.1:3128 \(gate.url)/healthz 2>&1; echo; curl -sS -m 10 --noproxy '' -x http://127.0.0.1:3128 http://localhost:\(gate.port)/healthz 2>&1; echo GATE-PROBED
            """
        scene.write(scene.root + "/alice.token", alice + "\n", mode: 0o600)
        let asAlice = ["--gate", gate.url, "--gate-token-file", scene.root + "/alice.token"]
        var approval: (status: Int, json: [String: Any])?
        var listed: Outcome?, shown: Outcome?, withHostToken: Outcome?
        var otherHostView: Int?
        // localhost:PORT is allowed by name, so the proxy's refusal of it is the address's.
        let out = scene.agent(script, moto: moto, options: ["--gate", gate.url, "--gate-token-file", scene.workspace + "/.gate-token",
                                                            "--allow-domain", "localhost:\(gate.port)"],
                              timeout: 240) { _ in
            guard scene.waitForFile("id.txt", timeout: 120) else { return }
            usleep(200_000)
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !id.isEmpty else { return }
            otherHostView = gate.call("GET", "/v1/proposals/\(id)", token: tokens[1]).status
            // The approver's side with airlock itself: list, inspect, approve on the gate.
            listed = scene.airlock(["proposals"] + asAlice)
            shown = scene.airlock(["show", id] + asAlice)
            withHostToken = scene.airlock(["approve", id, "--gate", gate.url, "--gate-token-file", scene.root + "/host-b.token"])
            let approved = scene.airlock(["approve", id, "--reason", "hosted queue", "--json"] + asAlice)
            approval = (approved.status == 0 ? 200 : Int(approved.status),
                        (try? JSONSerialization.jsonObject(with: Data(approved.stdout.utf8))) as? [String: Any] ?? [:])
        }
        #expect(out.status == 0, "\(out)")
        #expect(out.stdout.contains("READ-EXIT-0") && scene.file("reads.txt").contains("already-there"), "\(out)")
        #expect(scene.file("out.txt").contains("AirlockProposalPending"), "\(scene.file("out.txt"))")
        #expect(approval?.status == 200 && approval?.json["state"] as? String == "succeeded", "\(String(describing: approval))")
        #expect(approval?.json["decided_by"] as? String == "user:alice")
        #expect(otherHostView == 404, "another host saw the proposal")
        #expect(listed?.status == 0 && listed?.stdout.contains("sqs:CreateQueue") == true, "\(String(describing: listed))")
        #expect(shown?.status == 0 && shown?.stdout.contains("hosted-\(tag)") == true, "\(String(describing: shown))")
        #expect(withHostToken?.status != 0 && withHostToken?.stderr.contains("approver's token") == true, "\(String(describing: withHostToken))")
        #expect(out.stdout.contains("WAIT-EXIT-0") && out.stdout.contains("succeeded"), "\(out)")
        #expect(moto.aws(["sqs", "list-queues"]).stdout.contains("hosted-\(tag)"))
        // Nowhere in the sandbox: not the file, not the environment.
        #expect(out.stdout.contains("\n0\nTOKEN-PROBED") && !out.stdout.contains(tokens[0]), "\(out)")
        // The egress proxy refuses the gate, by its address and by another name for it.
        let probes = out.stdout.components(separatedBy: "TOKEN-PROBED").last ?? ""
        #expect(probes.components(separatedBy: "the team gate").count == 3, "\(probes)")
        #expect(!probes.split(separator: "\n").contains("ok"), "the gate answered the sandbox: \(probes)")
        // The host's own store holds no proposal: it went to the gate.
        let local = scene.airlock(["proposals", "--all", "--json"])
        #expect(!local.stdout.contains("sqs:CreateQueue"), "\(local)")
        // A wrong token fails the launch, before the agent starts.
        scene.write(scene.root + "/bad.token", "airlock_user_" + String(repeating: "a", count: 43), mode: 0o600)
        scene.chownTree()
        let refused = scene.run(["/bin/true"], options: ["--gate", gate.url, "--gate-token-file", scene.root + "/bad.token"])
        #expect(refused.status == 125 && refused.stderr.contains("agent host's token"), "\(refused)")
    }

    /// The acceptance scene, all real: a gate on loopback with PostgreSQL and TLS (a test CA),
    /// two agent hosts as two `airlock run --gate` sessions with their own enrollment tokens
    /// and read-only AWS keys (IAM users in moto with a read-only policy; moto checks every
    /// signature and policy). Their reads pass with their own keys, their changes become
    /// proposals on the gate, the approver's approval executes each once with the gate's write
    /// keys, and each agent's `airlock wait` returns the result. A host cannot approve; a
    /// revoked host's token is refused at launch.
    @Test func twoReadOnlyHostsProposeToATLSPostgresGate() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let moto = try Moto(environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "60"])
        let setup = runProcess(PythonTools.python, ["-c", """
            import boto3, botocore.config, json, sys
            config = botocore.config.Config(retries={"max_attempts": 1})
            iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="testing",
                               aws_secret_access_key="testing", config=config)
            read_only = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sqs:List*", "sqs:Get*", "sts:GetCallerIdentity"], "Resource": "*"}]}
            everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            keys = {}
            for user, policy in (("gate-writer", everything), ("reader-a", read_only), ("reader-b", read_only)):
                iam.create_user(UserName=user)
                iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
                for _ in range(16):
                    key = iam.create_access_key(UserName=user)["AccessKey"]
                    if "+" not in key["SecretAccessKey"]: break  # moto mis-checks secrets with '+'
                    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
                keys[user] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
            for _ in range(70):
                try: iam.list_users()
                except Exception: break
            print(json.dumps(keys))
            """, moto.url], environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()], directory: "/tmp", timeout: 120)
        let keys = try #require((try? JSONSerialization.jsonObject(with: Data(setup.stdout.utf8))) as? [String: [String: String]], "\(setup)")
        let writer = try #require(keys["gate-writer"]), readers = [try #require(keys["reader-a"]), try #require(keys["reader-b"])]
        let queueURL = try #require((moto.json(["sqs", "create-queue", "--queue-name", "two-hosts"], keys: writer) as? [String: Any])?["QueueUrl"] as? String)
        // The readers' keys really are read-only, and moto really checks.
        #expect(moto.aws(["sqs", "send-message", "--queue-url", queueURL, "--message-body", "x"], keys: readers[0]).status != 0)
        #expect(moto.aws(["sqs", "list-queues"], keys: ["AWS_ACCESS_KEY_ID": readers[0]["AWS_ACCESS_KEY_ID"]!, "AWS_SECRET_ACCESS_KEY": "wrong"]).status != 0)

        let gate = try TeamGate(store: "postgres", upstream: moto.url, tls: true, keys: writer)
        let ca = try #require(gate.caFile)
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        let hostNames = ["host-a-\(tag)", "host-b-\(tag)"]
        let hostTokens = hostNames.map { gate.enrol("host", $0) }
        let approverToken = gate.enrol("user", "approver-\(tag)")
        var scenes: [Scene] = []
        for (index, name) in hostNames.enumerated() {
            let scene = Scene(getuid() == 0 ? .root : .unprivileged)
            scenes.append(scene)
            scene.write(scene.root + "/host.token", hostTokens[index] + "\n", mode: 0o600)
            scene.write(scene.root + "/approver.token", approverToken + "\n", mode: 0o600)
            scene.write(scene.root + "/other-host.token", hostTokens[1 - index] + "\n", mode: 0o600)
            scene.chownTree()
            let gateOptions = ["--gate", gate.url, "--gate-ca", ca]
            // Host A names the gate on the command line; host B in its host config
            // (/etc/airlock/config.yaml; AIRLOCK_HOST_CONFIG points elsewhere for a test).
            let hostConfig = scene.root + "/config.yaml"
            scene.write(hostConfig, "gate: {url: \"\(gate.url)\", token_file: \(scene.root)/host.token, ca: \(ca)}\n", mode: 0o644)
            let runOptions = index == 0 ? gateOptions + ["--gate-token-file", scene.root + "/host.token"] : []
            let runEnvironment = index == 0 ? readers[index] : readers[index].merging(["AIRLOCK_HOST_CONFIG": hostConfig]) { $1 }
            let script = """
                aws sqs list-queues --output text > reads.txt 2>&1; echo READ-EXIT-$?
                aws sqs send-message --queue-url \(queueURL) --message-body from-\(name) > out.txt 2>&1; echo PROPOSE-EXIT-$?
                grep -o 'Proposal [0-9a-f]*' out.txt | cut -d' ' -f2 > id.txt
                airlock wait "$(cat id.txt)" --timeout 120; echo WAIT-EXIT-$?
                """
            var approved: Outcome?, byHost: Outcome?
            let out = scene.agent(script, moto: moto, options: runOptions, hostKeys: runEnvironment, timeout: 240) { _ in
                guard scene.waitForFile("id.txt", timeout: 120) else { return }
                usleep(200_000)
                let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
                guard !id.isEmpty else { return }
                byHost = scene.airlock(["approve", id] + gateOptions + ["--gate-token-file", scene.root + "/other-host.token"])
                approved = scene.airlock(["approve", id, "--reason", "two hosts"] + gateOptions + ["--gate-token-file", scene.root + "/approver.token"])
            }
            #expect(out.stdout.contains("READ-EXIT-0") && scene.file("reads.txt").contains("two-hosts"), "\(name): \(out)")
            #expect(scene.file("out.txt").contains("AirlockProposalPending"), "\(scene.file("out.txt"))")
            #expect(byHost?.status != 0 && byHost?.stderr.contains("approver's token") == true, "\(String(describing: byHost))")
            #expect(approved?.status == 0 && approved?.stdout.contains("succeeded") == true, "\(String(describing: approved))")
            #expect(out.stdout.contains("WAIT-EXIT-0") && out.stdout.contains("succeeded"), "\(name): \(out)")
        }
        // Each executed once, with the gate's keys (the readers cannot send).
        let received = moto.json(["sqs", "receive-message", "--queue-url", queueURL, "--max-number-of-messages", "10",
                                  "--wait-time-seconds", "1"], keys: writer) as? [String: Any]
        let bodies = ((received?["Messages"] as? [[String: Any]]) ?? []).compactMap { $0["Body"] as? String }.sorted()
        #expect(bodies == hostNames.map { "from-\($0)" }.sorted(), "\(bodies)")
        // Host B is revoked: its next session is refused before the agent starts.
        #expect(gate.admin(["host", "revoke", hostNames[1]]).status == 0)
        let refused = scenes[1].run(["/bin/true"], options: ["--gate", gate.url, "--gate-ca", ca, "--gate-token-file", scenes[1].root + "/host.token"])
        #expect(refused.status == 125 && refused.stderr.contains("revoked"), "\(refused)")
        // A host config that does not parse stops the launch and says where.
        scenes[1].write(scenes[1].root + "/bad.yaml", "gate: {url: \(gate.url), tokens: x}\n", mode: 0o644)
        let bad = scenes[1].run(["/bin/true"], options: [], extraEnvironment: ["AIRLOCK_HOST_CONFIG": scenes[1].root + "/bad.yaml"])
        #expect(bad.status == 125 && bad.stderr.contains("bad.yaml:1") && bad.stderr.contains("unknown key 'tokens'"), "\(bad)")
    }

    /// Two gate replicas on one PostgreSQL: 200 proposals, each approved through both at
    /// once; each is executed exactly once. SendMessage is not idempotent, so the queue's
    /// message count is the count of executions.
    @Test func replicasExecuteEachApprovalOnce() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let created = moto.json(["sqs", "create-queue", "--queue-name", "replica-q"]) as? [String: Any]
        let queueURL = try #require(created?["QueueUrl"] as? String)
        let a = try TeamGate(store: "postgres", upstream: moto.url)
        let b = try TeamGate(store: "postgres", upstream: moto.url)
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        let host = a.enrol("host", "replica-host-\(tag)"), user = a.enrol("user", "replica-user-\(tag)")
        var ids: [String] = []
        for batch in 0..<2 {
            let session = "r-\(tag)-\(batch)000"
            #expect(b.call("POST", "/v1/sessions", token: host, body: ["id": session]).status == 201)
            for index in 0..<100 {
                let body = "{\"QueueUrl\":\"\(queueURL)\",\"MessageBody\":\"m-\(batch)-\(index)\"}"
                let payload: [String: Any] = [
                    "type": "aws-request", "service": "sqs", "signing_name": "sqs", "region": "us-east-1", "operation": "SendMessage",
                    "method": "POST", "path": "/", "query": "",
                    "headers": [["Content-Type", "application/x-amz-json-1.0"], ["X-Amz-Target", "AmazonSQS.SendMessage"]],
                    "body_base64": Data(body.utf8).base64EncodedString(),
                ]
                let encoded = try JSONSerialization.data(withJSONObject: payload).base64EncodedString()
                let replica = index % 2 == 0 ? a : b
                let proposed = replica.call("POST", "/v1/proposals", token: host, body: ["session_id": session, "payload_base64": encoded])
                if let id = proposed.json["id"] as? String { ids.append(id) } else { Issue.record("\(proposed)") }
            }
        }
        #expect(ids.count == 200)
        let outcomes = StatusLedger()
        let snapshot = ids
        DispatchQueue.concurrentPerform(iterations: snapshot.count * 2) { index in
            let id = snapshot[index / 2]
            let replica = index % 2 == 0 ? a : b
            outcomes.record(id, replica.call("POST", "/v1/proposals/\(id)/approve", token: user).status)
        }
        let byProposal = outcomes.statuses
        #expect(byProposal.count == 200)
        for (id, statuses) in byProposal {
            #expect(statuses.sorted() == [200, 409], "\(id): \(statuses)")
        }
        let attributes = moto.json(["sqs", "get-queue-attributes", "--queue-url", queueURL, "--attribute-names", "ApproximateNumberOfMessages"])
        let count = ((attributes as? [String: Any])?["Attributes"] as? [String: Any])?["ApproximateNumberOfMessages"] as? String
        #expect(count == "200", "messages sent: \(count ?? "?")")
    }

    /// Over TLS with a private CA: trusted with --gate-ca, refused without it (the system's
    /// roots do not know the test CA), for agent hosts and approvers alike.
    @Test func theGatesCertificateIsVerified() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let moto = try Moto()
        let gate = try TeamGate(store: "sqlite", upstream: moto.url, tls: true)
        let ca = try #require(gate.caFile)
        #expect(gate.call("GET", "/healthz").status == 200)
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        scene.write(scene.root + "/host.token", gate.enrol("host", "tls-host") + "\n", mode: 0o600)
        scene.write(scene.root + "/alice.token", gate.enrol("user", "alice") + "\n", mode: 0o600)
        scene.chownTree()
        let trusted = scene.agent("aws sqs create-queue --queue-name tls-q 2>&1 | grep -c AirlockProposalPending", moto: moto,
                                  options: ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token", "--gate-ca", ca])
        #expect(trusted.status == 0 && trusted.stdout.hasPrefix("1"), "\(trusted)")
        let untrusted = scene.run(["/bin/true"], options: ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token"])
        #expect(untrusted.status == 125, "a launch against an unverified gate went ahead: \(untrusted)")
        let listed = scene.airlock(["proposals", "--gate", gate.url, "--gate-token-file", scene.root + "/alice.token", "--gate-ca", ca])
        #expect(listed.status == 0 && listed.stdout.contains("sqs:CreateQueue"), "\(listed)")
        let refused = scene.airlock(["proposals", "--gate", gate.url, "--gate-token-file", scene.root + "/alice.token"])
        #expect(refused.status != 0, "\(refused)")
        // Plain HTTP to a gate that is not on loopback is refused before a token is sent.
        let clear = scene.airlock(["proposals", "--gate", "http://gate.example.com:8443", "--gate-token-file", scene.root + "/alice.token"])
        #expect(clear.status != 0 && clear.stderr.contains("clear text"), "\(clear)")
    }

    /// One `gate serve` per SQLite store; PostgreSQL is the way to run replicas.
    @Test func aSecondServerOnOneSQLiteStoreIsRefused() throws {
        let gate = try TeamGate(store: "sqlite", upstream: "http://127.0.0.1:9")
        let second = runProcess(TeamGate.binary, ["serve", "--config", gate.config], environment: TeamGate.environment(),
                                directory: "/tmp", timeout: 30)
        #expect(second.status != 0 && second.stderr.contains("already uses the SQLite store"), "\(second)")
        #expect(gate.call("GET", "/healthz").status == 200)
    }

    @Test func badConfigsAndCommandsSayWhatToDo() throws {
        let dir = makeTemporaryDirectory(prefix: "airlock-gate-config")
        try "listen: 0.0.0.0:8443\nstore: {sqlite: \(dir)}\nstate_dir: \(dir)\n".write(toFile: dir + "/gate.yaml", atomically: true, encoding: .utf8)
        let open = runProcess(TeamGate.binary, ["serve", "--config", dir + "/gate.yaml"], environment: TeamGate.environment(), directory: "/tmp")
        #expect(open.status != 0 && open.stderr.contains("needs tls"), "\(open)")
        let noConfig = runProcess(TeamGate.binary, ["serve"], environment: TeamGate.environment(), directory: "/tmp")
        #expect(noConfig.status == 2 && noConfig.stderr.contains("--config"), "\(noConfig)")
        let help = runProcess(Stage.airlock, ["gate", "--help"], environment: TeamGate.environment().merging(["AIRLOCK_GATE_BINARY": TeamGate.binary]) { $1 },
                              directory: "/tmp")
        #expect(help.status == 0 && help.stdout.contains("airlock gate host add NAME"), "\(help)")
    }
}

final class StatusLedger: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [String: [Int]] = [:]
    func record(_ id: String, _ status: Int) { lock.lock(); seen[id, default: []].append(status); lock.unlock() }
    var statuses: [String: [Int]] { lock.lock(); defer { lock.unlock() }; return seen }
}
