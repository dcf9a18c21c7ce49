import AirlockCore
import AirlockSandbox
import ArgumentParser

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check what this kernel offers the sandbox, and how to fix what is missing.",
        discussion: """
            Checks user namespaces (and the sysctls or AppArmor settings that restrict them),
            seccomp, Landlock, cgroup v2, idmapped mounts (when run as root), then starts a real
            sandbox, and finally a real `airlock run` whose probe fetches a page through the
            egress proxy (from a one-shot server on 127.0.0.1), is refused a host not on the
            list, and finds no DNS and no route around the proxy. Exits 1 if a check fails.
            """)

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @OptionGroup var state: StateOptions

    /// The egress check's probe, run by doctor itself inside a sandbox.
    @Option(help: .hidden) var probeEgress: String?

    func run() throws {
        var environment = currentEnvironment()
        if let url = probeEgress { throw ExitCode(EgressDoctor.probe(url: url, environment: environment)) }
        if let dir = state.stateDir { environment["AIRLOCK_STATE_DIR"] = dir }
        var checks = Doctor.run(environment: environment)
        if !checks.contains(where: { $0.name == "sandbox" && $0.status == .failed }) {
            checks += EgressDoctor.checks(environment: environment)
        }
        if json {
            let items = checks.map { check -> JSON in
                var fields: [(String, JSON)] = [
                    ("name", .string(check.name)), ("status", .string(check.status.rawValue)),
                    ("detail", .string(check.detail)),
                ]
                if let fix = check.fix { fields.append(("fix", .string(fix))) }
                return .object(fields)
            }
            print(JSON.object([("checks", .array(items))]).serialized())
        } else {
            for check in checks {
                let mark = check.status == .ok ? "ok  " : check.status == .warning ? "warn" : "FAIL"
                print("\(mark)  \(check.name): \(check.detail)")
                if let fix = check.fix, check.status != .ok { print("      fix: \(fix)") }
            }
        }
        if checks.contains(where: { $0.status == .failed }) { throw ExitCode(1) }
    }
}
