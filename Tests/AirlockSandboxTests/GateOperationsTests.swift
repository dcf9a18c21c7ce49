import Foundation
import Testing

/// A test helper from Tests/Support that prints {"port": N} once it listens: its process and port.
/// `environment`: the helper's whole environment (nil: this process's).
func launchListeningHelper(_ script: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (Process, Int) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = [Stage.repoRoot + "/Tests/Support/" + script] + arguments
    if let environment { process.environment = environment }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    var line = Data()
    while !line.contains(UInt8(ascii: "\n")) {
        let chunk = output.fileHandleForReading.availableData
        if chunk.isEmpty { throw TestUpstreamError("\(script) did not start") }
        line.append(chunk)
    }
    guard let port = (try JSONSerialization.jsonObject(with: line) as? [String: Int])?["port"] else {
        throw TestUpstreamError("\(script) did not say its port: \(String(decoding: line, as: UTF8.self))")
    }
    return (process, port)
}

/// A forwarder in front of moto that holds requests carrying a marker (Tests/Support/
/// hold_proxy.py), so an execution can be caught in flight.
final class HoldProxy: @unchecked Sendable {
    let process: Process
    let port: Int
    let log: String
    var url: String { "http://127.0.0.1:\(port)" }

    init(target: String, marker: String, holdSeconds: Double, directory: String) throws {
        log = directory + "/hold-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        (process, port) = try launchListeningHelper("hold_proxy.py", [target, marker, String(holdSeconds), log])
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var events: [String] { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }

    func waitFor(_ event: String, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if events.contains(event) { return true }
            usleep(50_000)
        }
        return false
    }
}

/// The gate's operations (issue: the gate as a service, point 5 and replicas): execution
/// leases when a replica dies, graceful shutdown, the kill switch, /metrics and JSON logs.
@Suite struct GateOperationsTests {
    static func sendMessage(_ queueURL: String, _ text: String) -> String {
        let body = "{\"QueueUrl\":\"\(queueURL)\",\"MessageBody\":\"\(text)\"}"
        let payload: [String: Any] = [
            "type": "aws-request", "service": "sqs", "signing_name": "sqs", "region": "us-east-1", "operation": "SendMessage",
            "method": "POST", "path": "/", "query": "",
            "headers": [["Content-Type", "application/x-amz-json-1.0"], ["X-Amz-Target", "AmazonSQS.SendMessage"]],
            "body_base64": Data(body.utf8).base64EncodedString(),
        ]
        return (try! JSONSerialization.data(withJSONObject: payload)).base64EncodedString()
    }

    static func messageCount(_ moto: Moto, _ queueURL: String, keys: [String: String] = Moto.keys) -> String? {
        let attributes = moto.json(["sqs", "get-queue-attributes", "--queue-url", queueURL, "--attribute-names", "ApproximateNumberOfMessages"], keys: keys)
        return ((attributes as? [String: Any])?["Attributes"] as? [String: Any])?["ApproximateNumberOfMessages"] as? String
    }

    static func propose(_ gate: TeamGate, host: String, session: String, _ payload: String) -> String {
        let proposed = gate.call("POST", "/v1/proposals", token: host, body: ["session_id": session, "payload_base64": payload])
        require(proposed.status == 201, "propose: \(proposed)")
        return proposed.json["id"] as? String ?? ""
    }

