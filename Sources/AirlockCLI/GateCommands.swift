import AirlockBroker
import AirlockCore
import AirlockExecution
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import ArgumentParser
import Glibc

/// Opens the state directory's store for a human command.
func openStore(_ state: StateOptions) throws(AirlockError) -> SQLiteProposalStore {
    let environment = currentEnvironment()
    let dir = StateDirectory.resolve(explicit: state.stateDir, environment: environment, home: environment["HOME"] ?? "/")
    guard access(SQLiteProposalStore.databasePath(stateDir: dir), F_OK) == 0 else {
        throw AirlockError("no proposals have been made with state directory \(dir)",
                           hint: "proposals appear when an agent in `airlock run` tries a change; pass --state-dir if that run used another", code: .refused)
    }
    let store = try SQLiteProposalStore(stateDir: dir)
    try store.recoverInterruptedExecutions()
    // Locally no daemon runs: a proposal past its deadline (its rules' @expires) is expired
    // whenever proposals are listed, shown, waited on or decided (docs/policy.md).
    try store.expireOverdue()
    return store
}

func age(_ timestamp: String) -> String { timestamp.replacingOccurrences(of: "T", with: " ").dropLast(5) + "Z" }

/// `--gate URL`: decide on a team gate, with an approver's token (docs/gate.md, "Team gate").
struct GateOptions: ParsableArguments {
    @Option(name: .customLong("gate"), help: ArgumentHelp("A team gate to work on instead of the local store.", valueName: "URL"))
    var gate: String?
    @Option(name: .customLong("gate-token-file"), help: ArgumentHelp(
        "Your approver token for --gate (default ~/.config/airlock/gate-token).", valueName: "FILE"))
    var gateTokenFile: String?
    @Option(name: .customLong("gate-ca"), help: ArgumentHelp("PEM roots that sign the gate's certificate.", valueName: "FILE"))
    var gateCA: String?

    /// The gate client, or nil for the local store.
    func client() throws(AirlockError) -> GateHTTP? {
        guard let gate else { return nil }
        let file = gateTokenFile ?? (currentEnvironment()["HOME"] ?? "/") + "/.config/airlock/gate-token"
        return try GateHTTP(url: gate, token: try GateHTTP.readToken(file, role: .approver), role: .approver, caFile: gateCA)
    }

    static func proposal(_ json: JSON) throws(AirlockError) -> Proposal {
        guard let proposal = GateHTTP.proposal(json) else { throw AirlockError("the gate's answer is not a proposal") }
        return proposal
    }
}

