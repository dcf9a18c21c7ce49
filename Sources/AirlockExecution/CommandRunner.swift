import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import Glibc

/// Runs an approved command proposal's apply step (docs/commands.md), called by the one
/// Executor once it has claimed the proposal and checked its digest: checks that the
/// workspace snapshot and the plan are what was proposed, runs the apply step on the snapshot
/// in an execution sandbox whose AWS endpoint sends this proposal's calls, and returns the
/// output and the new state, copied back into the workspace when the workspace's copy is still
/// the one the plan was made against. The live workspace is never read for the execution itself.
public struct CommandRunner: PayloadRunner {
    public let store: any ProposalStore
    /// Where the proposal's artifacts (snapshot, plan) and execution sandboxes live.
    public let stateDir: String
    public let environment: [String: String]
    public let awsProfile: String?
    /// On a team gate (docs/gate.md, "Command proposals on the gate"): the `airlock` that
    /// starts execution sandboxes, and no copy into a workspace (it is on the agent's host,
    /// which fetches the new state itself; the run's calls are spooled into `store`).
    public var launcher: String?
    public var onGate = false
    /// A team gate's blob store: an artifact prepared on another replica is restored from it
    /// (ArtifactBlobs), and the outputs a run wrote are kept in it for the host to fetch
    /// through any replica.
    public var blobs: (any BlobStore)?
    /// Credentials for this one run, in place of `awsProfile` (a gate's assumed role, named
    /// for the proposal): asked after the checks, so no role is assumed for a run that will
    /// not happen. Their variables reach only the run's broker, never its sandbox.
    public var runCredentials: (@Sendable (Proposal) throws(AirlockError) -> SigV4.Credentials)?

    public init(store: any ProposalStore, stateDir: String, environment: [String: String], awsProfile: String?) {
        self.store = store
        self.stateDir = stateDir
        self.environment = environment
        self.awsProfile = awsProfile
    }

    /// On a gate, an artifact this replica does not hold must be whole in the blob store.
    public func missing(_ payload: ProposalPayload) -> String? {
        guard let blobs, case .command(let command) = payload, !command.artifact.contains("/"), !command.artifact.isEmpty else { return nil }
        guard access(stateDir + "/artifacts/" + command.artifact + "/snapshot", F_OK) != 0 else { return nil }
        guard let listing = command.pins["artifact"] else {
            return "the proposal's artifact is on the replica that prepared it only (it was proposed before artifacts were shared): approve it there"
        }
        return ArtifactBlobs.missing(listing, blobs: blobs)
    }

    public func run(_ payload: ProposalPayload, of proposal: Proposal, send: SendCheck) throws(RunFailure) -> ExecutionResult {
        guard case .command(let command) = payload else { throw .notRun("the command runner does not run \(payload.type) proposals") }
        let artifact: ArtifactLayout
        let tool: InterceptedTool
        var environment = self.environment
        var awsProfile = self.awsProfile
        do throws(AirlockError) {
            (artifact, tool) = try verify(command)
            do throws(RunFailure) { try send.check() } catch {
                switch error { case .notSent(let why), .notRun(let why), .uncertain(let why): throw AirlockError(why) }
            }
            if let runCredentials {
                let keys = try runCredentials(proposal)
                environment["AWS_ACCESS_KEY_ID"] = keys.accessKeyID
                environment["AWS_SECRET_ACCESS_KEY"] = keys.secretAccessKey
                environment["AWS_SESSION_TOKEN"] = keys.sessionToken
                for name in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"] { environment[name] = nil }
                awsProfile = nil
            }
        } catch {
            throw .notRun(error.message)
        }
        let outputs = command.outputs.filter { SnapshotManifest.isRelativePath($0.path) }.map { (path: $0.path, original: $0.original) }
        do {
            try seedOutputs(outputs.map(\.path), artifact: artifact)
        } catch {
            throw .notRun("cannot set up the outputs: \(error)")
        }
        var runner = ExecutionRunner(stateDir: stateDir, artifact: artifact, workspace: command.workspace, tool: tool,
                                     environment: environment, awsEndpoint: command.awsEndpoint, awsProfile: awsProfile,
                                     network: NetworkGrant())
        if let mirrorPaths = command.mirrorPaths {
            runner.cliConfig = TerraformCLIConfig(text: "", mirrorPaths: mirrorPaths, mirrorHosts: command.mirrorHosts ?? [], dropped: [])
        }
        runner.outputs = outputs.map(\.path)
        runner.launcher = launcher
        if onGate { runner.spoolInto = (store, proposal.sessionID) }
        let apply = CommandStep(command.apply, writes: [.outputs])
        let (status, output) = runner.run(apply, mode: .apply(proposalID: proposal.id), directory: command.directory, name: "apply")
        // The provider cache is big and rebuilt from the registry next time; plan and
        // snapshot stay with the proposal.
        PinnedFiles.remove(artifact.dataDirectory)
        PinnedFiles.remove(artifact.steps)
        let saved = onGate ? keptOnGate(outputs, artifact: artifact) : keepOutputs(outputs, artifact: artifact, workspace: command.workspace)
        var text = output
        if !saved.notes.isEmpty { text += (text.hasSuffix("\n") || text.isEmpty ? "" : "\n") + saved.notes.map { "airlock: \($0)\n" }.joined() }
        var result = ExecutionResult(exitCode: Int(status), contentType: "text/plain", output: Array(text.utf8))
        result.outputs = saved.records
        return result
    }

