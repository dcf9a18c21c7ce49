import AirlockBroker
import AirlockCore
import AirlockExecution
import AirlockPolicy
import AirlockSandbox
import ArgumentParser
import Glibc

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command inside the sandbox.",
        discussion: """
            The command sees:
              - /usr, /etc (without its secrets), /opt read-only; a fresh /proc; a minimal /dev
              - the workspace (default: the current directory) read-write, at the same path
              - /tmp and /var/tmp as private tmpfs
              - a persistent home, /home/agent, kept per profile under the state directory
              - only a loopback network; HTTPS_PROXY/HTTP_PROXY lead to Airlock's egress proxy,
                which lets through only the hosts a profile or --allow-domain allows
            It runs as uid 1000 (`agent`) with no capabilities, no_new_privs and a seccomp
            filter. Credential paths (~/.aws, ~/.ssh, ~/.kube, …) are never mounted, and
            credential-shaped variables (AWS_*, *_TOKEN, …) never passed.

            AWS: the sandbox gets dummy keys and an AWS_CONFIG_FILE pointing every service at
            the broker (on its loopback). The broker checks each request's signature, passes
            reads on (signed with your credentials: the environment, ~/.aws, or
            --aws-profile), and turns mutations and sensitive reads into proposals:
            the agent gets HTTP 403 AirlockProposalPending naming the proposal, a human runs
            `airlock approve ID`, and the agent can `airlock wait ID` for the result.

            Tools: terraform, kubectl, helm and gh (a profile's `tools:`) are shims inside.
            Reads run at once; a change (terraform apply, kubectl apply -f) exits 75 after the
            broker has prepared one proposal with its preview (the terraform plan), which
            `airlock approve ID` applies exactly; refused commands exit 77.

            --no-broker runs the sandbox alone, like `bwrap --unshare-all`: no broker, so no
            network at all (not even through a proxy), no AWS endpoint, no shims; the tools in
            it run as they are, with no credentials and nothing to reach.

            Exit status: the command's own, 128+N if a signal N ended it, 125 if Airlock itself
            failed (the message says what to do), 126/127 if the command cannot be executed or
            found in the sandbox.

            Examples:
              airlock run -- bash
              airlock run --workspace ~/src/app -- make test
              airlock run --profile claude-code -- claude
              airlock run --allow-domain pypi.org --allow-domain files.pythonhosted.org -- pip install x
            """)

    @Option(name: .customLong("profile"), help: ArgumentHelp(
        "A profile name (from profiles/) or YAML file; repeat to layer several.", valueName: "NAME|FILE"))
    var profiles: [String] = []

    @Option(help: ArgumentHelp("The directory the agent works in, mounted read-write.", valueName: "DIR"))
    var workspace: String?

    @Option(name: .customLong("aws-endpoint"), help: ArgumentHelp(
        "Send AWS requests to this endpoint instead of AWS (moto, LocalStack); proposals go there too.",
        valueName: "URL"))
    var awsEndpoint: String?

    @Option(name: .customLong("aws-profile"), help: ArgumentHelp(
        "The AWS profile whose credentials the broker uses for reads (default: the standard chain).",
        valueName: "NAME"))
    var awsProfile: String?

    @Option(name: .customLong("allow-domain"), help: ArgumentHelp(
        "Let the agent reach this host through the egress proxy, for this session (repeatable): name, *.domain, optional :port.",
        valueName: "D"))
    var allowDomains: [String] = []

    @Option(name: .customLong("gate"), help: ArgumentHelp(
        "Propose changes to this team gate instead of the local store (docs/gate.md, \"Team gate\"); reads still use this host's credentials.",
        valueName: "URL"))
    var gate: String?

    @Option(name: .customLong("gate-token-file"), help: ArgumentHelp(
        "This host's enrollment token for --gate (default /etc/airlock/gate-token); masked inside the sandbox.", valueName: "FILE"))
    var gateTokenFile: String?

    @Option(name: .customLong("gate-ca"), help: ArgumentHelp("PEM roots that sign the gate's certificate (a private CA).", valueName: "FILE"))
    var gateCA: String?

    @Option(name: .customLong("policy"), help: ArgumentHelp(
        "The Cedar policy that decides this session's changes (default ~/.config/airlock/policy.cedar when it exists; docs/policy.md). Read before the agent starts; never mounted inside.",
        valueName: "FILE"))
    var policy: String?

    @Option(name: .customLong("approver-token-file"), help: ArgumentHelp(
        "With --gate: your own approver token (default ~/.config/airlock/gate-token when it exists). The gate records you as the session's launcher, and you never count as an approver of its proposals.",
        valueName: "FILE"))
    var approverTokenFile: String?

    @Flag(name: .customLong("no-broker"), help: ArgumentHelp(
        "Run the sandbox alone: no broker, no network, no AWS endpoint, no intercepted tools."))
    var noBroker = false

    @OptionGroup var state: StateOptions

    /// Execution sandboxes for command proposals (started by Airlock itself): a spec in the
    /// proposal's artifact directory.
    @Option(help: .hidden) var execution: String?

    @Argument(parsing: .remaining, help: ArgumentHelp("The command to run, after --.", valueName: "CMD"))
    var command: [String] = []

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        let request = RunArguments(profiles: profiles, workspace: workspace, stateDir: state.stateDir,
                                   awsEndpoint: awsEndpoint, awsProfile: awsProfile, allowDomains: allowDomains, command: argv,
                                   execution: execution, noBroker: noBroker, gate: gate, gateTokenFile: gateTokenFile, gateCA: gateCA,
                                   policy: policy, approverTokenFile: approverTokenFile)
        throw request.perform()
    }
}

