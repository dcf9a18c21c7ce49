import Foundation
import Testing

/// AWS clients that ignore Airlock's endpoints and dial AWS host names through HTTPS_PROXY
/// (the aws CLI does it for every `aws sqs` command: queue.amazonaws.com): the broker
/// terminates TLS with the session's CA (AWS domains only) and hands the requests to the AWS
/// gateway, where they are gated like any other. Before this, the proxy refused the host and
/// every `aws sqs` command failed.
@Suite struct AWSHostsTests {
    func setUp() throws -> (Scene, Moto)? {
        guard Launch.anyAvailable(), PythonTools.available() else { return nil }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        return (scene, try Moto())
    }

    @Test func awsSQSCommandsWorkAndChangesAreGated() throws {
        guard let (scene, moto) = try setUp() else { return }
        _ = moto.aws(["sqs", "create-queue", "--queue-name", "jobs"])
        _ = moto.aws(["sqs", "send-message", "--queue-url", moto.url + "/123456789012/jobs", "--message-body", "first"])
        var approval = Outcome(status: -1, stdout: "", stderr: "")
        let out = scene.agent("""
            aws sqs list-queues > list.json 2> list.err; echo $? > list.rc
            aws sqs get-queue-attributes --queue-url https://queue.amazonaws.com/123456789012/jobs --attribute-names ApproximateNumberOfMessages > attrs.json 2> attrs.err; echo $? > attrs.rc
            aws sqs send-message --queue-url https://queue.amazonaws.com/123456789012/jobs --message-body second > send.out 2> send.err; echo $? > send.rc
            aws sqs receive-message --queue-url https://queue.amazonaws.com/123456789012/jobs > receive.out 2> receive.err; echo $? > receive.rc
            aws sqs delete-queue --queue-url https://queue.amazonaws.com/123456789012/jobs > delete.out 2> delete.err; echo $? > delete.rc
            grep -o 'Proposal [0-9a-f]*' send.err | cut -d' ' -f2 > send.id; touch proposed
            airlock wait $(cat send.id) --timeout 120 > wait.txt 2>&1; echo $? > wait.rc
            """, moto: moto) { _ in
            guard scene.waitForFile("proposed") else { return }
            approval = scene.airlock(["approve", scene.file("send.id").trimmingCharacters(in: .whitespacesAndNewlines)])
        }
        #expect(out.status == 0, "\(out)")
        // Reads pass, with the answer a direct call gets.
        #expect(scene.file("list.rc") == "0\n", "\(scene.file("list.err"))")
        let direct = moto.aws(["sqs", "list-queues"]).stdout
        #expect((try? JSONSerialization.jsonObject(with: Data(scene.file("list.json").utf8))) as? NSDictionary
                == (try? JSONSerialization.jsonObject(with: Data(direct.utf8))) as? NSDictionary, "\(scene.file("list.json"))\n---\n\(direct)")
        #expect(scene.file("attrs.rc") == "0\n" && scene.file("attrs.json").contains("\"ApproximateNumberOfMessages\": \"1\""), "\(scene.file("attrs.err"))")
        // Changes and the dequeuing read are proposals; nothing happened until approved.
        for step in ["send", "receive", "delete"] {
            #expect(scene.file("\(step).rc") != "0\n" && scene.file("\(step).err").contains("AirlockProposalPending"), "\(step): \(scene.file("\(step).err"))")
        }
        #expect(approval.status == 0, "\(approval)")
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        let attributes = moto.aws(["sqs", "get-queue-attributes", "--queue-url", moto.url + "/123456789012/jobs", "--attribute-names", "ApproximateNumberOfMessages"]).stdout
        #expect(attributes.contains("\"ApproximateNumberOfMessages\": \"2\""), "\(attributes)")
        #expect(scene.latestSessionLog.contains("CONNECT queue.amazonaws.com:443 → Airlock's AWS gateway (TLS terminated)"))
    }

    /// Virtual-hosted S3 names (`bucket.s3.<region>.amazonaws.com`): the bucket comes from the
    /// host, read one way; a Host that is not the host the client connected to, a name that
    /// is not a bucket, and hosts outside the CA's domains are refused.
    @Test func virtualHostedS3IsReadOneWayOrRefused() throws {
        guard let (scene, moto) = try setUp() else { return }
        _ = moto.aws(["s3", "mb", "s3://reports"])
        scene.write(scene.root + "/q1.txt", "quarter one\n")
        _ = moto.aws(["s3", "cp", scene.root + "/q1.txt", "s3://reports/2026/q1.txt"])
        scene.write(scene.workspace + "/virtual.py", """
            import boto3, botocore.config, botocore.exceptions, http.client, json, os, ssl
            config = botocore.config.Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1})
            s3 = boto3.client("s3", endpoint_url="https://s3.us-east-1.amazonaws.com", config=config)
            out = {}
            out["get"] = s3.get_object(Bucket="reports", Key="2026/q1.txt")["Body"].read().decode()
            out["list"] = [o["Key"] for o in s3.list_objects_v2(Bucket="reports")["Contents"]]
            try:
                s3.put_object(Bucket="reports", Key="2026/q2.txt", Body=b"quarter two")
            except botocore.exceptions.ClientError as e:
                out["put"] = e.response["Error"]["Code"]
            # A Host other than the one connected to: refused.
            proxy = http.client.HTTPConnection("127.0.0.1", 3128)
            proxy.set_tunnel("reports.s3.us-east-1.amazonaws.com", 443)
            context = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
            tunnel = http.client.HTTPSConnection("127.0.0.1", 3128, context=context)
            tunnel.set_tunnel("reports.s3.us-east-1.amazonaws.com", 443)
            tunnel.request("GET", "/2026/q1.txt", headers={"Host": "other.s3.us-east-1.amazonaws.com"})
            response = tunnel.getresponse()
            out["mismatch"] = [response.status, response.read().decode()[:300]]
            # A host outside the AWS domains is not Airlock's to answer: no certificate of its CA.
            try:
                github = http.client.HTTPSConnection("127.0.0.1", 3128, context=context, timeout=10)
                github.set_tunnel("github.com", 443)
                github.request("GET", "/")
                out["github"] = github.getresponse().status
            except Exception as e:
                out["github"] = type(e).__name__
            print(json.dumps(out))
            """)
        let out = scene.agent("python3 virtual.py > virtual.json", moto: moto)
        #expect(out.status == 0, "\(out)")
        let results = (try? JSONSerialization.jsonObject(with: Data(scene.file("virtual.json").utf8))) as? [String: Any] ?? [:]
        #expect(results["get"] as? String == "quarter one\n", "\(results)")
        #expect(results["list"] as? [String] == ["2026/q1.txt"], "\(results)")
        #expect(results["put"] as? String == "AirlockProposalPending", "\(results)")
        let mismatch = results["mismatch"] as? [Any]
        #expect(mismatch?.first as? Int == 400 && (mismatch?.last as? String)?.contains("AirlockAmbiguousRequest") == true, "\(results)")
        #expect((results["github"] as? Int).map { $0 != 200 } ?? true, "\(results)")
        let listed = scene.airlock(["proposals", "--json"]).stdout
        #expect(listed.contains("s3:PutObject"), "\(listed)")
        #expect(!moto.aws(["s3", "ls", "s3://reports/2026/"]).stdout.contains("q2.txt"))
    }
}
