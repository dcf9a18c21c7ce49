import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import Glibc

/// Command proposals with a team gate (docs/gate.md, "Command proposals on the gate").
///
/// The agent host sends only evidence: the command as the agent ran it and a snapshot of the
/// workspace. The gate prepares the proposal itself (terraform init and plan in its own
/// execution sandboxes, its own preview), so the plan an approver reads and the plan that is
/// applied are both the gate's; a host that lies about its plan changes nothing. After the
/// apply, the host copies the new state back into the workspace.
extension CommandProposer {
    /// The host's side: snapshot, pack, send; the gate's answer is the shim's.
    func proposeRemotely(tool: InterceptedTool, arguments: [String], directory: String, ruling: CommandRuling,
                         remote: @Sendable (_ archive: [UInt8]) throws(AirlockError) -> JSON) throws -> JSON {
        let scratch = stateDir + "/artifacts/" + RandomID.make(16)
        do {
            try PinnedFiles.makeParents(of: scratch + "/x")
        } catch {
            throw PreparationFailure("cannot make the artifact directory: \(error)")
        }
        defer { PinnedFiles.remove(scratch) }
        let exclusion = SnapshotExclusion(patterns: tool.profile.snapshotExclude + self.exclusion, paths: maskedPaths)
        let copied: WorkspaceSnapshot.Result
        let archive: [UInt8]
        let request = JSON.object([
            ("tool", .string(tool.name)), ("argv", .array(arguments.map(JSON.string))), ("cwd", .string(directory)),
            ("workspace", .string(workspace)),
            ("terraform_workspace", .string(selectedTerraformWorkspace(relative(ruling.workingDirectory)))),
        ])
        do {
            copied = try WorkspaceSnapshot.copy(workspace, to: scratch + "/snapshot", exclusion: exclusion, limit: snapshotLimit)
            archive = try SnapshotArchive.pack(scratch + "/snapshot", request: request)
        } catch {
            throw PreparationFailure("cannot snapshot the workspace: \(error)")
        }
        let command = ([tool.name] + arguments).joined(separator: " ")
        log.write("command \(command): sent to the team gate with its snapshot (\(copied.manifest.fileCount) files, \(ByteSize.format(UInt64(copied.manifest.totalBytes))))")
        do {
            let answer = try remote(archive)
            if let id = answer["proposal"]?["id"]?.string {
                log.write("proposal \(id): \(answer["proposal"]?["summary"]?.string ?? command) is pending approval on the team gate")
            }
            return answer
        } catch {
            throw PreparationFailure("the team gate did not take the proposal: \(error.message)")
        }
    }

    /// The host's side after an approved command ran on the gate: each output the run changed
    /// (terraform's state), fetched from the gate and written into the workspace when the
    /// workspace's file is still the one the snapshot held, else kept in the state directory.
    /// Done at most once per output (a file already equal to the new one is left alone).
    /// Returns the proposal as the agent sees it: each output the workspace now holds marked
    /// copied, and a note per output appended to the output.
    public func collectOutputs(_ proposal: Proposal, fetch: (Int) throws(AirlockError) -> JSON) -> Proposal {
        guard proposal.kind == .command, var result = proposal.result, !result.outputs.isEmpty else { return proposal }
        let notes = copyOutputs(proposal, result.outputs, fetch: fetch)
        let root = try? Beneath.openRoot(workspace)
        defer { if let root { close(root) } }
        for index in result.outputs.indices {
            let current = root.flatMap { try? Beneath.read($0, result.outputs[index].path, limit: 1 << 30) }
            result.outputs[index].copiedToWorkspace = current.map { SigV4.hexSHA256($0) == result.outputs[index].sha256 } ?? false
        }
        if !notes.isEmpty { result.output += Array(notes.map { "airlock: \($0)\n" }.joined().utf8) }
        var shown = proposal
        shown.result = result
        return shown
    }

    func copyOutputs(_ proposal: Proposal, _ outputs: [ExecutionResult.Output], fetch: (Int) throws(AirlockError) -> JSON) -> [String] {
        var notes: [String] = []
        let root = try? Beneath.openRoot(workspace)
        defer { if let root { close(root) } }
        for (index, output) in outputs.enumerated() where SnapshotManifest.isRelativePath(output.path) {
            let current = root.flatMap { try? Beneath.read($0, output.path, limit: 1 << 30) }
            if let current, SigV4.hexSHA256(current) == output.sha256 { continue }
            let fetched: JSON
            do {
                fetched = try fetch(index)
            } catch {
                notes.append("could not fetch the new \(output.path) from the gate (\(error.message)); `airlock show \(proposal.id) --gate` names it")
                continue
            }
            guard fetched["path"]?.string == output.path, let bytes = fetched["content_base64"]?.string.flatMap(Base64.decode),
                  SigV4.hexSHA256(bytes) == output.sha256 else {
                notes.append("the gate's copy of \(output.path) is not what its result says; left alone")
                continue
            }
            let original = fetched["original"]?.string
            let unchanged = current.map { SigV4.hexSHA256($0) == original } ?? (original == nil)
            if unchanged, let root {
                do {
                    try Beneath.replace(root, output.path, with: bytes, mode: 0o644, owner: CommandRunner.owner(of: workspace, output.path, root: root))
                    notes.append("\(output.path) updated in the workspace from the gate's run")
                    continue
                } catch {
                    notes.append("could not write \(output.path) into the workspace (\(error))")
                }
            } else {
                notes.append("\(output.path) in the workspace changed since the proposal, so it was left alone")
            }
            let kept = stateDir + "/gate-outputs/" + proposal.id + "/" + output.path
            do {
                try PinnedFiles.makeParents(of: kept)
                try writeFileAtomically(kept, bytes, mode: 0o600)
                notes.append("the new \(output.path) is kept at \(kept); compare them before the next change")
            } catch {
                notes.append("could not keep the new \(output.path) at \(kept): \(error)")
            }
        }
        for note in notes { log.write("proposal \(proposal.id): \(note)") }
        return notes
    }
}