    /// The artifact and the tool, if the snapshot and plan are exactly what was proposed and
    /// the tool is installed here.
    public func verify(_ payload: CommandPayload) throws(AirlockError) -> (ArtifactLayout, InterceptedTool) {
        let key = payload.artifact
        guard !key.contains("/"), !key.isEmpty, key != ".", key != ".." else {
            throw AirlockError("the payload names no artifact of this state directory")
        }
        guard let snapshotPin = payload.pins["snapshot"] else {
            throw AirlockError("the proposal has no workspace snapshot (made by an older Airlock); make a new proposal")
        }
        let artifact = ArtifactLayout(host: stateDir + "/artifacts/" + key)
        if let blobs, let listing = payload.pins["artifact"], access(artifact.snapshot, F_OK) != 0 {
            // Prepared on another replica: its artifact comes from the blob store, then is
            // checked against the snapshot and plan pins like any other.
            try ArtifactBlobs.restore(listing, blobs: blobs, into: artifact)
        }
        let manifest: SnapshotManifest
        do {
            manifest = try WorkspaceSnapshot.manifest(of: artifact.snapshot)
        } catch {
            throw AirlockError("the proposal's snapshot cannot be read (\(error)); nothing was applied. Make a new proposal")
        }
        guard manifest.digest == snapshotPin else {
            let pinned = (try? readTextFile(artifact.manifest, limit: 64 << 20)).flatMap(SnapshotManifest.parse)
            let changes = pinned.map { manifest.differences(from: $0) } ?? ["its manifest"]
            throw AirlockError("changed since the proposal: the snapshot (\(changes.joined(separator: ", "))); nothing was applied. Make a new proposal")
        }
        if let planPin = payload.pins["plan"] {
            let actual = try? PinnedFiles.digest(artifact.plan + "/plan.tfplan")
            guard actual == planPin else {
                throw AirlockError("changed since the proposal: \(actual == nil ? "plan.tfplan (gone)" : "plan.tfplan"); nothing was applied. Make a new proposal")
            }
        }
        let library = ProfileLibrary(environment: environment, home: environment["HOME"] ?? "/")
        let (profile, text) = try InterceptedTool.profile(payload.tool, library: library)
        // The program the proposal pinned (path and digest), not what PATH finds now: nothing
        // written since (a version file, a PATH entry) changes what the approval runs. A
        // proposal from before pins existed names its program without a digest.
        let tool = try InterceptedTool.pinned(profile, text: text, binary: payload.binary, digest: payload.pins["binary"],
                                              environment: environment, stateDir: stateDir)
        if let refusal = tool.refusalToExecute(workspace: payload.workspace, stateDir: stateDir) {
            throw AirlockError(refusal)
        }
        return (artifact, tool)
    }

    /// Fresh copies of the snapshot's (verified) output files, bound writable into the run.
    public func seedOutputs(_ outputs: [String], artifact: ArtifactLayout) throws {
        PinnedFiles.remove(artifact.outputs)
        let root = try Beneath.openRoot(artifact.snapshot)
        defer { close(root) }
        for path in outputs {
            let destination = artifact.outputs + "/" + path
            try PinnedFiles.makeParents(of: destination)
            let bytes = try Beneath.read(root, path, limit: 1 << 30)
            try writeFileAtomically(destination, bytes, mode: 0o644)
        }
    }