    static func waitForState(_ gate: TeamGate, _ id: String, token: String, _ state: String, timeout: Double) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        var last: String?
        while Date() < deadline {
            last = gate.call("GET", "/v1/proposals/\(id)", token: token).json["state"] as? String
            if last == state { return last }
            usleep(100_000)
        }
        return last
    }

    /// kill -9 of a replica while its execution is in flight: once the lease runs out,
    /// the other replica marks that proposal `unknown` (never re-runs it); every other
    /// proposal executes normally through the survivor.
    @Test func aKilledReplicasExecutionBecomesUnknownAndIsNeverRerun() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let queueURL = try #require((moto.json(["sqs", "create-queue", "--queue-name", "lease-q"]) as? [String: Any])?["QueueUrl"] as? String)
        let directory = makeTemporaryDirectory(prefix: "airlock-lease")
        let proxy = try HoldProxy(target: moto.url, marker: "HOLD-ME", holdSeconds: 600, directory: directory)
        let lease = "executions: {lease_seconds: 2}\n"
        let database = try TeamGate.freshPostgres()
        let a = try TeamGate(store: "postgres", upstream: proxy.url, extra: "replica: replica-a\n" + lease, postgres: database)
        let b = try TeamGate(store: "postgres", upstream: proxy.url, extra: "replica: replica-b\n" + lease, postgres: database)
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        let host = a.enrol("host", "lease-host-\(tag)"), user = a.enrol("user", "lease-user-\(tag)")
        let session = "lease-\(tag)"
        #expect(a.call("POST", "/v1/sessions", token: host, body: ["id": session]).status == 201)
        let held = Self.propose(a, host: host, session: session, Self.sendMessage(queueURL, "HOLD-ME"))
        let others = (0..<5).map { Self.propose(b, host: host, session: session, Self.sendMessage(queueURL, "m-\($0)")) }

        // A claims and sends the held one; the proxy holds it; A dies mid-call.
        DispatchQueue.global().async { _ = a.call("POST", "/v1/proposals/\(held)/approve", token: user) }
        #expect(proxy.waitFor("held"), "the execution never reached the upstream: \(proxy.events)")
        #expect(b.call("GET", "/v1/proposals/\(held)", token: user).json["state"] as? String == "executing")
        kill(a.process.processIdentifier, SIGKILL)

        for id in others {
            let approved = b.call("POST", "/v1/proposals/\(id)/approve", token: user)
            #expect(approved.status == 200 && approved.json["state"] as? String == "succeeded", "\(approved)")
        }
        // Lease 2 s, recovery every second: unknown within a few seconds, by replica B.
        #expect(Self.waitForState(b, held, token: user, "unknown", timeout: 20) == "unknown")
        let shown = b.call("GET", "/v1/proposals/\(held)", token: user)
        #expect("\(shown.json)".contains("lease ran out"), "\(shown)")
        // Never re-run: a second approval is refused, and the held request went upstream
        // at most once (it was dropped when A's connection died).
        #expect(b.call("POST", "/v1/proposals/\(held)/approve", token: user).status == 409)
        #expect(proxy.waitFor("dropped", timeout: 10), "\(proxy.events)")
        #expect(proxy.events.filter { $0 == "held" }.count == 1, "\(proxy.events)")
        #expect(proxy.events.filter { $0 == "passed" }.count == 5, "\(proxy.events)")
        #expect(Self.messageCount(moto, queueURL) == "5")
        let text = runProcess("/usr/bin/curl", ["-s", b.url + "/metrics"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
        #expect(text.contains("airlock_gate_executions_total{outcome=\"unknown\"} 1"), "\(text)")
        #expect(text.contains("airlock_gate_executions_total{outcome=\"succeeded\"} 5"), "\(text)")
    }

    /// A host's wait on replica B is woken by a decision made on replica A (LISTEN/NOTIFY
    /// through PostgreSQL), not by its own 2-second re-read of the store.
    @Test func aWaitOnOneReplicaWakesWhenAnotherDecides() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let queueURL = try #require((moto.json(["sqs", "create-queue", "--queue-name", "wake-q"]) as? [String: Any])?["QueueUrl"] as? String)
        let a = try TeamGate(store: "postgres", upstream: moto.url)
        let b = try TeamGate(store: "postgres", upstream: moto.url)
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        let host = a.enrol("host", "wake-host-\(tag)"), user = a.enrol("user", "wake-user-\(tag)")
        #expect(a.call("POST", "/v1/sessions", token: host, body: ["id": "wake-\(tag)"]).status == 201)
        let id = Self.propose(a, host: host, session: "wake-\(tag)", Self.sendMessage(queueURL, "wake"))
        let answer = AnswerBox()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let waited = b.call("GET", "/v1/proposals/\(id)/wait?timeout=60", token: host)
            answer.set(waited.status, waited.json)
            done.signal()
        }
        usleep(2_500_000)  // the wait has looked once and is asleep
        #expect(a.call("POST", "/v1/proposals/\(id)/approve", token: user).json["state"] as? String == "succeeded")
        let approved = Date()
        #expect(done.wait(timeout: .now() + 30) == .success)
        let (status, json) = try #require(answer.get())
        #expect(status == 200 && json["state"] as? String == "succeeded", "\(json)")
        #expect(Date().timeIntervalSince(approved) < 1.5, "the wait was not woken by the decision")
        let metrics = runProcess("/usr/bin/curl", ["-s", b.url + "/metrics"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
        #expect(metrics.contains("airlock_gate_wait_wakeups_total{by=\"change\"}"), "\(metrics)")
    }

    /// SIGTERM while an execution is in flight: the gate stops taking requests, lets the
    /// execution finish and record its result, then exits 0.
    @Test func aGracefulShutdownFinishesTheExecutionInFlight() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let queueURL = try #require((moto.json(["sqs", "create-queue", "--queue-name", "drain-q"]) as? [String: Any])?["QueueUrl"] as? String)
        let directory = makeTemporaryDirectory(prefix: "airlock-drain")
        let proxy = try HoldProxy(target: moto.url, marker: "HOLD-ME", holdSeconds: 3, directory: directory)
        let gate = try TeamGate(store: "sqlite", upstream: proxy.url)
        let host = gate.enrol("host", "h"), user = gate.enrol("user", "u")
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "drain-session"]).status == 201)
        let id = Self.propose(gate, host: host, session: "drain-session", Self.sendMessage(queueURL, "HOLD-ME"))
        let answer = AnswerBox()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let result = gate.call("POST", "/v1/proposals/\(id)/approve", token: user)
            answer.set(result.status, result.json)
            done.signal()
        }
        #expect(proxy.waitFor("held"))
        kill(gate.process.processIdentifier, SIGTERM)
        #expect(done.wait(timeout: .now() + 30) == .success)
        let (status, json) = try #require(answer.get())
        #expect(status == 200 && json["state"] as? String == "succeeded", "\(json)")
        gate.process.waitUntilExit()
        #expect(gate.process.terminationStatus == 0)
        #expect(Self.messageCount(moto, queueURL) == "1")
        // The log is JSON lines, the shutdown in it.
        let lines = ((try? String(contentsOfFile: gate.log, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.hasPrefix("{") }
        let events = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["event"] as? String }
        #expect(events.count == lines.count && events.contains("executed") && events.contains("stopped"), "\(lines)")
    }

    /// SIGTERM with an execution that outlasts the grace period: it is marked `unknown`
    /// at once (not when its lease runs out) and the replica exits 1.
    @Test func aShutdownPastItsGraceMarksTheExecutionUnknown() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let queueURL = try #require((moto.json(["sqs", "create-queue", "--queue-name", "grace-q"]) as? [String: Any])?["QueueUrl"] as? String)
        let directory = makeTemporaryDirectory(prefix: "airlock-grace")
        let proxy = try HoldProxy(target: moto.url, marker: "HOLD-ME", holdSeconds: 600, directory: directory)
        let long = "executions: {lease_seconds: 3600, shutdown_grace_seconds: 1}\n"
        let a = try TeamGate(store: "postgres", upstream: proxy.url, extra: "replica: grace-a\n" + long)
        let b = try TeamGate(store: "postgres", upstream: proxy.url, extra: "replica: grace-b\n" + long)
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        let host = a.enrol("host", "grace-host-\(tag)"), user = a.enrol("user", "grace-user-\(tag)")
        #expect(a.call("POST", "/v1/sessions", token: host, body: ["id": "grace-\(tag)"]).status == 201)
        let id = Self.propose(a, host: host, session: "grace-\(tag)", Self.sendMessage(queueURL, "HOLD-ME"))
        DispatchQueue.global().async { _ = a.call("POST", "/v1/proposals/\(id)/approve", token: user) }
        #expect(proxy.waitFor("held"))
        let stopped = Date()
        kill(a.process.processIdentifier, SIGTERM)
        a.process.waitUntilExit()
        #expect(a.process.terminationStatus == 1)
        #expect(Date().timeIntervalSince(stopped) < 15)
        let shown = b.call("GET", "/v1/proposals/\(id)", token: user)
        #expect(shown.json["state"] as? String == "unknown" && "\(shown.json)".contains("shut down"), "\(shown)")
    }

    /// The kill switch: freeze stops every execution (approvals refused), thaw restores;
    /// revoking a session denies all its pending proposals and refuses new ones; revoking a
    /// host refuses its token. All audited; /metrics counts proposals by state and kind.
    @Test func theKillSwitchFreezesRevokesAndDeniesAtOnce() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let queueURL = try #require((moto.json(["sqs", "create-queue", "--queue-name", "kill-q"]) as? [String: Any])?["QueueUrl"] as? String)
        let gate = try TeamGate(store: "sqlite", upstream: moto.url)
        let host = gate.enrol("host", "agent-host"), other = gate.enrol("host", "other-host"), user = gate.enrol("user", "alice")
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "runaway-session"]).status == 201)
        #expect(gate.call("POST", "/v1/sessions", token: other, body: ["id": "calm-session"]).status == 201)
        let runaway = (0..<4).map { Self.propose(gate, host: host, session: "runaway-session", Self.sendMessage(queueURL, "r-\($0)")) }
        let calm = Self.propose(gate, host: other, session: "calm-session", Self.sendMessage(queueURL, "calm"))

        // Freeze: nothing executes, nothing is approved; a host cannot freeze or thaw.
        #expect(gate.call("POST", "/v1/freeze", token: host, body: ["reason": "x"]).status == 403)
        #expect(gate.call("POST", "/v1/freeze", token: user, body: ["reason": "incident 42"]).status == 200)
        let refused = gate.call("POST", "/v1/proposals/\(calm)/approve", token: user)
        #expect(refused.status == 423 && "\(refused.json)".contains("incident 42"), "\(refused)")
        #expect(gate.call("GET", "/v1/proposals/\(calm)", token: user).json["state"] as? String == "pending")
        #expect((gate.call("GET", "/v1/controls", token: user).json["controls"] as? [[String: Any]])?.first?["name"] as? String == "freeze")
        // The approver's CLI thaws it too (the admin command, on the same store).
        let thawed = gate.admin(["thaw"])
        #expect(thawed.status == 0, "\(thawed)")
        #expect(gate.call("POST", "/v1/proposals/\(calm)/approve", token: user).json["state"] as? String == "succeeded")

        // Revoke the runaway session: all four pending are denied at once, new ones refused.
        let revoked = gate.call("POST", "/v1/sessions/runaway-session/revoke", token: user, body: ["reason": "looping"])
        #expect(revoked.status == 200 && Set(revoked.json["denied"] as? [String] ?? []) == Set(runaway), "\(revoked)")
        for id in runaway {
            let shown = gate.call("GET", "/v1/proposals/\(id)", token: user).json
            #expect(shown["state"] as? String == "denied" && shown["decided_by"] as? String == "user:alice", "\(shown)")
        }
        let again = gate.call("POST", "/v1/proposals", token: host, body: ["session_id": "runaway-session", "payload_base64": Self.sendMessage(queueURL, "more")])
        #expect(again.status == 409 && "\(again.json)".contains("AirlockSessionRevoked"), "\(again)")
        // The other host's session is untouched; then that host is revoked and refused.
        let still = Self.propose(gate, host: other, session: "calm-session", Self.sendMessage(queueURL, "still"))
        #expect(gate.call("POST", "/v1/hosts/other-host/revoke", token: host).status == 403)
        // The approver's own CLI: airlock revoke host NAME --gate URL.
        try (user + "\n").write(toFile: gate.directory + "/alice.token", atomically: true, encoding: .utf8)
        chmod(gate.directory + "/alice.token", 0o600)
        let revokedHost = SignedAuditTests.airlock(["revoke", "host", "other-host", "--gate", gate.url, "--gate-token-file", gate.directory + "/alice.token"],
                                                   directory: gate.directory)
        #expect(revokedHost.status == 0 && revokedHost.stdout.contains("revoked host other-host"), "\(revokedHost)")
        #expect(gate.call("GET", "/v1/whoami", token: other).status == 401)
        // Its queued work went with it.
        #expect(gate.call("GET", "/v1/proposals/\(still)", token: user).json["state"] as? String == "denied")
        let frozen = SignedAuditTests.airlock(["freeze", "--reason", "drill", "--gate", gate.url, "--gate-token-file", gate.directory + "/alice.token"],
                                              directory: gate.directory)
        #expect(frozen.status == 0 && frozen.stdout.contains("frozen"), "\(frozen)")
        let thawedByCLI = SignedAuditTests.airlock(["thaw", "--gate", gate.url, "--gate-token-file", gate.directory + "/alice.token"], directory: gate.directory)
        #expect(thawedByCLI.status == 0 && (gate.call("GET", "/v1/controls", token: user).json["controls"] as? [[String: Any]])?.contains { $0["name"] as? String == "freeze" } == false,
                "\(thawedByCLI)")
        let local = SignedAuditTests.airlock(["freeze"], directory: gate.directory)
        #expect(local.status == 2 && local.stderr.contains("--gate URL is needed"), "\(local)")
        #expect(Self.messageCount(moto, queueURL) == "1")

        // /metrics: proposals by state and kind from the store, executions, decision latency.
        let text = runProcess("/usr/bin/curl", ["-s", gate.url + "/metrics"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
        #expect(text.contains("airlock_gate_proposals{state=\"denied\",kind=\"api\"} 5"), "\(text)")
        #expect(text.contains("airlock_gate_proposals{state=\"succeeded\",kind=\"api\"} 1"), "\(text)")
        #expect(!text.contains("airlock_gate_proposals{state=\"pending\",kind=\"api\"} 1"), "\(text)")
        #expect(text.contains("airlock_gate_proposals{state=\"pending\",kind=\"api\"} 0"), "\(text)")
        #expect(text.contains("airlock_gate_executions_total{outcome=\"succeeded\"} 1"), "\(text)")
        #expect(text.contains("airlock_gate_decision_seconds_count"), "\(text)")
        #expect(text.contains("airlock_gate_proposals_created_total{kind=\"api\"} 6"), "\(text)")
    }
}