struct Proposals: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proposals",
        abstract: "List the proposals waiting for a decision (--all: every one).",
        discussion: """
            Each line: the id to use with show/approve/deny, its state, when it was made, why
            it was gated (mutation or sensitive), and what it would do. Newest first.
            """)

    @Flag(help: "Also list decided, executed, expired ones.") var all = false
    @Flag(help: "Print one JSON document.") var json = false
    @OptionGroup var state: StateOptions
    @OptionGroup var remote: GateOptions

    func run() throws {
        do throws(AirlockError) {
            let list: [Proposal]
            var groups: [ProposalGroups.Group]
            if let gate = try remote.client() {
                let answer = try gate.call("GET", "/v1/proposals" + (all ? "" : "?state=pending"))
                list = (answer["proposals"]?.array ?? []).compactMap { GateHTTP.proposal($0) }
                groups = ((try? gate.call("GET", "/v1/groups"))?["groups"]?.array ?? []).compactMap(ProposalGroups.Group.init(json:))
            } else {
                list = try openStore(state).proposals(states: all ? nil : [.pending])
                groups = ProposalGroups.groups(ProposalGroups.candidates(list))
            }
            if json {
                printJSON(JSON.object([("proposals", .array(list.map(ProposalJSON.humanView))), ("groups", .array(groups.map(ProposalGroupCommands.json)))]))
                return
            }
            guard !list.isEmpty else {
                print(all ? "no proposals" : "no pending proposals (--all lists decided ones)")
                return
            }
            print("ID        STATE      CREATED               GATED      SUMMARY")
            for p in list {
                print("\(p.id)  \(p.state.rawValue.padded(9))  \(age(p.createdAt).padded(20))  \(p.decision.rawValue.padded(9))  \(p.summary)")
            }
            if !groups.isEmpty {
                print("\nGroups (one decision for each; airlock show G):")
                for group in groups { print("\(group.id)  \(ProposalGroupCommands.summary(group))") }
            }
        } catch {
            throw fail(error)
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one proposal in full: what it would do, why it was gated, its digest and result.",
        discussion: """
            An API proposal shows the request decoded. A command proposal shows the command,
            what approval runs, the workspace snapshot it runs on (every file, its size and
            the snapshot's digest), the providers, and the preview (terraform's plan) in full.
            --file PATH prints one file of the snapshot as the approved run will read it, e.g.
            a script a provisioner runs: `airlock show ID --file deploy.sh`.
            """)

    @Argument(help: "The proposal id.") var id: String
    @Option(help: ArgumentHelp("Print this file of a command proposal's snapshot (relative to the workspace).", valueName: "PATH"))
    var file: String?
    @Flag(help: "Print one JSON document.") var json = false
    @OptionGroup var state: StateOptions
    @OptionGroup var remote: GateOptions

    func run() throws {
        do throws(AirlockError) {
            if let gate = try remote.client() {
                if ProposalGroupCommands.isGroupID(id) {
                    let answer = try gate.call("GET", "/v1/groups/\(id)")
                    if json { printJSON(answer) } else { print(ProposalGroupCommands.text(gate: answer)) }
                    return
                }
                // On a team gate: API proposals (command proposals stay local for now).
                let answer = try gate.call("GET", "/v1/proposals/\(id)")
                let proposal = try GateOptions.proposal(answer)
                let preview = answer["preview"].flatMap { $0 == .null ? nil : $0 }
                if json {
                    guard case .object(var fields) = ProposalJSON.humanView(proposal) else { return }
                    fields.append(("request", ProposalDescription.json(proposal)))
                    fields.append(("preview", preview ?? .null))
                    printJSON(JSON.object(fields))
                } else {
                    print(ProposalDescription.text(proposal, session: nil, manifest: nil, preview: preview,
                                                   rules: answer["requirement"].flatMap(PolicyRequirement.init(json:)).map {
                                                       $0.statusLine(counted: answer["approvals_counted"]?.stringArray ?? [], more: answer["approvals_needed"]?.int ?? 0,
                                                                     proposedAt: proposal.createdAt, pending: proposal.state == .pending)
                                                   }))
                }
                return
            }
            let store = try openStore(state)
            if ProposalGroupCommands.isGroupID(id) {
                let group = try ProposalGroupCommands.find(id, store)
                if json { printJSON(ProposalGroupCommands.json(group)) } else { print(ProposalGroupCommands.text(group)) }
                return
            }
            guard let proposal = try store.proposal(id: id) else {
                throw AirlockError("no proposal \(id)", hint: "`airlock proposals --all` lists them", code: .refused)
            }
            let payload = try? JSON.parse(bytes: proposal.payload)
            let artifact = payload?["artifact"]?.string.flatMap { key in
                key.contains("/") || key.isEmpty ? nil : ArtifactLayout(host: store.stateDir + "/artifacts/" + key)
            }
            if let file {
                try printSnapshotFile(file, artifact: artifact, payload: payload)
                return
            }
            let manifest = artifact.flatMap { try? readTextFile($0.manifest, limit: 64 << 20) }.flatMap(SnapshotManifest.parse)
            let session = try store.session(id: proposal.sessionID)
            let preview = try store.preview(of: proposal)
            let related = ProposalDescription.related(proposal, among: (try? store.proposals(states: nil, session: proposal.sessionID)) ?? [])
            // What the rules ask of it and who has approved (docs/policy.md).
            let status = try Approval.status(of: proposal.id, in: store, place: .local)
            let rules = status.requirement.statusLine(counted: status.counted, more: status.more, proposedAt: proposal.createdAt,
                                                      pending: proposal.state == .pending)
            if json {
                guard case .object(var fields) = ProposalJSON.humanView(proposal) else { return }
                if case .object(let extra) = status.requirement.status(counted: status.counted, more: status.more, proposedAt: proposal.createdAt) {
                    fields += extra
                }
                fields.append(("request", ProposalDescription.json(proposal)))
                fields.append(("preview", preview ?? .null))
                fields.append(("related", .array(related.map { other in
                    .object([("id", .string(other.id)), ("relation", .string("recreate")), ("summary", .string(other.summary)),
                             ("state", .string(other.state.rawValue))])
                })))
                if let manifest {
                    fields.append(("snapshot_files", .array(manifest.entries.map { entry in
                        switch entry.kind {
                        case .directory: return .object([("path", .string(entry.path)), ("type", .string("directory"))])
                        case .file(let size, let sha, let executable):
                            return .object([("path", .string(entry.path)), ("type", .string("file")), ("size", .number(Double(size))),
                                            ("sha256", .string(sha)), ("executable", .bool(executable))])
                        case .symlink(let target):
                            return .object([("path", .string(entry.path)), ("type", .string("symlink")), ("target", .string(target))])
                        }
                    })))
                }
                printJSON(JSON.object(fields))
            } else {
                print(ProposalDescription.text(proposal, session: session, manifest: manifest, preview: preview, related: related, rules: rules))
            }
        } catch {
            throw fail(error)
        }
    }

    /// One snapshot file, read beneath the snapshot (never through a symlink), checked
    /// against the pinned manifest.
    func printSnapshotFile(_ path: String, artifact: ArtifactLayout?, payload: JSON?) throws(AirlockError) {
        guard let artifact, payload?["pins"]?["snapshot"] != nil else {
            throw AirlockError("proposal \(id) has no workspace snapshot (only command proposals do)", code: .refused)
        }
        let relative = path.hasPrefix("./") ? String(path.dropFirst(2)) : path
        guard SnapshotManifest.isRelativePath(relative) else {
            throw AirlockError("--file takes a path relative to the workspace, without .. (e.g. deploy.sh or modules/net/main.tf)", code: .usage)
        }
        let manifest = (try? readTextFile(artifact.manifest, limit: 64 << 20)).flatMap(SnapshotManifest.parse)
        guard let entry = manifest?.entry(relative) else {
            throw AirlockError("\(relative) is not in proposal \(id)'s snapshot", hint: "`airlock show \(id)` lists its files", code: .refused)
        }
        switch entry.kind {
        case .directory:
            throw AirlockError("\(relative) is a directory of the snapshot", hint: "`airlock show \(id)` lists its files", code: .refused)
        case .symlink(let target):
            print("\(relative) is a symlink to \(target) (the approved run sees it as such; Airlock never follows it)")
        case .file(_, let sha, _):
            let bytes: [UInt8]
            do {
                let root = try Beneath.openRoot(artifact.snapshot)
                defer { close(root) }
                bytes = try Beneath.read(root, relative, limit: 1 << 30)
            } catch {
                throw AirlockError("cannot read \(relative) from the snapshot: \(error)", code: .refused)
            }
            guard SigV4.hexSHA256(bytes) == sha else {
                throw AirlockError("\(relative) in the snapshot no longer matches its digest: the snapshot was changed (approval would refuse)", code: .refused)
            }
            // To a pipe or a file, the bytes as they are; to a terminal, neutralized like any
            // text an agent wrote (it is the agent's file).
            if isatty(1) != 0 { print(String(decoding: bytes, as: UTF8.self), terminator: "") } else { writeOutput(bytes) }
        }
    }
}

struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve a proposal and execute exactly what it pinned; prints the result.",
        discussion: """
            The proposal's digest is checked. An API proposal's request is signed with your
            AWS credentials (the environment, ~/.aws, or --aws-profile) and sent to the
            upstream its session used, once. A command proposal (terraform apply, kubectl
            apply, …) runs its apply step on the workspace snapshot it was proposed with, in an
            execution sandbox, after checking that the snapshot and the plan are unchanged (any
            change: nothing runs; edits to the live workspace do not matter); its AWS calls are
            signed with your credentials and audited under the proposal. New state is kept
            with the result and copied into the workspace when its copy there is unchanged. The result is stored
            for the agent (`airlock wait ID`). A proposal runs at most once: if this process
            dies while executing, the proposal becomes `unknown` and is never run again.
            """)

    @Argument(help: "The proposal id, or a group's (gXXXXXXXX, from airlock proposals).") var id: String
    @Option(help: "Why (recorded in the audit log).") var reason: String?
    @Option(name: .customLong("aws-profile"), help: ArgumentHelp("The AWS profile to execute with.", valueName: "NAME"))
    var awsProfile: String?
    @Option(help: ArgumentHelp("For a group: the digest of the members you were shown (airlock show G); only those are approved.", valueName: "DIGEST"))
    var members: String?
    @Flag(help: "Print one JSON document.") var json = false
    @OptionGroup var state: StateOptions
    @OptionGroup var remote: GateOptions

    func run() throws {
        if ProposalGroupCommands.isGroupID(id) { return try approveGroup() }
        let outcome: Proposal
        do throws(AirlockError) {
            if let gate = try remote.client() {
                // The gate executes, with its own credentials, and answers with the result.
                outcome = try GateOptions.proposal(try gate.call("POST", "/v1/proposals/\(id)/approve",
                                                                body: .object([("reason", reason.map(JSON.string) ?? .null)]), timeoutSeconds: 900))
            } else {
                outcome = try approveLocally()
            }
        } catch {
            throw fail(error)
        }
        try report(outcome)
    }

    func approveLocally() throws(AirlockError) -> Proposal {
        try Self.approveLocally(id, reason: reason, awsProfile: awsProfile, state: state)
    }

    /// Each member the digest covers, through the one approve path, in the order proposed;
    /// one that fails is said and the rest go on (each is its own proposal, executed once).
    func approveGroup() throws {
        var failed = 0
        do throws(AirlockError) {
            if let gate = try remote.client() {
                let answer = try gate.call("POST", "/v1/groups/\(id)/approve", body: .object([("members", members.map(JSON.string) ?? .null),
                                                                                            ("reason", reason.map(JSON.string) ?? .null)]), timeoutSeconds: 1800)
                let results = answer["approved"]?.array ?? []
                failed = results.filter { $0["state"]?.string != "succeeded" }.count
                if json { printJSON(answer) } else {
                    for result in results {
                        print(result["error"].map { "\(result["id"]?.string ?? "?"): \($0.string ?? "")" } ?? "approved \(result["id"]?.string ?? "?") (\(result["summary"]?.string ?? "")); \(result["state"]?.string ?? "")")
                    }
                    print("group \(id): \(results.count - failed) of \(results.count) approved and succeeded")
                }
            } else {
            let store = try openStore(state)
            let covered = try ProposalGroupCommands.covered(id, digest: members, store)
            var results: [JSON] = []
            for member in covered {
                do throws(AirlockError) {
                    let outcome = try Self.approveLocally(member.id, reason: reason.map { "\($0) (group \(id))" } ?? "group \(id)", awsProfile: awsProfile, store: store)
                    if outcome.state != .succeeded { failed += 1 }
                    results.append(ProposalJSON.humanView(outcome))
                    if !json {
                        print(outcome.state == .pending ? "approval counted for \(outcome.id) (\(outcome.summary)); it needs more distinct approvers"
                                                        : "approved \(outcome.id) (\(outcome.summary)); \(outcome.state.rawValue)")
                    }
                } catch {
                    failed += 1
                    results.append(.object([("id", .string(member.id)), ("error", .string(error.message))]))
                    if !json { writeError("airlock: \(member.id): \(error.message)\n") }
                }
            }
            if json { printJSON(.object([("group", .string(id)), ("approved", .array(results))])) }
            else { print("group \(id): \(covered.count - failed) of \(covered.count) approved and succeeded") }
            }
        } catch {
            throw fail(error)
        }
        if failed > 0 { throw ExitCode(1) }
    }

    /// The one approve path on the local store, with your credentials for the proposal's kind
    /// (`airlock approve`, `airlock review`).
    static func approveLocally(_ id: String, reason: String?, awsProfile: String?, state: StateOptions) throws(AirlockError) -> Proposal {
        try approveLocally(id, reason: reason, awsProfile: awsProfile, store: try openStore(state))
    }

    /// The same on an open store (a group's members: one open, whose recovery runs once).
    static func approveLocally(_ id: String, reason: String?, awsProfile: String?, store: SQLiteProposalStore) throws(AirlockError) -> Proposal {
        try LocalApproval.approve(id, by: Actor.currentUser(), reason: reason, awsProfile: awsProfile, store: store, environment: currentEnvironment())
    }

    func report(_ outcome: Proposal) throws {
        if outcome.state == .pending {
            // Counted; the rules ask for more distinct approvers (docs/policy.md).
            if json { printJSON(ProposalJSON.humanView(outcome)) } else {
                print("approval counted for \(outcome.id) (\(outcome.summary)); it needs more distinct approvers before it runs (`airlock show \(outcome.id)` says how many)")
            }
            return
        }
        if json {
            printJSON(ProposalJSON.humanView(outcome))
        } else {
            print("approved \(outcome.id) (\(outcome.summary)); \(outcome.state.rawValue)")
            if let result = outcome.result { print(ProposalDescription.resultText(result)) }
            if outcome.state == .unknown, let note = outcome.decisionNote ?? outcome.result?.error { print("  \(note)") }
        }
        if outcome.state != .succeeded { throw ExitCode(1) }
    }
}

