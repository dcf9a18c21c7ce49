import Foundation
import Testing

/// Command proposals with a team gate (docs/gate.md, "Command proposals on the gate"): real
/// terraform in an `airlock run --gate` session, a real `airlock-gate` on PostgreSQL. The host
/// sends the command and its workspace snapshot; the gate plans in its own execution
/// sandbox, the approver reads the gate's plan, approval applies it on the gate, and the
/// agent's `airlock wait` returns the result with the new state copied into the workspace.
@Suite struct GateCommandTests {
    static let script = """
        terraform init -no-color > init.txt 2>&1; echo $? > init.rc
        terraform apply -auto-approve > apply.out 2> apply.err; echo $? > apply.rc
        grep -o 'Proposal [0-9a-f]*' apply.err | cut -d' ' -f2 > id.txt; touch proposed
        airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
        """

    @Test func terraformApplyIsPlannedAndAppliedOnTheGate() throws {
        guard Launch.anyAvailable(), Terraform.available() else { return }
        let gate = try TeamGate(store: "postgres", upstream: "aws", keys: Terraform.environment())
        // One PostgreSQL database serves every test: names of this run's own.
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        let host = gate.enrol("host", "ci-runner-\(tag)")
        let alice = gate.enrol("user", "alice-\(tag)")
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        scene.write(scene.workspace + "/main.tf", Terraform.dataConfig)
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        scene.write(scene.root + "/alice.token", alice + "\n", mode: 0o600)
        scene.chownTree()
        let asAlice = ["--gate", gate.url, "--gate-token-file", scene.root + "/alice.token"]
        var shown = Outcome(status: -1, stdout: "", stderr: "")
        var approval = shown
        var onTheGate = "(not looked at)"
        let out = scene.run(["/bin/sh", "-c", Self.script], options: ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token"],
                            timeout: 300, extraEnvironment: Terraform.environment()) { _ in
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !id.isEmpty else { return }
            // The agent changes its workspace after the proposal: the approved run must not see it.
            scene.write(scene.workspace + "/extra.tf", "resource \"terraform_data\" \"sneaky\" {}\n")
            scene.chownTree()
            onTheGate = runProcess("/usr/bin/curl", ["-s", gate.url + "/v1/proposals?state=pending", "-H", "Authorization: Bearer \(alice)"],
                                   environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
            shown = runProcess(Stage.airlock, ["show", id] + asAlice, environment: scene.environment, directory: scene.workspace)
            approval = runProcess(Stage.airlock, ["approve", id, "--reason", "release v1", "--json"] + asAlice,
                                  environment: scene.environment, directory: scene.workspace, timeout: 240)
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("init.rc") == "0\n", "\(scene.file("init.txt"))")
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))")
        // The proposal is on the gate, with the gate's plan, which the approver reads.
        #expect(onTheGate.contains("\"kind\":\"command\"") && onTheGate.contains("terraform apply"), "\(onTheGate)")
        #expect(shown.status == 0 && shown.stdout.contains("# terraform_data.release will be created"), "\(shown)")
        #expect(shown.stdout.contains("Plan: 1 to add, 0 to change, 0 to destroy."), "\(shown)")
        // Approved on the gate: applied there, exactly the plan (not the file added since).
        #expect(approval.status == 0 && approval.stdout.contains("\"state\":\"succeeded\""), "\(approval)")
        #expect(approval.stdout.contains("Apply complete! Resources: 1 added"), "\(approval)")
        #expect(approval.stdout.contains("user:alice-\(tag)"), "\(approval)")
        // The agent's wait returns the gate's result, and the new state is in the workspace.
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        #expect(scene.file("wait.txt").contains("Apply complete! Resources: 1 added"), "\(scene.file("wait.txt"))")
        #expect(scene.file("wait.txt").contains("terraform.tfstate updated in the workspace"), "\(scene.file("wait.txt"))")
        #expect(scene.file("wait.txt").contains("copied into the workspace") && !scene.file("wait.txt").contains("NOT copied"), "\(scene.file("wait.txt"))")
        let state = scene.state()
        #expect(state.contains("\"terraform_data\"") && state.contains("\"release\""), "\(state)")
        #expect(!state.contains("sneaky"), "applied what the agent wrote after the proposal: \(state)")
        // The host's own store holds no proposal; the gate's audit log holds the decision.
        let local = scene.airlock(["proposals", "--all", "--json"])
        #expect(!local.stdout.contains("\"kind\":\"command\""), "\(local)")
        let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
        let audit = runProcess("/usr/bin/curl", ["-s", gate.url + "/v1/audit", "-H", "Authorization: Bearer \(alice)"],
                               environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
        // Proposed, approved, executing, succeeded: each an entry of the gate's chain.
        #expect(audit.components(separatedBy: "\"\(id)\"").count >= 5, "\(audit.prefix(3000))")
    }

