import AirlockBroker
import AirlockCore
import AirlockExecution
import AirlockPolicy
import AirlockStore
import ArgumentParser
import Glibc

struct Review: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "review",
        abstract: "Decide proposals as they arrive: a live queue in the terminal.",
        discussion: """
            Lists the pending proposals and keeps the list live (the local store, or --gate's).
            ↑/↓ (or j/k) move, enter shows the selected proposal in full (its request decoded and
            its preview), a then y approves it (and prints the result), d denies it after you
            type the reason the agent is told, q quits. A decision is for the proposal it was
            started on: one decided elsewhere meanwhile is not replaced by its neighbour. A new proposal rings the terminal bell and, in a
            desktop session with notify-send, raises a notification (its summary only).
            Everything an agent wrote is shown with control characters and escape sequences
            made visible (\\e, <U+202E>), never acted on by the terminal.
            Without a full-screen terminal (TERM=dumb, or not a tty) it prints each new proposal
            as a line and reads commands: `a ID`, `d ID REASON`, `s ID`, `q`.
            """)

    @Option(help: ArgumentHelp("Look for new proposals this often.", valueName: "SECONDS")) var interval: Double = 1
    @Option(name: .customLong("aws-profile"), help: ArgumentHelp("The AWS profile local approvals execute with.", valueName: "NAME"))
    var awsProfile: String?
    @Flag(help: "The line-by-line prompt even on a full-screen terminal.") var lines = false
    @OptionGroup var state: StateOptions
    @OptionGroup var remote: GateOptions

    func run() throws {
        let queue: ReviewQueue
        do throws(AirlockError) {
            queue = try ReviewQueue(state: state, gate: try remote.client(), source: remote.gate.map { "gate " + $0 } ?? "local store",
                                    awsProfile: awsProfile)
            _ = try queue.pending()
        } catch {
            throw fail(error)
        }
        let environment = currentEnvironment()
        let term = environment["TERM"] ?? ""
        if lines || isatty(0) == 0 || isatty(1) == 0 || term.isEmpty || term == "dumb" {
            ReviewPrompt(queue: queue, interval: max(0.2, interval)).run()
        } else {
            ReviewTerminal(queue: queue, interval: max(0.2, interval), environment: environment).run()
        }
    }
}

/// Where the proposals come from and where decisions go: the local store, or a team gate.
final class ReviewQueue {
    let state: StateOptions
    let gate: GateHTTP?
    let awsProfile: String?
    let source: String

    init(state: StateOptions, gate: GateHTTP?, source: String, awsProfile: String?) throws(AirlockError) {
        self.state = state
        self.gate = gate
        self.source = source
        self.awsProfile = awsProfile
    }

    func pending() throws(AirlockError) -> [Proposal] {
        if let gate {
            return (try gate.call("GET", "/v1/proposals?state=pending")["proposals"]?.array ?? []).compactMap { GateHTTP.proposal($0) }
        }
        guard let store = try localStore() else { return [] }
        return try store.proposals(states: [.pending])
    }

    /// The local store, opened once (not at every look); nil until an agent's first proposal
    /// made it: the queue is empty until then.
    private var opened: SQLiteProposalStore?
    func localStore() throws(AirlockError) -> SQLiteProposalStore? {
        if let opened { return opened }
        let environment = currentEnvironment()
        let dir = StateDirectory.resolve(explicit: state.stateDir, environment: environment, home: environment["HOME"] ?? "/")
        guard access(SQLiteProposalStore.databasePath(stateDir: dir), F_OK) == 0 else { return nil }
        opened = try openStore(state)
        return opened
    }

    /// The proposal in full, as `airlock show` prints it.
    func detail(_ id: String) throws(AirlockError) -> String {
        if let gate {
            let answer = try gate.call("GET", "/v1/proposals/\(id)")
            return ProposalDescription.text(try GateOptions.proposal(answer), session: nil, manifest: nil,
                                            preview: answer["preview"].flatMap { $0 == .null ? nil : $0 })
        }
        guard let store = try localStore(), let proposal = try store.proposal(id: id) else { throw AirlockError("no proposal \(id)", code: .refused) }
        return ProposalDescription.text(proposal, session: try store.session(id: proposal.sessionID), manifest: nil,
                                        preview: try store.preview(of: proposal))
    }

