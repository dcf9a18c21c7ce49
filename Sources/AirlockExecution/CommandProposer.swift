import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import Glibc

/// The broker's side of a shim: classifies the command again (the shim runs in the agent's
/// sandbox and proves nothing), and for a change prepares one proposal (docs/commands.md):
/// snapshots the workspace, runs the tool's prepare steps (terraform init and plan) on the
/// snapshot in execution sandboxes, keeps the preview, and stores the proposal.
public final class CommandProposer: @unchecked Sendable {
    public let sessionID: String
    public let stateDir: String
    public let workspace: String
    public let tools: [String: InterceptedTool]
    public let store: any ProposalIntake
    public let log: BrokerLog
    public let environment: [String: String]
    public let awsEndpoint: String?
    public let awsProfile: String?
    public let upstream: String
    /// The agent's own network: a prepare step reaches no more (plus the tool's hosts).
    public let network: NetworkGrant
    public let exclusion: [String]
    public let maskedPaths: Set<String>
    public let snapshotLimit: Int
    private let inFlight = SessionCounter()
    /// Preparations one session may run at once: each is a sandbox and a workspace copy.
    public static let preparationLimit = 4

    /// Where the snapshot is copied from: the live workspace, or (on a team gate) the
    /// snapshot an agent host uploaded, unpacked. `workspace` is always the path the agent
    /// saw, where the snapshot appears in execution sandboxes.
    public var workspaceSource: String?
    /// The terraform workspace the agent selected, when it is not read from the live
    /// workspace's `.terraform/environment` (a gate has only the snapshot, which leaves
    /// `.terraform` out).
    public var terraformWorkspaceName: String?
    /// `airlock run --gate`: changes are prepared and proposed on the team gate, which gets
    /// the command and the workspace snapshot (`SnapshotArchive`) and answers as `propose`
    /// does here.
    public var remote: (@Sendable (_ archive: [UInt8]) throws(AirlockError) -> JSON)?
    /// The `airlock` binary that starts execution sandboxes (a gate's), and where their
    /// records go (ExecutionRunner).
    public var launcher: String?
    public var spoolInto: (store: any CallRecorder, sessionID: String)?
    /// A team gate's rules on the draft before it is stored (docs/policy.md): throws for a
    /// forbidden change, sets what an allowed or asked one needs.
    public var decide: (@Sendable (ProposalDraft) throws(AirlockError) -> ProposalDraft)?
    /// A team gate's blob store: the artifact is kept there too (its listing pinned as
    /// `artifact`), so any replica can apply it (ArtifactBlobs).
    public var artifactBlobs: (any BlobStore)?

