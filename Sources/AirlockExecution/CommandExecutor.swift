import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import Glibc

/// Runs an approved command proposal exactly once (docs/commands.md): claims it, checks that
/// the payload, the workspace snapshot and the plan are what was proposed, runs the apply step
/// on the snapshot in an execution sandbox whose AWS endpoint sends this proposal's calls,
/// stores the output and the new state, and copies the state back into the workspace when
/// the workspace's copy is still the one the plan was made against. The live workspace is
/// never read for the execution itself.
public struct CommandExecutor {
    public let store: any ProposalStore
    /// Where the proposal's artifacts (snapshot, plan) and execution sandboxes live.
    public let stateDir: String
    public let environment: [String: String]
    public let awsProfile: String?
    /// On a team gate (docs/gate.md, "Command proposals on the gate"): the replica's lease,
    /// a reason not to start now (the freeze), the `airlock` that starts execution
    /// sandboxes, and no copy into a workspace (it is on the agent's host, which fetches the
    /// new state itself).
    public var lease: ExecutionLease?
    public var holdReason: (@Sendable () -> String?)?
    public var launcher: String?
    public var onGate = false
    /// Credentials for this one run, in place of `awsProfile` (a gate's assumed role, named
    /// for the proposal): asked after the claim and the checks, so no role is assumed for a
    /// run that will not happen. Their variables reach only the run's broker, never its sandbox.
    public var runCredentials: (@Sendable (Proposal) throws(AirlockError) -> SigV4.Credentials)?

    public init(store: any ProposalStore, stateDir: String, environment: [String: String], awsProfile: String?) {
        self.store = store
        self.stateDir = stateDir
        self.environment = environment
        self.awsProfile = awsProfile
    }

    public func execute(_ id: String, actor: String) throws(AirlockError) -> Proposal {
        let (claimed, renewer) = try store.claimExecution(id, actor: actor, lease: lease)
        defer { renewer?.stop() }
        let verified: (payload: JSON, artifact: ArtifactLayout, tool: InterceptedTool)
        var environment = self.environment
        var awsProfile = self.awsProfile
        do throws(AirlockError) {
            verified = try verify(claimed)
            if let reason = holdReason?() { throw AirlockError(reason) }
            if let renewer, !renewer.renew() { throw AirlockError("this replica's lease on the execution ran out") }
            if let runCredentials {
                let keys = try runCredentials(claimed)
                environment["AWS_ACCESS_KEY_ID"] = keys.accessKeyID
                environment["AWS_SECRET_ACCESS_KEY"] = keys.secretAccessKey
                environment["AWS_SESSION_TOKEN"] = keys.sessionToken
                for name in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"] { environment[name] = nil }
                awsProfile = nil
            }
        } catch {
            return try store.apply(.fail, to: id, actor: actor, note: error.message,
                                   result: ExecutionResult(output: [], error: "not run: \(error.message)"))
        }
        let (payload, artifact, tool) = verified
        let workspace = payload["workspace"]?.string ?? "/"
        let outputs = (payload["outputs"]?.array ?? []).compactMap { item -> (path: String, original: String?)? in
            guard let path = item["path"]?.string, SnapshotManifest.isRelativePath(path) else { return nil }
            return (path, item["original"]?.string)
        }
        do {
            try seedOutputs(outputs.map(\.path), artifact: artifact)
        } catch {
            return try store.apply(.fail, to: id, actor: actor, note: "\(error)",
                                   result: ExecutionResult(output: [], error: "not run: cannot set up the outputs: \(error)"))
        }
        var runner = ExecutionRunner(stateDir: stateDir, artifact: artifact, workspace: workspace, tool: tool,
                                     environment: environment, awsEndpoint: payload["aws_endpoint"]?.string, awsProfile: awsProfile,
                                     network: NetworkGrant())
        if let config = payload["cli_config"] {
            runner.cliConfig = TerraformCLIConfig(text: "", mirrorPaths: config["mirror_paths"]?.stringArray ?? [],
                                                  mirrorHosts: config["mirror_hosts"]?.stringArray ?? [], dropped: [])
        }
        runner.outputs = outputs.map(\.path)
        runner.launcher = launcher
        if onGate { runner.spoolInto = (store, claimed.sessionID) }
        let apply = CommandStep(payload["apply"]?.array?.compactMap(\.string) ?? [], writes: [.outputs])
        let (status, output) = runner.run(apply, mode: .apply(proposalID: id), directory: payload["directory"]?.string ?? workspace, name: "apply")
        // The provider cache is big and rebuilt from the registry next time; plan and
        // snapshot stay with the proposal.
        PinnedFiles.remove(artifact.dataDirectory)
        PinnedFiles.remove(artifact.steps)
        let saved = onGate ? (records: keptOnGate(outputs, artifact: artifact), notes: [String]()) : keepOutputs(outputs, artifact: artifact, workspace: workspace)
        var text = output
        if !saved.notes.isEmpty { text += (text.hasSuffix("\n") || text.isEmpty ? "" : "\n") + saved.notes.map { "airlock: \($0)\n" }.joined() }
        var result = ExecutionResult(exitCode: Int(status), contentType: "text/plain", output: Array(text.utf8))
        result.outputs = saved.records
        return try store.apply(status == 0 ? .succeed : .fail, to: id, actor: actor, result: result)
    }

