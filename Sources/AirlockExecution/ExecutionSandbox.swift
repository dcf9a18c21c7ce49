import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import Glibc

/// Where a proposal's artifact parts are, on the host and inside its execution sandboxes
/// (docs/commands.md, "The artifact").
public struct ArtifactLayout: Sendable {
    /// `<state>/artifacts/<key>`.
    public let host: String

    public init(host: String) { self.host = host }
    public static let mount = SandboxLayout.runDirectory + "/artifact"

    public var snapshot: String { host + "/snapshot" }
    public var manifest: String { host + "/snapshot.manifest" }
    public var plan: String { host + "/plan" }
    public var dataDirectory: String { host + "/tfdata" }
    public var cliConfig: String { host + "/terraformrc" }
    public var outputs: String { host + "/outputs" }
    /// Copies of the human's files for one run (a kubeconfig): removed when the run ends.
    public var scratch: String { host + "/exec" }
    public var steps: String { host + "/steps" }

    public static func inside(_ part: String) -> String { mount + "/" + part }
}

/// What an execution may reach over the network besides the tool's own hosts: for a prepare
/// step the agent's own allowlist (no wider), for an apply nothing more.
public struct NetworkGrant: Sendable {
    public var allow: [(rule: String, source: String)] = []
    public var deny: [(rule: String, source: String)] = []
    public var addresses: [String] = []

    public init(allow: [(rule: String, source: String)] = [], deny: [(rule: String, source: String)] = [], addresses: [String] = []) {
        self.allow = allow
        self.deny = deny
        self.addresses = addresses
    }

    public init(_ policy: EgressPolicy) {
        allow = policy.allow.map { (Self.text($0), $0.source) }
        deny = policy.deny.map { (Self.text($0), $0.source) }
        addresses = policy.allowedRanges.map(\.description)
    }

    /// A rule as EgressRule.parse reads it back.
    public static func text(_ rule: EgressRule) -> String {
        let host = rule.pattern.contains(":") ? "[\(rule.pattern)]" : rule.pattern
        return rule.port.map { "\(host):\($0)" } ?? host
    }
}

/// The broker's side of an execution sandbox: writes one step's spec into the artifact and
/// runs it as a child `airlock run --execution SPEC` (a fresh process of the same launcher).
public struct ExecutionRunner {
    public let stateDir: String
    public let artifact: ArtifactLayout
    public let workspace: String
    public let tool: InterceptedTool
    /// The launcher's (or approver's) environment: only what the tool profile names passes.
    public let environment: [String: String]
    public let awsEndpoint: String?
    public let awsProfile: String?
    public let network: NetworkGrant
    /// terraform: the generated CLI configuration's mirrors.
    public var cliConfig: TerraformCLIConfig?
    /// Relative to the workspace: bound writable for steps that write outputs.
    public var outputs: [String] = []
    /// The `airlock` binary that starts execution sandboxes (nil: this process's own; a
    /// team gate names the `airlock` beside `airlock-gate`).
    public var launcher: String?
    /// On a team gate: the run records into the artifact's spool, and this store (with the
    /// agent's session) receives it when the run ends.
    public var spoolInto: (store: any CallRecorder, sessionID: String)?

    public init(stateDir: String, artifact: ArtifactLayout, workspace: String, tool: InterceptedTool, environment: [String: String],
                awsEndpoint: String?, awsProfile: String?, network: NetworkGrant) {
        self.stateDir = stateDir
        self.artifact = artifact
        self.workspace = workspace
        self.tool = tool
        self.environment = environment
        self.awsEndpoint = awsEndpoint
        self.awsProfile = awsProfile
        self.network = network
    }

    public var home: String { environment["HOME"] ?? "/" }

