import Foundation
import Testing

/// The real aws CLI and boto3 inside `airlock run`, against a real moto server: reads pass
/// with the same data as direct calls, changes wait behind the gate until a human decides.
@Suite struct AWSGateTests {
    func setUp() throws -> (Scene, Moto)? {
        guard Launch.anyAvailable(), PythonTools.available() else { return nil }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        return (scene, try Moto())
    }

    func parse(_ text: String) -> NSObject? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? NSObject
    }

    @Test func readsPassWithTheSameDataAsDirectCalls() throws {
        guard let (scene, moto) = try setUp() else { return }
        // The human sets up a world directly.
        _ = moto.aws(["ec2", "run-instances", "--image-id", "ami-12345678", "--count", "2", "--instance-type", "t2.micro"])
        _ = moto.aws(["s3", "mb", "s3://readable"])
        scene.write(scene.root + "/report.txt", "quarterly numbers\n")
        for index in 0..<25 { _ = moto.aws(["s3api", "put-object", "--bucket", "readable", "--key", "k\(index)", "--body", scene.root + "/report.txt"]) }
        // A large object, streamed back through the broker.
        let large = [UInt8]((0..<(24 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2654435761) >> 11) })
        _ = FileManager.default.createFile(atPath: scene.root + "/large.bin", contents: Data(large))
        _ = moto.aws(["s3", "cp", scene.root + "/large.bin", "s3://readable/large.bin"])
        _ = moto.aws(["cloudformation", "create-stack", "--stack-name", "prod", "--template-body",
                      #"{"Resources":{"Q":{"Type":"AWS::SQS::Queue","Properties":{"QueueName":"prod-q"}}}}"#])
        _ = moto.aws(["dynamodb", "create-table", "--table-name", "t", "--attribute-definitions", "AttributeName=id,AttributeType=S",
                      "--key-schema", "AttributeName=id,KeyType=HASH", "--billing-mode", "PAY_PER_REQUEST"])
        _ = moto.aws(["dynamodb", "put-item", "--table-name", "t", "--item", #"{"id":{"S":"1"},"v":{"S":"x"}}"#])
        let commands = [
            "sts get-caller-identity", "ec2 describe-instances", "s3api list-buckets", "s3 ls s3://readable",
            "cloudformation describe-stacks", "dynamodb scan --table-name t",
        ]
        scene.write(scene.workspace + "/paginate.py", """
            import boto3
            s3 = boto3.client("s3")
            keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="readable", PaginationConfig={"PageSize": 10}) for o in page["Contents"]]
            print(len(keys), sorted(keys)[:3])
            """)
        let script = commands.enumerated().map { "aws --output json \($1) > out\($0).json 2> err\($0).txt" }.joined(separator: "; ")
            + "; aws s3 cp s3://readable/k7 downloaded.txt > /dev/null; aws s3 cp s3://readable/large.bin large.bin > /dev/null"
            + "; python3 paginate.py > paginated.txt"
        let out = scene.agent(script, moto: moto)
        #expect(out.status == 0, "\(out)")
        for (index, command) in commands.enumerated() {
            let inside = (try? String(contentsOfFile: scene.workspace + "/out\(index).json", encoding: .utf8)) ?? ""
            let direct = moto.aws(command.split(separator: " ").map(String.init)).stdout
            #expect(!inside.isEmpty, "\(command): \((try? String(contentsOfFile: scene.workspace + "/err\(index).txt", encoding: .utf8)) ?? "")")
            if command.hasPrefix("s3 ls") {
                #expect(inside == direct, "\(command)")
            } else {
                #expect(parse(inside) == parse(direct), "\(command) differs:\n\(inside)\n---\n\(direct)")
            }
        }
        #expect((try? String(contentsOfFile: scene.workspace + "/downloaded.txt", encoding: .utf8)) == "quarterly numbers\n")
        #expect(FileManager.default.contents(atPath: scene.workspace + "/large.bin") == Data(large))
        #expect((try? String(contentsOfFile: scene.workspace + "/paginated.txt", encoding: .utf8)) == "26 ['k0', 'k1', 'k10']\n")
        // Nothing was proposed for reads.
        #expect(scene.airlock(["proposals", "--all", "--json"]).stdout.contains(#""proposals":[]"#) ||
                scene.airlock(["proposals", "--all"]).status == 1)
    }

    /// Without root anywhere (user namespaces only): reads pass, a change waits, and the same
    /// user approves it.
    @Test func unprivilegedLaunchGatesTheSameWay() throws {
        guard Launch.unprivileged.available(), PythonTools.available() else { return }
        let scene = Scene(.unprivileged)
        let moto = try Moto()
        _ = moto.aws(["s3", "mb", "s3://existing"])
        var approval: Outcome?
        let out = scene.agent("""
            aws s3 ls > ls.out 2>&1; aws s3 mb s3://created 2> mb.err; echo $? > mb.rc
            airlock wait $(grep -o 'Proposal [0-9a-f]*' mb.err | cut -d' ' -f2) --timeout 120 > wait.txt 2>&1; echo $? > wait.rc
            """, moto: moto) { _ in
            for _ in 0..<2400 where !FileManager.default.fileExists(atPath: scene.workspace + "/mb.rc") { usleep(50_000) }
            #expect(!moto.aws(["s3", "ls"]).stdout.contains("created"))
            let id = Scene.proposalIDs(in: scene.file("mb.err")).first ?? "none"
            approval = scene.airlock(["approve", id, "--reason", "test"])
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("ls.out").contains("existing"), "\(scene.file("ls.out"))")
        #expect(scene.file("mb.rc") != "0\n" && scene.file("mb.err").contains("AirlockProposalPending"), "\(scene.file("mb.err"))")
        #expect(approval?.status == 0, "\(String(describing: approval))")
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        #expect(moto.aws(["s3", "ls"]).stdout.contains("created"))
    }

    /// Each mutation becomes a proposal and changes nothing; approved, it happens once and the
    /// agent's `airlock wait` returns the result; denied, nothing happens.
    @Test func mutationsWaitForApproval() throws {
        guard let (scene, moto) = try setUp() else { return }
        let instances = moto.json(["ec2", "run-instances", "--image-id", "ami-12345678", "--count", "1"]) as? [String: Any]
        let instance = try #require(((instances?["Instances"] as? [[String: Any]])?.first)?["InstanceId"] as? String)
        _ = moto.aws(["s3", "mb", "s3://existing"])
        scene.write(scene.root + "/doomed.txt", "doomed\n")
        _ = moto.aws(["s3", "cp", scene.root + "/doomed.txt", "s3://existing/doomed.txt"])
        _ = moto.aws(["cloudformation", "create-stack", "--stack-name", "prod", "--template-body",
                      #"{"Resources":{"Q":{"Type":"AWS::SQS::Queue","Properties":{"QueueName":"prod-q"}}}}"#])
        _ = moto.aws(["iam", "create-user", "--user-name", "deployer"])
        _ = moto.aws(["dynamodb", "create-table", "--table-name", "t", "--attribute-definitions", "AttributeName=id,AttributeType=S",
                      "--key-schema", "AttributeName=id,KeyType=HASH", "--billing-mode", "PAY_PER_REQUEST"])
        let upload = [UInt8]((0..<(20 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) })
        _ = FileManager.default.createFile(atPath: scene.workspace + "/upload.bin", contents: Data(upload))
        scene.chownTree()
        let mutations = [
            "ec2 run-instances --image-id ami-12345678 --count 1", "ec2 terminate-instances --instance-ids \(instance)",
            "s3 mb s3://newbucket", "s3 cp upload.bin s3://existing/upload.bin", "s3 rm s3://existing/doomed.txt",
            "cloudformation delete-stack --stack-name prod", "iam create-access-key --user-name deployer",
            #"dynamodb put-item --table-name t --item '{"id":{"S":"new"}}'"#,
        ]
        // The agent tries each; then waits for the first and the upload, as an agent would.
        let script = mutations.enumerated().map { "aws \($1) > m\($0).out 2> m\($0).err; echo $? > m\($0).rc" }.joined(separator: "; ")
            + "; grep -ho 'Proposal [0-9a-f]*' m*.err | cut -d' ' -f2 > ids.txt; touch proposed"
            + "; airlock wait $(grep -o 'Proposal [0-9a-f]*' m0.err | cut -d' ' -f2) --timeout 120 > wait0.txt; echo $? > wait0.rc"
            + "; airlock wait $(grep -o 'Proposal [0-9a-f]*' m3.err | cut -d' ' -f2) --timeout 120 --json > wait3.json; echo $? > wait3.rc"
            + "; airlock wait $(grep -o 'Proposal [0-9a-f]*' m1.err | cut -d' ' -f2) --timeout 120 > wait1.txt; echo $? > wait1.rc"
        var ids: [String] = []
        var approvals: [Outcome] = []
        let out = scene.agent(script, moto: moto, timeout: 300) { _ in
            for _ in 0..<6000 where !FileManager.default.fileExists(atPath: scene.workspace + "/proposed") { usleep(50_000) }
            ids = (try? String(contentsOfFile: scene.workspace + "/ids.txt", encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
            guard ids.count == mutations.count else { return }
            // Nothing changed yet.
            #expect((moto.json(["ec2", "describe-instances"]) as? [String: Any]).map { Self.instanceCount($0) } == 1)
            #expect(!moto.aws(["s3", "ls"]).stdout.contains("newbucket"))
            #expect(moto.aws(["s3", "ls", "s3://existing/"]).stdout.contains("doomed.txt"))
            #expect(!moto.aws(["s3", "ls", "s3://existing/"]).stdout.contains("upload.bin"))
            #expect(moto.aws(["cloudformation", "describe-stacks", "--stack-name", "prod"]).status == 0)
            // The human approves all but the termination, which they deny.
            for (index, id) in ids.enumerated() where index != 1 {
                approvals.append(scene.airlock(["approve", id, "--reason", "test"]))
            }
            approvals.append(scene.airlock(["deny", ids[1], "--reason", "keep it running"]))
        }
        #expect(out.status == 0, "\(out)")
        try #require(ids.count == mutations.count, "proposals: \(ids) \(out)")
        for index in mutations.indices {
            let rc = (try? String(contentsOfFile: scene.workspace + "/m\(index).rc", encoding: .utf8)) ?? ""
            let err = (try? String(contentsOfFile: scene.workspace + "/m\(index).err", encoding: .utf8)) ?? ""
            #expect(rc != "0\n", "\(mutations[index]) was not gated")
            #expect(err.contains("AirlockProposalPending") && err.contains("airlock approve"), "\(mutations[index]): \(err)")
        }
        for approval in approvals { #expect(approval.status == 0, "\(approval)") }
        // Each change happened exactly once.
        #expect((moto.json(["ec2", "describe-instances"]) as? [String: Any]).map { Self.instanceCount($0) } == 2)
        #expect(moto.aws(["s3", "ls"]).stdout.contains("newbucket"))
        #expect(!moto.aws(["s3", "ls", "s3://existing/"]).stdout.contains("doomed.txt"))
        let keys = moto.json(["iam", "list-access-keys", "--user-name", "deployer"]) as? [String: Any]
        #expect((keys?["AccessKeyMetadata"] as? [Any])?.count == 1)
        #expect(moto.aws(["dynamodb", "get-item", "--table-name", "t", "--key", #"{"id":{"S":"new"}}"#]).stdout.contains("new"))
        let stacks = moto.aws(["cloudformation", "describe-stacks", "--stack-name", "prod"])
        #expect(stacks.status != 0 || stacks.stdout.contains("DELETE_COMPLETE"), "\(stacks)")
        // The uploaded object is byte-identical.
        _ = moto.aws(["s3", "cp", "s3://existing/upload.bin", scene.root + "/back.bin"])
        #expect(FileManager.default.contents(atPath: scene.root + "/back.bin") == Data(upload))
        // The denied termination changed nothing.
        let running = moto.json(["ec2", "describe-instances", "--instance-ids", instance]) as? [String: Any]
        #expect(String(describing: running).contains("running"))
        // The agent's waits returned the results.
        #expect((try? String(contentsOfFile: scene.workspace + "/wait0.rc", encoding: .utf8)) == "0\n")
        #expect((try? String(contentsOfFile: scene.workspace + "/wait0.txt", encoding: .utf8))?.contains("RunInstancesResponse") == true)
        let wait3 = (try? String(contentsOfFile: scene.workspace + "/wait3.json", encoding: .utf8)) ?? ""
        #expect(wait3.contains(#""state":"succeeded""#) && wait3.contains("CompleteMultipartUpload"), "\(wait3)")
        #expect((try? String(contentsOfFile: scene.workspace + "/wait1.rc", encoding: .utf8)) == "1\n")
        #expect((try? String(contentsOfFile: scene.workspace + "/wait1.txt", encoding: .utf8))?.contains("denied") == true)
        // Approving twice runs nothing twice.
        let again = scene.airlock(["approve", ids[0]])
        #expect(again.status == 1 && again.stderr.contains("runs once"), "\(again)")
        #expect((moto.json(["ec2", "describe-instances"]) as? [String: Any]).map { Self.instanceCount($0) } == 2)
        #expect(scene.airlock(["audit", "verify"]).status == 0)
    }

    static func instanceCount(_ document: [String: Any]) -> Int {
        (document["Reservations"] as? [[String: Any]] ?? []).reduce(0) { $0 + (($1["Instances"] as? [Any])?.count ?? 0) }
    }

    @Test func sensitiveReadsAreGated() throws {
        guard let (scene, moto) = try setUp() else { return }
        _ = moto.aws(["secretsmanager", "create-secret", "--name", "db", "--secret-string", "PLANTED-SECRET-VALUE"])
        _ = moto.aws(["ssm", "put-parameter", "--name", "/app/pw", "--type", "SecureString", "--value", "PLANTED-PARAM"])
        _ = moto.aws(["ssm", "put-parameter", "--name", "/app/plain", "--type", "String", "--value", "plain-value"])
        let key = (moto.json(["kms", "create-key"]) as? [String: Any])?["KeyMetadata"] as? [String: Any]
        let keyID = try #require(key?["KeyId"] as? String)
        let blob = (moto.json(["kms", "encrypt", "--key-id", keyID, "--plaintext", "UExBTlRFRC1LTVM="]) as? [String: Any])?["CiphertextBlob"] as? String
        let ciphertext = try #require(blob)
        scene.write(scene.workspace + "/blob.b64", ciphertext)
        let attempts = [
            "secretsmanager get-secret-value --secret-id db", "ssm get-parameter --name /app/pw --with-decryption",
            "sts assume-role --role-arn arn:aws:iam::123456789012:role/admin --role-session-name agent-session",
            "ecr get-authorization-token", "kms decrypt --ciphertext-blob fileb://blob.bin",
        ]
        let script = "base64 -d blob.b64 > blob.bin; " + attempts.enumerated().map { "aws \($1) > s\($0).out 2> s\($0).err" }.joined(separator: "; ")
            + "; aws ssm get-parameter --name /app/plain > plain.out"
        let out = scene.agent(script, moto: moto)
        #expect(out.status == 0, "\(out)")
        for (index, attempt) in attempts.enumerated() {
            let stdout = (try? String(contentsOfFile: scene.workspace + "/s\(index).out", encoding: .utf8)) ?? ""
            let stderr = (try? String(contentsOfFile: scene.workspace + "/s\(index).err", encoding: .utf8)) ?? ""
            #expect(stderr.contains("AirlockProposalPending") && stderr.contains("sensitive"), "\(attempt): \(stderr)")
            #expect(!stdout.contains("PLANTED"), "\(attempt) leaked")
        }
        // Without decryption, a parameter is a plain read.
        #expect((try? String(contentsOfFile: scene.workspace + "/plain.out", encoding: .utf8))?.contains("plain-value") == true)
        let listed = scene.airlock(["proposals", "--json"]).stdout
        #expect(listed.components(separatedBy: #""decision":"sensitive""#).count - 1 == attempts.count, "\(listed)")
    }

    /// Re-signing proven by moto checking signatures: after the first calls it verifies SigV4
    /// with the IAM user created in them, whose keys are the broker's real credentials.
    @Test func resigningPassesMotoSignatureChecks() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let moto = try Moto(environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "4"])
        _ = moto.aws(["iam", "create-user", "--user-name", "broker"])
        _ = moto.aws(["iam", "put-user-policy", "--user-name", "broker", "--policy-name", "all",
                      "--policy-document", #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#])
        let created = moto.json(["iam", "create-access-key", "--user-name", "broker"]) as? [String: Any]
        let key = try #require(created?["AccessKey"] as? [String: Any])
        let real = ["AWS_ACCESS_KEY_ID": key["AccessKeyId"] as! String, "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"] as! String]
        _ = moto.aws(["s3", "mb", "s3://signed"], keys: real)  // 4th call: from now on signatures are checked
        // A direct call with wrong keys is refused: moto really checks.
        #expect(moto.aws(["sts", "get-caller-identity"], keys: ["AWS_ACCESS_KEY_ID": real["AWS_ACCESS_KEY_ID"]!, "AWS_SECRET_ACCESS_KEY": "wrong"]).status != 0)
        let out = scene.agent("""
            aws sts get-caller-identity --query Arn --output text; aws ec2 describe-instances --query 'length(Reservations)';
            aws s3 ls; aws dynamodb list-tables --output text; aws s3api put-object --bucket signed --key k --body /etc/hostname 2>&1 | grep -o 'Proposal [0-9a-f]*' > id.txt
            """, moto: moto, hostKeys: real)
        #expect(out.status == 0, "\(out)")
        #expect(out.stdout.contains("arn:aws:iam::123456789012:user/broker"), "\(out)")
        #expect(out.stdout.contains("signed"), "\(out)")
        // Executions are signed correctly too.
        let id = try #require((try? String(contentsOfFile: scene.workspace + "/id.txt", encoding: .utf8))?.split(separator: " ").last.map { String($0.prefix(8)) })
        let approved = scene.airlock(["approve", id], hostKeys: real)
        #expect(approved.status == 0 && approved.stdout.contains("HTTP 200"), "\(approved)")
        // With a wrong secret, the broker's forward is refused by moto.
        let wrong = scene.agent("aws sts get-caller-identity", moto: moto, hostKeys: ["AWS_ACCESS_KEY_ID": real["AWS_ACCESS_KEY_ID"]!, "AWS_SECRET_ACCESS_KEY": "wrong"])
        #expect(wrong.status != 0 && (wrong.stderr.contains("SignatureDoesNotMatch") || wrong.stderr.contains("InvalidClientTokenId") || wrong.stderr.contains("signature")), "\(wrong)")
    }

    /// Bad input gets a clear error, nothing is stored wrongly, and the broker stays up.
    @Test func badInputIsRefusedClearly() throws {
        guard let (scene, moto) = try setUp() else { return }
        scene.write(scene.workspace + "/bad.py", """
            import http.client, os, socket, json
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            def send(method, path, body=b"", headers=None):
                c = http.client.HTTPConnection("127.0.0.1", 8181, timeout=30)
                c.request(method, path, body=body, headers=headers or {})
                r = c.getresponse()
                return r.status, r.read().decode(errors="replace")
            def signed(path, body, target=None, secret=None, service="ec2", ctype="application/x-www-form-urlencoded"):
                creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], secret or os.environ["AWS_SECRET_ACCESS_KEY"])
                headers = {"Content-Type": ctype}
                if target: headers["X-Amz-Target"] = target
                req = AWSRequest(method="POST", url="http://127.0.0.1:8181" + path, data=body, headers=headers)
                SigV4Auth(creds, service, "us-east-1").add_auth(req)
                return send("POST", path, body, dict(req.headers))
            form = b"Action=DescribeInstances&Version=2016-11-15"
            results = {
              "forged": signed("/svc/ec2/", form, secret="not-the-session-secret"),
              "unsigned": send("POST", "/svc/ec2/", form, {"Content-Type": "application/x-www-form-urlencoded"}),
              "unknown_service": signed("/svc/no-such-service/", form),
              "malformed_form": signed("/svc/ec2/", b"Action=RunInstances&%ZZ=1&&=x"),
              "malformed_json": signed("/svc/dynamodb/", b"{not json", target="DynamoDB_20120810.PutItem", service="dynamodb", ctype="application/x-amz-json-1.0"),
              "denied": signed("/svc/cloudtrail/", b'{"Name": "trail"}', target="com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.StopLogging", service="cloudtrail", ctype="application/x-amz-json-1.1"),
            }
            s = socket.create_connection(("127.0.0.1", 8181))
            s.sendall(b"PUT /svc/s3/b/huge HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2147483648\\r\\nExpect: 100-continue\\r\\n\\r\\n")
            results["two_gib"] = (int(s.recv(65536).split(b" ")[1]), "")
            s.close()
            results["after"] = signed("/svc/ec2/", form)
            print(json.dumps(results))
            """)
        let out = scene.agent("python3 bad.py", moto: moto)
        #expect(out.status == 0, "\(out)")
        let results = try #require(parse(out.stdout.split(separator: "\n").last.map(String.init) ?? "") as? [String: [Any]], "\(out)")
        func check(_ name: String, _ status: Int, _ words: String) {
            #expect(results[name]?.first as? Int == status, "\(name): \(String(describing: results[name]))")
            #expect((results[name]?.last as? String)?.contains(words) == true, "\(name): \(String(describing: results[name]))")
        }
        check("forged", 403, "signature does not match")
        check("unsigned", 403, "not signed")
        check("unknown_service", 404, "no AWS service is served at /svc/no-such-service")
        check("malformed_form", 400, "invalid %-escape")
        check("malformed_json", 400, "not valid JSON")
        check("denied", 403, "AirlockDenied")
        #expect(results["two_gib"]?.first as? Int == 413)
        check("after", 200, "DescribeInstancesResponse")
        // Nothing was proposed by any of it; the deny is audited.
        #expect(scene.airlock(["proposals", "--all", "--json"]).stdout.contains(#""proposals":[]"#))
        #expect(scene.airlock(["audit", "verify"]).status == 0)
    }

    /// kill -9 while approving: the proposal becomes `unknown`, and is never run again.
    @Test func killedApprovalIsUnknownNotRerun() throws {
        guard let (scene, _) = try setUp() else { return }
        // An upstream that accepts and never answers: the execution hangs mid-request.
        let silent = try TCPListener()
        defer { silent.close() }
        let slow = try SilentUpstream(listener: silent)
        let out = scene.run(["/bin/sh", "-c", "export PATH=\(PythonTools.venv)/bin:$PATH; aws ec2 run-instances --image-id ami-1 --count 1 2>&1 | grep -o 'Proposal [0-9a-f]*'"],
                            options: ["--profile", PythonTools.profile(in: scene), "--aws-endpoint", "http://127.0.0.1:\(silent.port)"],
                            extraEnvironment: Moto.keys.merging(["AWS_DEFAULT_REGION": "us-east-1"]) { $1 })
        let id = try #require(out.stdout.split(separator: " ").last.map { String($0.prefix(8)) }, "\(out)")
        let killed = runProcess(Stage.airlock, ["approve", id, "--state-dir", scene.stateDir],
                                environment: scene.environment.merging(Moto.keys) { $1 }, directory: scene.workspace,
                                timeout: 60) { pid in
            for _ in 0..<400 where slow.connections == 0 { usleep(25_000) }
            usleep(200_000)
            kill(pid, SIGKILL)
        }
        #expect(killed.status == 128 + SIGKILL)
        #expect(slow.connections == 1)
        let shown = scene.airlock(["show", id, "--json"])
        #expect(shown.stdout.contains(#""state":"unknown""#), "\(shown)")
        let again = scene.airlock(["approve", id])
        #expect(again.status == 1 && again.stderr.contains("never runs it again"), "\(again)")
        #expect(slow.connections == 1, "the proposal was sent a second time")
        #expect(scene.airlock(["audit", "verify"]).status == 0)
        // A hand edit of the decision rows or the log is detected.
        let db = scene.stateDir + "/airlock.db"
        _ = runProcess("/usr/bin/sqlite3", [db, "UPDATE proposals SET state='pending' WHERE id='\(id)'"], environment: [:], directory: "/")
        let verify = scene.airlock(["audit", "verify"])
        #expect(verify.status == 1 && verify.stdout.contains("is pending in the store but unknown in the audit log"), "\(verify)")
        _ = runProcess("/usr/bin/sqlite3", [db, "UPDATE proposals SET state='unknown' WHERE id='\(id)'; UPDATE audit SET actor='user:mallory' WHERE seq=2"], environment: [:], directory: "/")
        let edited = scene.airlock(["audit", "verify"])
        #expect(edited.status == 1 && edited.stdout.contains("was altered"), "\(edited)")
    }
}

/// Accepts connections and reads, but never answers.
final class SilentUpstream: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var connections: Int { lock.lock(); defer { lock.unlock() }; return count }

    init(listener: TCPListener) throws {
        let fd = listener.fd
        var flags = fcntl(fd, F_GETFL)
        flags &= ~O_NONBLOCK
        _ = fcntl(fd, F_SETFL, flags)
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                lock.lock(); count += 1; lock.unlock()
            }
        }
    }
}
