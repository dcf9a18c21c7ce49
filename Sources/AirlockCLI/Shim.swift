import AirlockBroker
import AirlockCore
import AirlockExecution
import AirlockPolicy
import Glibc

/// The shim: this binary, run inside the sandbox under a tool's name (terraform, kubectl…).
/// Reads run the real tool at once; changes go to the broker, which prepares a proposal;
/// refused commands end here. (The broker classifies again: the shim only saves a round trip.)
enum Shim {
    /// docs/design.md §4.2: 75 (EX_TEMPFAIL) the change waits for approval; 77 (EX_NOPERM) refused.
    static let pendingExit: Int32 = 75
    static let refusedExit: Int32 = 77

    /// The tool this process was started as, when it is one the sandbox intercepts.
    static func tool(invokedAs argv0: String) -> String? {
        let name = argv0.split(separator: "/").last.map(String.init) ?? argv0
        guard name != "airlock", ProfileName.isValid(name), !name.contains("."),
              access(InterceptedTool.directory + "/" + name + ".yaml", R_OK) == 0 else { return nil }
        return name
    }

    static func run(tool: String, arguments: [String]) -> Int32 {
        let profile: ToolProfile
        do {
            let path = InterceptedTool.directory + "/" + tool + ".yaml"
            profile = try ToolProfileParser.parse(try readTextFile(path, limit: ProfileParser.maximumSize), source: "profiles/tools/\(tool).yaml")
        } catch {
            writeError("airlock: the \(tool) shim cannot read its profile: \(error)\n")
            return 125
        }
        let environment = currentEnvironment()
        let directory = currentDirectoryPath()
        let workspace = environment["AIRLOCK_WORKSPACE"] ?? directory
        let ruling = CommandClassifier.classify(arguments, profile: profile, context: CommandContext(workspace: workspace, directory: directory))
        switch ruling.decision {
        case .read:
            for (name, value) in profile.environment { setenv(name, value, 1) }
            return execReal(tool: tool, arguments: arguments)
        case .deny:
            // The broker classifies it again and records the refusal in the audit log
            // (docs/design.md invariant 7); without a broker, refused here all the same.
            guard environment["AIRLOCK_AGENT_SOCKET"] != nil else {
                writeError("airlock: \(tool) \(ruling.words.joined(separator: " ")) refused: \(ruling.reason) (\(ruling.rule)). Nothing ran.\n")
                return refusedExit
            }
            return propose(tool: tool, profile: profile, arguments: arguments, directory: directory, environment: environment, ruling: ruling)
        case .mutation, .sensitive:
            return propose(tool: tool, profile: profile, arguments: arguments, directory: directory, environment: environment, ruling: ruling)
        }
    }

    static func propose(tool: String, profile: ToolProfile, arguments: [String], directory: String, environment: [String: String],
                        ruling: CommandRuling) -> Int32 {
        guard let socket = environment["AIRLOCK_AGENT_SOCKET"] else {
            writeError("airlock: \(tool) changes need Airlock's broker, and this process has no AIRLOCK_AGENT_SOCKET\n")
            return 125
        }
        let command = ([tool] + arguments).joined(separator: " ")
        if ruling.prepare != .none && ruling.decision != .deny {
            writeError("airlock: \(command) is a change: preparing a proposal (the broker runs `\(tool) plan` in an execution sandbox)…\n")
        }
        let answer: JSON
        do {
            answer = try AgentAPIClient.call(socketPath: socket, request: .object([
                ("op", .string("command")), ("tool", .string(tool)), ("argv", .array(arguments.map { .string($0) })),
                ("cwd", .string(directory)),
            ]))
        } catch {
            writeError("airlock: \(error.message)\n")
            return 125
        }
        if let output = answer["output"]?.string, !output.isEmpty {
            writeError(output.hasSuffix("\n") ? output : output + "\n")
        }
        switch answer["decision"]?.string {
        case "read"?:
            for (name, value) in profile.environment { setenv(name, value, 1) }
            return execReal(tool: tool, arguments: arguments)
        case "deny"?:
            writeError("airlock: \(command) refused: \(answer["error"]?.string ?? "by policy"). Nothing ran.\n")
            return refusedExit
        case "unchanged"?:
            return 0
        default:
            break
        }
        guard answer["ok"]?.bool == true, let proposal = answer["proposal"], let id = proposal["id"]?.string else {
            writeError("airlock: \(command) was not proposed: \(answer["error"]?.string ?? "the broker did not say why")\n")
            return Int32(answer["exit_code"]?.int ?? 1)
        }
        writeError("""
            airlock: \(command) is a change, so it did not run. Proposal \(id) waits for a human: \
            \(proposal["summary"]?.string ?? command).
              They review it with `airlock show \(id)` and run `airlock approve \(id)` or `airlock deny \(id)`.
              `airlock wait \(id)` blocks until then and prints the output of the approved run.

            """)
        return pendingExit
    }

    static func execReal(tool: String, arguments: [String]) -> Int32 {
        let real = InterceptedTool.directory + "/" + tool
        let argv = ([tool] + arguments).map { strdup($0) } + [nil]
        execv(real, argv)
        writeError("airlock: cannot run \(real): \(String(cString: strerror(errno)))\n")
        return 126
    }
}