    func approve(_ id: String) throws(AirlockError) -> Proposal {
        if let gate {
            return try GateOptions.proposal(try gate.call("POST", "/v1/proposals/\(id)/approve", body: .object([("reason", .null)]), timeoutSeconds: 900))
        }
        return try Approve.approveLocally(id, reason: nil, awsProfile: awsProfile, state: state)
    }

    func deny(_ id: String, reason: String) throws(AirlockError) -> Proposal {
        let note: String? = reason.isEmpty ? nil : reason
        if let gate {
            return try GateOptions.proposal(try gate.call("POST", "/v1/proposals/\(id)/deny", body: .object([("reason", note.map(JSON.string) ?? .null)])))
        }
        guard let store = try localStore() else { throw AirlockError("no proposal \(id)", code: .refused) }
        return try store.apply(.deny, to: id, actor: Actor.currentUser(), note: note)
    }

    /// One line saying how an action ended.
    static func outcome(_ proposal: Proposal, verb: String) -> String {
        if verb == "approved", proposal.state == .pending {
            return "approval counted for \(proposal.id) (\(proposal.summary)): it needs more distinct approvers (docs/policy.md)"
        }
        var line = "\(verb) \(proposal.id) (\(proposal.summary)): \(proposal.state.rawValue)"
        if let status = proposal.result?.httpStatus { line += ", HTTP \(status)" }
        if let code = proposal.result?.exitCode { line += ", exit \(code)" }
        if let error = proposal.result?.error { line += ": \(error)" }
        return line
    }
}

/// The full-screen queue: raw keys from the terminal, the screen redrawn on every change.
struct ReviewTerminal {
    let queue: ReviewQueue
    let interval: Double
    let environment: [String: String]

    func run() {
        var saved = termios()
        tcgetattr(0, &saved)
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL)
        raw.c_cc.6 = 1  // VMIN
        raw.c_cc.5 = 0  // VTIME
        tcsetattr(0, TCSANOW, &raw)
        write("\u{1B}[?1049h\u{1B}[?25l")
        defer {
            write("\u{1B}[?25h\u{1B}[?1049l")
            tcsetattr(0, TCSANOW, &saved)
        }
        var screen = ReviewScreen(source: queue.source)
        refresh(&screen, announce: false)
        draw(screen)
        var lastLook = Clock.monotonicSeconds()
        while true {
            var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 200)
            var changed = false
            if ready > 0 {
                var buffer = [UInt8](repeating: 0, count: 64)
                let count = read(0, &buffer, buffer.count)
                if count <= 0 { return }
                for key in ReviewScreen.keys(Array(buffer[0..<count])) {
                    if key == .character("\u{03}") { return }  // Ctrl-C
                    guard let action = screen.handle(key) else { changed = true; continue }
                    if action == .quit { return }
                    perform(action, &screen)
                    changed = true
                }
            }
            if Clock.monotonicSeconds() - lastLook >= interval {
                lastLook = Clock.monotonicSeconds()
                changed = refresh(&screen, announce: true) || changed
            }
            if changed { draw(screen) }
        }
    }

    /// Reads the queue again; a new proposal rings the bell (and a desktop notification).
    @discardableResult
    func refresh(_ screen: inout ReviewScreen, announce: Bool) -> Bool {
        let before = screen
        do {
            let fresh = try queue.pending()
            let added = screen.update(fresh.map(ReviewScreen.Item.init))
            if announce, !added.isEmpty {
                write("\u{07}")
                for proposal in fresh where added.contains(proposal.id) { ReviewNotice.desktop(proposal, environment: environment) }
            }
        } catch {
            screen.status = "cannot read the proposals: \(error.message)"
        }
        return screen != before
    }

    func perform(_ action: ReviewScreen.Action, _ screen: inout ReviewScreen) {
        do throws(AirlockError) {
            switch action {
            case .show(let id):
                screen.detail = try queue.detail(id).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            case .approve(let id):
                draw(screen)
                let outcome = try queue.approve(id)
                screen.status = ReviewQueue.outcome(outcome, verb: "approved")
                screen.mode = .list
            case .deny(let id, let reason):
                screen.status = ReviewQueue.outcome(try queue.deny(id, reason: reason), verb: "denied")
            case .quit:
                return
            }
        } catch {
            screen.status = "\(error.message)"
            screen.mode = .list
        }
        refresh(&screen, announce: false)
    }

    func draw(_ screen: ReviewScreen) {
        var size = winsize()
        let width = ioctl(1, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
        let height = size.ws_row > 0 ? Int(size.ws_row) : 24
        write("\u{1B}[H\u{1B}[2J" + screen.render(width: width, height: height).joined(separator: "\r\n"))
    }

    func write(_ text: String) { writeOutput(Array(text.utf8)) }

}

