import Foundation
import Testing

/// One approve path (docs/architecture.md, "Approving and executing"), end to end: the same
/// table of cases through `airlock approve` on the local store and through the gate's API on
/// SQLite and on PostgreSQL, each ending the same way (the lease case is ApprovalTests': it
/// needs a replica stopped mid-execution). The store is changed underneath as someone with
/// write access to the database would (a control row, a payload and digest rewritten). The
/// upstream is moto; whether an approval ran is read from the audit log (`executing` entries).
@Suite struct ApprovePathTests {
    enum Path: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case localCLI, gateSQLite, gatePostgres
        var testDescription: String { rawValue }
    }

    enum Case: String, CaseIterable { case approved, frozen, revokedSession, rowRewritten, twiceAtOnce }

    /// (refused with a message containing, executions recorded, state after)
    static let expected: [Case: (refusal: String?, executions: Int, state: String)] = [
        .approved: (nil, 1, "succeeded"),
        .frozen: ("frozen", 0, "pending"),
        .revokedSession: ("is revoked", 0, "pending"),
        .rowRewritten: ("changed in the store since it was proposed", 0, "pending"),
        .twiceAtOnce: ("already approved", 1, "succeeded"),
    ]

    /// A database the test can change underneath the store: SQLite (python3's sqlite3) or
    /// PostgreSQL (psql), the same statements.
    struct Database {
        var sqlite: String?
        var postgres: String?

        func run(_ sql: String) -> String {
            if let postgres {
                return runProcess("/usr/bin/psql", [postgres, "-At", "-c", sql],
                                  environment: ["PATH": "/usr/bin:/bin", "PGOPTIONS": "-c search_path=airlock"], directory: "/tmp").stdout
            }
            return runProcess("/usr/bin/python3", ["-c", """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1])
                for row in db.execute(sys.argv[2]): print("|".join(str(v) for v in row))
                db.commit()
                """, sqlite ?? "", sql], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
        }

        func state(_ id: String) -> String { run("SELECT state FROM proposals WHERE id = '\(id)'").trimmingCharacters(in: .whitespacesAndNewlines) }
        func executions(_ id: String) -> Int {
            Int(run("SELECT COUNT(*) FROM audit WHERE proposal_id = '\(id)' AND event = 'executing'").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        func session(_ id: String) -> String { run("SELECT session_id FROM proposals WHERE id = '\(id)'").trimmingCharacters(in: .whitespacesAndNewlines) }
        func control(_ name: String) { _ = run("INSERT INTO controls VALUES ('\(name)', 'user:ops', '2026-12-06T00:00:00.000Z', 'test')") }
        func clearControls() { _ = run("DELETE FROM controls") }
        /// A payload and its digest rewritten together (the digest check alone cannot see it).
        func rewrite(_ id: String) {
            let payload = #"{"type":"aws-request","service":"sqs","signing_name":"sqs","region":"us-east-1","operation":"DeleteQueue","method":"POST","path":"/","query":"","headers":[],"body_base64":""}"#
            let digest = SHA256Hex.of(payload)
            let hex = payload.utf8.map { String(format: "%02x", $0) }.joined()
            _ = run(postgres != nil ? "UPDATE proposals SET payload = decode('\(hex)', 'hex'), digest = '\(digest)' WHERE id = '\(id)'"
                                    : "UPDATE proposals SET payload = X'\(hex)', digest = '\(digest)' WHERE id = '\(id)'")
        }
    }

    /// Approves `id` on `path`: (went through, what was said).
    static func approve(_ path: Path, _ id: String, scene: Scene, gate: TeamGate?, approver: String) -> (ok: Bool, said: String) {
        if let gate {
            let answer = gate.call("POST", "/v1/proposals/\(id)/approve", token: approver, body: ["reason": "table"])
            return (answer.status == 200, "\(answer.status) \((answer.json["error"] as? [String: Any])?["message"] as? String ?? "")")
        }
        let out = scene.airlock(["approve", id])
        return (out.status == 0, out.stderr + out.stdout)
    }

    @Test(arguments: Path.allCases)
    func everyPathEndsEveryCaseTheSameWay(_ path: Path) throws {
        guard PythonTools.available(), Launch.anyAvailable() else { return }
        let moto = try Moto()
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        var ids: [Case: String] = [:]
        var gate: TeamGate?
        var approver = ""
        let database: Database
        if path == .localCLI {
            // Real proposals: an agent's aws CLI through the broker, one queue per case.
            let out = scene.agent(Case.allCases.map { "aws sqs create-queue --queue-name table-\($0.rawValue) > /dev/null 2>> proposals.err" }
                .joined(separator: "\n") + "\ntrue", moto: moto)
            #expect(out.status == 0, "\(out)")
            let listed = (try? JSONSerialization.jsonObject(with: Data(scene.airlock(["proposals", "--json"]).stdout.utf8))) as? [String: Any]
            for proposal in (listed?["proposals"] as? [[String: Any]]) ?? [] {
                guard let id = proposal["id"] as? String, let summary = proposal["summary"] as? String else { continue }
                _ = summary
                let body = scene.airlock(["show", id]).stdout
                if let row = Case.allCases.first(where: { body.contains("table-\($0.rawValue)\"") }) { ids[row] = id }
            }
            database = Database(sqlite: scene.stateDir + "/airlock.db")
        } else {
            let postgres = path == .gatePostgres ? try TeamGate.freshPostgres() : nil
            let made = try TeamGate(store: path == .gateSQLite ? "sqlite" : "postgres", upstream: moto.url, keys: Moto.keys, postgres: postgres)
            gate = made
            let host = made.enrol("host", "table-host")
            approver = made.enrol("user", "table-approver")
            #expect(made.call("POST", "/v1/sessions", token: host, body: ["id": "s-table-0001", "workspace": "/w"]).status == 201)
            for row in Case.allCases {
                let proposed = made.call("POST", "/v1/proposals", token: host,
                                         body: ["session_id": "s-table-0001", "payload_base64": GateServiceTests.createQueue("table-\(row.rawValue)")])
                ids[row] = proposed.json["id"] as? String
            }
            database = path == .gateSQLite ? Database(sqlite: made.directory + "/store/airlock.db") : Database(postgres: postgres)
        }
        try #require(ids.count == Case.allCases.count, "proposals made: \(ids)")
        let (theGate, theApprover) = (gate, approver)
        for row in Case.allCases {
            let id = ids[row]!
            database.clearControls()
            switch row {
            case .frozen: database.control("freeze")
            case .revokedSession: database.control("session:" + database.session(id))
            case .rowRewritten: database.rewrite(id)
            case .approved, .twiceAtOnce: break
            }
            var answers: [(ok: Bool, said: String)] = []
            if row == .twiceAtOnce {
                let collected = Answers()
                DispatchQueue.concurrentPerform(iterations: 2) { _ in
                    collected.add(Self.approve(path, id, scene: scene, gate: theGate, approver: theApprover))
                }
                answers = collected.all
            } else {
                answers = [Self.approve(path, id, scene: scene, gate: theGate, approver: theApprover)]
            }
            let want = Self.expected[row]!
            if let refusal = want.refusal {
                #expect(answers.contains { !$0.ok && $0.said.contains(refusal) }, "\(path) \(row): \(answers)")
            }
            if row == .approved || row == .twiceAtOnce {
                #expect(answers.filter(\.ok).count == 1, "\(path) \(row): \(answers)")
            }
            #expect(database.executions(id) == want.executions, "\(path) \(row): \(database.executions(id)) executions")
            #expect(database.state(id) == want.state, "\(path) \(row): \(database.state(id))")
        }
        database.clearControls()
    }
}

final class Answers: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [(ok: Bool, said: String)] = []
    func add(_ answer: (ok: Bool, said: String)) { lock.lock(); list.append(answer); lock.unlock() }
    var all: [(ok: Bool, said: String)] { lock.lock(); defer { lock.unlock() }; return list }
}

/// SHA-256 in hex of a string, by openssl (the tests' own, independent of Airlock's).
enum SHA256Hex {
    static func of(_ text: String) -> String {
        let out = runProcess("/usr/bin/openssl", ["dgst", "-sha256", "-r"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp", stdin: text)
        return String(out.stdout.prefix(64))
    }
}