struct Deny: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deny", abstract: "Deny a proposal: nothing is executed; the agent is told why.")

    @Argument(help: "The proposal id, or a group's (gXXXXXXXX, from airlock proposals).") var id: String
    @Option(help: "Why (the agent sees it; recorded in the audit log).") var reason: String?
    @Option(help: ArgumentHelp("For a group: the digest of the members you were shown (airlock show G); only those are denied.", valueName: "DIGEST"))
    var members: String?
    @OptionGroup var state: StateOptions
    @OptionGroup var remote: GateOptions

    func run() throws {
        do throws(AirlockError) {
            if ProposalGroupCommands.isGroupID(id) {
                if let gate = try remote.client() {
                    let answer = try gate.call("POST", "/v1/groups/\(id)/deny", body: .object([("members", members.map(JSON.string) ?? .null),
                                                                                             ("reason", reason.map(JSON.string) ?? .null)]))
                    let results = answer["denied"]?.array ?? []
                    for result in results { print("denied \(result["id"]?.string ?? "?") (\(result["summary"]?.string ?? ""))") }
                    print("group \(id): \(results.count) denied")
                    return
                }
                let store = try openStore(state)
                let covered = try ProposalGroupCommands.covered(id, digest: members, store)
                for member in covered {
                    let proposal = try store.apply(.deny, to: member.id, actor: Actor.currentUser(), note: reason.map { "\($0) (group \(id))" } ?? "group \(id)")
                    print("denied \(proposal.id) (\(proposal.summary))")
                }
                print("group \(id): \(covered.count) denied")
                return
            }
            if let gate = try remote.client() {
                let proposal = try GateOptions.proposal(try gate.call("POST", "/v1/proposals/\(id)/deny",
                                                                     body: .object([("reason", reason.map(JSON.string) ?? .null)])))
                print("denied \(proposal.id) (\(proposal.summary))")
                return
            }
            let store = try openStore(state)
            let proposal = try store.apply(.deny, to: id, actor: Actor.currentUser(), note: reason)
            // A denied command's provider cache is not needed any more (its plan stays, for the record).
            if proposal.kind == .command, let payload = try? JSON.parse(bytes: proposal.payload),
               let key = payload["artifact"]?.string, !key.isEmpty, !key.contains("/") {
                PinnedFiles.remove(store.stateDir + "/artifacts/" + key + "/tfdata")
            }
            print("denied \(proposal.id) (\(proposal.summary))")
        } catch {
            throw fail(error)
        }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Work with the tamper-evident audit log.", subcommands: [Verify.self, Export.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the audit log's hash chain and that the store agrees with it.",
            discussion: """
                Fails (exit 1) if any entry was edited, deleted or reordered, or if a proposal's
                state, decision, payload or digest in the store differs from what the log
                recorded. Prints the head hash: keep it elsewhere to detect a rewritten chain.

                On a team gate (--gate URL) or an export (--file), it also checks every signed
                checkpoint of the chain's head against the gate's Ed25519 public key: pin it
                with --public-key (from `airlock gate audit-key public`), else the key the gate
                serves is used and said so. --against EXPORT holds the chain to the checkpoints
                of an earlier export kept elsewhere: a store whose tail was deleted, checkpoints
                and all, still fails.
                """)
        @Flag(help: "Print one JSON document.") var json = false
        @Option(help: ArgumentHelp("Verify an export (airlock audit export) offline.", valueName: "FILE")) var file: String?
        @Option(name: .customLong("public-key"), help: ArgumentHelp("The gate's audit public key (base64), or a file holding it.", valueName: "KEY"))
        var publicKey: String?
        @Option(help: ArgumentHelp("An earlier export whose signed checkpoints the chain must still match.", valueName: "EXPORT"))
        var against: String?
        @OptionGroup var state: StateOptions
        @OptionGroup var remote: GateOptions

        func run() throws {
            if file != nil || remote.gate != nil {
                try verifySigned()
                return
            }
            let report: AuditChain.Report
            do throws(AirlockError) {
                report = try openStore(state).verifyAudit()
            } catch {
                throw fail(error)
            }
            if json {
                printJSON(JSON.object([("intact", .bool(report.intact)), ("entries", .number(Double(report.entries))),
                                       ("head", .string(report.head)), ("problems", .array(report.problems.map(JSON.string)))]))
            } else if report.intact {
                print("audit log intact: \(report.entries) entries, head \(report.head)")
            } else {
                print("audit log NOT intact (\(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")):")
                for problem in report.problems { print("  - \(problem)") }
            }
            if !report.intact { throw ExitCode(1) }
        }

        static func readExport(_ path: String) throws(AirlockError) -> JSON {
            guard let json = try? JSON.parseStrict(bytes: try readFile(path, limit: 1 << 30)) else {
                throw AirlockError("\(path) is not JSON (an `airlock audit export`)", code: .usage)
            }
            return json
        }

        func verifySigned() throws {
            let problems: [String], entries: [AuditEntry], checkpoints: [AuditCheckpoint], keyNote: String?
            do throws(AirlockError) {
                let document: JSON
                if let file {
                    document = try Self.readExport(file)
                } else if let gate = try remote.client() {
                    document = try gate.call("GET", "/v1/audit")
                } else {
                    throw AirlockError("--file or --gate is needed", code: .usage)
                }
                let read = try AuditExport.read(document)
                entries = read.entries
                checkpoints = read.checkpoints
                var key: [UInt8]?
                if let publicKey {
                    let text = access(publicKey, R_OK) == 0 ? String(decoding: try readFile(publicKey, limit: 4096), as: UTF8.self) : publicKey
                    key = Base64.decode(text.split(whereSeparator: { $0 == "\n" || $0 == " " }).joined())
                    guard key?.count == 32 else { throw AirlockError("--public-key is not a base64 Ed25519 public key (32 bytes)", code: .usage) }
                    keyNote = nil
                } else {
                    key = read.publicKey
                    keyNote = "the key was taken from the log itself; pin it with --public-key to detect a replaced key"
                }
                guard let key else {
                    throw AirlockError("the log has no signing key (the gate's gate.yaml names no audit.signing_key)",
                                       hint: "verify the chain alone on the gate's store, or configure audit signing", code: .refused)
                }
                var external: [AuditCheckpoint] = []
                if let against {
                    external = try AuditExport.read(try Self.readExport(against)).checkpoints
                }
                var found = AuditSigner.verify(entries: entries, checkpoints: checkpoints, publicKey: key, external: external)
                if checkpoints.isEmpty && !entries.isEmpty { found.append("the log has no signed checkpoint") }
                problems = found
            } catch {
                throw fail(error)
            }
            let head = entries.last.map { "\($0.seq) \($0.hash)" } ?? "empty"
            if json {
                printJSON(JSON.object([("intact", .bool(problems.isEmpty)), ("entries", .number(Double(entries.count))),
                                       ("checkpoints", .number(Double(checkpoints.count))), ("head", .string(head)),
                                       ("problems", .array(problems.map(JSON.string))), ("key_note", keyNote.map(JSON.string) ?? .null)]))
            } else if problems.isEmpty {
                print("audit log intact: \(entries.count) entries, \(checkpoints.count) signed checkpoints, head \(head)")
                if let keyNote { print("  note: \(keyNote)") }
            } else {
                print("audit log NOT intact (\(problems.count) problem\(problems.count == 1 ? "" : "s")):")
                for problem in problems { print("  - \(problem)") }
            }
            if !problems.isEmpty { throw ExitCode(1) }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a team gate's audit log with its signed checkpoints (JSON), to keep elsewhere.",
            discussion: """
                `airlock audit verify --file EXPORT --public-key KEY` checks it offline; `--against
                EXPORT` holds a later log to it.
                """)
        @OptionGroup var remote: GateOptions

        func run() throws {
            do throws(AirlockError) {
                guard let gate = try remote.client() else {
                    throw AirlockError("--gate URL is needed (a local store has no signed checkpoints)", code: .usage)
                }
                printJSON(try gate.call("GET", "/v1/audit"))
            } catch {
                throw fail(error)
            }
        }
    }
}

