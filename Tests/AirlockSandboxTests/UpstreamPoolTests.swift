import Foundation
import Testing

/// Pooled upstream connections (docs/design.md §4.5) through a real `airlock run`: the broker
/// keeps connections to an API server alive between forwarded reads, per kubeconfig user,
/// and never lets one user's request ride another's connection. The API server is the stand-in
/// (Tests/Support/kube_standin.py: no real one can run here); like kube-apiserver it takes a
/// bearer token or a client certificate checked against its client CA, and it logs, for every
/// request, the TCP connection it came on and the credential it carried.
@Suite struct UpstreamPoolTests {
    /// Three users of one server: two with tokens, one with a client certificate (whose
    /// credential is the TLS session itself: the case where a shared connection would act as
    /// the wrong user).
    static func humanConfig(port: Int, caData: String, certificate: String, key: String) -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: standin
          cluster:
            server: https://127.0.0.1:\(port)
            certificate-authority-data: \(caData)
            tls-server-name: kube.test
        contexts:
        - name: alice
          context: {cluster: standin, user: alice, namespace: default}
        - name: bob
          context: {cluster: standin, user: bob, namespace: default}
        - name: carol
          context: {cluster: standin, user: carol, namespace: default}
        current-context: alice
        users:
        - name: alice
          user: {token: alice-token}
        - name: bob
          user: {token: bob-token}
        - name: carol
          user: {client-certificate: \(certificate), client-key: \(key)}

        """
    }

    /// The agent: reads of the three users interleaved, each on a new connection to the broker
    /// (as separate kubectl runs would be); a watch held open while its user reads on; 1 GiB
    /// streamed and then a read on the same agent connection; a large body abandoned halfway.
    static let agent = #"""
        import http.client, json, os, re, ssl, time
        token = re.search(r'token: "([^"]+)"', open(os.environ["KUBECONFIG"]).read()).group(1)
        tls = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        bearer = {"Authorization": "Bearer " + token}
        out = {}
        def connect():
            return http.client.HTTPSConnection("127.0.0.1", 6443, context=tls, timeout=120)
        def get(index, path, conn=None):
            c = conn or connect()
            c.request("GET", f"/contexts/{index}{path}", headers=bearer)
            response = c.getresponse()
            body = response.read()
            if conn is None:
                c.close()
            return response.status
        lists = "/api/v1/namespaces/default/configmaps"
        out["interleaved"] = [get(index, lists) for _ in range(6) for index in (0, 1, 2)]

        watch = connect()
        watch.request("GET", f"/contexts/0{lists}?watch=1", headers=bearer)
        stream = watch.getresponse()
        out["watch_status"] = stream.status
        out["watch_first"] = json.loads(stream.readline())["object"]["metadata"]["name"]
        out["during_watch"] = [get(0, lists) for _ in range(3)]
        open("watching", "w").close()
        live = ""
        deadline = time.time() + 60
        while time.time() < deadline and live != "live-cm":
            live = json.loads(stream.readline())["object"]["metadata"]["name"]
        out["watch_live"] = live
        watch.sock.close()
        watch.close()
        out["after_watch"] = get(0, lists)

        big = connect()
        big.request("GET", "/contexts/0/api/v1/namespaces/default/pods/web/log?limitBytes=1073741824", headers=bearer)
        response = big.getresponse()
        block, count, intact = b"0123456789abcdef" * 65536, 0, True
        while True:
            chunk = response.read(1 << 20)  # whole MiBs, as the stand-in writes them
            if not chunk:
                break
            intact = intact and chunk == block[:len(chunk)]
            count += len(chunk)
        out["gib_status"], out["gib_bytes"], out["gib_intact"] = response.status, count, intact
        out["after_gib_same_agent_connection"] = get(0, lists, big)
        big.close()

