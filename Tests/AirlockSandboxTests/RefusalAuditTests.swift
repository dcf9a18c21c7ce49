import Foundation
import Testing

/// Every refusal is recorded in the audit log (docs/design.md invariant 7), locally and with a
/// team gate, whichever gateway refused: the AWS endpoint (a hard deny), the Kubernetes
/// endpoint (exec), the GitHub gateway (an encoded path), git's (a request that is not git's
/// protocol), and a command's shim (`kubectl exec`). Nothing here reaches an upstream: each is
/// refused before a request is built.
@Suite struct RefusalAuditTests {
    /// (what the agent tries, the summary the audit entry must carry)
    static let table: [(name: String, summary: String)] = [
        ("aws", "cloudtrail:StopLogging"),
        ("kubernetes", "kubernetes:create pods/web (exec) in default"),
        ("github", "github:GET /repos/o/r/actions/secret%73"),
        ("git", "git:POST /o/r.git/not-git on github.com"),
        ("command", "kubectl exec web -- sh"),
    ]

    static let attacks = #"""
        import http.client, json, os, re, ssl, subprocess
        context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        def tunnel(host, method, path, headers=None):
            conn = http.client.HTTPSConnection("127.0.0.1", 3128, context=context, timeout=30)
            conn.set_tunnel(host, 443)
            conn.request(method, path, headers=headers or {})
            return conn.getresponse().status
        token = re.search(r'token: "([^"]+)"', open(os.environ["KUBECONFIG"]).read()).group(1)
        conn = http.client.HTTPSConnection("127.0.0.1", 6443, context=context, timeout=30)
        conn.request("POST", "/contexts/0/api/v1/namespaces/default/pods/web/exec?command=sh", headers={"Authorization": "Bearer " + token})
        results = {"kubernetes": conn.getresponse().status}
        results["github"] = tunnel("api.github.com", "GET", "/repos/o/r/actions/secret%73")
        results["git"] = tunnel("github.com", "POST", "/o/r.git/not-git")
        results["aws"] = subprocess.run(["aws", "cloudtrail", "stop-logging", "--name", "trail"], capture_output=True).returncode
        results["command"] = subprocess.run(["kubectl", "exec", "web", "--", "sh"], capture_output=True).returncode
        print(json.dumps(results))
        """#

    /// The audit log's `refused` entries, as (summary, rule), from an SQLite store.
    static func refusals(_ database: String) -> [(summary: String, rule: String)] {
        let out = runProcess("/usr/bin/python3", ["-c", """
            import json, sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            print(json.dumps([json.loads(d) for (d,) in db.execute("SELECT detail FROM audit WHERE event = 'refused'")]))
            """, database], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        let entries = (try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [[String: String]] ?? []
        return entries.map { ($0["summary"] ?? "", $0["rule"] ?? "") }
    }

    func run(gate: TeamGate?) throws -> (outcome: Outcome, results: String, scene: Scene) {
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        scene.write(scene.root + "/kubeconfig", """
            apiVersion: v1
            kind: Config
            clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
            users: [{name: u, user: {token: host-secret-token}}]
            contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
            current-context: c