    /// The payload, the artifact and the tool, if the payload matches its digest and the
    /// snapshot and plan are exactly what was proposed.
    public func verify(_ proposal: Proposal) throws(AirlockError) -> (JSON, ArtifactLayout, InterceptedTool) {
        guard SigV4.hexSHA256(proposal.payload) == proposal.digest else {
            throw AirlockError("the payload does not match its digest \(proposal.digest): the store was changed")
        }
        let payload: JSON
        do {
            payload = try JSON.parse(bytes: proposal.payload)
        } catch {
            throw AirlockError("the payload is not JSON")
        }
        guard payload["type"]?.string == "command", let key = payload["artifact"]?.string, !key.contains("/"), !key.isEmpty,
              key != ".", key != "..", let toolName = payload["tool"]?.string else {
            throw AirlockError("the payload is not a command")
        }
        guard let snapshotPin = payload["pins"]?["snapshot"]?.string else {
            throw AirlockError("the proposal has no workspace snapshot (made by an older Airlock); make a new proposal")
        }
        let artifact = ArtifactLayout(host: stateDir + "/artifacts/" + key)
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
        if let planPin = payload["pins"]?["plan"]?.string {
            let actual = try? PinnedFiles.digest(artifact.plan + "/plan.tfplan")
            guard actual == planPin else {
                throw AirlockError("changed since the proposal: \(actual == nil ? "plan.tfplan (gone)" : "plan.tfplan"); nothing was applied. Make a new proposal")
            }
        }
        let environment = self.environment
        let library = ProfileLibrary(environment: environment, home: environment["HOME"] ?? "/")
        let (profile, text) = try InterceptedTool.profile(toolName, library: library)
        guard let binary = InterceptedTool.installed(profile, home: environment["HOME"] ?? "/", path: environment["PATH"]) else {
            throw AirlockError("\(toolName) is not installed here (looked in \(profile.binaries.joined(separator: ", ")))")
        }
        let tool = InterceptedTool(profile: profile, text: text, binary: binary)
        if let refusal = tool.refusalToExecute(workspace: payload["workspace"]?.string ?? "/", stateDir: stateDir) {
            throw AirlockError(refusal)
        }
        return (payload, artifact, tool)
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

    /// On a gate: the outputs the run changed, kept in the artifact for the agent's host to
    /// fetch (`GET /v1/proposals/ID/outputs/N`).
    func keptOnGate(_ outputs: [(path: String, original: String?)], artifact: ArtifactLayout) -> [ExecutionResult.Output] {
        outputs.compactMap { output in
            let saved = artifact.outputs + "/" + output.path
            guard let bytes = try? readFile(saved, limit: 1 << 30) else { return nil }
            let digest = SigV4.hexSHA256(bytes)
            if digest == output.original || (output.original == nil && bytes.isEmpty) { return nil }
            return ExecutionResult.Output(path: output.path, sha256: digest, size: bytes.count, savedAt: saved, copiedToWorkspace: false)
        }
    }

    /// The output `index` of an executed proposal kept on the gate, with the digest the
    /// snapshot's copy had (the host copies it back only over that).
    public static func keptOutput(_ proposal: Proposal, index: Int) -> JSON? {
        guard let outputs = proposal.result?.outputs, outputs.indices.contains(index),
              let payload = try? JSON.parse(bytes: proposal.payload) else { return nil }
        let output = outputs[index]
        guard let bytes = try? readFile(output.savedAt, limit: 1 << 30), SigV4.hexSHA256(bytes) == output.sha256 else { return nil }
        let original = payload["outputs"]?.array?.first { $0["path"]?.string == output.path }?["original"]?.string
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
