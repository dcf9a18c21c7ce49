import Foundation
import Testing

/// `airlock review` in a real terminal (tmux: send-keys, capture-pane), proposals made by a
/// real agent session against moto, and text an agent wrote that tries to act on the human's
/// terminal (docs/design.md, 5.1).
@Suite(.serialized) struct ReviewTests {
    static let tmux = ["/usr/bin/tmux", "/usr/local/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// One tmux server of the test's own (its socket name), detached.
    struct Terminal {
        let socket = "airlock-review-" + String(UUID().uuidString.prefix(8)).lowercased()

        @discardableResult
        func tmux(_ arguments: [String]) -> Outcome {
            runProcess(ReviewTests.tmux!, ["-L", socket] + arguments, environment: ["PATH": "/usr/bin:/bin", "TERM": "xterm-256color"], directory: "/tmp")
        }

        /// The review window's screen, as text.
        func screen() -> String { tmux(["capture-pane", "-p", "-J", "-t", "review"]).stdout }

        func waitFor(_ needle: String, timeout: Double = 30) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if screen().contains(needle) { return true }
                usleep(200_000)
            }
            return false
        }

        /// Ends the session (the server exits with its last one; kill-server alone left it
        /// running here), then the server.
        func kill() {
            tmux(["kill-session", "-t", "0"])
            tmux(["kill-server"])
        }

