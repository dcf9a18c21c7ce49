import Foundation
import Testing

/// A TCP forwarder in front of a plain-HTTP gate that logs each accepted connection and each
/// request line it carries (Tests/Support/count_proxy.py).
final class CountProxy: @unchecked Sendable {
    let process: Process
    let port: Int
    let log: String
    var url: String { "http://127.0.0.1:\(port)" }

    struct Event {
        let kind: String
        let time: Double
        let connection: Int
        let request: String
    }

    init(targetPort: Int, directory: String) throws {
        log = directory + "/count-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        (process, port) = try launchListeningHelper("count_proxy.py", [String(targetPort), log])
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var events: [Event] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 3).map(String.init)
            guard fields.count >= 3, let time = Double(fields[1]), let connection = Int(fields[2]) else { return nil }
            return Event(kind: fields[0], time: time, connection: connection, request: fields.count > 3 ? fields[3] : "")
        }
    }
}

/// What an agent waiting on a proposal costs a team gate (issue 19, the gate client's
/// connections): the host's broker waits with the gate's long poll over a kept-alive
/// connection, so a 10 s `airlock wait` opens at most 2 connections to the gate, where a
/// client polling with a fresh connection each time would open dozens.
@Suite struct GateConnectionTests {
    @Test func aWaitingAgentCostsTheGateAtMostTwoConnections() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let moto = try Moto()
        let gate = try TeamGate(store: "sqlite", upstream: moto.url)
        let counter = try CountProxy(targetPort: gate.port, directory: gate.directory)
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        scene.write(scene.root + "/host.token", gate.enrol("host", "waiting-host") + "\n", mode: 0o600)
        scene.chownTree()
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        let script = """
            aws sqs create-queue --queue-name waited-\(tag) > out.txt 2>&1; echo PROPOSE-EXIT-$?
            grep -o 'Proposal [0-9a-f]*' out.txt | cut -d' ' -f2 > id.txt
            date +%s.%N > wait-start.txt
            airlock wait "$(cat id.txt)" --timeout 10 > wait.txt 2>&1; echo WAIT-EXIT-$?
            date +%s.%N > wait-end.txt
            """
        let out = scene.agent(script, moto: moto, options: ["--gate", counter.url, "--gate-token-file", scene.root + "/host.token"],
                              timeout: 180)
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("out.txt").contains("AirlockProposalPending"), "\(scene.file("out.txt"))")
        // Nobody approves: the wait runs out its 10 s with the proposal still pending (75).
        #expect(out.stdout.contains("WAIT-EXIT-75"), "\(out)\n\(scene.file("wait.txt"))")
        guard let start = Double(scene.file("wait-start.txt").trimmingCharacters(in: .whitespacesAndNewlines)),
              let end = Double(scene.file("wait-end.txt").trimmingCharacters(in: .whitespacesAndNewlines)) else {
            Issue.record("the agent's clock marks are missing: \(out)")
            return
        }
        #expect(end - start >= 9.5, "the wait returned after \(end - start) s, not after its 10 s")
        let during = counter.events.filter { $0.time >= start && $0.time <= end }
        let accepted = during.filter { $0.kind == "accepted" }
        let waits = during.filter { $0.kind == "request" && $0.request.contains("/wait") }
        // The wait went through the counted path (else counting connections proves nothing)…
        #expect(!waits.isEmpty, "no long poll reached the gate during the wait: \(counter.events.map { "\($0.kind) \($0.connection) \($0.request)" })")
        // …and cost at most 2 accepted connections, with no more than a few requests.
        #expect(accepted.count <= 2, "\(accepted.count) connections accepted during a 10 s wait: \(during.map { "\($0.kind) \($0.connection) \($0.request)" })")
        #expect(waits.count <= 3, "\(waits.count) wait requests during a 10 s wait: \(waits.map(\.request))")
    }
}