    /// The plan runs agent-written code on the gate (terraform's `file()` at plan time here;
    /// a `data "external"` program likewise), and a failed preparation's output goes back to
    /// the agent. The gate's own secrets must not be readable there, although the gate keeps
    /// them under /opt, which execution sandboxes show (beside a public file they do read):
    /// its gate.yaml (which can hold the database URL), TLS key, audit signing key, store and
    /// state directory.
    @Test func aPlanOnTheGateCannotReadTheGatesSecrets() throws {
        guard Launch.anyAvailable(), Terraform.available() else { return }
        let visible = "/opt/airlock-gate-test-" + String(UUID().uuidString.prefix(8)).lowercased()
        try FileManager.default.createDirectory(atPath: visible, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: visible) }
        _ = FileManager.default.createFile(atPath: visible + "/public.txt", contents: Data("PUBLIC-CONTROL".utf8))
        let made = runProcess(TeamGate.binary, ["audit-key", "new", visible + "/audit.pem"], environment: TeamGate.environment(), directory: "/tmp")
        #expect(made.status == 0, "\(made)")
        let gate = try TeamGate(store: "sqlite", upstream: "aws", tls: true, extra: "audit: {signing_key: \(visible)/audit.pem}\n",
                                keys: Terraform.environment(), folder: visible)
        chmod(visible, 0o755)
        chmod(visible + "/gate.key", 0o644)
        let host = gate.enrol("host", "curious")
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        // tonumber() fails, and terraform's error quotes the string it was given.
        var config = ""
        let paths = [visible + "/public.txt", visible + "/audit.pem", gate.config, visible + "/gate.key", visible + "/store/airlock.db", visible + "/state"]
        for (index, path) in paths.enumerated() {
            config += "output \"leak\(index)\" { value = tonumber(file(\"\(path)\")) }\n"
        }
        scene.write(scene.workspace + "/main.tf", config)
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        scene.chownTree()
        let out = scene.run(["/bin/sh", "-c", "terraform apply -auto-approve > apply.out 2> apply.err; echo $? > apply.rc"],
                            options: ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token", "--gate-ca", visible + "/ca.pem"],
                            timeout: 300, extraEnvironment: Terraform.environment())
        #expect(out.status == 0, "\(out)")
        let reported = scene.file("apply.err") + scene.file("apply.out")
        #expect(scene.file("apply.rc") != "0\n" && reported.contains("preparing the proposal failed"), "\(reported)")
        // The plan did run on the gate and read what it may: the control file.
        #expect(reported.contains("PUBLIC-CONTROL"), "\(reported)")
        #expect(!reported.contains("PRIVATE KEY") && !reported.contains("listen:") && !reported.contains("SQLite format"),
                "the gate's secrets reached the agent: \(reported)")
        #expect(!reported.contains("BEGIN EC PRIVATE KEY") && !reported.contains("BEGIN PRIVATE KEY"), "\(reported)")
        let listed = gate.call("GET", "/v1/proposals", token: gate.enrol("user", "auditor"))
        #expect((listed.json["proposals"] as? [Any])?.isEmpty == true, "\(listed)")
    }

    /// What a hostile agent host could send instead of a snapshot: nothing is written outside
    /// the gate's upload directory, nothing is proposed, and another host's session is not
    /// the host's to propose in.
    @Test func aHostileSnapshotIsRefusedAndProposesNothing() throws {
        guard Terraform.available() else { return }
        let gate = try TeamGate(store: "sqlite", upstream: "aws", keys: Terraform.environment())
        let host = gate.enrol("host", "mallory")
        let other = gate.enrol("host", "victim")
        let alice = gate.enrol("user", "alice")
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "mallory-session-1"]).status == 201)
        #expect(gate.call("POST", "/v1/sessions", token: other, body: ["id": "victim-session-1"]).status == 201)
        let target = gate.directory + "/planted"
        func send(_ session: String, _ entries: [Any], bodies: String, token: String, workspace: String = "/work/ws") -> (status: Int, text: String) {
            let header = (try? JSONSerialization.data(withJSONObject: [
                "format": "airlock-snapshot/v1", "entries": entries,
                "request": ["tool": "terraform", "argv": ["apply", "-auto-approve"], "cwd": workspace, "workspace": workspace],
            ])) ?? Data()
            let file = gate.directory + "/upload-\(UUID().uuidString)"
            _ = FileManager.default.createFile(atPath: file, contents: header + Data([0x0A]) + Data(bodies.utf8))
            let out = runProcess("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "-X", "POST", gate.url + "/v1/sessions/\(session)/commands",
                                                   "-H", "Authorization: Bearer \(token)", "-H", "Content-Type: application/octet-stream",
                                                   "--data-binary", "@" + file],
                                 environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp", timeout: 120)
            let lines = out.stdout.split(separator: "\n")
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }
        for (name, entries, bodies) in [
            ("dot-dot", [["f", "../../planted", 2, false]] as [Any], "hi"),
            ("through a symlink", [["l", "a", gate.directory], ["f", "a/planted", 2, false]] as [Any], "hi"),
            ("short", [["f", "main.tf", 100, false]] as [Any], "hi"),
        ] {
            let answer = send("mallory-session-1", entries, bodies: bodies, token: host)
            #expect(answer.status == 400 && answer.text.contains("AirlockBadSnapshot"), "\(name): \(answer)")
            #expect(!FileManager.default.fileExists(atPath: target), "\(name) wrote outside the upload")
        }
        // A workspace path over what the gate's sandboxes need: its snapshot would replace a
        // system directory (the tool's libraries), Airlock's own, or the gate's state.
        for workspace in ["/usr/lib", "/etc", "/run/airlock", "/proc/self", "/tmp", "/home", gate.directory + "/state/x", gate.directory] {
            let answer = send("mallory-session-1", [["f", "main.tf", 2, false]], bodies: "{}", token: host, workspace: workspace)
            #expect(answer.status == 400 && answer.text.contains("AirlockBadRequest"), "\(workspace): \(answer)")
        }
        // Another host's session; an approver's token.
        #expect(send("victim-session-1", [["f", "main.tf", 2, false]], bodies: "{}", token: host).status == 404)
        #expect(send("mallory-session-1", [["f", "main.tf", 2, false]], bodies: "{}", token: alice).status == 403)
        let listed = gate.call("GET", "/v1/proposals", token: alice)
        #expect((listed.json["proposals"] as? [Any])?.isEmpty == true, "\(listed)")
        // Nothing left behind in the gate's upload area.
        let uploads = (try? FileManager.default.contentsOfDirectory(atPath: gate.directory + "/state/uploads")) ?? []
        #expect(uploads.isEmpty, "\(uploads)")
    }
}

