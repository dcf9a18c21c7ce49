import Foundation
import Testing

/// Effect previews of AWS API proposals (docs/previews.md), against moto (real resources,
/// signatures checked): the agent proposes a change through the aws CLI inside `airlock run`;
/// `airlock show` (text and JSON) says what the change would touch and what that holds, with
/// risk labels first; the preview changed nothing (moto's state before and after) and the
/// session log shows only reads.
@Suite struct AWSPreviewTests {
    static let template = """
        {"Resources":{
          "Data":{"Type":"AWS::S3::Bucket","Properties":{"BucketName":"customer-data"}},
          "Jobs":{"Type":"AWS::SQS::Queue","Properties":{"QueueName":"jobs"}},
          "Ledger":{"Type":"AWS::DynamoDB::Table","DeletionPolicy":"Retain","Properties":{"TableName":"ledger",
            "AttributeDefinitions":[{"AttributeName":"id","AttributeType":"S"}],"KeySchema":[{"AttributeName":"id","KeyType":"HASH"}],
            "BillingMode":"PAY_PER_REQUEST"}}
        }}
        """

    func setUp() throws -> (Scene, Moto)? {
        guard Launch.anyAvailable(), PythonTools.available() else { return nil }
        return (Scene(getuid() == 0 ? .root : .unprivileged), try Moto())
    }

    func proposalID(_ text: String) -> String? { Scene.proposalIDs(in: text).first }