    public func spec(_ step: CommandStep, mode: ExecutionSpec.Mode, directory: String) throws(AirlockError) -> ExecutionSpec {
        var binds: [ExecutionSpec.Bind] = []
        var variables: [String: String] = [:]
        for (name, value) in tool.profile.executionEnvironment {
            variables[name] = value.replacingOccurrences(of: "{artifact}", with: ArtifactLayout.mount)
        }
        // A tool that logs in to GitHub gets the broker's GitHub gateway instead of the
        // human's token or gh configuration (docs/github.md, "Execution sandboxes").
        let githubEndpoint = tool.profile.executionPass.contains { Self.gitHubTokenVariables.contains($0) }
            || tool.profile.executionFiles.contains { $0.variable == "GH_CONFIG_DIR" }
        for name in tool.profile.executionPass where !(githubEndpoint && Self.gitHubTokenVariables.contains(name)) {
            if let value = environment[name] { variables[name] = value }
        }
        if access(artifact.plan, F_OK) == 0 {
            binds.append(.init(source: artifact.plan, target: ArtifactLayout.inside("plan"), writable: step.writes.contains(.plan), directory: true))
        }
        if access(artifact.dataDirectory, F_OK) == 0 {
            binds.append(.init(source: artifact.dataDirectory, target: ArtifactLayout.inside("tfdata"),
                               writable: step.writes.contains(.dataDirectory), directory: true))
        }
        var hosts = tool.profile.executionHosts.map { ($0, "execution of \(tool.profile.tool)") }
        var addresses = network.addresses
        if let cliConfig {
            binds.append(.init(source: artifact.cliConfig, target: ArtifactLayout.inside("terraformrc"), writable: false, directory: false))
            variables["TF_CLI_CONFIG_FILE"] = ArtifactLayout.inside("terraformrc")
            for path in cliConfig.mirrorPaths where !SandboxLayout.isSystemPath(path) && access(path, F_OK) == 0 {
                binds.append(.init(source: PathResolution.normalize(path), target: PathResolution.normalize(path), writable: false, directory: true))
            }
            hosts += cliConfig.mirrorHosts.map { ($0, "network_mirror of your terraform CLI configuration") }
        }
        // Servers the human's own configuration names (GH_HOST, a kubeconfig's clusters) are
        // reachable by name, and only at the addresses they have now: they may be on a
        // private network, which an agent's proxy never reaches.
        let resolver = EgressResolver(environment: environment)
        func allowServer(_ server: String, _ source: String) {
            hosts.append((server, source))
            if let (host, _) = try? EgressTarget.splitAuthority(server, defaultPort: 443) {
                addresses += resolver.resolve(host).map(\.singleRange)
            }
        }
        for name in tool.profile.executionHostVariables {
            if let host = environment[name], !host.isEmpty, EgressRule.parse(host, source: name) != nil { allowServer(host, name) }
        }
        // The human's files the tool needs, copied for this run only; a kubeconfig is not
        // copied: the run gets the broker's Kubernetes endpoint instead.
        PinnedFiles.remove(artifact.scratch)
        var kubernetesEndpoint = false
        for (name, candidates) in tool.profile.executionFiles {
            guard let source = Self.firstExisting(candidates, environment: environment, home: home) else { continue }
            if name == "KUBECONFIG" {
                kubernetesEndpoint = true
                continue
            }
            // gh's configuration holds its token; the gateway's upstream trusts the human's
            // CA bundle itself, and the sandbox must trust the session CA, not that bundle.
            if githubEndpoint && (name == "GH_CONFIG_DIR" || name == "SSL_CERT_FILE") { continue }
            do {
                _ = try PinnedFiles.copyAny(source, to: artifact.scratch + "/" + name, budget: PinnedFiles.copyLimit)
            } catch {
                throw AirlockError("cannot copy \(source) for the execution: \(error)")
            }
            variables[name] = ArtifactLayout.inside("exec/" + name)
        }
        if access(artifact.scratch, F_OK) == 0 {
            PinnedFiles.makeReadable(artifact.scratch)
            binds.append(.init(source: artifact.scratch, target: ArtifactLayout.inside("exec"), writable: false, directory: true))
        }
        if step.writes.contains(.outputs) {
            for output in outputs {
                binds.append(.init(source: artifact.outputs + "/" + output, target: workspace + "/" + output, writable: true, directory: false))
            }
        }
        var spec = ExecutionSpec(
            mode: mode, tool: tool.profile.tool, artifact: artifact.host, workspace: workspace, snapshot: artifact.snapshot,
            snapshotWritable: step.writes.contains(.snapshot), directory: directory, binds: binds, environment: variables,
            allow: network.allow + hosts.map { (rule: $0.0, source: $0.1) }, deny: network.deny, addresses: addresses)
        spec.spool = spoolInto != nil
        spec.kubernetesEndpoint = kubernetesEndpoint
        spec.githubEndpoint = githubEndpoint
        spec.binary = tool.binary
        spec.binaryDigest = tool.digest
        return spec
    }

    /// Runs one step; its output (stdout and stderr merged) and exit status.
    public func run(_ step: CommandStep, mode: ExecutionSpec.Mode, directory: String, name: String) -> (status: Int32, output: String) {
        guard let binary = launcher ?? HostInspection.realPath("/proc/self/exe") else { return (125, "airlock: cannot find its own binary") }
        let specPath = artifact.steps + "/" + name + ".json"
        do {
            let spec = try spec(step, mode: mode, directory: directory)
            try PinnedFiles.makeParents(of: specPath)
            try writeFileAtomically(specPath, Array((spec.json.serialized() + "\n").utf8), mode: 0o600)
        } catch let error as AirlockError {
            return (125, "airlock: \(error.message)\n")
        } catch {
            return (125, "airlock: \(error)\n")
        }
        defer { PinnedFiles.remove(artifact.scratch) }
        if let spoolInto {
            let path = artifact.host + "/calls.jsonl"
            unlink(path)
            var ran = runChild(binary, specPath, step)
            let drained = ExecutionSpool.drain(path, into: spoolInto.store, sessionID: spoolInto.sessionID)
            if !drained.errors.isEmpty {
                // The audit must not lose a call silently: whoever reads the output is told.
                ran.output += "airlock: \(drained.errors.count) of this run's records could not be written to the audit log: "
                    + drained.errors.prefix(3).joined(separator: "; ") + "\n"
            }
            return ran
        }
        return runChild(binary, specPath, step)
    }