/// S3 multipart uploads from an `airlock run --gate` session: the host's broker stages the
/// parts, sends them to the gate's blob store at completion and proposes the upload there;
/// approved on the gate, it is uploaded once, byte for byte, with the gate's keys.
@Suite struct GateMultipartTests {
    @Test func aMultipartUploadIsProposedAndRunOnTheGate() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let moto = try Moto()
        _ = moto.aws(["s3api", "create-bucket", "--bucket", "releases"])
        let gate = try TeamGate(store: "sqlite", upstream: moto.url)
        let host = gate.enrol("host", "builder")
        let alice = gate.enrol("user", "alice")
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        scene.chownTree()
        // 20 MiB: the aws CLI sends three parts (8 MiB each by default).
        let script = """
            head -c 20971520 /dev/urandom > big.bin; sha256sum big.bin | cut -d' ' -f1 > big.sha
            aws s3 cp big.bin s3://releases/big.bin > cp.out 2>&1; echo $? > cp.rc
            grep -o 'Proposal [0-9a-f]*' cp.out | head -1 | cut -d' ' -f2 > id.txt; touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """
        var approval: (status: Int, json: [String: Any]) = (0, [:])
        var shown: (status: Int, json: [String: Any]) = (0, [:])
        let out = scene.agent(script, moto: moto, options: ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token"],
                              timeout: 300) { _ in
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !id.isEmpty else { return }
            #expect(!moto.aws(["s3", "ls", "s3://releases/"]).stdout.contains("big.bin"), "uploaded before approval")
            shown = gate.call("GET", "/v1/proposals/\(id)", token: alice)
            approval = gate.call("POST", "/v1/proposals/\(id)/approve", token: alice, body: ["reason": "release"])
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("cp.rc") != "0\n" && scene.file("cp.out").contains("AirlockProposalPending"), "\(scene.file("cp.out"))")
        // The gate wrote the summary from its own reading of the requests.
        let summary = shown.json["summary"] as? String ?? ""
        #expect(summary.contains("s3:PutObject releases/big.bin via multipart upload (3 parts, 21 MB)"), "\(shown)")
        #expect(approval.status == 200 && approval.json["state"] as? String == "succeeded", "\(approval)")
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        // Byte for byte what the agent uploaded.
        let fetched = scene.root + "/fetched.bin"
        #expect(moto.aws(["s3", "cp", "s3://releases/big.bin", fetched]).status == 0)
        let digest = runProcess("/usr/bin/sha256sum", [fetched], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout.prefix(64)
        #expect(!digest.isEmpty && String(digest) == scene.file("big.sha").trimmingCharacters(in: .whitespacesAndNewlines))
        // A manifest naming a part the gate does not hold is refused.
        let sessions = gate.call("POST", "/v1/sessions", token: host, body: ["id": "forged-session-1"])
        #expect(sessions.status == 201)
        let part: [String: Any] = ["part_number": 1, "blob_sha256": String(repeating: "a", count: 64), "etag": "\"x\"", "size": 3,
                                   "request": ["service": "s3"]]
        let forged = try JSONSerialization.data(withJSONObject: ["type": "s3-multipart", "parts": [part], "staged_upload_id": "airlock-staged-x"])
        let refused = gate.call("POST", "/v1/proposals", token: host,
                                body: ["session_id": "forged-session-1", "payload_base64": forged.base64EncodedString()])
        #expect(refused.status == 400, "\(refused)")
    }
}