/// The gate's side of a command proposal: unpacks the host's snapshot and prepares the
/// proposal from it as `airlock` would locally, with the gate's tool profiles, binaries,
/// credentials and store.
public struct GateCommandIntake: Sendable {
    public var stateDir: String
    public var environment: [String: String]
    public var awsEndpoint: String?
    public var awsProfile: String?
    public var upstream: String
    public var launcher: String?
    public var snapshotLimit: Int
    /// Where the artifact is kept for every replica (ArtifactBlobs).
    public var blobs: (any BlobStore)?

    public init(stateDir: String, environment: [String: String], awsEndpoint: String?, awsProfile: String?, upstream: String,
                launcher: String?, snapshotLimit: Int = WorkspaceSnapshot.defaultLimit, blobs: (any BlobStore)? = nil) {
        self.blobs = blobs
        self.stateDir = stateDir
        self.environment = environment
        self.awsEndpoint = awsEndpoint
        self.awsProfile = awsProfile
        self.upstream = upstream
        self.launcher = launcher
        self.snapshotLimit = snapshotLimit
    }

    /// The answer the host's shim reports (`CommandProposer.propose`'s).
    public func propose(_ archive: [UInt8], sessionID: String, store: any ProposalStore,
                        decide: (@Sendable (ProposalDraft) throws(AirlockError) -> ProposalDraft)? = nil) throws(AirlockError) -> JSON {
        let upload = stateDir + "/uploads/" + RandomID.make(16)
        do {
            try PinnedFiles.makeParents(of: upload + "/x")
        } catch {
            throw AirlockError("cannot make the gate's upload directory: \(error)")
        }
        defer { PinnedFiles.remove(upload) }
        let unpacked: SnapshotArchive.Unpacked
        do {
            unpacked = try SnapshotArchive.unpack(archive, into: upload + "/source", limit: snapshotLimit)
        } catch {
            throw AirlockError("the snapshot was refused: \(error.description); nothing was proposed", code: .badSnapshot)
        }
        let request = unpacked.request
        guard let name = request["tool"]?.string, let workspace = request["workspace"]?.string, workspace.hasPrefix("/"),
              PathResolution.normalize(workspace) == workspace, workspace != "/" else {
            throw AirlockError("the command needs a tool and an absolute, normalized workspace path", code: .badRequest)
        }
        // The snapshot appears at this path in the gate's execution sandboxes: over a system
        // directory it would replace what the tool loads (its libraries) during an approved
        // apply, and over Airlock's own or the kernel's directories it would hide them.
        let kernelAndAirlock = ["/run", "/proc", "/sys", "/dev", stateDir]
        let covered = ["/tmp", "/var/tmp", "/var", "/home", "/root", stateDir]
        if SandboxLayout.isSystemPath(workspace) || kernelAndAirlock.contains(where: { PathResolution.isInside(workspace, $0) })
            || covered.contains(where: { PathResolution.isInside($0, workspace) }) {
            throw AirlockError("the workspace path \(workspace) would cover a system or reserved directory in the gate's sandboxes; nothing was proposed",
                               code: .badRequest)
        }
        let library = ProfileLibrary(environment: environment, home: environment["HOME"] ?? "/")
        let (profile, text) = try InterceptedTool.profile(name, library: library)
        // The gate's own tool, as its PATH finds it (version files from the gate's home, never
        // from the uploaded workspace, which the agent wrote); pinned by digest in the payload.
        let tool: InterceptedTool
        do {
            tool = try InterceptedTool.resolve(profile, text: text, environment: environment, directory: environment["HOME"] ?? "/", stateDir: stateDir)
        } catch {
            throw AirlockError("on the gate: \(error.message)", hint: error.hint, code: .toolMissing)
        }
        let proposer = CommandProposer(
            sessionID: sessionID, stateDir: stateDir, workspace: workspace, tools: [tool], store: store,
            log: BrokerLog(path: nil), environment: environment, awsEndpoint: awsEndpoint, awsProfile: awsProfile, upstream: upstream,
            // A gate's preparation reaches the tool's own hosts only (and the human's
            // configured mirrors), not any agent's allowlist.
            network: NetworkGrant(), exclusion: [], maskedPaths: [], snapshotLimit: snapshotLimit)
        // The unpacked tree is the source; CommandProposer copies it (again beneath, never
        // through a symlink) into the proposal's artifact.
        proposer.workspaceSource = upload + "/source"
        proposer.terraformWorkspaceName = request["terraform_workspace"]?.string
        proposer.launcher = launcher
        proposer.spoolInto = (store, sessionID)
        proposer.artifactBlobs = blobs
        proposer.decide = decide
        return proposer.propose(.object([("tool", .string(name)), ("argv", request["argv"] ?? .null), ("cwd", request["cwd"] ?? .null)]))
    }
}
