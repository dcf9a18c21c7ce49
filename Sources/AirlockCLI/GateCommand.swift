import AirlockCore
import AirlockSandbox
import ArgumentParser
import Glibc

/// `airlock gate …` is the team gate's own executable, `airlock-gate` (Hummingbird and
/// postgres-nio stay out of the launcher's start-up): found next to this binary, else
/// `$AIRLOCK_GATE_BINARY`, else on PATH, and exec'd with the arguments as they are.
struct GateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "The team gate: serve it, enrol agent hosts and approvers (runs airlock-gate; `airlock gate --help`).")

    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []

    func run() throws {
        throw ExitCode(Self.exec(arguments))
    }

    static func exec(_ arguments: [String]) -> Int32 {
        let environment = currentEnvironment()
        var candidates: [String] = []
        if let me = HostInspection.realPath("/proc/self/exe"), let slash = me.lastIndex(of: "/") {
            candidates.append(String(me[..<slash]) + "/airlock-gate")
        }
        if let configured = environment["AIRLOCK_GATE_BINARY"] { candidates.append(configured) }
        candidates += (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map { $0 + "/airlock-gate" }
        guard let binary = candidates.first(where: { access($0, X_OK) == 0 }) else {
            writeError("airlock: airlock-gate is not installed next to airlock, at $AIRLOCK_GATE_BINARY or on PATH\n  hint: build it with `swift build --product airlock-gate` and put it beside airlock\n")
            return 125
        }
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        execv(binary, argv)
        writeError("airlock: cannot run \(binary): \(String(cString: strerror(errno)))\n")
        return 125
    }
}

/// `airlock ui`: the approvers' web page for your own store, on loopback (docs/web.md); it
/// is `airlock-gate ui`, found as `airlock gate` finds it.
struct UICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        abstract: "Review and decide proposals in a browser: serves your store's page on 127.0.0.1 and prints a one-time link.")

    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []

    func run() throws {
        throw ExitCode(GateCommand.exec(["ui"] + arguments))
    }
}