/// A command proposal's apply on the gate assumes the gate's role (aws.assume_role), as API
/// executions do: moto checks every signature and policy; the gate's own user may only assume
/// the role, so the queue terraform creates can only have been made with the role's keys.
@Suite struct GateCommandRoleTests {
    @Test func theApplyRunsWithTheAssumedRole() throws {
        guard Launch.anyAvailable(), Terraform.available(), PythonTools.available() else { return }
        guard require(Terraform.hasAWSProvider, "the AWS provider is not in \(Terraform.mirror) (an offline copy this machine image provides)") else { return }
        let moto = try Moto(environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "60"])
        let found = try GateRoleTests.roleScene(moto, roleActions: ["sqs:*", "sts:GetCallerIdentity"], checkerActions: ["sqs:List*", "sqs:Get*"])
        let gateKeys = ["AWS_ACCESS_KEY_ID": found["AWS_ACCESS_KEY_ID"]!, "AWS_SECRET_ACCESS_KEY": found["AWS_SECRET_ACCESS_KEY"]!]
        let checker = ["AWS_ACCESS_KEY_ID": found["checker_id"]!, "AWS_SECRET_ACCESS_KEY": found["checker_secret"]!]
        // The gate's own keys cannot make a queue.
        #expect(moto.aws(["sqs", "create-queue", "--queue-name", "direct"], keys: gateKeys).status != 0)
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let mirror = scene.root + "/mirror.tfrc"
        scene.write(mirror, Terraform.mirrorConfig)
        let role: String = try #require(found["role"])
        let gate = try TeamGate(store: "sqlite", upstream: moto.url,
                                keys: gateKeys.merging(Terraform.environment(cliConfig: mirror)) { $1 }, assumeRole: role)
        let host = gate.enrol("host", "tf-host"), alice = gate.enrol("user", "alice")
        scene.write(scene.workspace + "/main.tf", """
            terraform {
              required_providers {
                aws = { source = "hashicorp/aws" }
              }
            }
            provider "aws" {
              region                      = "us-east-1"
              skip_credentials_validation = true
              skip_requesting_account_id  = true
              skip_metadata_api_check     = true
            }
            resource "aws_sqs_queue" "made" { name = "role-made" }

            """)
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        scene.chownTree()
        var approval: (status: Int, json: [String: Any]) = (0, [:])
        let out = scene.run(["/bin/sh", "-c", GateCommandTests.script], options: ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token",
                                                                                  "--aws-endpoint", moto.url],
                            timeout: 300, extraEnvironment: Terraform.environment(cliConfig: mirror).merging(checker) { $1 }) { _ in
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !id.isEmpty else { return }
            approval = gate.call("POST", "/v1/proposals/\(id)/approve", token: alice, body: ["reason": "queue"])
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))")
        #expect(approval.status == 200 && approval.json["state"] as? String == "succeeded", "\(approval)")
        #expect(moto.aws(["sqs", "list-queues"], keys: checker).stdout.contains("role-made"))
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
    }
}
