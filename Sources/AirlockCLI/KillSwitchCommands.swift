import AirlockBroker
import AirlockCore
import AirlockPolicy
import ArgumentParser

/// The team gate's kill switch from an approver's machine (docs/gate.md, "Kill switch"):
/// `airlock freeze|thaw --gate URL`, `airlock revoke session|host|user NAME --gate URL`.
struct Freeze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop every execution on a team gate, on every replica, until `airlock thaw`.",
        discussion: """
            Approvals are refused while frozen and an approved call not yet sent is not sent;
            calls already sent finish. Kept in the gate's store and audited.
            Example: airlock freeze --gate https://gate:8443 --reason "incident 42"
            """)
    @Option(help: "Why (kept in the audit log).") var reason: String?
    @OptionGroup var remote: GateOptions

    func run() throws {
        try KillSwitch.call(remote, "/v1/freeze", body: .object([("reason", reason.map(JSON.string) ?? .null)])) { _ in
            "frozen: no execution starts on any replica until `airlock thaw --gate \(remote.gate ?? "")`"
        }
    }
}

struct Thaw: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Let a frozen team gate execute approved proposals again.")
    @OptionGroup var remote: GateOptions

    func run() throws {
        try KillSwitch.call(remote, "/v1/thaw", body: .object([])) { _ in "thawed: approved proposals execute again" }
    }
}

struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke an agent session, an agent host or an approver on a team gate.",
        discussion: """
            `revoke session ID`: the session can propose nothing more, and every pending \
            proposal of it is denied at once (their ids are printed). `revoke host NAME`: that \
            host's token is refused from its next request. `revoke user NAME`: the same for an \
            approver. Example: airlock revoke session 3f2a9c01d4e5 --gate https://gate:8443 --reason looping
            """)
    @Argument(help: "session, host or user.") var kind: String
    @Argument(help: "The session id, or the host's or approver's name.") var name: String
    @Option(help: "Why (kept in the audit log).") var reason: String?
    @Flag(help: "Print the gate's JSON answer.") var json = false
    @OptionGroup var remote: GateOptions

    func validate() throws {
        guard ["session", "host", "user"].contains(kind) else {
            throw ValidationError("revoke session ID, revoke host NAME or revoke user NAME")
        }
    }

    func run() throws {
        let path = kind == "session" ? "/v1/sessions/\(PercentEncoding.encode(name))/revoke" : "/v1/\(kind)s/\(PercentEncoding.encode(name))/revoke"
        try KillSwitch.call(remote, path, body: .object([("reason", reason.map(JSON.string) ?? .null)]), json: json) { answer in
            guard kind == "session" else { return "revoked \(kind) \(name): its token is refused from now on" }
            let denied = answer["denied"]?.array?.compactMap(\.string) ?? []
            return "revoked session \(name); denied \(denied.count) pending proposal\(denied.count == 1 ? "" : "s")"
                + (denied.isEmpty ? "" : ": " + denied.joined(separator: " "))
        }
    }
}

enum KillSwitch {
    static func call(_ remote: GateOptions, _ path: String, body: JSON, json: Bool = false, _ describe: (JSON) -> String) throws {
        do throws(AirlockError) {
            guard let gate = try remote.client() else {
                throw AirlockError("the kill switch is a team gate's: --gate URL is needed",
                                   hint: "a local session is stopped by ending its `airlock run`", code: .usage)
            }
            let answer = try gate.call("POST", path, body: body)
            if json { printJSON(answer) } else { print(describe(answer)) }
        } catch {
            throw fail(error)
        }
    }
}
