import AirlockBroker
import AirlockCore
import AirlockExecution
import AirlockPolicy
import AirlockSandbox
import ArgumentParser
import Glibc

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check what this kernel offers the sandbox, and how to fix what is missing.",
        discussion: """
            Checks user namespaces (and the sysctls or AppArmor settings that restrict them),
            seccomp, Landlock, cgroup v2, idmapped mounts (when run as root), then starts a real
            sandbox, then a real `airlock run` whose probe fetches a page through the
            egress proxy (from a one-shot server on 127.0.0.1), is refused a host not on the
            list, and finds no DNS and no route around the proxy. Last, each intercepted tool
            (aws, terraform, kubectl, helm, gh) as your shell in this directory finds it:
            the program a session runs inside, through pyenv, tfenv or asdf shims and
            symlinks, and what it needs mounted. Exits 1 if a check fails.

            With --credentials it lists instead what the broker's credential loaders read in
            this environment (AWS files and credential_process, kubeconfigs and the token
            files, certificates and exec plugins they name, gh's hosts.yml, git's
            configuration, credential stores and netrc): every such file is masked wherever
            the sandbox could see it. --probe also drives each loader once, as a request
            would, and says what it found (never the secret).
            """)

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @OptionGroup var state: StateOptions

    @Flag(help: "List the files and helper programs the broker's credential loaders use here, instead of the sandbox checks.")
    var credentials = false

    @Flag(help: "With --credentials: drive each loader once (resolve AWS keys, read each kubeconfig context's credentials, look up gh's and git's).")
    var probe = false

    /// The egress check's probe, run by doctor itself inside a sandbox.
    @Option(help: .hidden) var probeEgress: String?

    func run() throws {
        var environment = currentEnvironment()
        if let url = probeEgress { throw ExitCode(EgressDoctor.probe(url: url, environment: environment)) }
        if let dir = state.stateDir { environment["AIRLOCK_STATE_DIR"] = dir }
        if credentials { return try showCredentials(environment: environment) }
        if probe { throw ValidationError("--probe goes with --credentials") }
        var checks = Doctor.run(environment: environment)
        if !checks.contains(where: { $0.name == "sandbox" && $0.status == .failed }) {
            checks += EgressDoctor.checks(environment: environment)
        }
        checks += Self.toolChecks(environment: environment)
        if json {
            let items = checks.map { check -> JSON in
                var fields: [(String, JSON)] = [
                    ("name", .string(check.name)), ("status", .string(check.status.rawValue)),
                    ("detail", .string(check.detail)),
                ]
                if let fix = check.fix { fields.append(("fix", .string(fix))) }
                return .object(fields)
            }
            printJSON(JSON.object([("checks", .array(items))]))
        } else {
            for check in checks {
                let mark = check.status == .ok ? "ok  " : check.status == .warning ? "warn" : "FAIL"
                print("\(mark)  \(check.name): \(check.detail)")
                if let fix = check.fix, check.status != .ok { print("      fix: \(fix)") }
            }
        }
        if checks.contains(where: { $0.status == .failed }) { throw ExitCode(1) }
    }

    /// Each tool the default profiles intercept, resolved as `airlock run` here would: a
    /// tool found that cannot run inside is a failure (sessions start without it).
    static func toolChecks(environment: [String: String]) -> [DoctorCheck] {
        let home = environment["HOME"] ?? "/"
        let library = ProfileLibrary(environment: environment, home: home)
        guard let stack = try? library.loadStack([]) else { return [] }
        let stateDir = StateDirectory.resolve(explicit: nil, environment: environment, home: home)
        let loaded: (tools: [InterceptedTool], problems: [ToolResolutionFailure])
        do {
            loaded = try InterceptedTool.load(stack.tools, library: library, environment: environment,
                                              directory: resolvedHostPath(currentDirectoryPath()), stateDir: stateDir)
        } catch {
            return [DoctorCheck(name: "tools", status: .failed, detail: error.message, fix: error.hint)]
        }
        return stack.tools.map { name -> DoctorCheck in
            if let tool = loaded.tools.first(where: { $0.name == name }) {
                var detail = tool.binary
                if let via = tool.via { detail += " (\(via), found \(tool.found))" } else if tool.found != tool.binary { detail += " (found \(tool.found))" }
                if !tool.runtime.isEmpty { detail += "; mounts " + tool.runtime.joined(separator: ", ") }
                return DoctorCheck(name: "tool \(name)", status: .ok, detail: detail + "; sha256 \(tool.digest.prefix(12))", fix: nil)
            }
            if let problem = loaded.problems.first(where: { $0.tool == name }) {
                return DoctorCheck(name: "tool \(name)", status: .failed, detail: "\(problem.found): \(problem.why); sessions start without it",
                                   fix: problem.fix)
            }
            return DoctorCheck(name: "tool \(name)", status: .ok, detail: "not installed (nothing to intercept)", fix: nil)
        }
    }

    func showCredentials(environment: [String: String]) throws {
        let home = environment["HOME"] ?? "/"
        let cwd = HostInspection.realPath(".") ?? "/"
        let sources = CredentialSources.find(environment: environment, home: home, cwd: cwd) { path in
            try? readTextFile(path, limit: 4 << 20)
        }
        let outcomes = probe ? CredentialProbe.run(environment: environment) : []
        func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
        if json {
            let files = sources.files.map { file -> JSON in
                .object([("path", .string(file.path)), ("loader", .string(file.loader)), ("exists", .bool(exists(file.path)))])
            }
            let helpers = sources.helpers.map { helper -> JSON in
                .object([("command", .string(helper.command)), ("loader", .string(helper.loader)), ("configured_in", .string(helper.configuredIn))])
            }
            var fields: [(String, JSON)] = [("files", .array(files)), ("helpers", .array(helpers))]
            if probe {
                fields.append(("probe", .array(outcomes.map {
                    .object([("loader", .string($0.loader)), ("ok", .bool($0.ok)), ("detail", .string($0.detail))])
                })))
            }
            printJSON(JSON.object(fields))
        } else {
            print("Files the broker's credential loaders read (masked wherever a sandbox could see them):")
            for file in sources.files {
                print("  \(exists(file.path) ? "present" : "absent ")  \(file.path)  (\(file.loader))")
            }
            if !sources.helpers.isEmpty {
                print("Helper programs they run (the files these read cannot be listed: keep them outside workspaces):")
                for helper in sources.helpers { print("  \(helper.command)  (\(helper.loader), named in \(helper.configuredIn))") }
            }
            for outcome in outcomes { print("\(outcome.ok ? "ok  " : "FAIL")  \(outcome.loader): \(outcome.detail)") }
        }
        // A loader that found nothing fails the probe: the broker would refuse that upstream's calls.
        if outcomes.contains(where: { !$0.ok }) { throw ExitCode(1) }
    }
}
