import Foundation
import Testing

/// Two gate replicas on one PostgreSQL store, each with its own `state_dir` and no directory
/// in common (docs/gate.md, "Shared state"): what one replica received (an S3 multipart
/// upload's parts, a command proposal's snapshot, plan and providers) is executed by the
/// other, and the new state a run wrote is fetched through either.
@Suite struct GateReplicaTests {
    @Test func aMultipartUploadProposedThroughOneReplicaIsUploadedThroughTheOther() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let moto = try Moto()
        _ = moto.aws(["s3api", "create-bucket", "--bucket", "replicated"])
        let database = try TeamGate.freshPostgres()
        let a = try TeamGate(store: "postgres", upstream: moto.url, extra: "replica: parts-a\n", postgres: database)
        let b = try TeamGate(store: "postgres", upstream: moto.url, extra: "replica: parts-b\n", postgres: database)
        #expect(a.directory != b.directory)
        let host = a.enrol("host", "builder")
        let alice = a.enrol("user", "alice")
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        scene.chownTree()
        let script = """
            head -c 20971520 /dev/urandom > big.bin; sha256sum big.bin | cut -d' ' -f1 > big.sha
            aws s3 cp big.bin s3://replicated/big.bin > cp.out 2>&1; echo $? > cp.rc
            grep -o 'Proposal [0-9a-f]*' cp.out | head -1 | cut -d' ' -f2 > id.txt; touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """
        var approval: (status: Int, json: [String: Any]) = (0, [:])
        var heldOnA: [String] = []
        var id = ""
        let out = scene.agent(script, moto: moto, options: ["--gate", a.url, "--gate-token-file", scene.root + "/host.token"],
                              timeout: 300) { _ in
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !id.isEmpty else { return }
            // Replica A keeps nothing of the parts on its disk: they are in the store.
            heldOnA = (FileManager.default.enumerator(atPath: a.directory + "/state")?.allObjects as? [String]) ?? []
            approval = b.call("POST", "/v1/proposals/\(id)/approve", token: alice, body: ["reason": "through the other replica"])
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("cp.out").contains("AirlockProposalPending"), "\(scene.file("cp.out"))")
        #expect(!heldOnA.contains { $0.hasPrefix("blobs/") && $0.count > 60 }, "parts were kept in replica A's state_dir: \(heldOnA)")
        #expect(approval.status == 200 && approval.json["state"] as? String == "succeeded", "\(approval)")
        #expect(Self.executed(id, by: b), "not executed by replica B: \(Self.log(b).suffix(2000))")
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        let fetched = scene.root + "/fetched.bin"
        #expect(moto.aws(["s3", "cp", "s3://replicated/big.bin", fetched]).status == 0)
        let digest = runProcess("/usr/bin/sha256sum", [fetched], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout.prefix(64)
        #expect(!digest.isEmpty && String(digest) == scene.file("big.sha").trimmingCharacters(in: .whitespacesAndNewlines), "not byte-identical")
    }