            """, mode: 0o600)
        scene.write(scene.workspace + "/attacks.py", Self.attacks)
        let profile = scene.egressProfile("network:\n  allow: [api.github.com, github.com]\nfilesystem:\n  readonly: [\(PythonTools.venv)]\n")
        var options = ["--profile", profile]
        if let gate {
            let token = gate.enrol("host", "refusals-" + uniqueMarker())
            scene.write(scene.root + "/host.token", token + "\n", mode: 0o600)
            options += ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token"]
        }
        let out = scene.run(["/bin/sh", "-c", "export PATH=\(PythonTools.venv)/bin:$PATH; python3 attacks.py > results.json 2> attacks.err"],
                            options: options, timeout: 180,
                            extraEnvironment: ["KUBECONFIG": scene.root + "/kubeconfig", "AWS_DEFAULT_REGION": "us-east-1",
                                               "AIRLOCK_EGRESS_RESOLVE": "github.com=127.0.0.1,api.github.com=127.0.0.1"])
        return (out, scene.file("results.json") + scene.file("attacks.err"), scene)
    }

    func expectEveryRefusal(_ entries: [(summary: String, rule: String)], _ results: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for row in Self.table {
            #expect(entries.contains { $0.summary.hasPrefix(row.summary) }, "\(row.name): no refused entry for \(row.summary) in \(entries.map(\.summary)); the agent saw \(results)",
                    sourceLocation: sourceLocation)
        }
    }

    @Test func locallyEveryRefusalIsAudited() throws {
        guard Launch.anyAvailable(), PythonTools.available(), KubernetesEndpointTests.kubectl != nil else { return }
        let (out, results, scene) = try run(gate: nil)
        #expect(out.status == 0, "\(out)")
        expectEveryRefusal(Self.refusals(scene.stateDir + "/airlock.db"), results)
    }

    /// The gate's refusal endpoint, attacked: another host's session and an approver's token
    /// are refused; an agent looping on a refused call gets a bounded audit log (the budget,
    /// then one entry saying more came, then 429) instead of one entry per call forever.
    @Test func theGatesRefusalEndpointIsOwnedAndBounded() throws {
        let gate = try TeamGate(store: "sqlite", upstream: "aws")
        let host = gate.enrol("host", "flooding-host"), other = gate.enrol("host", "other-host"), alice = gate.enrol("user", "alice")
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "looping-session-1", "workspace": "/w"]).status == 201)
        let refusal: [String: Any] = ["summary": "cloudtrail:StopLogging", "rule": "denied by the profile"]
        #expect(gate.call("POST", "/v1/sessions/looping-session-1/refusals", token: other, body: refusal).status == 404, "another host wrote into this session")
        #expect(gate.call("POST", "/v1/sessions/looping-session-1/refusals", token: alice, body: refusal).status == 403, "an approver's token proposed")
        // 130 refusals as fast as one kept connection sends them.
        let flood = runProcess("/usr/bin/python3", ["-c", """
            import http.client, json, sys
            conn = http.client.HTTPConnection("127.0.0.1", \(gate.port), timeout=30)
            statuses = []
            for i in range(130):
                conn.request("POST", "/v1/sessions/looping-session-1/refusals", body=json.dumps({"summary": f"cloudtrail:StopLogging {i}", "rule": "denied"}),
                             headers={"Authorization": "Bearer " + sys.argv[1], "Content-Type": "application/json"})
                response = conn.getresponse(); response.read(); statuses.append(response.status)
            print(json.dumps(statuses))
            """, host], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp", timeout: 120)
        let statuses = (try? JSONSerialization.jsonObject(with: Data(flood.stdout.utf8))) as? [Int] ?? []
        let budget = 120
        #expect(statuses.count == 130 && statuses.prefix(budget).allSatisfy { $0 == 201 } && statuses.dropFirst(budget).allSatisfy { $0 == 429 },
                "\(statuses) \(flood.stderr)")
        let entries = Self.refusals(gate.directory + "/store/airlock.db")
        #expect(entries.count == budget + 1, "\(entries.count) refusals audited for 130 sent")
        #expect(entries.filter { $0.summary == "more refusals than the gate records in a minute" }.count == 1, "\(entries.suffix(3))")
    }

    @Test func withATeamGateEveryRefusalIsAuditedOnTheGate() throws {
        guard Launch.anyAvailable(), PythonTools.available(), KubernetesEndpointTests.kubectl != nil else { return }
        let gate = try TeamGate(store: "sqlite", upstream: "aws")
        let (out, results, scene) = try run(gate: gate)
        #expect(out.status == 0, "\(out)")
        // Recorded on the gate, under the host's session, said to be the host broker's refusal.
        let entries = Self.refusals(gate.directory + "/store/airlock.db")
        expectEveryRefusal(entries, results)
        #expect(entries.allSatisfy { $0.rule.contains("'s broker:") }, "\(entries)")
        #expect(Self.refusals(scene.stateDir + "/airlock.db").isEmpty, "a host keeps no store of its own")
    }
}