    public init(sessionID: String, stateDir: String, workspace: String, tools: [InterceptedTool],
                store: any ProposalIntake, log: BrokerLog, environment: [String: String],
                awsEndpoint: String?, awsProfile: String?, upstream: String, network: NetworkGrant, exclusion: [String],
                maskedPaths: Set<String>, snapshotLimit: Int) {
        self.sessionID = sessionID
        self.stateDir = stateDir
        self.workspace = workspace
        self.tools = Dictionary(tools.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.store = store
        self.log = log
        self.environment = environment
        self.awsEndpoint = awsEndpoint
        self.awsProfile = awsProfile
        self.upstream = upstream
        self.network = network
        self.exclusion = exclusion
        self.maskedPaths = maskedPaths
        self.snapshotLimit = snapshotLimit
    }

    public static func failure(_ message: String, decision: String? = nil, exitCode: Int? = nil, output: String? = nil) -> JSON {
        var fields: [(String, JSON)] = [("ok", .bool(false)), ("error", .string(message))]
        if let decision { fields.append(("decision", .string(decision))) }
        if let exitCode { fields.append(("exit_code", .number(Double(exitCode)))) }
        if let output { fields.append(("output", .string(output))) }
        return .object(fields)
    }

    public func propose(_ request: JSON) -> JSON {
        guard let name = request["tool"]?.string, let tool = tools[name] else {
            return Self.failure("this session does not intercept \(request["tool"]?.string ?? "that tool")")
        }
        guard case .array(let items)? = request["argv"], items.count <= 4096 else { return Self.failure("argv must be a list of strings") }
        let arguments = items.compactMap(\.string)
        guard arguments.count == items.count else { return Self.failure("argv must be a list of strings") }
        guard let directory = request["cwd"]?.string, directory.hasPrefix("/"),
              PathResolution.isInside(PathResolution.normalize(directory), workspace) else {
            return Self.failure("\(name) changes run from inside the workspace (\(workspace)); cd there first", decision: "deny")
        }
        let ruling = CommandClassifier.classify(arguments, profile: tool.profile, context: CommandContext(workspace: workspace, directory: directory))
        let command = ([name] + arguments).joined(separator: " ")
        log.write("command \(command): \(ruling.decision.rawValue) (\(ruling.rule))")
        switch ruling.decision {
        case .read:
            return .object([("ok", .bool(true)), ("decision", .string("read"))])
        case .deny:
            do { try store.recordRefusal(sessionID: sessionID, summary: command, rule: ruling.rule + ": " + ruling.reason) } catch {
                log.write("command \(command): the refusal could not be recorded in the audit log: \(error.message)")
            }
            return Self.failure("\(ruling.reason) (\(ruling.rule))", decision: "deny")
        case .mutation, .sensitive:
            guard inFlight.enter(limit: Self.preparationLimit) else {
                return Self.failure("\(Self.preparationLimit) changes of this session are being prepared already; wait for one to be proposed, then try again")
            }
            defer { inFlight.leave() }
            do {
                if let remote {
                    return try proposeRemotely(tool: tool, arguments: arguments, directory: PathResolution.normalize(directory), ruling: ruling, remote: remote)
                }
                return try prepare(tool: tool, arguments: arguments, directory: PathResolution.normalize(directory), ruling: ruling, command: command)
            } catch let refusal as PreparationFailure {
                return refusal.json
            } catch {
                return Self.failure("preparing the proposal failed: \(error)")
            }
        }
    }

    /// Why nothing was proposed, as the shim reports it.
    public struct PreparationFailure: Error {
        var json: JSON
        init(_ message: String, decision: String? = nil, exitCode: Int? = nil, output: String? = nil) {
            json = CommandProposer.failure(message, decision: decision, exitCode: exitCode, output: output)
        }
    }

    public func relative(_ path: String) -> String {
        path == workspace ? "." : String(path.dropFirst(workspace.count + 1))
    }

    private func prepare(tool: InterceptedTool, arguments: [String], directory: String, ruling: CommandRuling, command: String) throws -> JSON {
        let key = RandomID.make(16)
        let artifact = ArtifactLayout(host: stateDir + "/artifacts/" + key)
        do {
            try PinnedFiles.makeParents(of: artifact.host + "/x")
        } catch {
            throw PreparationFailure("cannot make the artifact directory: \(error)")
        }
        var keep = false
        defer { if !keep { PinnedFiles.remove(artifact.host) } }
        var steps = CommandSteps.make(ruling, arguments: arguments, artifact: ArtifactLayout.mount)
        if let refusal = steps.refusal { throw PreparationFailure("\(command): \(refusal)", decision: "deny") }

        // 1. The workspace, copied: everything the execution reads comes from here.
        let exclusion = SnapshotExclusion(patterns: tool.profile.snapshotExclude + self.exclusion, paths: maskedPaths)
        let copied: WorkspaceSnapshot.Result
        do {
            copied = try WorkspaceSnapshot.copy(workspaceSource ?? workspace, to: artifact.snapshot, exclusion: exclusion, limit: snapshotLimit)
        } catch {
            throw PreparationFailure("cannot snapshot the workspace: \(error)")
        }
        let workingDirectory = relative(ruling.workingDirectory)
        if workingDirectory != ".", copied.manifest.entry(workingDirectory)?.kind != .directory {
            throw PreparationFailure("\(workingDirectory) is not a directory in the workspace snapshot (left out, or a symlink); nothing was proposed")
        }
        for path in ruling.pinnedPaths {
            guard case .file? = copied.manifest.entry(relative(path))?.kind else {
                throw PreparationFailure("\(relative(path)) is not a regular file of the workspace snapshot (a symlink, a directory, or left out): the approved run could not read what you see; nothing was proposed")
            }
        }

        var runner = ExecutionRunner(stateDir: stateDir, artifact: artifact, workspace: workspace, tool: tool, environment: environment,
                                     awsEndpoint: awsEndpoint, awsProfile: awsProfile, network: network)
        runner.launcher = launcher
        runner.spoolInto = spoolInto
        var notes: [String] = []
        if !copied.leftOut.isEmpty { notes.append("left out of the snapshot (not regular files): \(copied.leftOut.prefix(10).joined(separator: ", "))") }
        var terraformWorkspace = "default"
        if tool.profile.executionCLIConfig == "terraform" {
            let config = try terraformCLIConfig()
            notes += config.dropped.map { "left out of your terraform CLI configuration: \($0)" }
            runner.cliConfig = config
            do {
                try writeFileAtomically(artifact.cliConfig, Array(config.text.utf8), mode: 0o644)
                for directory in [artifact.dataDirectory, artifact.plan] where mkdir(directory, 0o755) != 0 {
                    throw AirlockError("\(directory): \(String(cString: strerror(errno)))")
                }
            } catch {
                throw PreparationFailure("cannot set up the artifact: \(error)")
            }
            // The terraform workspace the agent selected (`terraform workspace select`).
            terraformWorkspace = selectedTerraformWorkspace(workingDirectory)
            if terraformWorkspace != "default" {
                try? writeFileAtomically(artifact.dataDirectory + "/environment", Array(terraformWorkspace.utf8), mode: 0o644)
            }
            if let saved = steps.savedPlan {
                let bytes: [UInt8]
                do {
                    let root = try Beneath.openRoot(artifact.snapshot)
                    defer { close(root) }
                    bytes = try Beneath.read(root, relative(saved), limit: 256 << 20)
                    try writeFileAtomically(artifact.plan + "/plan.tfplan", bytes, mode: 0o644)
                } catch {
                    throw PreparationFailure("cannot read the saved plan \(relative(saved)) from the snapshot: \(error)")
                }
            }
        }

        var transcript = ""
        func step(_ step: CommandStep, _ name: String) -> (Int32, String) {
            let (status, output) = runner.run(step, mode: .prepare, directory: ruling.workingDirectory, name: name)
            return (status, output)
        }
        // 2. Setup (terraform init: providers and modules into the artifact, the lock file into
        //    the snapshot). Nothing the agent wrote runs here.
        for (index, setup) in steps.setup.enumerated() {
            let (status, output) = step(setup, "\(index)-setup")
            transcript += output
            guard status == 0 else {
                log.write("command \(command): preparing with \(tool.profile.tool) \(setup.arguments.joined(separator: " ")) failed (exit \(status))")
                throw PreparationFailure("preparing the proposal failed: `\(tool.profile.tool) \(setup.arguments.joined(separator: " "))` exited \(status); nothing was proposed",
                                         exitCode: Int(status), output: transcript)
            }
        }
        // 3. The outputs the apply writes: placeholders in the snapshot, where they are bound.
        var outputs: [(path: String, original: String?)] = []
        if tool.profile.executionCLIConfig == "terraform" {
            let record = try? JSON.parse(bytes: readFile(artifact.dataDirectory + "/terraform.tfstate", limit: 1 << 20))
            steps = CommandSteps.make(ruling, arguments: arguments, artifact: ArtifactLayout.mount, localState: TerraformState.isLocal(backendRecord: record))
            var seen = Set<String>()
            for output in TerraformState.outputs(backendRecord: record, workspace: terraformWorkspace) + tool.profile.executionOutputs {
                let absolute = PathResolution.absolute(output, from: ruling.workingDirectory)
                guard PathResolution.isInside(absolute, workspace), absolute != workspace else {
                    throw PreparationFailure("terraform keeps its state at \(absolute), outside the workspace: the snapshot cannot hold it; nothing was proposed")
                }
                let path = relative(absolute)
                guard seen.insert(path).inserted else { continue }
                outputs.append((path, try outputPlaceholder(artifact, path)))
            }
        } else {
            for output in tool.profile.executionOutputs {
                let path = relative(PathResolution.absolute(output, from: ruling.workingDirectory))
                outputs.append((path, try outputPlaceholder(artifact, path)))
            }
        }
        runner.outputs = outputs.map(\.path)
        // 4. The snapshot as the plan sees it: digested now, checked again after the
        //    read-only steps and before the approved run.
        let manifest: SnapshotManifest
        do {
            manifest = try WorkspaceSnapshot.manifest(of: artifact.snapshot)
            try writeFileAtomically(artifact.manifest, Array(manifest.text.utf8), mode: 0o644)
        } catch {
            throw PreparationFailure("cannot digest the snapshot: \(error)")
        }
        // 5. The plan (agent-written code may run here: `data "external"`; the snapshot is
        //    read-only, only the plan directory is writable), digested right after.
        if let plan = steps.plan {
            let (status, output) = step(plan, "1-plan")
            transcript += output
            guard status == 0 else {
                throw PreparationFailure("preparing the proposal failed: `\(tool.profile.tool) \(plan.arguments.joined(separator: " "))` exited \(status); nothing was proposed",
                                         exitCode: Int(status), output: transcript)
            }
        }
        var pins: [(String, JSON)] = [("snapshot", .string(manifest.digest))]
        let planFile = artifact.plan + "/plan.tfplan"
        if access(planFile, F_OK) == 0 {
            do {
                pins.append(("plan", .string(try PinnedFiles.digest(planFile))))
            } catch {
                throw PreparationFailure("cannot pin the plan: \(error)")
            }
        }
        // 6. The preview, with everything read-only.
        var preview: String?
        if let show = steps.preview {
            let (status, output) = step(show, "2-preview")
            guard show.successStatuses.contains(status) else {
                throw PreparationFailure("the preview (`\(tool.profile.tool) \(show.arguments.joined(separator: " "))`) failed with exit \(status)",
                                         exitCode: Int(status), output: output)
            }
            preview = output
            if let planJSON = steps.planJSON {
                // Provisioners run commands at apply that `show` does not print: the human
                // must see them (they run with the execution's AWS rights).
                let (status, json) = step(planJSON, "3-plan-json")
                let parsed: JSON
                do {
                    guard status == 0 else { throw AirlockError("exit \(status)") }
                    parsed = try JSON.parse(json)
                } catch {
                    throw PreparationFailure("reading the plan as JSON failed (\(error)); nothing was proposed", exitCode: Int(status),
                                             output: String(json.prefix(4096)))
                }
                preview = output + TerraformPlanFacts.describe(TerraformPlanFacts.provisioners(parsed))
            }
            if PlanSummary.hasNoChanges(output) || ([.dryRun, .kubectlDiff].contains(ruling.prepare) && output.trimmingWhitespace.isEmpty) {
                return .object([("ok", .bool(true)), ("decision", .string("unchanged")),
                                ("output", .string("airlock: \(command): the plan has no changes; nothing to approve.\n" + output))])
            }
        }
        // 7. Nothing changed while it was shown.
        let after = try? WorkspaceSnapshot.manifest(of: artifact.snapshot)
        guard after?.digest == manifest.digest else {
            throw PreparationFailure("the snapshot changed while the proposal was prepared (\((after.map { $0.differences(from: manifest) } ?? ["unreadable"]).joined(separator: ", "))); nothing was proposed")
        }
        if let pinned = pins.first(where: { $0.0 == "plan" })?.1.string, (try? PinnedFiles.digest(planFile)) != pinned {
            throw PreparationFailure("the plan changed while it was shown; nothing was proposed")
        }
        if let artifactBlobs {
            do {
                pins.append(("artifact", .string(try ArtifactBlobs.store(artifact, blobs: artifactBlobs))))
            } catch {
                throw PreparationFailure("cannot keep the artifact in the gate's blob store (\(error.message)); nothing was proposed")
            }
        }

        var summary = "\(tool.profile.tool) \(ruling.words.joined(separator: " ")) in \(relative(ruling.workingDirectory))"
        if let preview, let counts = PlanSummary.counts(preview) { summary += " (\(counts))" }
        if ruling.prepare == .dryRun, let preview {
            let operations = preview.split(separator: "\n").filter { $0.hasPrefix("(dryrun)") }.count
            summary += " (\(operations) operation\(operations == 1 ? "" : "s"))"
        }
        let config = runner.cliConfig
        // The program the session resolved and its digest (docs/tools.md): the apply runs it.
        pins.append(("binary", .string(tool.digest)))
        let payload = CommandPayload(
            tool: tool.profile.tool, binary: tool.binary, command: [tool.profile.tool] + arguments, apply: steps.apply.arguments,
            workspace: workspace, directory: ruling.workingDirectory, artifact: key,
            pins: pins.compactMap { name, value in value.string.map { (name, $0) } }, reason: ruling.reason,
            snapshotFiles: manifest.fileCount, snapshotBytes: Int(manifest.totalBytes), snapshotDigest: manifest.digest,
            outputs: outputs.map { CommandPayload.Output(path: $0.path, original: $0.original) }, awsEndpoint: awsEndpoint,
            mirrorPaths: config?.mirrorPaths, mirrorHosts: config?.mirrorHosts,
            providers: config == nil ? nil : providers(artifact, workingDirectory).map {
                CommandPayload.Provider(address: $0.address, version: $0.version, hashes: $0.hashes)
            },
            notes: notes)
        // The files the command names, from the snapshot (the human reviews what will be applied),
        // and the plan's text: the preview, a record beside the proposal, outside its digest.
        var shown: [(String, JSON)] = []
        var shownBytes = 0
        if let root = try? Beneath.openRoot(artifact.snapshot) {
            defer { close(root) }
            for path in ruling.pinnedPaths {
                guard let bytes = try? Beneath.read(root, relative(path), limit: 256 << 10), shownBytes + bytes.count <= 256 << 10,
                      let text = String(validating: bytes, as: UTF8.self) else { continue }
                shownBytes += bytes.count
                shown.append((relative(path), .string(text)))
            }
        }
        var previewFields: [(String, JSON)] = []
        if let preview { previewFields.append(("preview", .string(preview))) }
        if !shown.isEmpty { previewFields.append(("files", .object(shown))) }
        do {
            var draft = ProposalDraft(
                sessionID: sessionID, kind: .command, summary: summary,
                ruling: Ruling(ruling.decision, ruling.decision == .sensitive ? "\(ruling.rule): \(ruling.reason)" : ruling.rule),
                payload: ProposalPayload.command(payload).bytes, upstream: upstream,
                preview: previewFields.isEmpty ? nil : .object(previewFields))
            if let decide { draft = try decide(draft) }
            let proposal = try store.propose(draft)
            keep = true
            PinnedFiles.remove(artifact.steps)
            log.write("proposal \(proposal.id): \(summary) is pending approval (snapshot sha256:\(manifest.digest))")
            return .object([("ok", .bool(true)), ("decision", .string("mutation")), ("proposal", ProposalJSON.agentView(proposal))])
        } catch {
            throw PreparationFailure("cannot store the proposal: \(error.message)")
        }
    }

    /// The snapshot's copy of an output, or an empty file where it will be bound; its digest
    /// when it existed (the copy-back compares the workspace's file with it).
    public func outputPlaceholder(_ artifact: ArtifactLayout, _ path: String) throws -> String? {
        let root = try Beneath.openRoot(artifact.snapshot)
        defer { close(root) }
        let parts = path.split(separator: "/").map(String.init)
        if parts.count > 1 {
            // Parents (terraform.tfstate.d/prod/) are made in the snapshot, one by one.
            var current = ""
            for part in parts.dropLast() {
                current += (current.isEmpty ? "" : "/") + part
                let fd = try? Beneath.open(root, current, flags: O_RDONLY | O_DIRECTORY)
                if let fd { close(fd); continue }
                let parent = current.contains("/") ? String(current[..<current.lastIndex(of: "/")!]) : ""
                let parentFD = parent.isEmpty ? dup(root) : try Beneath.open(root, parent, flags: O_RDONLY | O_DIRECTORY)
                defer { close(parentFD) }
                guard mkdirat(parentFD, part, 0o755) == 0 else {
                    throw PreparationFailure("cannot make \(current) in the snapshot: \(String(cString: strerror(errno)))")
                }
            }
        }
        if let info = fileStatus(root, path) {
            guard info.st_mode & S_IFMT == S_IFREG else {
                throw PreparationFailure("\(path) (where the apply writes its state) is not a regular file in the workspace; nothing was proposed")
            }
            return try PinnedFiles.digest(artifact.snapshot + "/" + path)
        }
        try WorkspaceSnapshot.placeholder(artifact.snapshot, path)
        return nil
    }

    public func fileStatus(_ root: Int32, _ path: String) -> stat? {
        let parent = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : ""
        let name = path.split(separator: "/").last.map(String.init) ?? path
        let fd = parent.isEmpty ? dup(root) : ((try? Beneath.open(root, parent, flags: O_RDONLY | O_DIRECTORY)) ?? -1)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return Beneath.status(fd, name)
    }

    /// The CLI configuration for the execution, made from the human's (TF_CLI_CONFIG_FILE,
    /// else ~/.terraformrc). A mirror the agent could write into is refused.
    public func terraformCLIConfig() throws -> TerraformCLIConfig {
        let home = environment["HOME"] ?? "/"
        let path = environment["TF_CLI_CONFIG_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.terraformrc"
        let text = access(path, R_OK) == 0 ? try? readTextFile(path, limit: 1 << 20) : nil
        let config: TerraformCLIConfig
        do {
            config = try TerraformCLIConfig.generate(from: text, source: path)
        } catch {
            throw PreparationFailure("cannot read your terraform CLI configuration \(path): \(error); nothing was proposed")
        }
        for mirror in config.mirrorPaths {
            let real = PinnedFiles.realPath(mirror) ?? PathResolution.normalize(mirror)
            if PathResolution.isInside(real, workspace) || PathResolution.isInside(real, stateDir) {
                throw PreparationFailure("your terraform CLI configuration's filesystem_mirror \(mirror) is where the agent can write (the workspace or Airlock's state); providers from it would run with the approval's rights. Move the mirror elsewhere; nothing was proposed")
            }
        }
        return config
    }

    /// `.terraform/environment` of the live working directory (read beneath the workspace).
    public func selectedTerraformWorkspace(_ workingDirectory: String) -> String {
        if let terraformWorkspaceName { return TerraformState.isWorkspaceName(terraformWorkspaceName) ? terraformWorkspaceName : "default" }
        guard let root = try? Beneath.openRoot(workspace) else { return "default" }
        defer { close(root) }
        let path = (workingDirectory == "." ? "" : workingDirectory + "/") + ".terraform/environment"
        guard let bytes = try? Beneath.read(root, path, limit: 256),
              case let name = String(decoding: bytes.filter { $0 != 0x0A && $0 != 0x0D && $0 != 0x20 }, as: UTF8.self),
              TerraformState.isWorkspaceName(name) else { return "default" }
        return name
    }

    /// The providers of the snapshot's lock file (after init wrote it).
    public func providers(_ artifact: ArtifactLayout, _ workingDirectory: String) -> [TerraformProvider] {
        guard let root = try? Beneath.openRoot(artifact.snapshot) else { return [] }
        defer { close(root) }
        let path = (workingDirectory == "." ? "" : workingDirectory + "/") + ".terraform.lock.hcl"
        guard let bytes = try? Beneath.read(root, path, limit: 1 << 20) else { return [] }
        return (try? TerraformProvider.fromLockFile(String(decoding: bytes, as: UTF8.self))) ?? []
    }
}

extension String {
    public var trimmingWhitespace: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}

/// Reads terraform's plan text (pure).
public enum PlanSummary {
    /// "Plan: 1 to add, 0 to change, 0 to destroy."
    public static func counts(_ text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("Plan: ") {
            return String(line.dropLast(line.hasSuffix(".") ? 1 : 0))
        }
        return nil
    }

    public static func hasNoChanges(_ text: String) -> Bool {
        text.split(separator: "\n").contains { $0.hasPrefix("No changes.") }
    }
}