final class AnswerBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: (Int, [String: Any])?
    func set(_ status: Int, _ json: [String: Any]) { lock.lock(); value = (status, json); lock.unlock() }
    func get() -> (Int, [String: Any])? { lock.lock(); defer { lock.unlock() }; return value }
}

/// Ed25519-signed checkpoints of the audit chain (issue: the gate as a service, point 5):
/// whoever can write the database can delete the chain's tail or rewrite and re-hash it;
/// they cannot sign, so `airlock audit verify` catches both, online and offline.
@Suite struct SignedAuditTests {
    static func airlock(_ arguments: [String], directory: String) -> Outcome {
        runProcess(Stage.airlock, arguments, environment: ["PATH": "/usr/bin:/bin", "HOME": directory], directory: directory)
    }

    /// Runs Python's sqlite3 on the gate's store: the attacker with write access to the database.
    static func sql(_ database: String, _ script: String) {
        let out = runProcess("/usr/bin/python3", ["-c", """
            import hashlib, sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            def rehash(start):
                rows = db.execute('SELECT seq, at, event, proposal_id, actor, detail, prev_hash FROM audit WHERE seq >= ? ORDER BY seq', (start,)).fetchall()
                prev = db.execute('SELECT hash FROM audit WHERE seq = ?', (start - 1,)).fetchone()
                prev = prev[0] if prev else '0' * 64
                for seq, at, event, pid, actor, detail, _ in rows:
                    h = hashlib.sha256('\\x1f'.join([str(seq), at, event, pid or '', actor, detail, prev]).encode()).hexdigest()
                    db.execute('UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?', (prev, h, seq))
                    prev = h
            \(script)
            db.commit()
            """, database], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        require(out.status == 0, "sqlite: \(out)")
    }

    /// The attacker with write access to the store swaps a pending proposal's payload for
    /// another and rewrites its digest to match (so the executor's digest check alone would
    /// pass): approval compares the row with what the log recorded when it was proposed and
    /// refuses, and nothing is sent.
    @Test func aRowRewrittenWithItsDigestIsNotApproved() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let queueURL = try #require((moto.json(["sqs", "create-queue", "--queue-name", "swap-q"]) as? [String: Any])?["QueueUrl"] as? String)
        let gate = try TeamGate(store: "sqlite", upstream: moto.url)
        let host = gate.enrol("host", "h"), user = gate.enrol("user", "u")
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "swap-session"]).status == 201)
        let id = GateOperationsTests.propose(gate, host: host, session: "swap-session", GateOperationsTests.sendMessage(queueURL, "benign"))
        let evil = try #require(Data(base64Encoded: GateOperationsTests.sendMessage(queueURL, "EVIL")))
        Self.sql(gate.directory + "/store/airlock.db", """
            payload = bytes.fromhex('\(evil.map { String(format: "%02x", $0) }.joined())')
            db.execute('UPDATE proposals SET payload = ?, digest = ? WHERE id = ?', (payload, hashlib.sha256(payload).hexdigest(), '\(id)'))
            """)
        let approved = gate.call("POST", "/v1/proposals/\(id)/approve", token: user)
        #expect(approved.status == 409 && "\(approved.json)".contains("AirlockTampered"), "\(approved)")
        #expect(GateOperationsTests.messageCount(moto, queueURL) == "0")
        #expect(gate.call("GET", "/v1/proposals/\(id)", token: user).json["state"] as? String == "pending")
    }

    @Test func signedCheckpointsCatchATruncatedOrRewrittenLog() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let queueURL = try #require((moto.json(["sqs", "create-queue", "--queue-name", "audit-q"]) as? [String: Any])?["QueueUrl"] as? String)
        let directory = makeTemporaryDirectory(prefix: "airlock-audit")
        let key = directory + "/audit.pem"
        let made = runProcess(TeamGate.binary, ["audit-key", "new", key], environment: TeamGate.environment(), directory: "/tmp")
        #expect(made.status == 0, "\(made)")
        let publicKey = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // A second key made with openssl: the gate reads that form too.
        let other = directory + "/other.pem"
        #expect(runProcess("/usr/bin/openssl", ["genpkey", "-algorithm", "ed25519", "-out", other], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").status == 0)
        chmod(other, 0o600)
        let otherConfig = directory + "/other.yaml"
        try "listen: 127.0.0.1:1\nstore: {sqlite: \(directory)/x}\nstate_dir: \(directory)/x\naudit: {signing_key: \(other)}\n".write(toFile: otherConfig, atomically: true, encoding: .utf8)
        let otherPublic = runProcess(TeamGate.binary, ["audit-key", "public", "--config", otherConfig], environment: TeamGate.environment(), directory: "/tmp")
        #expect(otherPublic.status == 0 && otherPublic.stdout.count > 40, "\(otherPublic)")

        let gate = try TeamGate(store: "sqlite", upstream: moto.url, extra: "audit: {signing_key: \(key)}\n")
        let host = gate.enrol("host", "h"), user = gate.enrol("user", "auditor")
        try (user + "\n").write(toFile: directory + "/user.token", atomically: true, encoding: .utf8)
        chmod(directory + "/user.token", 0o600)
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "audit-session"]).status == 201)
        let ids = (0..<3).map { GateOperationsTests.propose(gate, host: host, session: "audit-session", GateOperationsTests.sendMessage(queueURL, "a-\($0)")) }
        #expect(gate.call("POST", "/v1/proposals/\(ids[0])/approve", token: user).json["state"] as? String == "succeeded")
        #expect(gate.call("POST", "/v1/proposals/\(ids[1])/deny", token: user).status == 200)
        #expect(gate.call("GET", "/v1/audit", token: host).status == 403, "a host reads no audit log")

        let remote = ["--gate", gate.url, "--gate-token-file", directory + "/user.token"]
        let verified = Self.airlock(["audit", "verify", "--public-key", publicKey, "--json"] + remote, directory: directory)
        #expect(verified.status == 0 && verified.stdout.contains("\"intact\":true"), "\(verified)")
        let exported = Self.airlock(["audit", "export"] + remote, directory: directory)
        #expect(exported.status == 0, "\(exported)")
        let export = directory + "/export.json"
        try exported.stdout.write(toFile: export, atomically: true, encoding: .utf8)
        // Offline: with the right key; with another key it fails; without one it warns.
        let offline = Self.airlock(["audit", "verify", "--file", export, "--public-key", publicKey], directory: directory)
        #expect(offline.status == 0 && offline.stdout.contains("signed checkpoints"), "\(offline)")
        let wrongKey = Self.airlock(["audit", "verify", "--file", export, "--public-key", otherPublic.stdout], directory: directory)
        #expect(wrongKey.status == 1 && wrongKey.stdout.contains("not signed by this key"), "\(wrongKey)")
        let unpinned = Self.airlock(["audit", "verify", "--file", export], directory: directory)
        #expect(unpinned.status == 0 && unpinned.stdout.contains("pin it with --public-key"), "\(unpinned)")

        // More happens after the export: the third is approved, a fourth waits.
        #expect(gate.call("POST", "/v1/proposals/\(ids[2])/approve", token: user).json["state"] as? String == "succeeded")
        let fourth = GateOperationsTests.propose(gate, host: host, session: "audit-session", GateOperationsTests.sendMessage(queueURL, "a-4"))
        let database = gate.directory + "/store/airlock.db"
        // 1. An entry is rewritten and the chain re-hashed from there: hashes agree, signatures do not.
        Self.sql(database, "db.execute(\"UPDATE audit SET actor = 'user:mallory' WHERE seq = 2\"); rehash(2)")
        let rewritten = Self.airlock(["audit", "verify", "--public-key", publicKey] + remote, directory: directory)
        #expect(rewritten.status == 1 && rewritten.stdout.contains("differs from its signed checkpoint"), "\(rewritten)")
        // The gate does not sign over the rewritten chain at its next decision.
        let signedBefore = (gate.call("GET", "/v1/audit", token: user).json["checkpoints"] as? [Any])?.count
        #expect(gate.call("POST", "/v1/proposals/\(fourth)/deny", token: user).status == 200)
        #expect((gate.call("GET", "/v1/audit", token: user).json["checkpoints"] as? [Any])?.count == signedBefore)
        let metrics = runProcess("/usr/bin/curl", ["-s", gate.url + "/metrics"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
        #expect(metrics.contains("airlock_gate_audit_tampering_total 1"), "\(metrics)")
        let actor = runProcess("/usr/bin/python3", ["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT actor FROM audit WHERE seq = 1').fetchone()[0])", database],
                               environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // Put back as it was (seq 2 was the second enrolment, by the same operator): intact again.
        Self.sql(database, "db.execute(\"UPDATE audit SET actor = '\(actor)' WHERE seq = 2\"); rehash(2)")
        #expect(Self.airlock(["audit", "verify", "--public-key", publicKey] + remote, directory: directory).status == 0)
        // 2. The tail is deleted (the chain that is left is a valid prefix): the checkpoints say so.
        Self.sql(database, "db.execute('DELETE FROM audit WHERE seq > (SELECT MAX(seq) - 3 FROM audit)')")
        let truncated = Self.airlock(["audit", "verify", "--public-key", publicKey] + remote, directory: directory)
        #expect(truncated.status == 1 && truncated.stdout.contains("tail was deleted"), "\(truncated)")
        // 3. ...and the checkpoints past it too: only the export kept elsewhere knows.
        Self.sql(database, "db.execute('DELETE FROM audit_checkpoints WHERE seq > (SELECT MAX(seq) FROM audit)')")
        let covered = Self.airlock(["audit", "verify", "--public-key", publicKey] + remote, directory: directory)
        #expect(covered.status == 0, "a consistent prefix with its own checkpoints verifies: \(covered)")
        Self.sql(database, "db.execute('DELETE FROM audit WHERE seq > (SELECT MAX(seq) - 8 FROM audit)'); db.execute('DELETE FROM audit_checkpoints WHERE seq > (SELECT MAX(seq) FROM audit)')")
        let against = Self.airlock(["audit", "verify", "--public-key", publicKey, "--against", export] + remote, directory: directory)
        #expect(against.status == 1 && against.stdout.contains("kept checkpoint covers entry"), "\(against)")
    }
}

/// `aws.assume_role`: every execution first assumes the role (sts:AssumeRole with the gate's
/// keys, session `airlock-<id>`, SourceIdentity the proposal id), and signs with its keys.
/// moto checks signatures and policies: the gate's own user may only assume the role, so a
/// change that lands was made with the role's keys.
@Suite struct GateRoleTests {
    /// IAM on a moto that checks signatures and policies: a user `gate` that may only assume
    /// the role `airlock-deploy` (whose policy allows `roleActions`; its trust policy names
    /// `gate` and allows SetSourceIdentity), a read-only `checker` (`checkerActions`), a `plain`
    /// user that may do nothing, and optionally a queue. Keys as `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` (gate's), `checker_id`/`checker_secret`, `plain_id`/`plain_secret`,
    /// and `role`, `queue`.
    static func roleScene(_ moto: Moto, roleActions: [String], checkerActions: [String], queue: String? = nil) throws -> [String: String] {
        let arguments = String(decoding: try JSONSerialization.data(withJSONObject: ["role": roleActions, "checker": checkerActions, "queue": queue ?? ""]), as: UTF8.self)
        let setup = runProcess(PythonTools.python, ["-c", """
            import boto3, botocore.config, json, sys
            config = botocore.config.Config(retries={"max_attempts": 1})
            wanted = json.loads(sys.argv[2])
            kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing", config=config)
            iam = boto3.client("iam", **kw)
            # First, while moto still lets unsigned admin calls through (its budget of them is
            # spent by the key retries below, a varying number).
            queue = boto3.client("sqs", **kw).create_queue(QueueName=wanted["queue"])["QueueUrl"] if wanted["queue"] else ""
            iam.create_user(UserName="gate")
            iam.put_user_policy(UserName="gate", PolicyName="assume", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
            trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/gate"},
                     "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"]}]}
            role = iam.create_role(RoleName="airlock-deploy", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
            iam.put_role_policy(RoleName="airlock-deploy", PolicyName="work", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": wanted["role"], "Resource": "*"}]}))
            def keys(user):
                for _ in range(16):
                    key = iam.create_access_key(UserName=user)["AccessKey"]
                    if "+" not in key["SecretAccessKey"]: return key  # moto mis-checks user secrets with '+'
                    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
            key = keys("gate")
            iam.create_user(UserName="checker")
            iam.put_user_policy(UserName="checker", PolicyName="read", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": wanted["checker"], "Resource": "*"}]}))
            checker = keys("checker")
            iam.create_user(UserName="plain")  # no policy: may not even assume the role
            plain = keys("plain")
            for _ in range(80):  # the rest of the unsigned budget (60; retried keys spend a varying part)
                try: iam.list_users()
                except Exception: break
            print(json.dumps({"role": role, "queue": queue, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                              "checker_id": checker["AccessKeyId"], "checker_secret": checker["SecretAccessKey"],
                              "plain_id": plain["AccessKeyId"], "plain_secret": plain["SecretAccessKey"]}))
            """, moto.url, arguments], environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()], directory: "/tmp", timeout: 120)
        return try #require((try? JSONSerialization.jsonObject(with: Data(setup.stdout.utf8))) as? [String: String], "\(setup)")
    }

    @Test func executionsAssumeTheRoleAndNothingIsSentWithoutIt() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto(environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "60"])
        let found = try Self.roleScene(moto, roleActions: ["sqs:*"], checkerActions: ["sqs:Get*"], queue: "role-q")
        let gateKeys = ["AWS_ACCESS_KEY_ID": found["AWS_ACCESS_KEY_ID"]!, "AWS_SECRET_ACCESS_KEY": found["AWS_SECRET_ACCESS_KEY"]!]
        let queueURL = try #require(found["queue"]), role = try #require(found["role"])
        // The gate's own keys cannot send: only the role can.
        #expect(moto.aws(["sqs", "send-message", "--queue-url", queueURL, "--message-body", "direct"], keys: gateKeys).status != 0)

        let plainKeys = ["AWS_ACCESS_KEY_ID": found["plain_id"]!, "AWS_SECRET_ACCESS_KEY": found["plain_secret"]!]
        // The gate's user may assume the role; a gate whose user may not sends nothing.
        for (keys, expected) in [(gateKeys, "succeeded"), (plainKeys, "failed")] {
            let gate = try TeamGate(store: "sqlite", upstream: moto.url, keys: keys, assumeRole: role)
            let host = gate.enrol("host", "h"), user = gate.enrol("user", "u")
            #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "role-session"]).status == 201)
            let id = GateOperationsTests.propose(gate, host: host, session: "role-session", GateOperationsTests.sendMessage(queueURL, "via-\(expected)"))
            let approved = gate.call("POST", "/v1/proposals/\(id)/approve", token: user)
            #expect(approved.json["state"] as? String == expected, "\(expected): \(approved)")
            if expected == "failed" {
                #expect("\(approved.json)".contains("could not assume"), "\(approved)")
            }
        }
        // Exactly the one sent with the role's keys; the failed one sent nothing.
        let checker = ["AWS_ACCESS_KEY_ID": found["checker_id"]!, "AWS_SECRET_ACCESS_KEY": found["checker_secret"]!]
        #expect(GateOperationsTests.messageCount(moto, queueURL, keys: checker) == "1")
    }
}