    /// terraform prepared on A (its init, plan and providers), A then stopped and its state
    /// directory removed: B restores the artifact from the store, applies exactly that plan,
    /// and the host fetches the new state through B.
    @Test func aCommandPreparedOnOneReplicaIsAppliedAndServedByTheOther() throws {
        guard Launch.anyAvailable(), Terraform.available() else { return }
        let database = try TeamGate.freshPostgres()
        let a = try TeamGate(store: "postgres", upstream: "aws", extra: "replica: plan-a\n", keys: Terraform.environment(), postgres: database)
        let b = try TeamGate(store: "postgres", upstream: "aws", extra: "replica: plan-b\n", keys: Terraform.environment(), postgres: database)
        let host = a.enrol("host", "planner")
        let alice = a.enrol("user", "alice")
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        scene.write(scene.workspace + "/main.tf", Terraform.dataConfig)
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        scene.write(scene.root + "/alice.token", alice + "\n", mode: 0o600)
        scene.chownTree()
        let script = """
            terraform init -no-color > init.txt 2>&1; echo $? > init.rc
            terraform apply -auto-approve > apply.out 2> apply.err; echo $? > apply.rc
            grep -o 'Proposal [0-9a-f]*' apply.err | cut -d' ' -f2 > id.txt; touch proposed
            while [ ! -f decided ]; do sleep 0.2; done
            """
        var approval = Outcome(status: -1, stdout: "", stderr: "")
        var id = ""
        let out = scene.run(["/bin/sh", "-c", script], options: ["--gate", a.url, "--gate-token-file", scene.root + "/host.token"],
                            timeout: 300, extraEnvironment: Terraform.environment()) { _ in
            defer { scene.write(scene.workspace + "/decided", "") }
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !id.isEmpty else { return }
            // Replica A is gone, and its state directory with it.
            kill(a.process.processIdentifier, SIGKILL)
            a.process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: a.directory + "/state")
            approval = runProcess(Stage.airlock, ["approve", id, "--reason", "on B", "--json", "--gate", b.url, "--gate-token-file", scene.root + "/alice.token"],
                                  environment: scene.environment, directory: scene.workspace, timeout: 240)
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))")
        #expect(approval.status == 0 && approval.stdout.contains("\"state\":\"succeeded\""), "\(approval)")
        #expect(approval.stdout.contains("Apply complete! Resources: 1 added"), "\(approval)")
        #expect(Self.executed(id, by: b), "not applied by replica B: \(Self.log(b).suffix(2000))")
        // The host fetches the new state through B, with its own token.
        let fetched = b.call("GET", "/v1/proposals/\(id)/outputs/0", token: host)
        #expect(fetched.status == 200 && fetched.json["path"] as? String == "terraform.tfstate", "\(fetched)")
        let state = (fetched.json["content_base64"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(state.contains("\"terraform_data\"") && state.contains("\"release\""), "\(state.prefix(400))")
        // What the result says it wrote is what is served.
        let shown = b.call("GET", "/v1/proposals/\(id)", token: alice)
        let outputs = (shown.json["result"] as? [String: Any])?["outputs"] as? [[String: Any]] ?? []
        #expect(outputs.first?["sha256"] as? String == fetched.json["sha256"] as? String, "\(shown.json)")
    }

    /// A part the store no longer holds: the approval is refused with the reason and the
    /// proposal stays pending (approvable once the part is back), never a final failure.
    @Test func aMissingPartLeavesTheProposalPending() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let database = try TeamGate.freshPostgres()
        let gate = try TeamGate(store: "postgres", upstream: moto.url, postgres: database)
        let host = gate.enrol("host", "uploader"), alice = gate.enrol("user", "alice")
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "missing-part-1"]).status == 201)
        let part = Data(repeating: 0x61, count: 3 << 20)
        let file = gate.directory + "/part.bin"
        _ = FileManager.default.createFile(atPath: file, contents: part)
        let stored = runProcess("/usr/bin/curl", ["-s", "-X", "POST", gate.url + "/v1/sessions/missing-part-1/blobs", "-H", "Authorization: Bearer \(host)",
                                                  "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + file],
                                environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        let digest = ((try? JSONSerialization.jsonObject(with: Data(stored.stdout.utf8))) as? [String: Any])?["sha256"] as? String ?? ""
        #expect(digest.count == 64, "\(stored)")
        let payload = GateReplicaTests.multipart(bucket: "b", key: "k", digest: digest, size: part.count)
        let proposed = gate.call("POST", "/v1/proposals", token: host, body: ["session_id": "missing-part-1", "payload_base64": payload])
        #expect(proposed.status == 201, "\(proposed)")
        let id = proposed.json["id"] as? String ?? ""
        // The part disappears from the store (an operator's cleanup, a restore from backup).
        let removed = runProcess("/usr/bin/psql", [database, "-c", "DELETE FROM airlock.blobs WHERE digest = '\(digest)'"],
                                 environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        #expect(removed.status == 0, "\(removed)")
        let refused = gate.call("POST", "/v1/proposals/\(id)/approve", token: alice)
        #expect(refused.status == 503 && "\(refused.json)".contains("AirlockArtifactMissing") && "\(refused.json)".contains("part 1"), "\(refused)")
        #expect(gate.call("GET", "/v1/proposals/\(id)", token: alice).json["state"] as? String == "pending")
    }

    static func log(_ gate: TeamGate) -> String { (try? String(contentsOfFile: gate.log, encoding: .utf8)) ?? "" }

    /// The replica's JSON log says it executed the proposal.
    static func executed(_ id: String, by gate: TeamGate) -> Bool {
        !id.isEmpty && log(gate).split(separator: "\n").contains { $0.contains("\"executed\"") && $0.contains(id) }
    }

    /// A staged multipart upload of one part, as a host's broker proposes it.
    static func multipart(bucket: String, key: String, digest: String, size: Int) -> String {
        func request(_ method: String, _ query: String, _ operation: String) -> [String: Any] {
            ["type": "aws-request", "service": "s3", "signing_name": "s3", "region": "us-east-1", "operation": operation,
             "method": method, "path": "/\(bucket)/\(key)", "query": query, "headers": [] as [Any], "body_base64": ""]
        }
        let staged = "airlock-staged-test1"
        let complete = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag></Part></CompleteMultipartUpload>"
        var completeRequest = request("POST", "uploadId=\(staged)", "CompleteMultipartUpload")
        completeRequest["body_base64"] = Data(complete.utf8).base64EncodedString()
        let manifest: [String: Any] = [
            "type": "s3-multipart", "bucket": bucket, "key": key, "size": size, "staged_upload_id": staged, "create": request("POST", "uploads=", "CreateMultipartUpload"),
            "complete": completeRequest,
            "parts": [["part_number": 1, "blob_sha256": digest, "etag": "\"e1\"", "size": size,
                       "request": request("PUT", "partNumber=1&uploadId=\(staged)", "UploadPart")]],
        ]
        return (try! JSONSerialization.data(withJSONObject: manifest)).base64EncodedString()
    }
}