/// `wait` and `status`: inside the sandbox through the agent socket, outside from the store.
enum ProposalQuery {
    static func fetch(id: String, op: String, timeout: Int?, state: StateOptions) throws(AirlockError) -> JSON {
        let environment = currentEnvironment()
        if let socket = environment["AIRLOCK_AGENT_SOCKET"] {
            var request: [(String, JSON)] = [("op", .string(op)), ("id", .string(id))]
            if let timeout { request.append(("timeout", .number(Double(timeout)))) }
            let answer = try AgentAPIClient.call(socketPath: socket, request: .object(request))
            guard answer["ok"]?.bool == true, let proposal = answer["proposal"] else {
                throw AirlockError(answer["error"]?.string ?? "the broker did not answer", code: .usage)
            }
            return proposal
        }
        let store = try openStore(state)
        let deadline = Clock.monotonicSeconds() + Double(timeout ?? 86_400)
        while true {
            // No daemon expires anything locally: waiting past a deadline expires it here.
            try store.expireOverdue()
            guard let proposal = try store.proposal(id: id) else { throw AirlockError("no proposal \(id)", code: .usage) }
            if op == "status" || proposal.state.isFinal || Clock.monotonicSeconds() >= deadline {
                return ProposalJSON.humanView(proposal)
            }
            usleep(200_000)
            try store.recoverInterruptedExecutions()
        }
    }