        /// Starts the server: its standard streams go nowhere (the server outlives the command,
        /// and would hold a pipe open forever).
        func start(_ arguments: [String]) -> Int32 {
            // The server outlives this command: it must hold none of the test process's
            // descriptors (a pipe of another test's process would never reach end of file, and
            // that test would hang). Python's subprocess closes them all (close_fds) and gives
            // tmux /dev/null for its standard streams.
            let launcher = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, "
                + "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True).returncode)"
            return runProcess("/usr/bin/python3", ["-c", launcher, ReviewTests.tmux!, "-L", socket] + arguments,
                              environment: ["PATH": "/usr/bin:/bin", "TERM": "xterm-256color"], directory: "/tmp").status
        }
    }

    static let hostileStack = "prod\u{1B}]52;c;SGVsbG8=\u{07}\u{1B}[2J\u{1B}]8;;http://x\u{07}link\u{1B}]8;;\u{07}\u{202E}kcats"
    static let hostileKey = "reports/\u{1B}[2J\u{202E}txt.exe"

    /// Bytes a terminal would act on, anywhere in `text`.
    static func raw(_ text: String) -> [String] {
        var found: [String] = []
        if text.unicodeScalars.contains(where: { $0.value == 0x1B }) { found.append("ESC") }
        if text.unicodeScalars.contains(where: { $0.value == 0x07 }) { found.append("BEL") }
        if text.unicodeScalars.contains(where: { (0x202A...0x202E).contains($0.value) || (0x2066...0x2069).contains($0.value) }) { found.append("bidi") }
        if text.unicodeScalars.contains(where: { (0x80...0x9F).contains($0.value) }) { found.append("C1") }
        return found
    }

    @Test func proposalsArriveAndAreDecidedInTheTerminalWithNothingRawOnScreen() throws {
        guard Launch.root.available(), PythonTools.available() else { return }
        guard Self.tmux != nil else {
            Issue.record("tmux is not installed (apt-get install tmux; scripts/test does): the review test needs it")
            return
        }
        let moto = try Moto()
        _ = moto.aws(["s3api", "create-bucket", "--bucket", "review-bucket"])
        let scene = Scene(.root)
        let terminal = Terminal()
        defer { terminal.kill() }
        // Window 0 stays the current one, so a bell in the review window sets its flag.
        #expect(terminal.start(["new-session", "-d", "-x", "220", "-y", "50", "-n", "other", "sh"]) == 0)
        terminal.tmux(["set-option", "-g", "monitor-bell", "on"])
        terminal.tmux(["set-option", "-g", "set-clipboard", "on"])
        var environment = scene.environment.merging(Moto.keys) { $1 }
        environment["TERM"] = "xterm-256color"
        let command = environment.map { "\($0.key)='\($0.value)'" }.sorted().joined(separator: " ")
            + " \(Stage.airlock) review --state-dir \(scene.stateDir) --interval 0.3"
        terminal.tmux(["new-window", "-d", "-n", "review", "env -i \(command)"])
        #expect(terminal.waitFor("nothing is waiting"), "\(terminal.screen())")

        // 1. A proposal arrives while review is open: shown, the bell rung.
        let first = scene.agent("aws sqs create-queue --queue-name review-one > out.txt 2>&1; echo $? > rc.txt", moto: moto)
        #expect(first.status == 0, "\(first)")
        #expect(terminal.waitFor("sqs:CreateQueue"), "\(terminal.screen())")
        #expect(terminal.tmux(["display-message", "-p", "-t", "review", "#{window_bell_flag}"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1",
                "no bell on arrival")
        // enter: the proposal in full; a: approved and executed, the result on screen.
        terminal.tmux(["send-keys", "-t", "review", "Enter"])
        #expect(terminal.waitFor("review-one") && terminal.screen().contains("digest:"), "\(terminal.screen())")
        terminal.tmux(["send-keys", "-t", "review", "a"])
        #expect(terminal.waitFor("and execute it now? y/N"), "\(terminal.screen())")
        terminal.tmux(["send-keys", "-t", "review", "y"])
        #expect(terminal.waitFor("succeeded", timeout: 60), "\(terminal.screen())")
        #expect(moto.aws(["sqs", "list-queues"]).stdout.contains("review-one"))

        // 2. Hostile text: a stack name and an object key full of escape sequences; d with a
        //    reason denies the first.
        let hostile = scene.agent("""
            aws cloudformation delete-stack --stack-name "$(printf 'prod\\033]52;c;SGVsbG8=\\007\\033[2J\\033]8;;http://x\\007link\\033]8;;\\007\\342\\200\\256kcats')" > cf.txt 2>&1
            aws s3api put-object --bucket review-bucket --key "$(printf 'reports/\\033[2J\\342\\200\\256txt.exe')" --body /etc/hostname > s3.txt 2>&1
            true
            """, moto: moto)
        #expect(hostile.status == 0, "\(hostile)")
        #expect(scene.file("cf.txt").contains("Proposal") && scene.file("s3.txt").contains("Proposal"), "\(scene.file("cf.txt")) \(scene.file("s3.txt"))")
        #expect(terminal.waitFor("cloudformation:DeleteStack") && terminal.waitFor("s3:PutObject"), "\(terminal.screen())")
        // The stack (second, newest first) in full: its name as visible escapes, nothing acted on.
        terminal.tmux(["send-keys", "-t", "review", "j"])
        terminal.tmux(["send-keys", "-t", "review", "Enter"])
        #expect(terminal.waitFor("\\e]52;c;SGVsbG8=\\a"), "\(terminal.screen())")
        let screen = terminal.screen()
        #expect(Self.raw(screen).isEmpty && screen.contains("<U+202E>") && screen.contains("digest:"), "\(Self.raw(screen)): \(screen)")
        #expect(terminal.tmux(["show-buffer"]).status != 0, "an OSC 52 clipboard write reached tmux: \(terminal.tmux(["show-buffer"]).stdout)")
        terminal.tmux(["send-keys", "-t", "review", "Enter"])
        // Deny it with a reason typed in.
        terminal.tmux(["send-keys", "-t", "review", "d"])
        #expect(terminal.waitFor("reason:"), "\(terminal.screen())")
        terminal.tmux(["send-keys", "-t", "review", "-l", "not in prod"])
        terminal.tmux(["send-keys", "-t", "review", "Enter"])
        #expect(terminal.waitFor("denied"), "\(terminal.screen())")
        let listed = scene.airlock(["proposals", "--all", "--json"])
        #expect(listed.stdout.contains("not in prod"), "\(listed.stdout.prefix(3000))")

        // 3. show and proposals print none of those bytes raw, as text or JSON.
        let ids = (try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])?["proposals"] as? [[String: Any]] ?? []
        for id in ids.compactMap({ $0["id"] as? String }) {
            for arguments in [["show", id], ["show", id, "--json"]] {
                let shown = scene.airlock(arguments)
                #expect(shown.status == 0 && Self.raw(shown.stdout + shown.stderr).isEmpty, "\(arguments): \(Self.raw(shown.stdout))")
            }
        }
        let stackShown = ids.compactMap { $0["id"] as? String }.map { scene.airlock(["show", $0]).stdout }
            .first { $0.contains("DeleteStack") } ?? ""
        #expect(stackShown.contains("\\e]52;c;SGVsbG8=\\a") && stackShown.contains("<U+202E>"), "shown as visible escapes: \(stackShown)")
        for arguments in [["proposals", "--all"], ["proposals", "--all", "--json"]] {
            let out = scene.airlock(arguments)
            #expect(out.status == 0 && Self.raw(out.stdout).isEmpty, "\(arguments): \(Self.raw(out.stdout))")
        }
        // JSON keeps the text, escaped: a script reading it gets the agent's bytes back.
        let stackID = ids.compactMap { $0["id"] as? String }.first { scene.airlock(["show", $0]).stdout.contains("DeleteStack") } ?? ""
        let json = scene.airlock(["show", stackID, "--json"]).stdout
        #expect(json.contains("\\u001b]52") && json.contains("\\u202e"), "\(json.prefix(2000))")
        #expect(!(moto.aws(["cloudformation", "list-stacks"]).stdout.contains("kcats")))
        terminal.tmux(["send-keys", "-t", "review", "q"])
    }
}