        cut = connect()
        cut.request("GET", "/contexts/1/api/v1/namespaces/default/pods/web/log?limitBytes=268435456", headers=bearer)
        response = cut.getresponse()
        response.read(1 << 20)
        cut.sock.close()
        cut.close()
        time.sleep(0.5)
        out["after_cut"] = [get(1, lists) for _ in range(2)]
        json.dump(out, open("agent.json", "w"))
        """#

    @Test func connectionsAreReusedPerUserAndNeverAcrossUsers() throws {
        guard Launch.anyAvailable() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let tls = scene.root + "/tls"
        let kube = try KubeStandIn(directory: scene.root, environment: [
            "KUBE_STANDIN_SEED": "1", "KUBE_STANDIN_REQUIRE_TOKEN_FOR_READS": "1", "KUBE_STANDIN_READ_TOKENS": "alice-token,bob-token",
            "KUBE_STANDIN_CLIENT_CA": tls + "/ca.pem", "KUBE_STANDIN_CERT_USERS": "carol",
        ])
        // carol's client certificate, from the stand-in's test CA.
        for step in [["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=carol", "-keyout", tls + "/carol.key", "-out", tls + "/carol.csr"],
                     ["x509", "-req", "-in", tls + "/carol.csr", "-CA", tls + "/ca.pem", "-CAkey", tls + "/ca.key", "-CAcreateserial",
                      "-days", "2", "-out", tls + "/carol.pem"]] {
            let made = runProcess("/usr/bin/openssl", step, environment: ["PATH": "/usr/bin:/bin"], directory: scene.root)
            #expect(made.status == 0, "\(made)")
        }
        let config = scene.root + "/human-kubeconfig"
        scene.write(config, Self.humanConfig(port: kube.port, caData: kube.caData, certificate: tls + "/carol.pem", key: tls + "/carol.key"),
                    mode: 0o600)
        scene.write(scene.workspace + "/agent.py", Self.agent)
        var created = Outcome(status: -1, stdout: "", stderr: "")
        var peak = 0
        let out = scene.run(["/usr/bin/python3", "agent.py"], timeout: 600, extraEnvironment: ["KUBECONFIG": config]) { pid in
            guard scene.waitForFile("watching", timeout: 300) else { return }
            // The human (or a controller) changes the cluster while the agent watches.
            created = runProcess("/usr/bin/python3", ["-c", """
                import http.client, ssl, sys
                context = ssl.create_default_context(cafile=sys.argv[2]); context.check_hostname = False
                conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=context, timeout=30)
                conn.request("POST", "/api/v1/namespaces/default/configmaps", body=b'{"metadata":{"name":"live-cm"}}',
                             headers={"Authorization": "Bearer host-secret-token", "Content-Type": "application/json"})
                response = conn.getresponse(); print(response.status, response.read()[:200])
                """, String(kube.port), tls + "/ca.pem"], environment: ["PATH": "/usr/bin:/bin"], directory: scene.root)
            peak = BrokerProcess.peakResidentKiB(pid)
        }
        #expect(out.status == 0, "\(out)")
        #expect(created.stdout.hasPrefix("201"), "\(created)")
        let agent = (try? JSONSerialization.jsonObject(with: Data(scene.file("agent.json").utf8))) as? [String: Any] ?? [:]
        #expect(agent["interleaved"] as? [Int] == Array(repeating: 200, count: 18), "\(agent)")

        let requests = kube.requests
        func user(_ request: [String: String]) -> String {
            switch (request["authorization"] ?? "", request["client_certificate"] ?? "") {
            case ("Bearer alice-token", ""): return "alice"
            case ("Bearer bob-token", ""): return "bob"
            case ("", "carol"): return "carol"
            case ("Bearer host-secret-token", ""): return "the test's own change, sent directly"
            case let (token, certificate): return "unexpected(\(token)|\(certificate))"
            }
        }
        // Never across users: every connection carried one credential, and one only.
        var users: [String: Set<String>] = [:]
        for request in requests { users[request["connection"] ?? "?", default: []].insert(user(request)) }
        #expect(!users.isEmpty && users.values.allSatisfy { $0.count == 1 && !$0.first!.hasPrefix("unexpected") },
                "a connection carried more than one credential, or an unexpected one: \(users.filter { $0.value.count != 1 || $0.value.first!.hasPrefix("unexpected") })")
        // Reused within a user: 6 reads each (on 6 agent connections) on one or two upstream ones.
        let lists = requests.filter { $0["path"] == "/api/v1/namespaces/default/configmaps" }
        for name in ["alice", "bob", "carol"] {
            let first = lists.filter { user($0) == name }.prefix(6)
            let connections = Set(first.compactMap { $0["connection"] })
            #expect(first.count == 6 && connections.count <= 2, "\(name)'s 6 reads went on \(connections.count) connections: \(first)")
        }
        #expect(Set(requests.compactMap { $0["connection"] }).count < requests.count / 2,
                "\(requests.count) requests on \(Set(requests.compactMap { $0["connection"] }).count) connections")

        // The watch streamed live, on a connection of its own while alice read on.
        #expect(agent["watch_status"] as? Int == 200 && agent["watch_first"] as? String == "settings", "\(agent)")
        #expect(agent["during_watch"] as? [Int] == [200, 200, 200] && agent["after_watch"] as? Int == 200, "\(agent)")
        #expect(agent["watch_live"] as? String == "live-cm", "the watch did not stream the change live: \(agent)")
        /// Requests after the one at `index` on its connection.
        func later(_ index: Int) -> [[String: String]] {
            requests[(index + 1)...].filter { $0["connection"] == requests[index]["connection"] }
        }
        let watches = requests.indices.filter { requests[$0]["query"] == "watch=1" }
        #expect(watches.count == 1)
        if let watch = watches.first {
            #expect(later(watch).isEmpty, "the watch's connection carried another request: it was pooled while the watch ran, or after the agent left it")
        }

        // 1 GiB streamed whole, the broker's memory flat, and the connection kept after it.
        #expect(agent["gib_status"] as? Int == 200 && agent["gib_bytes"] as? Int == 1 << 30 && agent["gib_intact"] as? Bool == true, "\(agent)")
        #expect(agent["after_gib_same_agent_connection"] as? Int == 200, "\(agent)")
        print("broker peak resident memory with 1 GiB streamed: \(peak / 1024) MiB")
        #expect(peak > 0 && peak < 256 * 1024, "the broker reached \(peak / 1024) MiB streaming 1 GiB")
        if let index = requests.firstIndex(where: { $0["query"] == "limitBytes=1073741824" }), index + 1 < requests.count {
            #expect(requests[index + 1]["connection"] == requests[index]["connection"] && user(requests[index + 1]) == "alice",
                    "the read after the 1 GiB body did not reuse its connection: \(requests[index + 1])")
        } else {
            Issue.record("the 1 GiB request, or the read after it, did not reach the stand-in")
        }
        // A body the agent abandoned: that connection is closed, never handed on.
        #expect(agent["after_cut"] as? [Int] == [200, 200], "\(agent)")
        if let cut = requests.firstIndex(where: { $0["query"] == "limitBytes=268435456" }) {
            #expect(later(cut).isEmpty, "the abandoned body's connection was reused: \(later(cut))")
        } else {
            Issue.record("the abandoned request did not reach the stand-in")
        }
    }

    /// AWS: the connection follows the signing key. The human's credential_process hands out
    /// two keys in turn (each expiring at once, so every request asks again), and moto is
    /// served with kept-alive connections as AWS is (Tests/Support/moto_keepalive.py), logging
    /// which key signed each request on which connection.
    @Test func awsConnectionsFollowTheSigningKey() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let (moto, port, log) = try Self.keptAliveMoto(scene)
        defer { kill(moto.processIdentifier, SIGKILL); moto.waitUntilExit() }
        let helper = scene.root + "/rotating-keys.sh"
        scene.write(helper, """
            #!/bin/sh
            n=$(cat \(scene.root)/rotations 2>/dev/null || echo 0); n=$((n + 1)); echo $n > \(scene.root)/rotations
            if [ $((n % 2)) -eq 1 ]; then key=ROTATINGKEYONE; else key=ROTATINGKEYTWO; fi
            echo "{\\"Version\\": 1, \\"AccessKeyId\\": \\"$key\\", \\"SecretAccessKey\\": \\"secret-$key\\", \\"Expiration\\": \\"$(date -u -d '+1 minute' +%Y-%m-%dT%H:%M:%SZ)\\"}"

            """, mode: 0o755)
        let config = scene.root + "/aws-config"
        scene.write(config, "[profile rotating]\ncredential_process = \(helper)\nregion = us-east-1\n")
        scene.write(scene.workspace + "/agent.py", """
            import boto3, json
            sqs = boto3.client("sqs")
            print(json.dumps([sqs.list_queues()["ResponseMetadata"]["HTTPStatusCode"] for _ in range(8)]))

            """)
        let out = scene.run([PythonTools.python, "agent.py"],
                            options: ["--profile", PythonTools.profile(in: scene), "--aws-endpoint", "http://127.0.0.1:\(port)",
                                      "--aws-profile", "rotating"],
                            timeout: 180, extraEnvironment: ["AWS_CONFIG_FILE": config, "AWS_DEFAULT_REGION": "us-east-1"])
        #expect(out.status == 0 && out.stdout.contains("[200, 200, 200, 200, 200, 200, 200, 200]"), "\(out)")
        let requests = Self.logged(log)
        let keys = Set(requests.compactMap { $0["access_key"] })
        #expect(keys == ["ROTATINGKEYONE", "ROTATINGKEYTWO"], "the broker signed with the rotating keys: \(keys)")
        var byConnection: [String: Set<String>] = [:]
        for request in requests { byConnection[request["connection"] ?? "?", default: []].insert(request["access_key"] ?? "") }
        #expect(byConnection.values.allSatisfy { $0.count == 1 }, "a connection carried requests signed by two keys: \(byConnection)")
        for key in keys {
            let mine = requests.filter { $0["access_key"] == key }
            let connections = Set(mine.compactMap { $0["connection"] })
            #expect(mine.count >= 3 && connections.count <= 2, "\(key): \(mine.count) requests on \(connections.count) connections")
        }
    }

    /// moto served with kept-alive connections (Tests/Support/moto_keepalive.py), logging each
    /// request: the process, its port and the log's path.
    static func keptAliveMoto(_ scene: Scene) throws -> (Process, Int, String) {
        let port = Moto.freePort()
        let log = scene.root + "/moto-requests.jsonl"
        let moto = Process()
        moto.executableURL = URL(fileURLWithPath: PythonTools.python)
        moto.arguments = [Stage.repoRoot + "/Tests/Support/moto_keepalive.py", "127.0.0.1", String(port)]
        moto.environment = ["PATH": "/usr/bin:/bin", "HOME": scene.root, "MOTO_KEEPALIVE_LOG": log]
        moto.standardOutput = FileHandle.nullDevice
        moto.standardError = FileHandle.nullDevice
        try moto.run()
        for _ in 0..<200 {
            if Moto.accepts(port) { return (moto, port, log) }
            usleep(50_000)
        }
        kill(moto.processIdentifier, SIGKILL)
        throw TestUpstreamError("moto_keepalive.py did not listen on \(port)")
    }

    static func logged(_ log: String) -> [[String: String]] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
    }

    /// Reads decided on the broker's event loop (AWSGateway.quickRead, once the catalog and
    /// the credentials are at hand) are refused exactly as the pool's path refuses them: after
    /// two warm reads, a request signed with the wrong secret or another key, a body changed
    /// after signing, two X-Amz-Target headers and a change each get their refusal or proposal,
    /// and nothing but the reads reaches the upstream.
    static let forger = #"""
        import boto3, http.client, json, urllib.parse
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        session = boto3.session.Session()
        sqs = session.client("sqs")
        out = {"warm": [sqs.list_queues()["ResponseMetadata"]["HTTPStatusCode"] for _ in range(2)]}
        frozen = session.get_credentials().get_frozen_credentials()
        def send(name, target, body=b"{}", key=None, secret=None, sent=None, extra=()):
            request = AWSRequest(method="POST", url=sqs.meta.endpoint_url + "/", data=body,
                                 headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
            SigV4Auth(Credentials(key or frozen.access_key, secret or frozen.secret_key, frozen.token), "sqs",
                      sqs.meta.region_name).add_auth(request)
            prepared = request.prepare()
            data = prepared.body if sent is None else sent
            url = urllib.parse.urlsplit(prepared.url)
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            connection.putrequest("POST", url.path, skip_accept_encoding=True)
            for header, value in list(prepared.headers.items()) + list(extra):
                if header.lower() != "content-length":
                    connection.putheader(header, value)
            connection.putheader("Content-Length", str(len(data)))
            connection.endheaders(data)
            response = connection.getresponse()
            out[name] = [response.status, response.read().decode("utf-8", "replace")[:400]]
        send("wrong-secret", "AmazonSQS.ListQueues", secret="not-the-session-secret")
        send("other-key", "AmazonSQS.ListQueues", key="OTHERSESSIONKEY")
        send("body-changed", "AmazonSQS.ListQueues", sent=b'{"QueueNamePrefix": "x"}')
        send("two-targets", "AmazonSQS.ListQueues", extra=[("X-Amz-Target", "AmazonSQS.DeleteQueue")])
        send("change", "AmazonSQS.CreateQueue", body=b'{"QueueName": "made-by-the-agent"}')
        out["after"] = sqs.list_queues()["ResponseMetadata"]["HTTPStatusCode"]
        # HEAD answers with a Content-Length and no body: a kept connection that waited for
        # those bytes would read the next GET's answer as them.
        s3 = session.client("s3")
        out["head-get"] = [[s3.head_object(Bucket="pool-bucket", Key="k")["ContentLength"],
                            s3.get_object(Bucket="pool-bucket", Key="k")["Body"].read().decode()] for _ in range(3)]
        print(json.dumps(out))
        """#

    @Test func quickReadsRefuseWhatThePoolRefuses() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let (moto, port, log) = try Self.keptAliveMoto(scene)
        defer { kill(moto.processIdentifier, SIGKILL); moto.waitUntilExit() }
        scene.write(scene.workspace + "/forger.py", Self.forger)
        let seeded = runProcess(PythonTools.python, ["-c", """
            import boto3, sys
            s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
            s3.create_bucket(Bucket="pool-bucket"); s3.put_object(Bucket="pool-bucket", Key="k", Body=b"seventeen bytes!!")
            """, "http://127.0.0.1:\(port)"], environment: Moto.keys.merging(["PATH": "/usr/bin:/bin", "HOME": scene.root]) { $1 },
                                directory: scene.root, timeout: 60)
        #expect(seeded.status == 0, "\(seeded)")
        let out = scene.run([PythonTools.python, "forger.py"],
                            options: ["--profile", PythonTools.profile(in: scene), "--aws-endpoint", "http://127.0.0.1:\(port)"],
                            timeout: 180, extraEnvironment: Moto.keys.merging(["AWS_DEFAULT_REGION": "us-east-1"]) { $1 })
        #expect(out.status == 0, "\(out)")
        let result = (try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [String: Any] ?? [:]
        func status(_ name: String) -> Int { (result[name] as? [Any])?.first as? Int ?? -1 }
        func body(_ name: String) -> String { (result[name] as? [Any])?.last as? String ?? "" }
        #expect(result["warm"] as? [Int] == [200, 200] && result["after"] as? Int == 200, "\(out)")
        for name in ["wrong-secret", "other-key", "body-changed"] {
            #expect(status(name) == 403, "\(name): \(status(name)) \(body(name))")
        }
        #expect(body("other-key").contains("not this session"), "\(body("other-key"))")
        // Two readings of one request: refused (the second target also breaks the signature).
        #expect([400, 403].contains(status("two-targets")) && body("two-targets").contains("Airlock"), "\(status("two-targets")) \(body("two-targets"))")
        #expect(status("change") == 403 && body("change").contains("Proposal"), "\(status("change")) \(body("change"))")
        // Only the three reads reached moto.
        let requests = Self.logged(log)
        let targets = requests.map { $0["target"] ?? "" }.filter { !$0.isEmpty }
        #expect(targets == Array(repeating: "AmazonSQS.ListQueues", count: 3), "\(targets)")
        // HEAD and GET in turn on kept connections: every answer whole and in its place.
        let pairs = result["head-get"] as? [[Any]] ?? []
        #expect(pairs.count == 3 && pairs.allSatisfy { ($0.first as? Int) == 17 && ($0.last as? String) == "seventeen bytes!!" }, "\(out)")
        let objectRequests = requests.filter { $0["path"]?.contains("pool-bucket/k") == true && $0["access_key"] == "testing" && $0["method"] != "PUT" }
        let connections = Set(objectRequests.compactMap { $0["connection"] })
        #expect(objectRequests.count == 6 && connections.count <= 2, "6 HEADs and GETs on \(connections.count) connections: \(objectRequests)")
    }
}