/// What `airlock run` needs, however it was parsed.
struct RunArguments {
    var profiles: [String] = []
    var workspace: String?
    var stateDir: String?
    var awsEndpoint: String?
    var awsProfile: String?
    var allowDomains: [String] = []
    var command: [String] = []
    var execution: String?
    var noBroker = false
    /// The team gate proposals go to, this host's token file and the gate's CA.
    var gate: String?
    var gateTokenFile: String?
    var gateCA: String?
    /// The session's policy file (docs/policy.md) and, with a gate, the launcher's own token.
    var policy: String?
    var approverTokenFile: String?

    static let defaultGateTokenFile = "/etc/airlock/gate-token"

    /// A well-formed `run` command line, parsed without ArgumentParser's reflection (about a
    /// millisecond of start-up); nil sends anything unusual (help, errors) to ArgumentParser.
    static func fastParse(_ arguments: [String]) -> RunArguments? {
        guard arguments.first == "run" else { return nil }
        var result = RunArguments()
        var index = 1
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                result.command = Array(arguments[(index + 1)...])
                return result.command.isEmpty ? nil : result
            }
            if argument == "--no-broker" {
                result.noBroker = true
                index += 1
                continue
            }
            let (name, inlineValue) = splitOption(argument)
            let value: String
            if let inlineValue {
                value = inlineValue
            } else {
                guard index + 1 < arguments.count else { return nil }
                index += 1
                value = arguments[index]
            }
            switch name {
            case "--profile": result.profiles.append(value)
            case "--workspace" where result.workspace == nil: result.workspace = value
            case "--state-dir" where result.stateDir == nil: result.stateDir = value
            case "--aws-endpoint" where result.awsEndpoint == nil: result.awsEndpoint = value
            case "--aws-profile" where result.awsProfile == nil: result.awsProfile = value
            case "--allow-domain": result.allowDomains.append(value)
            case "--execution" where result.execution == nil: result.execution = value
            case "--gate" where result.gate == nil: result.gate = value
            case "--gate-token-file" where result.gateTokenFile == nil: result.gateTokenFile = value
            case "--gate-ca" where result.gateCA == nil: result.gateCA = value
            case "--policy" where result.policy == nil: result.policy = value
            case "--approver-token-file" where result.approverTokenFile == nil: result.approverTokenFile = value
            default: return nil
            }
            index += 1
        }
        return nil
    }

    static func splitOption(_ argument: String) -> (String, String?) {
        guard argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    func executionRequest(environment: [String: String]) throws(AirlockError) -> ExecutionRequest? {
        guard let execution else { return nil }
        guard workspace == nil, profiles.isEmpty, allowDomains.isEmpty, !noBroker else {
            throw AirlockError("--execution takes no --workspace, --profile, --allow-domain or --no-broker: its spec says everything")
        }
        let home = environment["HOME"] ?? "/"
        let state = StateDirectory.resolve(explicit: stateDir, environment: environment, home: home)
        return try ExecutionRequest.load(execution, stateDir: PinnedFiles.realPath(state) ?? state)
    }

    /// `/etc/airlock/config.yaml` (`AIRLOCK_HOST_CONFIG` names another, for tests); none is fine.
    static func hostConfig(_ environment: [String: String]) throws(AirlockError) -> HostConfig {
        let path = environment["AIRLOCK_HOST_CONFIG"] ?? HostConfig.defaultPath
        guard access(path, F_OK) == 0 else { return HostConfig() }
        return try HostConfig.parse(try readTextFile(path, limit: 1 << 20), source: path)
    }

    /// Runs the command in a sandbox and returns the exit code to end with.
    func perform() -> ExitCode {
        // Before any thread exists: every thread then has these blocked and one sigwait
        // thread forwards them to the agent.
        RunSession.blockSignals()
        guard !command.isEmpty else {
            return fail(AirlockError("no command given", hint: "airlock run -- CMD [ARG...], e.g. airlock run -- bash"))
        }
        // The seccomp filter compiles on the other core while profiles are read.
        let seccomp = Background { Result { () throws(AirlockError) in try SeccompProgram.build() } }
        let authority = noBroker ? nil : AgentSession.startAuthority(environment: currentEnvironment())
        StartupTrace.mark("threads")
        var launcherEnvironment = currentEnvironment()
        // The host's team gate (/etc/airlock/config.yaml) unless the command line names one.
        let hostConfig: HostConfig
        do throws(AirlockError) {
            hostConfig = noBroker || execution != nil || gate != nil ? HostConfig() : try Self.hostConfig(launcherEnvironment)
        } catch {
            return fail(error)
        }
        let gate = self.gate ?? hostConfig.gateURL
        let gateTokenFile = self.gateTokenFile ?? hostConfig.gateTokenFile
        let gateCA = self.gateCA ?? hostConfig.gateCA
        if gate != nil {
            // Host inspection masks the file a credential-path variable names; the variable
            // itself is credential-shaped, so it never enters the sandbox.
            launcherEnvironment["AIRLOCK_GATE_TOKEN_FILE"] = gateTokenFile ?? Self.defaultGateTokenFile
        }
        let environment = launcherEnvironment
        StartupTrace.mark("environment")
        do throws(AirlockError) {
            let home = environment["HOME"] ?? "/"
            let library = ProfileLibrary(environment: environment, home: home)
            StartupTrace.mark("library")
            let executionRequest = try self.executionRequest(environment: environment)
            // An execution sandbox is the default sandbox plus what the tool's profile asks.
            let stack = try library.loadStack(executionRequest == nil ? profiles : [])
            StartupTrace.mark("profiles")
            // Tool profiles are read and parsed on another core while the host is inspected.
            let toolNames = executionRequest == nil && !noBroker ? stack.tools : []
            let stateDirectory = StateDirectory.resolve(explicit: stateDir, environment: environment, home: home)
            let cache = ToolProfileCache(stateDir: stateDirectory)
            // Version files are read where the human's shell would run the tool: the workspace.
            let toolDirectory = resolvedHostPath(workspace.map { $0.hasPrefix("/") ? $0 : currentDirectoryPath() + "/" + $0 } ?? currentDirectoryPath())
            let tools = Background { Result { () throws(AirlockError) in
                try InterceptedTool.load(toolNames, library: library, environment: environment, directory: toolDirectory,
                                         stateDir: stateDirectory, cache: cache)
            } }
            var facts = try HostInspection.gather(
                profiles: stack, workspace: executionRequest?.spec.snapshot ?? workspace, stateDir: stateDir, environment: environment)
            executionRequest?.apply(to: &facts)
            StartupTrace.mark("host-facts")
            var layout = try SandboxLayout.make(profiles: stack, host: facts)
            StartupTrace.mark("layout")
            if noBroker {
                return try runAlone(layout: &layout, stack: stack, facts: facts, environment: environment, seccomp: seccomp)
            }
            let (agentTools, toolProblems) = try tools.value.get()
            for problem in toolProblems {
                writeError("airlock: \(problem.tool) is not available inside: \(problem.found): \(problem.why). To fix: \(problem.fix) (`airlock doctor` lists every tool)\n")
            }
            StartupTrace.mark("tools")
            let gateTarget = try gate.map { url throws(AirlockError) -> GateTarget in
                guard executionRequest == nil else { throw AirlockError("--gate is for agent sessions") }
                let file = gateTokenFile ?? Self.defaultGateTokenFile
                let token = try GateHTTP.readToken(file, role: .host)
                // Checked now, so a wrong URL, certificate or token fails the launch, not the
                // agent's first change.
                do throws(AirlockError) {
                    _ = try GateClient(url: url, token: token, caFile: gateCA).checkEnrollment()
                } catch {
                    throw AirlockError("the team gate at \(url) cannot be used: \(error.message)",
                                       hint: error.hint ?? "check --gate, --gate-ca and the token in \(file)")
                }
                // The launching human's own approver token, when they have one: the gate
                // records who launched the session (never a name this host claims).
                let approverFile = approverTokenFile ?? home + "/.config/airlock/gate-token"
                var launcherToken: String?
                if approverTokenFile != nil || access(approverFile, R_OK) == 0 {
                    launcherToken = try GateHTTP.readToken(approverFile, role: .approver)
                }
                return GateTarget(url: url, token: token, caFile: gateCA, launcherToken: launcherToken)
            }
            // The human's rules, read here, outside the sandbox, before the agent starts; never
            // from where the agent writes (it would write its own rules for the next session).
            let policyPath = policy.map { resolvedHostPath($0.hasPrefix("/") ? $0 : currentDirectoryPath() + "/" + $0) }
            if let policyPath, [facts.workspace, facts.stateDir].contains(where: { PathResolution.isInside(policyPath, resolvedHostPath($0)) }) {
                throw AirlockError("--policy \(policyPath) is inside the workspace or the state directory, where the agent writes: it could write its own rules",
                                   hint: "keep the policy outside, e.g. ~/.config/airlock/policy.cedar (the default)")
            }
            let rules = executionRequest == nil
                ? try SessionRules.load(explicit: policyPath, home: home,
                                        catalog: try? AWSCatalogFiles.locate(environment: environment, profileSearchPath: library.searchPath))
                : nil
            let session = try AgentSession(
                facts: facts, stack: stack, library: library, environment: environment,
                awsEndpoint: awsEndpoint, awsProfile: awsProfile, allowDomains: allowDomains, execution: executionRequest,
                tools: agentTools, authority: authority ?? AgentSession.startAuthority(), gate: gateTarget, rules: rules)
            StartupTrace.mark("session")
            if let executionRequest {
                try executionRequest.validate(intake: session.intake)
            }
            try session.prepare(&layout)
            StartupTrace.mark("prepared")
            // An execution step's output is its tool's (a plan read as JSON): Airlock's own
            // warnings (a credential file masked) go to the session log there, not into it.
            for warning in layout.warnings {
                if executionRequest != nil { session.log.write("warning: \(warning)") } else { writeError("airlock: warning: \(warning)\n") }
            }
            var request = LaunchRequest(layout: layout, argv: command, terminal: nil)
            request.seccomp = seccomp
            request.listeners = session.listeners
            let limits = stack.limits
            request.cgroups = try Self.createCgroups(limits, sessionID: facts.sessionID)
            defer { request.cgroups?.remove() }
            StartupTrace.mark("launch")
            let exit = try RunSession.run(request, environment: environment) { (sandbox) throws(AirlockError) in
                try session.serve(sandbox)
            }
            StartupTrace.mark("exited")
            Self.reportMemoryKills(request.cgroups, limits: limits)
            session.finish()
            StartupTrace.mark("finished")
            return ExitCode(exit.code)
        } catch {
            // docs/design.md §6: whatever went wrong before the command ran is 125, except the
            // shell's own 126/127 for a command that cannot be executed or found.
            return fail(error, run: true)
        }
    }

    /// `--no-broker`: the sandbox alone. No listeners, no proxy variables, no shims, no AWS
    /// configuration: nothing inside can reach anything outside.
    func runAlone(layout: inout SandboxLayout, stack: ProfileStack, facts: HostFacts, environment: [String: String],
                  seccomp: Background<Result<SeccompProgram, AirlockError>>) throws(AirlockError) -> ExitCode {
        guard awsEndpoint == nil, awsProfile == nil, allowDomains.isEmpty, gate == nil else {
            throw AirlockError("--no-broker runs without the broker, which --aws-endpoint, --aws-profile, --allow-domain and --gate need",
                               hint: "leave out --no-broker to reach AWS or the network through the gate")
        }
        let policy = stack.egressPolicy()
        if !policy.allow.isEmpty {
            layout.warnings.append("--no-broker: the profile's network.allow (\(policy.allow.prefix(3).map(\.description).joined(separator: ", "))\(policy.allow.count > 3 ? ", …" : "")) is not reachable without the broker")
        }
        AgentSession.writeHomeFiles(stack, facts: facts, environment: environment)
        layout.addLoginShellProfile(hostHasEtcProfile: facts.hasEtcProfile)
        for warning in layout.warnings { writeError("airlock: warning: \(warning)\n") }
        var request = LaunchRequest(layout: layout, argv: command, terminal: nil)
        request.seccomp = seccomp
        let limits = stack.limits
        request.cgroups = try Self.createCgroups(limits, sessionID: facts.sessionID)
        defer { request.cgroups?.remove() }
        StartupTrace.mark("launch")
        let exit = try RunSession.run(request, environment: environment)
        StartupTrace.mark("exited")
        Self.reportMemoryKills(request.cgroups, limits: limits)
        return ExitCode(exit.code)
    }

    /// The sandbox's cgroup for the profile's limits (nil without limits), warning about each
    /// limit this host cannot enforce.
    static func createCgroups(_ limits: SandboxLimits, sessionID: String) throws(AirlockError) -> Cgroups.Handle? {
        guard !limits.isEmpty else { return nil }
        let plan = CgroupPlan.make(limits, host: Cgroups.inspect(), name: "airlock-" + sessionID)
        for (kind, why) in plan.unenforced {
            writeError("airlock: warning: limits.\(kind == .cpu ? "cpus" : kind.rawValue) is not enforced: \(why)\n")
        }
        return try Cgroups.create(plan)
    }

    static func reportMemoryKills(_ cgroups: Cgroups.Handle?, limits: SandboxLimits) {
        if let kills = cgroups?.oomKills(), kills > 0, let memory = limits.memory {
            writeError("airlock: the sandbox reached its memory limit (\(ByteSize.format(memory))): the kernel killed \(kills) process\(kills == 1 ? "" : "es") in it\n")
            writeError("  raise limits.memory in a profile if the work needs more\n")
        }
    }
}