/// `airlock review --gate URL` where no full-screen terminal is (a pipe: the line prompt):
/// a host's proposal on a real gate is listed, shown, approved with `a ID` and executed there.
@Suite struct ReviewPromptTests {
    @Test func theLinePromptDecidesOnATeamGate() throws {
        guard PythonTools.available() else { return }
        let moto = try Moto()
        let gate = try TeamGate(store: "sqlite", upstream: moto.url)
        let host = gate.enrol("host", "prompt-host"), alice = gate.enrol("user", "alice")
        #expect(gate.call("POST", "/v1/sessions", token: host, body: ["id": "prompt-session-1"]).status == 201)
        let id = GateOperationsTests.propose(gate, host: host, session: "prompt-session-1", GateServiceTests.createQueue("prompt-q"))
        let other = GateOperationsTests.propose(gate, host: host, session: "prompt-session-1", GateServiceTests.createQueue("prompt-\\u001b[2J-q"))
        let folder = makeTemporaryDirectory(prefix: "airlock-review-prompt")
        _ = FileManager.default.createFile(atPath: folder + "/alice.token", contents: Data((alice + "\n").utf8))
        chmod(folder + "/alice.token", 0o600)
        let out = runProcess(Stage.airlock, ["review", "--gate", gate.url, "--gate-token-file", folder + "/alice.token", "--interval", "0.3"],
                             environment: ["PATH": "/usr/bin:/bin", "HOME": folder, "TERM": "xterm"], directory: folder,
                             stdin: "s \(id)\na \(id)\nd \(other) not this one\nq\n", timeout: 120)
        #expect(out.status == 0, "\(out)")
        #expect(out.stdout.contains("pending \(id)") && out.stdout.contains("pending \(other)"), "\(out.stdout)")
        #expect(out.stdout.contains("QueueName") && out.stdout.contains("digest:"), "s ID shows it in full: \(out.stdout)")
        #expect(out.stdout.contains("approved \(id)") && out.stdout.contains("succeeded"), "\(out.stdout)")
        #expect(out.stdout.contains("denied \(other)"), "\(out.stdout)")
        #expect(!out.stdout.unicodeScalars.contains { $0.value == 0x1B }, "raw escape in the prompt's output")
        #expect(gate.call("GET", "/v1/proposals/\(other)", token: alice).json["note"] as? String == "not this one")
        #expect(moto.aws(["sqs", "list-queues"]).stdout.contains("prompt-q"))
    }
}
