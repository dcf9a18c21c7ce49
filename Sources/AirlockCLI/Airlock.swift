import AirlockCore
import AirlockExecution
import AirlockPolicy
import ArgumentParser
import Glibc

@main
struct Airlock: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "airlock",
        abstract: "A deploy gate for AI agents: run them sandboxed, without credentials.",
        discussion: """
            `airlock run -- CMD` starts CMD (an agent, a shell, a script) in a Linux sandbox:
            its own user, mount, pid, network, ipc, uts and cgroup namespaces; system
            directories read-only; the workspace read-write; no capabilities; a seccomp filter;
            no network but loopback; and no credential of yours in its files or environment.

            AWS calls from inside go through Airlock's broker: reads pass, changes become
            proposals a human reviews (`airlock proposals`, `airlock show ID`) and approves
            (`airlock approve ID`) or denies; the agent waits with `airlock wait ID`. A
            terraform, kubectl, helm or gh command that changes something becomes one proposal
            with its preview (the terraform plan), applied exactly as reviewed.

            Start with `airlock doctor` to see what this machine supports.
            """,
        subcommands: [
            Run.self, Proposals.self, Show.self, Approve.self, Deny.self, Review.self, Wait.self, Status.self, Audit.self,
            Freeze.self, Thaw.self, Revoke.self, ProfileCommand.self, PolicyCommand.self, DoctorCommand.self, GateCommand.self, UICommand.self,
        ])

    static func main() {
        StartupTrace.mark("main")
        // Inside a sandbox this binary is also the shim of each intercepted tool.
        if let argv0 = CommandLine.arguments.first, let tool = Shim.tool(invokedAs: argv0) {
            Glibc.exit(Shim.run(tool: tool, arguments: Array(CommandLine.arguments.dropFirst())))
        }
        // Inside a sandbox `bwrap` is this binary too: an agent's own sandbox cannot nest, and
        // says why (docs/sandbox.md).
        if let argv0 = CommandLine.arguments.first, argv0.split(separator: "/").last.map(String.init) == NestedSandbox.program {
            Glibc.exit(NestedSandbox.run(Array(CommandLine.arguments.dropFirst())))
        }
        // `airlock gate …` is airlock-gate's, --help included.
        if CommandLine.arguments.dropFirst().first == "gate" {
            Glibc.exit(GateCommand.exec(Array(CommandLine.arguments.dropFirst(2))))
        }
        // `airlock ui` is airlock-gate's too (the web page needs Hummingbird).
        if CommandLine.arguments.dropFirst().first == "ui" {
            Glibc.exit(GateCommand.exec(["ui"] + Array(CommandLine.arguments.dropFirst(2))))
        }
        if let run = RunArguments.fastParse(Array(CommandLine.arguments.dropFirst())) {
            let code = run.perform().rawValue
            // The broker's threads may still be serving: no exit handlers racing them, and
            // nothing left to flush but stdio's buffers.
            fflush(nil)
            Glibc._exit(code)
        }
        main(nil)
    }
}

/// Common option of every command (docs/design.md §6).
struct StateOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: ArgumentHelp(
        "Where Airlock keeps proposals, the audit log and agent homes.",
        discussion: "Default: $AIRLOCK_STATE_DIR, else $XDG_STATE_HOME/airlock, else ~/.local/state/airlock.",
        valueName: "DIR"))
    var stateDir: String?
}

/// Prints an Airlock error the same way everywhere and ends with its exit status.
func fail(_ error: AirlockError, run: Bool = false) -> ExitCode {
    writeError("airlock: \(error.message)\n")
    if let hint = error.hint { writeError("  hint: \(hint)\n") }
    return ExitCode(error.exitStatus(run: run))
}

/// Standard error, neutralized like every print (an error can quote what an agent wrote).
func writeError(_ text: String) {
    TerminalText.neutralize(text).withCString { _ = write(2, $0, strlen($0)) }
}

/// Raw bytes to stdout (a file of a snapshot, as it is).
func writeOutput(_ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let count = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return }
        offset += count
    }
}