    /// After the run: every output that changed is kept with the result, and copied into the
    /// workspace when the workspace's file is still the snapshot's (else both are kept and
    /// the notes say where).
    public func keepOutputs(_ outputs: [(path: String, original: String?)], artifact: ArtifactLayout, workspace: String)
        -> (records: [ExecutionResult.Output], notes: [String]) {
        var records: [ExecutionResult.Output] = []
        var notes: [String] = []
        let root = try? Beneath.openRoot(workspace)
        defer { if let root { close(root) } }
        for output in outputs {
            let saved = artifact.outputs + "/" + output.path
            guard let bytes = try? readFile(saved, limit: 1 << 30) else { continue }
            let digest = SigV4.hexSHA256(bytes)
            // Untouched: nothing new to keep.
            if digest == output.original || (output.original == nil && bytes.isEmpty) { continue }
            var record = ExecutionResult.Output(path: output.path, sha256: digest, size: bytes.count, savedAt: saved, copiedToWorkspace: false)
            guard let root else {
                notes.append("the workspace \(workspace) is gone: the new \(output.path) is kept at \(saved)")
                records.append(record)
                continue
            }
            let current = try? Beneath.read(root, output.path, limit: 1 << 30)
            let unchanged = current.map { SigV4.hexSHA256($0) == output.original } ?? (output.original == nil)
            if unchanged {
                do {
                    try Beneath.replace(root, output.path, with: bytes, mode: 0o644, owner: owner(of: workspace, output.path, root: root))
                    record.copiedToWorkspace = true
                } catch {
                    notes.append("could not write \(output.path) into the workspace (\(error)): the new one is kept at \(saved)")
                }
            } else {
                notes.append("\(output.path) in the workspace changed since the proposal, so it was left alone: the new one is kept at \(saved); compare them before the next change")
            }
            records.append(record)
        }
        return (records, notes)
    }

    /// On a gate: the outputs the run changed, kept in the artifact and in the blob store for
    /// the agent's host to fetch (`GET /v1/proposals/ID/outputs/N`) through any replica. One
    /// the blob store could not take is still kept here, and said so in the run's output.
    func keptOnGate(_ outputs: [(path: String, original: String?)], artifact: ArtifactLayout) -> (records: [ExecutionResult.Output], notes: [String]) {
        var notes: [String] = []
        let records = outputs.compactMap { output -> ExecutionResult.Output? in
            let saved = artifact.outputs + "/" + output.path
            guard let bytes = try? readFile(saved, limit: 1 << 30) else { return nil }
            let digest = SigV4.hexSHA256(bytes)
            if digest == output.original || (output.original == nil && bytes.isEmpty) { return nil }
            if let blobs {
                do throws(AirlockError) { try blobs.put(bytes, owner: "airlock") } catch {
                    notes.append("the new \(output.path) is kept on this gate replica only (\(error.message)): fetch it through this replica")
                }
            }
            return ExecutionResult.Output(path: output.path, sha256: digest, size: bytes.count, savedAt: saved, copiedToWorkspace: false)
        }
        return (records, notes)
    }

    /// The output `index` of an executed proposal kept on the gate (in `blobs`, else the file
    /// the run wrote on this replica), with the digest the snapshot's copy had (the host
    /// copies it back only over that).
    public static func keptOutput(_ proposal: Proposal, index: Int, blobs: (any BlobStore)?) -> JSON? {
        guard let outputs = proposal.result?.outputs, outputs.indices.contains(index),
              case .command(let payload)? = try? ProposalPayload(bytes: proposal.payload) else { return nil }
        let output = outputs[index]
        let held = (try? blobs?.blob(output.sha256)) ?? nil
        guard let bytes = held ?? (try? readFile(output.savedAt, limit: 1 << 30)), SigV4.hexSHA256(bytes) == output.sha256 else { return nil }
        let original = payload.outputs.first { $0.path == output.path }?.original
        return .object([("path", .string(output.path)), ("sha256", .string(output.sha256)),
                        ("original", original.map(JSON.string) ?? .null), ("content_base64", .string(Base64.encode(bytes)))])
    }

    /// Files written into the workspace belong to whoever owns their directory (an approval
    /// run as root must not leave root-owned state in a user's workspace).
    public func owner(of workspace: String, _ path: String, root: Int32) -> (uid_t, gid_t)? {
        Self.owner(of: workspace, path, root: root)
    }

    public static func owner(of workspace: String, _ path: String, root: Int32) -> (uid_t, gid_t)? {
        guard getuid() == 0 else { return nil }
        let parent = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : ""
        var info = stat()
        if parent.isEmpty {
            guard fstat(root, &info) == 0 else { return nil }
        } else {
            guard let fd = try? Beneath.open(root, parent, flags: O_RDONLY | O_DIRECTORY) else { return nil }
            defer { close(fd) }
            guard fstat(fd, &info) == 0 else { return nil }
        }
        return (info.st_uid, info.st_gid)
    }
}