    func runChild(_ binary: String, _ specPath: String, _ step: CommandStep) -> (status: Int32, output: String) {
        var argv = [binary, "run", "--state-dir", stateDir, "--execution", specPath]
        if let awsEndpoint { argv += ["--aws-endpoint", awsEndpoint] }
        if let awsProfile { argv += ["--aws-profile", awsProfile] }
        argv += ["--", InterceptedTool.directory + "/" + tool.profile.tool] + step.arguments
        do {
            let output = try ChildProcess.run(argv, environment: environment, directory: "/", mergeOutput: true,
                                              outputLimit: 4 * ExecutionResult.outputLimit)
            return (output.status, output.stdout)
        } catch {
            return (125, "airlock: \(error.message)\n")
        }
    }

    static let gitHubTokenVariables: Set<String> = ["GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"]

    public static func firstExisting(_ candidates: [String], environment: [String: String], home: String) -> String? {
        for candidate in candidates {
            var path = candidate
            if candidate.hasPrefix("$") {
                guard let value = environment[String(candidate.dropFirst())], value.hasPrefix("/") else { continue }
                path = value
            } else {
                path = HostPath.expandingTilde(candidate, home: home)
            }
            if access(path, R_OK) == 0 { return path }
        }
        return nil
    }
}

/// The child's side: an `airlock run --execution SPEC` sets its sandbox up from the spec.
public struct ExecutionRequest: Sendable {
    public let spec: ExecutionSpec
    public var mode: ExecutionSpec.Mode { spec.mode }
    public var tool: String { spec.tool }

    public static func load(_ path: String, stateDir: String) throws(AirlockError) -> ExecutionRequest {
        let root = PathResolution.normalize(stateDir) + "/artifacts/"
        guard path.hasPrefix(root), PinnedFiles.realPath(path) == path else {
            throw AirlockError("--execution must name a spec in \(root) (Airlock's own execution sandboxes)")
        }
        do {
            return ExecutionRequest(spec: try ExecutionSpec.parse(try readTextFile(path, limit: 1 << 20), stateDirectory: stateDir))
        } catch let error as ExecutionSpec.Invalid {
            throw AirlockError(error.description)
        } catch let error as AirlockError {
            throw error
        } catch {
            throw AirlockError("\(error)")
        }
    }

    /// Checks the request against the store before anything runs.
    public func validate(intake: any ProposalIntake) throws(AirlockError) {
        guard PinnedFiles.realPath(spec.artifact) == spec.artifact, PinnedFiles.realPath(spec.snapshot) == spec.snapshot else {
            throw AirlockError("the execution's artifact is not where its spec says")
        }
        // A team gate's run (spool) was claimed by the gate in its own store, which this
        // process cannot reach; the spec is in the gate's state directory, which only the
        // gate's user can write.
        if case .apply(let id) = mode, !spec.spool {
            let proposal = try intake.proposal(id: id)
            guard let proposal, proposal.kind == .command, proposal.state == .executing else {
                throw AirlockError("proposal \(id) is not an approved command being executed; nothing runs")
            }
        }
    }

    /// The snapshot at the workspace's path, a fresh home: set on the host facts before the
    /// layout is made.
    public func apply(to facts: inout HostFacts) {
        facts.workspace = spec.workspace
        facts.workspaceSource = spec.snapshot
        facts.workspaceReadOnly = !spec.snapshotWritable
        facts.freshHome = true
        facts.cwd = spec.directory
    }

    /// The artifact's parts, the real binary, and the spec's variables.
    public func prepare(_ layout: inout SandboxLayout, tool: InterceptedTool) {
        for bind in spec.binds {
            if bind.writable {
                layout.mounts.append(.bind(source: bind.source, target: bind.target, writable: true, directory: bind.directory, role: .profile))
                layout.writable.append(bind.target)
            } else {
                layout.addReadOnlyBind(source: bind.source, target: bind.target, directory: bind.directory)
            }
        }
        tool.addBinary(to: &layout)
        layout.setEnvironment(spec.environment)
    }
}