/// Without a full-screen terminal: each new proposal as a line, commands read line by line.
struct ReviewPrompt {
    let queue: ReviewQueue
    let interval: Double

    func run() {
        var known = Set<String>()
        var lastLook = -Double.infinity
        var input: [UInt8] = []
        say("airlock review (\(queue.source)): commands `a ID` approve, `d ID REASON` deny, `s ID` show, `q` quit")
        while true {
            if Clock.monotonicSeconds() - lastLook >= interval {
                lastLook = Clock.monotonicSeconds()
                do {
                    for proposal in try queue.pending().reversed() where known.insert(proposal.id).inserted {
                        say("\u{07}pending \(proposal.id)  \(proposal.decision.rawValue)  \(proposal.summary)")
                    }
                } catch {
                    say("cannot read the proposals: \(error.message)")
                }
            }
            var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 200) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = read(0, &buffer, buffer.count)
            if count <= 0 { return }
            input += buffer[0..<count]
            while let newline = input.firstIndex(of: 0x0A) {
                let line = String(decoding: input[..<newline], as: UTF8.self).trimmingWhitespace
                input.removeSubrange(...newline)
                if !perform(line) { return }
            }
        }
    }

    /// False: quit.
    func perform(_ line: String) -> Bool {
        let words = line.split(separator: " ", maxSplits: 2).map(String.init)
        guard let command = words.first else { return true }
        do throws(AirlockError) {
            switch (command, words.count) {
            case ("q", _), ("quit", _): return false
            case ("a", 2...): say(ReviewQueue.outcome(try queue.approve(words[1]), verb: "approved"))
            case ("d", 2...): say(ReviewQueue.outcome(try queue.deny(words[1], reason: words.count > 2 ? words[2] : ""), verb: "denied"))
            case ("s", 2...): say(try queue.detail(words[1]))
            default: say("commands: `a ID` approve, `d ID REASON` deny, `s ID` show, `q` quit")
            }
        } catch {
            say("airlock: \(error.message)")
        }
        return true
    }

    /// Printed neutralized, but for the bell this prompt rings itself.
    func say(_ text: String) {
        let bell = text.hasPrefix("\u{07}")
        writeOutput(Array(((bell ? "\u{07}" : "") + TerminalText.neutralize(bell ? String(text.dropFirst()) : text) + "\n").utf8))
    }
}

/// A desktop notification for a new proposal, where a desktop session and notify-send exist:
/// its summary only, neutralized (the notification daemon may render markup).
enum ReviewNotice {
    static func desktop(_ proposal: Proposal, environment: [String: String]) {
        guard environment["DISPLAY"] != nil || environment["WAYLAND_DISPLAY"] != nil,
              let path = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map({ String($0) + "/notify-send" })
                .first(where: { candidate in access(candidate, X_OK) == 0 })
        else { return }
        let body = TerminalText.neutralize(proposal.summary).replacingOccurrences(of: "<", with: "‹").replacingOccurrences(of: "&", with: "+")
        _ = try? ChildProcess.run([path, "--app-name=airlock", "--expire-time=10000", "--", "Airlock: proposal \(proposal.id) is waiting", String(body.prefix(200))],
                                  environment: environment, outputLimit: 4096)
    }
}