    func showJSON(_ scene: Scene, _ id: String) -> [String: Any] {
        let out = scene.airlock(["show", id, "--json"])
        return (try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    func labels(_ shown: [String: Any]) -> [String] {
        ((shown["preview"] as? [String: Any])?["labels"] as? [[String: Any]] ?? []).compactMap { $0["label"] as? String }
    }

    func resources(_ shown: [String: Any]) -> [[String: Any]] {
        (shown["preview"] as? [String: Any])?["resources"] as? [[String: Any]] ?? []
    }

    func expectOnlyReads(_ scene: Scene, sourceLocation: SourceLocation = #_sourceLocation) {
        scene.expectOnlyPreviewReads(sourceLocation: sourceLocation)
    }
}

extension Moto {
    /// moto's whole state (its `/moto-api/data.json`): what the previews must leave as it was.
    var wholeState: String {
        runProcess("/usr/bin/curl", ["-s", url + "/moto-api/data.json"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
    }
}

extension Scene {
    /// The session logs' preview reads and every proposal they made: reads only.
    func expectOnlyPreviewReads(sourceLocation: SourceLocation = #_sourceLocation) {
        let scene = self
        let logs = scene.allSessionLogs
        let reads = logs.split(separator: "\n").filter { $0.contains("aws preview read ") }
        #expect(!reads.isEmpty, "no preview read was logged:\n\(logs.suffix(3000))", sourceLocation: sourceLocation)
        #expect(reads.allSatisfy { $0.contains(": read (") }, "\(reads)", sourceLocation: sourceLocation)
        #expect(!logs.contains("sent as part of approved proposal"), sourceLocation: sourceLocation)
    }
}

extension AWSPreviewTests {

    @Test func deleteStackShowsWhatTheStackHolds() throws {
        guard let (scene, moto) = try setUp() else { return }
        _ = moto.aws(["cloudformation", "create-stack", "--stack-name", "prod", "--template-body", Self.template, "--tags", "Key=env,Value=prod"])
        for (index, size) in [100, 2000, 30000].enumerated() {
            scene.write(scene.root + "/object\(index)", String(repeating: "x", count: size))
            _ = moto.aws(["s3", "cp", scene.root + "/object\(index)", "s3://customer-data/orders/\(index).json"])
        }
        let queueURL = moto.aws(["sqs", "get-queue-url", "--queue-name", "jobs", "--query", "QueueUrl", "--output", "text"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for index in 0..<2 { _ = moto.aws(["sqs", "send-message", "--queue-url", queueURL, "--message-body", "job \(index)"]) }
        for index in 0..<4 { _ = moto.aws(["dynamodb", "put-item", "--table-name", "ledger", "--item", #"{"id":{"S":"\#(index)"}}"#]) }
        let before = state(moto, queueURL)
        let wholeBefore = moto.wholeState

        scene.write(scene.workspace + "/stack.json", Self.template)
        let out = scene.agent("""
            aws cloudformation delete-stack --stack-name prod 2>&1
            aws cloudformation create-stack --stack-name prod --template-body file://stack.json 2>&1
            """, moto: moto)
        let ids = Scene.proposalIDs(in: out.stderr + out.stdout)
        // moto's whole state, before anything else reads it (its dump counts live model
        // objects, which the test's own scans would add).
        let wholeAfter = moto.wholeState
        #expect(ids.count == 2, "\(out)")
        let id = try #require(ids.first, "\(out)")
        let shown = showJSON(scene, id)
        let listed = resources(shown)
        func resource(_ type: String) -> [String: Any]? { listed.first { $0["type"] as? String == type } }
        #expect(resource("AWS::CloudFormation::Stack")?["name"] as? String == "prod")
        let bucket = try #require(resource("AWS::S3::Bucket"), "\(listed)")
        #expect(bucket["id"] as? String == "customer-data" && bucket["objects"] as? Int == 3 && bucket["bytes"] as? Int == 32100, "\(bucket)")
        #expect(resource("AWS::SQS::Queue")?["messages"] as? Int == 2, "\(listed)")
        let table = try #require(resource("AWS::DynamoDB::Table"), "\(listed)")
        #expect(table["items"] as? Int == 4 && table["retained"] as? Bool == true, "\(table)")
        #expect(labels(shown) == ["destructive", "irreversible", "data-loss", "production"], "\(labels(shown))")
        // The text shows the labels first, then the resources.
        let text = scene.airlock(["show", id]).stdout
        #expect(text.contains("risk:      destructive") && text.contains("data-loss: Data (AWS::S3::Bucket) holds 3 objects, 31 KiB; Jobs (AWS::SQS::Queue) holds about 2 messages"), "\(text)")
        #expect(text.contains("AWS::DynamoDB::Table  Ledger  ledger  holds ~4 items") && text.contains("(kept)"), "\(text)")
        #expect(text.range(of: "risk:")!.lowerBound < text.range(of: "request:")!.lowerBound)
        // Delete and create of one stack in one session: shown together, as a recreate.
        let related = shown["related"] as? [[String: Any]] ?? []
        #expect(related.count == 1 && related.first?["id"] as? String == ids.last && related.first?["relation"] as? String == "recreate", "\(related)")
        #expect(text.contains("RECREATE:  with proposal \(ids[1]) (cloudformation:CreateStack"), "\(text)")
        // Nothing changed; only reads were made.
        #expect(state(moto, queueURL) == before)
        let differ = zip(wholeBefore, wholeAfter).prefix { $0 == $1 }.count
        #expect(!wholeBefore.isEmpty && wholeAfter == wholeBefore,
                "moto's state changed while the preview read it: \(wholeBefore.count) → \(wholeAfter.count) bytes; at \(differ): \(wholeBefore.dropFirst(max(0, differ - 300)).prefix(600)) ≠ \(wholeAfter.dropFirst(max(0, differ - 300)).prefix(600))")
        expectOnlyReads(scene)
    }

    /// What the preview could read of the world: the stack, the objects, messages and items.
    func state(_ moto: Moto, _ queueURL: String) -> [String] {
        [moto.aws(["cloudformation", "describe-stack-resources", "--stack-name", "prod", "--query", "StackResources[].ResourceStatus"]).stdout,
         moto.aws(["s3api", "list-objects-v2", "--bucket", "customer-data", "--query", "Contents[].[Key,Size]"]).stdout,
         moto.aws(["sqs", "get-queue-attributes", "--queue-url", queueURL, "--attribute-names", "ApproximateNumberOfMessages"]).stdout,
         moto.aws(["dynamodb", "scan", "--table-name", "ledger", "--select", "COUNT"]).stdout]
    }

    @Test func terminateInstancesShowsNamesStateVolumesAndProtection() throws {
        guard let (scene, moto) = try setUp() else { return }
        let run = moto.aws(["ec2", "run-instances", "--image-id", "ami-12c6146b", "--count", "1", "--instance-type", "t3.micro",
                            "--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=web-1},{Key=env,Value=production}]",
                            "--query", "Instances[0].InstanceId", "--output", "text"])
        let instance = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(instance.hasPrefix("i-"), "\(run)")
        _ = moto.aws(["ec2", "modify-instance-attribute", "--instance-id", instance, "--disable-api-termination"])
        let out = scene.agent("aws ec2 terminate-instances --instance-ids \(instance)", moto: moto)
        let id = try #require(proposalID(out.stderr + out.stdout), "\(out)")
        let shown = showJSON(scene, id)
        let listed = resources(shown)
        let described = try #require(listed.first { $0["type"] as? String == "AWS::EC2::Instance" }, "\(listed)")
        let details = described["details"] as? [String: String] ?? [:]
        #expect(described["name"] as? String == "web-1" && details["state"] == "running" && details["type"] == "t3.micro", "\(described)")
        #expect(details["termination protection"] == "on: the terminate will fail", "\(details)")
        #expect(listed.contains { $0["type"] as? String == "AWS::EC2::Volume" }, "the root volume, deleted with the instance: \(listed)")
        #expect(labels(shown).contains("production") && labels(shown).contains("destructive"), "\(labels(shown))")
        let state = moto.aws(["ec2", "describe-instances", "--instance-ids", instance, "--query", "Reservations[0].Instances[0].State.Name", "--output", "text"])
        #expect(state.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "running")
        expectOnlyReads(scene)
    }

    @Test func s3DeletionsShowSizesAndVersioning() throws {
        guard let (scene, moto) = try setUp() else { return }
        for bucket in ["plain", "kept"] { _ = moto.aws(["s3", "mb", "s3://\(bucket)"]) }
        _ = moto.aws(["s3api", "put-bucket-versioning", "--bucket", "kept", "--versioning-configuration", "Status=Enabled"])
        scene.write(scene.root + "/report", String(repeating: "r", count: 1234))
        for bucket in ["plain", "kept"] { _ = moto.aws(["s3", "cp", scene.root + "/report", "s3://\(bucket)/reports/q1.csv"]) }
        let out = scene.agent("""
            aws s3api delete-object --bucket plain --key reports/q1.csv 2>&1
            aws s3api delete-object --bucket kept --key reports/q1.csv 2>&1
            aws s3api delete-bucket --bucket plain 2>&1
            aws sns create-topic --name alerts 2>&1
            aws cloudformation delete-stack --stack-name no-such-stack 2>&1
            """, moto: moto)
        let ids = Scene.proposalIDs(in: out.stdout + out.stderr)
        #expect(ids.count == 5, "\(out)")
        guard ids.count == 5 else { return }
        let plain = showJSON(scene, ids[0])
        let object = try #require(resources(plain).first, "\(plain)")
        #expect(object["bytes"] as? Int == 1234 && (object["details"] as? [String: String])?["ETag"] != nil, "\(object)")
        #expect(labels(plain) == ["destructive", "irreversible", "data-loss"], "\(labels(plain))")
        let kept = showJSON(scene, ids[1])
        #expect(resources(kept).first?["versioned"] as? Bool == true && labels(kept) == ["destructive"], "\(kept)")
        let bucket = showJSON(scene, ids[2])
        #expect(resources(bucket).first?["objects"] as? Int == 1, "\(bucket)")
        // No previewer: said so. A previewer whose reads fail: said so, and the proposal stands.
        let topic = showJSON(scene, ids[3])
        #expect(((topic["preview"] as? [String: Any])?["notes"] as? [String])?.first?.hasPrefix("no preview for this operation") == true, "\(topic)")
        let missing = showJSON(scene, ids[4])
        let notes = (missing["preview"] as? [String: Any])?["notes"] as? [String] ?? []
        #expect(notes.contains { $0.contains("cloudformation:DescribeStacks") }, "\(notes)")
        #expect(missing["state"] as? String == "pending")
        // Nothing deleted.
        for bucket in ["plain", "kept"] {
            #expect(moto.aws(["s3", "ls", "s3://\(bucket)/reports/"]).stdout.contains("q1.csv"))
        }
        expectOnlyReads(scene)
    }

    /// No execution on a drifted target: a resource added to the stack after the preview, an
    /// object rewritten after its DeleteObject preview. The approval is refused, nothing runs,
    /// the proposal stays pending with the new preview; approved again, it runs once.
    @Test func aDriftedTargetIsNotExecuted() throws {
        guard let (scene, moto) = try setUp() else { return }
        let small = #"{"Resources":{"A":{"Type":"AWS::SQS::Queue","Properties":{"QueueName":"drift-a"}},"B":{"Type":"AWS::SQS::Queue","Properties":{"QueueName":"drift-b"}}}}"#
        let larger = #"{"Resources":{"A":{"Type":"AWS::SQS::Queue","Properties":{"QueueName":"drift-a"}},"B":{"Type":"AWS::SQS::Queue","Properties":{"QueueName":"drift-b"}},"C":{"Type":"AWS::SQS::Queue","Properties":{"QueueName":"drift-c"}}}}"#
        _ = moto.aws(["cloudformation", "create-stack", "--stack-name", "app", "--template-body", small])
        _ = moto.aws(["s3", "mb", "s3://reports"])
        scene.write(scene.root + "/v1", "version one\n")
        scene.write(scene.root + "/v2", "version two, longer\n")
        _ = moto.aws(["s3", "cp", scene.root + "/v1", "s3://reports/q1.csv"])
        let out = scene.agent("""
            aws cloudformation delete-stack --stack-name app 2>&1
            aws s3api delete-object --bucket reports --key q1.csv 2>&1
            """, moto: moto)
        let ids = Scene.proposalIDs(in: out.stdout + out.stderr)
        guard ids.count == 2 else { Issue.record("\(out)"); return }
        #expect(resources(showJSON(scene, ids[0])).filter { $0["type"] as? String == "AWS::SQS::Queue" }.count == 2)
        // The world moves on before anyone approves.
        _ = moto.aws(["cloudformation", "update-stack", "--stack-name", "app", "--template-body", larger])
        _ = moto.aws(["s3", "cp", scene.root + "/v2", "s3://reports/q1.csv"])
        for id in ids {
            let refused = scene.airlock(["approve", id])
            #expect(refused.status != 0 && refused.stderr.contains("changed since it was previewed"), "\(refused)")
            let shown = showJSON(scene, id)
            #expect(shown["state"] as? String == "pending", "\(shown)")
            let drift = (shown["preview"] as? [String: Any])?["drift"] as? [String] ?? []
            #expect(!drift.isEmpty, "\(shown)")
        }
        #expect(scene.airlock(["show", ids[0]]).stdout.contains("DRIFT:"), "the drift is shown first")
        #expect(resources(showJSON(scene, ids[0])).filter { $0["type"] as? String == "AWS::SQS::Queue" }.count == 3, "the new preview lists the third queue")
        #expect(moto.aws(["s3", "ls", "s3://reports/"]).stdout.contains("q1.csv"), "the object was not deleted")
        #expect(moto.aws(["cloudformation", "describe-stacks", "--stack-name", "app"]).status == 0, "the stack was not deleted")
        // Decided again on the new preview: executed, once.
        for id in ids {
            let approved = scene.airlock(["approve", id])
            #expect(approved.status == 0, "\(approved)")
        }
        #expect(!moto.aws(["s3", "ls", "s3://reports/"]).stdout.contains("q1.csv"))
    }

    /// Queues, tables, log groups: what is lost; an IAM policy: the document against the
    /// current one, wildcards flagged.
    @Test func queuesTablesAndPoliciesShowWhatTheyLoseOrGrant() throws {
        guard let (scene, moto) = try setUp() else { return }
        let queueURL = moto.aws(["sqs", "create-queue", "--queue-name", "orders", "--query", "QueueUrl", "--output", "text"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for index in 0..<3 { _ = moto.aws(["sqs", "send-message", "--queue-url", queueURL, "--message-body", "order \(index)"]) }
        _ = moto.aws(["dynamodb", "create-table", "--table-name", "sessions", "--attribute-definitions", "AttributeName=id,AttributeType=S",
                      "--key-schema", "AttributeName=id,KeyType=HASH", "--billing-mode", "PAY_PER_REQUEST"])
        for index in 0..<5 { _ = moto.aws(["dynamodb", "put-item", "--table-name", "sessions", "--item", #"{"id":{"S":"\#(index)"}}"#]) }
        _ = moto.aws(["iam", "create-role", "--role-name", "deployer", "--assume-role-policy-document",
                      #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#])
        _ = moto.aws(["iam", "put-role-policy", "--role-name", "deployer", "--policy-name", "deploy", "--policy-document",
                      #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#])
        let wide = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
        scene.write(scene.workspace + "/wide.json", wide)
        let out = scene.agent("""
            aws sqs purge-queue --queue-url \(queueURL) 2>&1
            aws dynamodb delete-table --table-name sessions 2>&1
            aws iam put-role-policy --role-name deployer --policy-name deploy --policy-document file://wide.json 2>&1
            """, moto: moto)
        let ids = Scene.proposalIDs(in: out.stdout + out.stderr)
        guard ids.count == 3 else { Issue.record("\(out)"); return }
        let purge = showJSON(scene, ids[0])
        #expect(resources(purge).first?["messages"] as? Int == 3 && labels(purge).contains("data-loss"), "\(purge)")
        let table = showJSON(scene, ids[1])
        #expect(resources(table).first?["items"] as? Int == 5 && labels(table).contains("data-loss"), "\(table)")
        let policy = showJSON(scene, ids[2])
        let preview = policy["preview"] as? [String: Any] ?? [:]
        let diff = preview["diff"] as? String ?? ""
        #expect(diff.contains("-") && diff.contains("s3:GetObject") && diff.contains("+") && diff.contains("\"Action\": \"*\""), "\(diff)")
        let notes = preview["notes"] as? [String] ?? []
        #expect(notes.contains { $0.contains("every action") }, "\(preview)")
        let permission = (preview["labels"] as? [[String: Any]] ?? []).first { $0["label"] as? String == "permissions" }
        let reason = permission?["reason"] as? String ?? ""
        #expect(reason.contains("granting every action on every resource"), "\(preview)")
        let text = scene.airlock(["show", ids[2]]).stdout
        #expect(text.contains("the document against the current one:"), "\(text)")
        // Nothing changed.
        #expect(moto.aws(["dynamodb", "describe-table", "--table-name", "sessions"]).status == 0)
        #expect(moto.aws(["iam", "get-role-policy", "--role-name", "deployer", "--policy-name", "deploy"]).stdout.contains("s3:GetObject"))
        expectOnlyReads(scene)
    }

    /// With a team gate the gate previews with its own credentials at its own upstream (the
    /// host makes none, and a preview a host sends is not read), and the gate's approve path
    /// refuses a drifted target.
    @Test func theGatePreviewsWithItsOwnCredentialsAndRefusesDrift() throws {
        guard let (scene, moto) = try setUp() else { return }
        _ = moto.aws(["cloudformation", "create-stack", "--stack-name", "prod", "--template-body", Self.template, "--tags", "Key=env,Value=prod"])
        for index in 0..<2 {
            scene.write(scene.root + "/o\(index)", String(repeating: "o", count: 500))
            _ = moto.aws(["s3", "cp", scene.root + "/o\(index)", "s3://customer-data/o\(index)"])
        }
        let gate = try TeamGate(store: "sqlite", upstream: moto.url, keys: Moto.keys)
        let host = gate.enrol("host", "builder")
        let alice = gate.enrol("user", "alice")
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        scene.chownTree()
        let out = scene.agent("""
            aws cloudformation delete-stack --stack-name prod 2>&1
            aws s3api delete-object --bucket customer-data --key o1 2>&1
            """, moto: moto, options: ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token"])
        let ids = Scene.proposalIDs(in: out.stdout + out.stderr)
        guard ids.count == 2 else { Issue.record("\(out)"); return }
        let stack = gate.call("GET", "/v1/proposals/\(ids[0])", token: alice).json
        let listed = (stack["preview"] as? [String: Any])?["resources"] as? [[String: Any]] ?? []
        let bucket = listed.first { $0["type"] as? String == "AWS::S3::Bucket" }
        #expect(bucket?["objects"] as? Int == 2 && bucket?["bytes"] as? Int == 1000, "the gate's preview: \(stack)")
        let labels = ((stack["preview"] as? [String: Any])?["labels"] as? [[String: Any]] ?? []).compactMap { $0["label"] as? String }
        #expect(labels.contains("production") && labels.contains("data-loss"), "\(labels)")
        // The host made no preview of its own.
        let hostLogs = scene.allSessionLogs
        #expect(!hostLogs.contains("aws preview read"), "\(hostLogs.suffix(2000))")
        // A preview a host sends along is not read: the gate's own is stored.
        let session = stack["session"] as? String ?? ""
        let form = Data("Action=DeleteStack&Version=2010-05-15&StackName=prod".utf8).base64EncodedString()
        let pinned: [String: Any] = ["type": "aws-request", "service": "cloudformation", "signing_name": "cloudformation", "region": "us-east-1",
                                     "operation": "DeleteStack", "method": "POST", "path": "/", "query": "",
                                     "headers": [["Content-Type", "application/x-www-form-urlencoded; charset=utf-8"]], "body_base64": form]
        let payload = try JSONSerialization.data(withJSONObject: pinned).base64EncodedString()
        let claimed: [String: Any] = ["type": "aws-effect", "labels": [], "resources": [["type": "AWS::S3::Bucket", "id": "customer-data", "objects": 0]]]
        let forged = gate.call("POST", "/v1/proposals", token: host, body: ["session_id": session, "payload_base64": payload, "preview": claimed])
        let forgedID = forged.json["id"] as? String ?? ""
        #expect(forged.status == 201 || forged.status == 200, "\(forged)")
        let kept = gate.call("GET", "/v1/proposals/\(forgedID)", token: alice).json
        let keptBucket = ((kept["preview"] as? [String: Any])?["resources"] as? [[String: Any]] ?? []).first { $0["type"] as? String == "AWS::S3::Bucket" }
        #expect(keptBucket?["objects"] as? Int == 2, "the gate's own facts, not the host's claim: \(kept)")
        // Drift on the gate: the object rewritten after its preview; approving refuses.
        scene.write(scene.root + "/o1-new", String(repeating: "n", count: 900))
        _ = moto.aws(["s3", "cp", scene.root + "/o1-new", "s3://customer-data/o1"])
        let refused = gate.call("POST", "/v1/proposals/\(ids[1])/approve", token: alice, body: ["reason": "cleanup"])
        #expect(refused.status == 409 && "\(refused.json)".contains("changed since it was previewed"), "\(refused)")
        let after = gate.call("GET", "/v1/proposals/\(ids[1])", token: alice).json
        #expect(after["state"] as? String == "pending" && ((after["preview"] as? [String: Any])?["drift"] as? [String])?.isEmpty == false, "\(after)")
        #expect(moto.aws(["s3", "ls", "s3://customer-data/"]).stdout.contains("o1"), "not deleted")
        let approved = gate.call("POST", "/v1/proposals/\(ids[1])/approve", token: alice, body: ["reason": "read the new preview"])
        #expect(approved.status == 200 && approved.json["state"] as? String == "succeeded", "\(approved)")
    }
}

extension ProposalGroupTests {
    /// The same on a team gate: the gate groups what hosts proposed, `airlock show G --gate`
    /// and `airlock approve G --members D --gate` decide exactly the members shown.
    @Test func aBurstOnTheGateIsOneGroup() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let moto = try Moto()
        _ = moto.aws(["s3", "mb", "s3://site"])
        for index in 0..<6 { scene.write(scene.workspace + "/site/page\(index).html", "<p>\(index)</p>\n") }
        let gate = try TeamGate(store: "sqlite", upstream: moto.url, keys: Moto.keys)
        let host = gate.enrol("host", "builder")
        let alice = gate.enrol("user", "alice")
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        scene.write(scene.root + "/alice.token", alice + "\n", mode: 0o600)
        scene.chownTree()
        let out = scene.agent("aws s3 cp --recursive site s3://site/pages > cp.out 2>&1; true", moto: moto,
                              options: ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token"], timeout: 300)
        #expect(out.status == 0, "\(out)")
        let asAlice = ["--gate", gate.url, "--gate-token-file", scene.root + "/alice.token"]
        let listed = scene.airlock(["proposals"] + asAlice)
        #expect(listed.stdout.contains("Groups") && listed.stdout.contains("6 × s3:PutObject in site"), "\(listed)")
        let groups = gate.call("GET", "/v1/groups", token: alice).json["groups"] as? [[String: Any]] ?? []
        guard let id = groups.first?["group"] as? String, let digest = groups.first?["members_digest"] as? String else {
            Issue.record("no group on the gate: \(groups)")
            return
        }
        let shown = scene.airlock(["show", id] + asAlice)
        #expect(shown.stdout.contains("count:     6") && shown.stdout.contains(digest), "\(shown)")
        let approved = scene.airlock(["approve", id, "--members", digest, "--reason", "site"] + asAlice, timeout: 300)
        #expect(approved.status == 0 && approved.stdout.contains("6 of 6 approved"), "\(approved)")
        #expect(moto.aws(["s3", "ls", "s3://site/pages/"]).stdout.split(separator: "\n").count == 6)
    }
}

/// The other operation families, each on real moto resources: security group ingress (the
/// rules now, 0.0.0.0/0 flagged), an RDS delete without a final snapshot, a KMS key's deletion,
/// a Route 53 change as a diff, a bucket policy as a diff, a
/// managed policy attached (its document), an access key created (the keys there are).
@Suite struct AWSPreviewFamilyTests {
    @Test func eachFamilyShowsItsFacts() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let moto = try Moto()
        func text(_ outcome: Outcome) -> String { outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        let group = text(moto.aws(["ec2", "create-security-group", "--group-name", "web", "--description", "web", "--query", "GroupId", "--output", "text"]))
        _ = moto.aws(["ec2", "authorize-security-group-ingress", "--group-id", group, "--protocol", "tcp", "--port", "443", "--cidr", "10.0.0.0/8"])
        _ = moto.aws(["rds", "create-db-instance", "--db-instance-identifier", "orders-db", "--db-instance-class", "db.t3.micro", "--engine", "postgres",
                      "--allocated-storage", "20", "--master-username", "admin", "--master-user-password", "password123", "--backup-retention-period", "7"])
        let key = text(moto.aws(["kms", "create-key", "--description", "ledger key", "--query", "KeyMetadata.KeyId", "--output", "text"]))
        let zone = text(moto.aws(["route53", "create-hosted-zone", "--name", "example.com", "--caller-reference", "r1", "--query", "HostedZone.Id", "--output", "text"]))
        let record = #"{"Changes":[{"Action":"UPSERT","ResourceRecordSet":{"Name":"api.example.com","Type":"A","TTL":300,"ResourceRecords":[{"Value":"10.0.0.1"}]}}]}"#
        _ = moto.aws(["route53", "change-resource-record-sets", "--hosted-zone-id", zone, "--change-batch", record])
        _ = moto.aws(["s3", "mb", "s3://assets"])
        _ = moto.aws(["s3api", "put-bucket-policy", "--bucket", "assets", "--policy",
                      #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::assets/*"}]}"#])
        _ = moto.aws(["iam", "create-user", "--user-name", "ci"])
        _ = moto.aws(["iam", "create-access-key", "--user-name", "ci"])
        _ = moto.aws(["iam", "create-role", "--role-name", "app", "--assume-role-policy-document", #"{"Version":"2012-10-17","Statement":[]}"#])
        let managed = text(moto.aws(["iam", "create-policy", "--policy-name", "everything", "--query", "Policy.Arn", "--output", "text", "--policy-document",
                                      #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#]))
        scene.write(scene.workspace + "/change.json", #"{"Changes":[{"Action":"UPSERT","ResourceRecordSet":{"Name":"api.example.com","Type":"A","TTL":60,"ResourceRecords":[{"Value":"10.0.0.2"}]}}]}"#)
        scene.write(scene.workspace + "/policy.json", #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::assets/*"}]}"#)
        let wholeBefore = moto.wholeState
        let out = scene.agent("""
            aws ec2 authorize-security-group-ingress --group-id \(group) --protocol tcp --port 22 --cidr 0.0.0.0/0 2>&1
            aws rds delete-db-instance --db-instance-identifier orders-db --skip-final-snapshot 2>&1
            aws kms schedule-key-deletion --key-id \(key) --pending-window-in-days 7 2>&1
            aws route53 change-resource-record-sets --hosted-zone-id \(zone) --change-batch file://change.json 2>&1
            aws s3api put-bucket-policy --bucket assets --policy file://policy.json 2>&1
            aws iam attach-role-policy --role-name app --policy-arn \(managed) 2>&1
            aws iam create-access-key --user-name ci 2>&1
            """, moto: moto, timeout: 300)
        let wholeAfter = moto.wholeState
        let ids = Scene.proposalIDs(in: out.stdout + out.stderr)
        guard ids.count == 7 else { Issue.record("\(ids.count) proposals: \(out)"); return }
        func shown(_ index: Int) -> (preview: [String: Any], text: String) {
            let json = scene.airlock(["show", ids[index], "--json"]).stdout
            let preview = ((try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["preview"] as? [String: Any]) ?? [:]
            return (preview, scene.airlock(["show", ids[index]]).stdout)
        }
        let ingress = shown(0)
        #expect(ingress.text.contains("ingress now tcp 443 from 10.0.0.0/8") && ingress.text.contains("public-exposure: opens port 22 to 0.0.0.0/0"), "\(ingress.text)")
        let database = shown(1)
        #expect(database.text.contains("final snapshot none (SkipFinalSnapshot)") && database.text.contains("backups kept 7 days")
                && database.text.contains("irreversible"), "\(database.text)")
        let kms = shown(2)
        #expect(kms.text.contains("ledger key") && kms.text.contains("deleted after 7 days"), "\(kms.text)")
        let dns = shown(3)
        #expect((dns.preview["diff"] as? String ?? "").contains("-api.example.com A ttl 300 10.0.0.1") && (dns.preview["diff"] as? String ?? "").contains("+api.example.com A ttl 60 10.0.0.2"),
                "\(dns.preview)")
        let policy = shown(4)
        let policyNotes = policy.preview["notes"] as? [String] ?? []
        #expect((policy.preview["diff"] as? String ?? "").contains("arn:aws:iam::123456789012:root") && policyNotes.contains { $0.contains("anyone") }, "\(policy.preview)")
        #expect(policy.text.contains("public-exposure"), "\(policy.text)")
        let attach = shown(5)
        let attachNotes = attach.preview["notes"] as? [String] ?? []
        #expect(attachNotes.contains { $0.contains("every action") } && (attach.preview["diff"] as? String ?? "").contains("\"Action\": \"*\""), "\(attach.preview)")
        let accessKey = shown(6)
        #expect(accessKey.text.contains("access keys now 1: AKIA"), "\(accessKey.text)")
        // Nothing changed.
        #expect(moto.aws(["rds", "describe-db-instances", "--db-instance-identifier", "orders-db"]).status == 0)
        #expect(text(moto.aws(["iam", "list-attached-role-policies", "--role-name", "app", "--query", "length(AttachedPolicies)"])) == "0")
        #expect(wholeAfter == wholeBefore, "moto's state changed while the previews read it")
        scene.expectOnlyPreviewReads()
    }
}

extension AWSPreviewFamilyTests {
    /// EC2 volumes and snapshots, a log group, a Lambda function: sizes and what goes with them.
    @Test func volumesSnapshotsLogGroupsAndFunctions() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let moto = try Moto()
        func text(_ outcome: Outcome) -> String { outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        let volume = text(moto.aws(["ec2", "create-volume", "--size", "40", "--availability-zone", "us-east-1a", "--query", "VolumeId", "--output", "text",
                                    "--tag-specifications", "ResourceType=volume,Tags=[{Key=Name,Value=db-data}]"]))
        let snapshot = text(moto.aws(["ec2", "create-snapshot", "--volume-id", volume, "--description", "nightly", "--query", "SnapshotId", "--output", "text"]))
        _ = moto.aws(["logs", "create-log-group", "--log-group-name", "/app/audit"])
        _ = moto.aws(["logs", "put-retention-policy", "--log-group-name", "/app/audit", "--retention-in-days", "30"])
        let role = text(moto.aws(["iam", "create-role", "--role-name", "fn", "--query", "Role.Arn", "--output", "text", "--assume-role-policy-document",
                                  #"{"Version":"2012-10-17","Statement":[]}"#]))
        let zip = scene.root + "/fn.zip"
        let zipped = runProcess("/usr/bin/python3", ["-c", "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w'); z.writestr('app.py','def handler(e,c): return 1'); z.close()", zip],
                                environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        #expect(zipped.status == 0, "\(zipped)")
        let created = moto.aws(["lambda", "create-function", "--function-name", "resize", "--runtime", "python3.11", "--role", role,
                                "--handler", "app.handler", "--zip-file", "fileb://" + zip])
        #expect(created.status == 0, "\(created)")
        let wholeBefore = moto.wholeState
        let out = scene.agent("""
            aws ec2 delete-volume --volume-id \(volume) 2>&1
            aws ec2 delete-snapshot --snapshot-id \(snapshot) 2>&1
            aws logs delete-log-group --log-group-name /app/audit 2>&1
            aws lambda delete-function --function-name resize 2>&1
            """, moto: moto, timeout: 300)
        let wholeAfter = moto.wholeState
        let ids = Scene.proposalIDs(in: out.stdout + out.stderr)
        guard ids.count == 4 else { Issue.record("\(ids.count) proposals: \(out)"); return }
        func shown(_ index: Int) -> String { scene.airlock(["show", ids[index]]).stdout }
        #expect(shown(0).contains("AWS::EC2::Volume  db-data") && shown(0).contains("size 40 GiB"), "\(shown(0))")
        #expect(shown(1).contains("AWS::EC2::Snapshot") && shown(1).contains("description nightly") && shown(1).contains("of volume \(volume)"), "\(shown(1))")
        #expect(shown(2).contains("AWS::Logs::LogGroup") && shown(2).contains("retention 30 days"), "\(shown(2))")
        #expect(shown(3).contains("AWS::Lambda::Function  resize") && shown(3).contains("runtime python3.11") && shown(3).contains("destructive"), "\(shown(3))")
        #expect(moto.aws(["lambda", "get-function", "--function-name", "resize"]).status == 0, "the function is still there")
        #expect(wholeAfter == wholeBefore, "moto's state changed while the previews read it")
        scene.expectOnlyPreviewReads()
    }
}

extension AWSPreviewFamilyTests {
    /// A profile's production accounts: a change in one is labelled production, whatever its
    /// names and tags say (the account asked of STS, a read).
    @Test func productionAccountsFromTheProfile() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let moto = try Moto()
        let url = moto.aws(["sqs", "create-queue", "--queue-name", "jobs", "--query", "QueueUrl", "--output", "text"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let profile = scene.egressProfile("aws:\n  production_accounts: [\"123456789012\"]\n", name: "prod-accounts.yaml")
        let out = scene.agent("aws sqs delete-queue --queue-url \(url) 2>&1", moto: moto, options: ["--profile", profile])
        let id = try #require(Scene.proposalIDs(in: out.stdout + out.stderr).first, "\(out)")
        let text = scene.airlock(["show", id]).stdout
        #expect(text.contains("production: account 123456789012 is listed as production"), "\(text)")
    }
}

/// Drift for Kubernetes (docs/previews.md): a delete previewed (the server's dry run, the live
/// object's resourceVersion kept), the object changed before approval → the approval is
/// refused and nothing but reads and dry runs reach the API server (the stand-in records
/// every request); approved again on the new preview, the delete is sent once.
@Suite struct KubernetesDriftTests {
    @Test func aChangedObjectIsNotDeleted() throws {
        guard Launch.anyAvailable() else { return }
        guard KubernetesEndpointTests.kubectl != nil else {
            Issue.record("kubectl is not installed (it is on this project's machine image): the Kubernetes drift test needs it")
            return
        }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let kube = try KubeStandIn(directory: scene.root, environment: ["KUBE_STANDIN_SEED": "1"])
        let config = scene.root + "/human-kubeconfig"
        scene.write(config, KubernetesEndpointTests.humanConfig(port: kube.port, caData: kube.caData, plugin: "/bin/false"), mode: 0o600)
        let human = scene.environment.merging(["KUBECONFIG": config]) { $1 }
        // The real binary (the shim bypassed): the delete is one API proposal.
        let out = scene.run(["/bin/sh", "-c", "/run/airlock/tools/kubectl delete configmap settings 2>&1"], timeout: 120,
                            extraEnvironment: ["KUBECONFIG": config])
        let id = try #require(Scene.proposalIDs(in: out.stdout + out.stderr).first, "\(out)")
        let shown = runProcess(Stage.airlock, ["show", id, "--json", "--state-dir", scene.stateDir], environment: human, directory: scene.workspace)
        #expect(shown.stdout.contains("live_resource_version"), "\(shown)")
        // Someone changes the object before the approval.
        let patch = runProcess("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", scene.root + "/tls/ca.pem",
                                                 "--resolve", "kube.test:\(kube.port):127.0.0.1", "-X", "PATCH",
                                                 "-H", "Authorization: Bearer host-secret-token", "-H", "Content-Type: application/merge-patch+json",
                                                 "-d", #"{"data":{"mode":"green"}}"#,
                                                 "https://kube.test:\(kube.port)/api/v1/namespaces/default/configmaps/settings"],
                               environment: ["PATH": "/usr/bin:/bin"], directory: scene.root)
        #expect(patch.stdout == "200", "\(patch)")
        let refused = runProcess(Stage.airlock, ["approve", id, "--state-dir", scene.stateDir], environment: human, directory: scene.workspace, timeout: 120)
        #expect(refused.status != 0 && refused.stderr.contains("changed since it was previewed") && refused.stderr.contains("resourceVersion"), "\(refused)")
        func deletes() -> [[String: String]] {
            kube.requests.filter { $0["method"] == "DELETE" && ($0["path"] ?? "").contains("/configmaps/settings") && !($0["path"] ?? "").contains("dryRun")
                && !($0["query"] ?? "").contains("dryRun") && !($0["body"] ?? "").contains("dryRun") }
        }
        #expect(deletes().isEmpty, "a DELETE reached the API server: \(deletes())")
        let again = runProcess(Stage.airlock, ["show", id, "--state-dir", scene.stateDir], environment: human, directory: scene.workspace)
        #expect(again.stdout.contains("DRIFT:"), "\(again)")
        let approved = runProcess(Stage.airlock, ["approve", id, "--state-dir", scene.stateDir], environment: human, directory: scene.workspace, timeout: 120)
        #expect(approved.status == 0, "\(approved)")
        #expect(deletes().count == 1, "\(deletes())")
    }
}

/// Groups (docs/previews.md): fifty `PutObject` calls from the agent's own aws CLI (a venv the
/// shim does not see) are one group decided with one decision covering exactly the members
/// shown: each executed once; a 51st made after the approver opened the group stays pending;
/// a denied group executes nothing.
@Suite struct ProposalGroupTests {
    func groups(_ scene: Scene) -> [[String: Any]] {
        let out = scene.airlock(["proposals", "--json"])
        return ((try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])?["groups"] as? [[String: Any]]) ?? []
    }

    @Test func aBurstIsOneGroupDecidedOnce() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let moto = try Moto()
        _ = moto.aws(["s3", "mb", "s3://site"])
        for index in 0..<50 { scene.write(scene.workspace + "/site/page\(index).html", "<p>\(index)</p>\n") }
        scene.write(scene.workspace + "/late.html", "<p>late</p>\n")
        var shown: [String: Any] = [:]
        var approved = Outcome(status: -1, stdout: "", stderr: "")
        var listedBefore: [[String: Any]] = []
        let out = scene.agent("""
            aws s3 cp --recursive site s3://site/pages > cp.out 2>&1; echo $? > cp.rc
            touch fifty
            while [ ! -e opened ]; do sleep 0.1; done
            aws s3 cp late.html s3://site/pages/late.html > late.out 2>&1
            touch done
            """, moto: moto, timeout: 400) { _ in
            guard scene.waitForFile("fifty", timeout: 300) else { return }
            listedBefore = groups(scene)
            let id = listedBefore.first?["group"] as? String ?? ""
            let text = scene.airlock(["show", id, "--json"]).stdout
            shown = (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
            scene.write(scene.workspace + "/opened", "")
            guard scene.waitForFile("done", timeout: 120) else { return }
            approved = scene.airlock(["approve", id, "--members", shown["members_digest"] as? String ?? "", "--reason", "site upload"], timeout: 300)
        }
        #expect(out.status == 0, "\(out)")
        #expect(listedBefore.count == 1 && listedBefore.first?["count"] as? Int == 50, "one group of 50: \(listedBefore)")
        #expect(shown["count"] as? Int == 50 && (shown["bytes"] as? Int ?? 0) > 0 && (shown["first"] as? String ?? "").contains("/site/pages/"), "\(shown)")
        #expect(approved.status == 0 && approved.stdout.contains("50 of 50 approved"), "\(approved)")
        // Each member ran once; the late one is not covered and waits.
        let listing = moto.aws(["s3", "ls", "s3://site/pages/"]).stdout
        #expect(listing.split(separator: "\n").count == 50 && !listing.contains("late.html"), "\(listing)")
        let pending = scene.airlock(["proposals", "--json"]).stdout
        #expect(pending.contains("late.html") || pending.contains("s3:PutObject"), "the 51st is still pending: \(pending)")
        let again = scene.airlock(["approve", listedBefore.first?["group"] as? String ?? "", "--members", shown["members_digest"] as? String ?? ""])
        #expect(again.status != 0, "a decided group is not decided again: \(again)")

        // Another burst, denied: none runs.
        let second = scene.agent("aws s3 cp --recursive site s3://site/denied > cp2.out 2>&1; true", moto: moto, timeout: 300)
        #expect(second.status == 0, "\(second)")
        guard let group = groups(scene).first(where: { ($0["count"] as? Int) == 50 }), let id = group["group"] as? String,
              let digest = group["members_digest"] as? String else {
            Issue.record("no second group: \(groups(scene))")
            return
        }
        let wrong = scene.airlock(["deny", id, "--members", String(repeating: "0", count: 64)])
        #expect(wrong.status != 0 && wrong.stderr.contains("nothing was decided"), "\(wrong)")
        let denied = scene.airlock(["deny", id, "--members", digest, "--reason", "not now"])
        #expect(denied.status == 0 && denied.stdout.contains("group \(id): 50 denied"), "\(denied)")
        #expect(!moto.aws(["s3", "ls", "s3://site/"]).stdout.contains("denied"), "a denied member ran")
    }
}
