import Foundation
import Testing

/// The gate under a compromised agent host's load (docs/gate.md, "Bounds and timeouts"), as
/// systemd starts a service: a 1024-descriptor limit, soft and hard. Each attack is
/// Tests/Support/gate_load.py from a loopback address of its own, bounded in count and time;
/// meanwhile an approver on 127.0.0.1 lists and approves, and every call of theirs is timed.
/// The replica must stay up, the approver must be answered within a few seconds, and the
/// attacker must get timeouts, 429s naming the host's bound, or 503s.
@Suite(.serialized) struct GateLoadTests {
    /// Runs gate_load.py in the background; `meanwhile` is called until it has ended.
    static func attack(_ arguments: [String], meanwhile: () -> Void) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: PythonTools.python)
        process.arguments = [Stage.repoRoot + "/Tests/Support/gate_load.py"] + arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        while process.isRunning {
            meanwhile()
            usleep(300_000)
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0, let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw TestUpstreamError("gate_load.py \(arguments.first ?? "") failed (\(process.terminationStatus)): \(text) \(problem)")
        }
        return json
    }

    @Test func aHostileHostGetsBoundsAndTheApproverStillGetsAnswers() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let queueURL = try #require((moto.json(["sqs", "create-queue", "--queue-name", "load-q"]) as? [String: Any])?["QueueUrl"] as? String)
        let database = try TeamGate.freshPostgres()
        let gate = try TeamGate(store: "postgres", upstream: moto.url, extra: "limits: {header_timeout_seconds: 5}\n", postgres: database,
                                descriptorLimit: 1024)
        let flooder = gate.enrol("host", "flooder"), honest = gate.enrol("host", "honest"), alice = gate.enrol("user", "alice")
        // The bounds in force under 1024 descriptors: 768 connections, 384 from one address.
        let bounds = GateReplicaTests.log(gate).split(separator: "\n").first { $0.contains("\"bounds\"") }.map(String.init) ?? ""
        #expect(bounds.contains("\"descriptor_limit\":\"1024\"") && bounds.contains("\"connections\":\"768\"")
                && bounds.contains("\"connections_per_peer\":\"384\""), "\(bounds)")

        // The approver's work: an honest host's proposals, one approved in each attack.
        #expect(gate.call("POST", "/v1/sessions", token: honest, body: ["id": "honest-session-1"]).status == 201)
        var work = (0..<3).map { GateOperationsTests.propose(gate, host: honest, session: "honest-session-1", GateOperationsTests.sendMessage(queueURL, "m-\($0)")) }
        var worst = 0.0
        var failures: [String] = []
        var lastApprove = Date.distantPast
        // The gate's own counts, sampled all along: open waits and connections at most.
        var most: [String: Double] = [:]
        func sample() {
            let text = runProcess("/usr/bin/curl", ["-s", "--max-time", "5", gate.url + "/metrics"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
            for line in text.split(separator: "\n") where line.hasPrefix("airlock_gate_waits_open") || line.hasPrefix("airlock_gate_connections_open") {
                let parts = line.split(separator: " ")
                if parts.count == 2, let value = Double(parts[1]) { most[String(parts[0]), default: 0] = max(most[String(parts[0]), default: 0], value) }
            }
        }
        func approver() {
            sample()
            var started = Date()
            let listed = gate.call("GET", "/v1/proposals?state=pending", token: alice)
            worst = max(worst, Date().timeIntervalSince(started))
            if listed.status != 200 { failures.append("list: \(listed.status) \(listed.json)") }
            guard Date().timeIntervalSince(lastApprove) > 2, let id = work.popLast() else { return }
            lastApprove = Date()
            started = Date()
            let approved = gate.call("POST", "/v1/proposals/\(id)/approve", token: alice)
            worst = max(worst, Date().timeIntervalSince(started))
            if approved.status != 200 || approved.json["state"] as? String != "succeeded" { failures.append("approve: \(approved.status) \(approved.json)") }
        }
        let port = ["--port", "\(gate.port)"]

        // 1. 2,000 connections from one address sending a head a byte a second.
        let slow = try Self.attack(["slow", "--source", "127.0.0.2", "--count", "2000", "--seconds", "12"] + port, meanwhile: approver)
        let slowCounts = slow["counts"] as? [String: Int] ?? [:]
        #expect((slowCounts["503"] ?? 0) >= 1000, "beyond the per-peer bound: 503 at once: \(slow)")
        #expect((slowCounts["closed"] ?? 0) >= 300, "the held ones are closed by the header timeout: \(slow)")
        #expect(slowCounts["open_at_end"] == nil, "a slow head outlived the header timeout: \(slow)")
        #expect((slow["longest_held_seconds"] as? Double ?? 99) <= 9, "header timeout 5 s: \(slow)")

        // 2. 5,000 open waits from one host.
        #expect(gate.call("POST", "/v1/sessions", token: flooder, body: ["id": "flood-waits"]).status == 201)
        let target = GateOperationsTests.propose(gate, host: flooder, session: "flood-waits", GateOperationsTests.sendMessage(queueURL, "never"))
        let waits = try Self.attack(["waits", "--source", "127.0.0.3", "--count", "5000", "--seconds", "10", "--token", flooder,
                                     "--proposal", target] + port, meanwhile: approver)
        let waitCounts = waits["counts"] as? [String: Int] ?? [:]
        let samples = waits["samples"] as? [String: String] ?? [:]
        // What the gate held (connections the kernel queued before the gate accepted them look
        // the same to the attacker): at most 200 waits, at most 768 connections.
        #expect((most["airlock_gate_waits_open"] ?? 0) == 200, "\(most)")
        #expect((most["airlock_gate_connections_open"] ?? 0) <= 768, "\(most)")
        #expect((waitCounts["429"] ?? 0) >= 1000 && (samples["429"] ?? "").contains("200 open waits") && (samples["429"] ?? "").contains("limits.waits_per_host"), "\(waits)")
        #expect((waitCounts["503"] ?? 0) >= 1 && (samples["503"] ?? "").contains("limits.connections_per_peer"), "\(waits)")
        #expect(waitCounts["closed"] == nil && waitCounts["connect_error"] == nil, "\(waits)")

        // 3. 1,200 proposals across 6 sessions of one host: 1,000 pending at most.
        let flood = try Self.attack(["proposals", "--source", "127.0.0.4", "--sessions", "6", "--per", "200", "--token", flooder,
                                     "--seconds", "60", "--prefix", "flood-\(UUID().uuidString.prefix(6).lowercased())"] + port, meanwhile: approver)
        let floodCounts = flood["counts"] as? [String: Int] ?? [:]
        let floodSamples = flood["samples"] as? [String: String] ?? [:]
        #expect((floodCounts["201"] ?? 0) == 999, "one was pending already; the host's bound is 1000: \(flood)")
        #expect((floodCounts["429"] ?? 0) == 201 && (floodSamples["429"] ?? "").contains("limits.pending_per_host"), "\(flood)")

        // The replica is up, has answered its approver all along, and every approval ran.
        approver()
        #expect(gate.process.isRunning, "the gate died: \(GateReplicaTests.log(gate).suffix(3000))")
        #expect(gate.call("GET", "/healthz").status == 200)
        #expect(failures.isEmpty, "\(failures)")
        #expect(work.isEmpty, "not every approval was tried")
        #expect(worst < 5, "the approver waited \(worst) s")
        #expect(GateOperationsTests.messageCount(moto, queueURL) == "3")
        print("gate load: worst approver call \(String(format: "%.2f", worst)) s; most open \(most); slow \(slow); waits \(waitCounts); proposals \(floodCounts) in \(flood["seconds"] ?? "?") s")
    }
}