    static func print(_ proposal: JSON, json: Bool) {
        if json {
            printJSON(proposal)
            return
        }
        let id = proposal["id"]?.string ?? "?"
        let state = proposal["state"]?.string ?? "?"
        printText("proposal \(id): \(state) (\(proposal["summary"]?.string ?? ""))")
        if let note = proposal["note"]?.string { printText("  note: \(note)") }
        if state == "expired" {
            writeError("AirlockExpired: proposal \(id) expired before it was decided or run (\(proposal["note"]?.string ?? "its deadline passed")); nothing ran\n")
        }
        if let result = proposal["result"].flatMap(ExecutionResult.init(json:)) {
            printText(ProposalDescription.resultText(result))
        } else if state == "pending" {
            printText("  still waiting for a human: airlock approve \(id) / airlock deny \(id)")
        }
    }

    /// 0 succeeded, 1 did not (denied, failed, unknown, expired), 75 still pending.
    static func exitCode(_ proposal: JSON) -> Int32 {
        switch proposal["state"]?.string {
        case "succeeded"?: return 0
        case "pending"?, "approved"?, "executing"?: return 75
        default: return 1
        }
    }
}

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until a proposal is decided and executed; print its result.",
        discussion: """
            Inside `airlock run` this asks the broker (the agent's only view of the gate);
            outside it reads the state directory. Exit status: 0 executed successfully; 1
            denied, failed, expired or unknown; 75 still pending when --timeout ran out.
            """)

    @Argument(help: "The proposal id.") var id: String
    @Option(help: ArgumentHelp("Give up after this many seconds (default: a day).", valueName: "SECONDS")) var timeout: Int?
    @Flag(help: "Print one JSON document.") var json = false
    @OptionGroup var state: StateOptions

    func run() throws {
        let proposal: JSON
        do throws(AirlockError) {
            proposal = try ProposalQuery.fetch(id: id, op: "wait", timeout: timeout, state: state)
        } catch {
            throw fail(error)
        }
        ProposalQuery.print(proposal, json: json)
        throw ExitCode(ProposalQuery.exitCode(proposal))
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Print a proposal's state now (exit status as for wait).")

    @Argument(help: "The proposal id.") var id: String
    @Flag(help: "Print one JSON document.") var json = false
    @OptionGroup var state: StateOptions

    func run() throws {
        let proposal: JSON
        do throws(AirlockError) {
            proposal = try ProposalQuery.fetch(id: id, op: "status", timeout: nil, state: state)
        } catch {
            throw fail(error)
        }
        ProposalQuery.print(proposal, json: json)
        throw ExitCode(ProposalQuery.exitCode(proposal))
    }
}

extension String {
    func padded(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
