import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import Glibc

/// One `airlock run` session's broker side: the dummy keys and AWS config the sandbox gets,
/// the listeners its init creates, and the broker serving them.
/// Unchecked: `prepare` (before the launch) is the only mutation; from `serve` on the
/// session is read from the broker's threads.
public final class AgentSession: @unchecked Sendable {
    public let id: String
    public let stateDir: String
    public let credentials: SigV4.Credentials
    public let upstream: AWSUpstream
    public let catalog: AWSCatalogFiles
    public let hostCredentials: HostCredentials
    public let region: String
    public let log: BrokerLog
    public let record: Session
    /// The session's CA for AWS hosts reached through the proxy (docs/gate.md) and the trust
    /// bundle the sandbox gets, made on another core from the launcher's first step (about
    /// 2 ms: two P-256 keys, a certificate, 220 KB of system roots); its key stays in this
    /// process.
    public let authority: Background<Result<SessionTrust, AirlockError>>

    public struct SessionTrust: Sendable {
        let ca: SessionCA
        /// The human's GitHub hosts (read with the CA, whose constraints list them).
        let githubHosts: [String]
        /// The system's roots and the session CA: what SSL_CERT_FILE and AWS_CA_BUNDLE name.
        let bundle: String
    }

    /// `environment`: the launcher's, for the human's GitHub Enterprise hosts (read on the
    /// other core with the CA: the CA's name constraints must list them).
    public static func startAuthority(environment: [String: String] = [:]) -> Background<Result<SessionTrust, AirlockError>> {
        Background { Result { () throws(AirlockError) in
            StartupTrace.mark("ca-start")
            defer { StartupTrace.mark("ca-done") }
            let githubHosts = GitHubCredentials.hosts(environment: environment)
            let ca = try SessionCA(extraDomains: githubHosts.filter { !$0.hasSuffix("github.com") })
            let system = (try? readTextFile(Self.systemBundle, limit: 4 << 20)) ?? ""
            return SessionTrust(ca: ca, githubHosts: githubHosts, bundle: system + (system.hasSuffix("\n") || system.isEmpty ? "" : "\n") + ca.pem)
        } }
    }
    private let storeCache: StoreCache

    public let egress: EgressProxy
    /// Tools whose shims this sandbox gets (an agent's), or the one an execution runs.
    public let tools: [InterceptedTool]
    public let execution: ExecutionRequest?
    public let environment: [String: String]
    public let home: String
    public let awsEndpoint: String?
    public let awsProfile: String?
    /// The agent's network allowlist (a command's prepare steps get no more).
    public let egressPolicy: EgressPolicy
    public let snapshotExclude: [String]
    public let snapshotLimit: Int
    /// Paths inside the workspace the sandbox masks (credentials): never in a snapshot.
    public private(set) var maskedWorkspacePaths: Set<String> = []
    public let hasEtcProfile: Bool
    /// The profiles' scopes for Kubernetes and GitHub reads (docs/kubernetes.md, docs/github.md).
    let kubernetesReadNamespaces: Set<String>?
    let kubernetesAllow: Set<String>
    let kubernetesSensitive: Set<String>
    /// The accounts the profiles name as production (preview labels, docs/previews.md).
    let productionAccounts: Set<String>
    /// What the agent can write (the workspace, the profiles' read-write paths, real paths too):
    /// credential configuration there is never trusted by the broker.
    let writableRoots: WritableRoots
    let githubRepoScopes: [[Glob]]
    /// The human's kubeconfig, read here (outside the sandbox): the Kubernetes endpoint's
    /// clusters. Nil without one; agent sessions only (an execution keeps its tool's files).
    public let kubernetes: KubernetesClusters?
    /// The token the sandbox's kubeconfig holds (docs/kubernetes.md).
    public let kubernetesToken = KubernetesGateway.newToken()
    /// The token the sandbox's gh holds (docs/github.md).
    public let githubToken = GitHubGateway.newToken()

    public init(facts: HostFacts, stack: ProfileStack, library: ProfileLibrary, environment: [String: String],
         awsEndpoint: String?, awsProfile: String?, allowDomains: [String], execution: ExecutionRequest? = nil,
         tools agentTools: [InterceptedTool], authority: Background<Result<SessionTrust, AirlockError>> = startAuthority(),
         gate: GateTarget? = nil, rules: AirlockRules? = nil) throws(AirlockError) {
        self.authority = authority
        self.environment = environment
        self.execution = execution
        hasEtcProfile = facts.hasEtcProfile
        self.awsEndpoint = awsEndpoint
        self.awsProfile = awsProfile
        home = environment["HOME"] ?? "/"
        if let execution {
            let (profile, text) = try InterceptedTool.profile(execution.tool, library: library)
            // The program the session or the proposal pinned, checked by digest: never what
            // this process's PATH finds now.
            let tool = try InterceptedTool.pinned(profile, text: text, binary: execution.spec.binary, digest: execution.spec.binaryDigest,
                                                  environment: environment, stateDir: facts.stateDir)
            if let refusal = tool.refusalToExecute(workspace: facts.workspace, stateDir: facts.stateDir) { throw AirlockError(refusal) }
            tools = [tool]
        } else {
            tools = agentTools
        }
        id = facts.sessionID
        stateDir = facts.stateDir
        credentials = BrokerSession.dummyCredentials()
        upstream = try AWSUpstream(parsing: awsEndpoint ?? "aws")
        catalog = try AWSCatalogFiles.locate(environment: environment, profileSearchPath: library.searchPath)
        writableRoots = WritableRoots(Self.writableRoots(facts: facts, stack: stack, home: environment["HOME"] ?? "/"))
        hostCredentials = HostCredentials(environment: environment, profile: awsProfile, writableRoots: writableRoots)
        region = hostCredentials.defaultRegion()
        log = BrokerLog(path: facts.stateDir + "/sessions/\(facts.sessionID).log")
        record = Session(id: id, startedAt: Clock.now(), user: Actor.currentUser(), workspace: facts.workspace,
                         profiles: stack.names.joined(separator: ","), awsUpstream: upstream.description,
                         awsAccessKeyID: credentials.accessKeyID, launcher: gate == nil ? Actor.currentUser() : nil)
        storeCache = StoreCache(stateDir: facts.stateDir, session: record, gate: gate,
                                spool: execution.flatMap { $0.spec.spool ? $0.spec.spoolPath : nil })
        if execution == nil {
            // Every proposal is decided by the human's rules (an empty set asks one approver,
            // within a day); an execution sandbox proposes nothing.
            storeCache.rules = SessionRules(rules: rules ?? AirlockRules(), session: SessionFacts(
                id: id, host: Self.hostName(), user: record.user, profiles: stack.names, address: gate == nil ? "127.0.0.1" : nil))
            storeCache.approvalEnvironment = environment
            storeCache.awsProfile = awsProfile
            storeCache.log = log
        }
        if execution == nil { Self.writeHomeFiles(stack, facts: facts, environment: environment) }
        for domain in allowDomains where EgressRule.parse(domain, source: "--allow-domain") == nil {
            throw AirlockError("--allow-domain \(domain) is not a host, *.domain or IP, with an optional :port")
        }
        let timeouts = stack.egressTimeouts
        // An execution reaches what its spec names (the agent's own allowlist for a prepare
        // step, the tool's hosts, the human's cluster at its current addresses), nothing else.
        var policy = execution?.spec.egressPolicy ?? stack.egressPolicy(extraAllow: allowDomains.map { ($0, "--allow-domain") })
        if let gate { policy = policy.refusingGate(url: gate.url, resolved: Self.gateAddresses(gate.url, environment: environment)) }
        egressPolicy = policy
        kubernetesReadNamespaces = stack.kubernetesReadNamespaces
        kubernetesAllow = stack.kubernetesAllow
        kubernetesSensitive = stack.kubernetesSensitive
        productionAccounts = stack.productionAccounts
        githubRepoScopes = stack.githubRepoScopes
        if execution == nil || execution?.spec.kubernetesEndpoint == true {
            do {
                kubernetes = try KubernetesClusters.load(environment: environment)
            } catch {
                writeStandardError("airlock: warning: \(error.message); Kubernetes is not reachable from the sandbox\(error.hint.map { " (\($0))" } ?? "")\n")
                kubernetes = nil
            }
        } else {
            kubernetes = nil
        }
        snapshotExclude = stack.snapshotExclude
        snapshotLimit = Int(clamping: stack.snapshotLimit)
        egress = EgressProxy(
            policy: policy,
            limits: EgressProxy.Limits(headerTimeout: timeouts.header, idleTimeout: timeouts.idle, totalTimeout: timeouts.total,
                                       maxTunnels: timeouts.maxTunnels),
            resolver: EgressResolver(environment: environment), log: log)
    }

    /// The gate's addresses now, for the egress proxy to refuse under any name.
    public static func gateAddresses(_ url: String, environment: [String: String]) -> [IPAddress] {
        EgressResolver(environment: environment).resolve(EgressPolicy.host(ofURL: url))
    }

    public static let proxyPort: UInt16 = 3128
    public static let systemBundle = "/etc/ssl/certs/ca-certificates.crt"
    public static let caPath = SandboxLayout.runDirectory + "/ca/airlock-aws-ca.pem"
    public static let bundlePath = SandboxLayout.runDirectory + "/ca/bundle.pem"

    public var listeners: [ListenerRequest] {
        [.tcp(port: AWSSandboxSetup.port), .unix(path: AWSSandboxSetup.agentSocket), .tcp(port: Self.proxyPort),
         .tcp(port: KubernetesSandboxSetup.port)]
    }

    /// Adds the AWS config, the agent's own `airlock` (for `wait` and `status`) and the
    /// variables that point SDKs at the broker.
    public func prepare(_ layout: inout SandboxLayout) throws(AirlockError) {
        let catalog = self.catalog
        let prepared = try AWSSandboxSetup.prepared(
            catalogDirectory: catalog.directory, region: region, cacheDirectory: stateDir + "/cache",
            loadIndex: { () throws(AirlockError) in try catalog.index() })
        layout.addFile(AWSSandboxSetup.configPath, contents: prepared.configFile)
        StartupTrace.mark("aws-config")
        if let binary = HostInspection.realPath("/proc/self/exe") {
            layout.addReadOnlyBind(source: binary, target: SandboxLayout.runDirectory + "/bin/airlock", directory: false)
        }
        let proxy = "http://127.0.0.1:\(Self.proxyPort)"
        let noProxy = "localhost,127.0.0.1,::1"
        layout.setEnvironment(AWSSandboxSetup.environment(credentials: credentials, region: region).merging([
            "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy,
            "NO_PROXY": noProxy, "no_proxy": noProxy,
        ]) { $1 })
        layout.extraEnvironment += prepared.endpointVariables
        StartupTrace.mark("variables")
        if case .success(let trust) = authority.value {
            StartupTrace.mark("session-ca")
            // Clients trust the session CA on top of the system's roots.
            layout.addFile(Self.caPath, contents: trust.ca.pem)
            layout.addFile(Self.bundlePath, contents: trust.bundle)
            // Not REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE: python-requests lets either override
            // a CA a program chose itself (`pip --cert`, `Session.verify`), which breaks them.
            layout.setEnvironment(["AWS_CA_BUNDLE": Self.bundlePath, "SSL_CERT_FILE": Self.bundlePath,
                                   "NODE_EXTRA_CA_CERTS": Self.caPath])
            if execution == nil || execution?.spec.githubEndpoint == true {
                // gh in the sandbox is logged in with a token that is worth nothing outside
                // this broker, which swaps in the human's; git trusts the session CA too.
                var variables = ["GH_TOKEN": githubToken, "GH_ENTERPRISE_TOKEN": githubToken, "GIT_SSL_CAINFO": Self.bundlePath]
                // GH_HOST is one of the GitHub hosts the proxy terminates (GitHubCredentials.hosts).
                if let host = environment["GH_HOST"]?.lowercased(), GitHubCredentials.isHostName(host) { variables["GH_HOST"] = host }
                layout.setEnvironment(variables)
            }
            if let kubernetes {
                // Every context of the human's kubeconfig, through the broker: no real server
                // address or credential is in this file.
                layout.addFile(KubernetesSandboxSetup.configPath,
                               contents: kubernetes.config.sandboxConfig(endpoint: KubernetesSandboxSetup.endpoint, caPEM: trust.ca.pem,
                                                                         token: kubernetesToken))
                layout.setEnvironment(["KUBECONFIG": KubernetesSandboxSetup.configPath])
            }
        }
        StartupTrace.mark("ca-bundle")
        let workspace = record.workspace
        maskedWorkspacePaths = Set(layout.mounts.compactMap { step -> String? in
            guard case .mask(let target, _) = step, target != workspace, HostPath.isWithin(target, workspace) else { return nil }
            return String(target.dropFirst(workspace.count + 1))
        })
        if let execution, let tool = tools.first {
            execution.prepare(&layout, tool: tool)
        } else if let binary = HostInspection.realPath("/proc/self/exe") {
            for tool in tools { tool.addShim(to: &layout, airlockBinary: binary, home: home) }
            NestedSandbox.addExplanation(to: &layout, airlockBinary: binary)
        }
        layout.addLoginShellProfile(hostHasEtcProfile: hasEtcProfile)
    }

    /// The workspace and the profiles' read-write paths (lexical and real).
    static func writableRoots(facts: HostFacts, stack: ProfileStack, home: String) -> [String] {
        [facts.workspace] + stack.readWrite.flatMap { entry -> [String] in
            let lexical = HostPath.normalize(HostPath.expandingTilde(entry, home: home))
            return [lexical] + (facts.resolved[lexical].map { [$0] } ?? [])
        }
    }

    /// The profile's `home_files`, written into the agent's home before it starts.
    public static func writeHomeFiles(_ stack: ProfileStack, facts: HostFacts, environment: [String: String]) {
        let owner: (uid_t, gid_t)? = getuid() == 0
            ? (Launcher.rootAgentID(environment: environment), Launcher.rootAgentID(environment: environment)) : nil
        for warning in HomeFiles.write(stack.homeFiles, into: facts.agentHome, owner: owner) { writeStandardError("airlock: warning: \(warning)\n") }
    }

    /// Called as soon as the sandbox's init has handed over its listeners.
    public func serve(_ sandbox: RunningSandbox) throws(AirlockError) {
        let listeners = sandbox.takeListeners()
        guard listeners.count == 4 else { throw AirlockError("the sandbox did not hand over the broker's listeners") }
        // On another thread, and only once the agent connects: connections queue on the
        // listening sockets until the broker serves them. The gateway, NIO's threads and
        // first bootstraps cost about 3 ms and 8 MB of resident memory (code paged in), which
        // a session that never calls AWS or the network does not pay (BENCHMARKS.md).
        _ = Background { self.startServing(listeners) }
    }

    private func startServing(_ listeners: [Int32]) {
        log.write("session \(id) started: upstream \(upstream), workspace \(record.workspace)")
        // What each intercepted tool is for this session (docs/tools.md): every command
        // proposal pins the same program and digest.
        for tool in tools {
            log.write("tool \(tool.name): \(tool.binary) sha256:\(tool.digest)" + (tool.via.map { " (\($0), found \(tool.found))" } ?? "")
                      + (tool.runtime.isEmpty ? "" : "; runtime " + tool.runtime.joined(separator: ", ")))
        }
        var waiting = listeners.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        while poll(&waiting, nfds_t(waiting.count), -1) < 0 && errno == EINTR {}
        StartupTrace.mark("first-connection")
        let broker = Broker()
        let cache = storeCache
        let gateway = AWSGateway(
            session: BrokerSession(id: id, agentCredentials: credentials, upstream: upstream, record: record),
            catalog: catalog, store: cache, credentials: hostCredentials,
            stagingDirectory: stateDir + "/blobs", log: log, mutationPolicy: mutationPolicy, environment: environment,
            // With a team gate, the gate previews with its own read credentials (a host's facts
            // are the host's word); locally, the broker does (docs/previews.md).
            previews: storeCache.gate == nil && execution == nil, productionAccounts: productionAccounts)
        let log = self.log
        let commands: (@Sendable (JSON) -> JSON)?
        var finished: (@Sendable (Proposal) -> Proposal)?
        if execution == nil && !tools.isEmpty {
            // The profiles the launcher did not need to parse: ready before the first command.
            let tools = self.tools
            _ = Background { for tool in tools { _ = tool.profile } }
            let proposer = CommandProposer(
                sessionID: id, stateDir: stateDir, workspace: record.workspace, tools: tools,
                store: cache, log: log, environment: environment,
                awsEndpoint: awsEndpoint, awsProfile: awsProfile, upstream: upstream.description,
                network: NetworkGrant(egressPolicy), exclusion: snapshotExclude, maskedPaths: maskedWorkspacePaths,
                snapshotLimit: snapshotLimit)
            if storeCache.gate != nil {
                // With a team gate, the gate prepares and applies; this host sends the snapshot
                // and, after an approved run, copies the new state back.
                let sessionID = id
                proposer.remote = { (archive) throws(AirlockError) in
                    guard let gate = try cache.gateClient() else { throw AirlockError("no team gate") }
                    return try gate.proposeCommand(sessionID: sessionID, archive: archive)
                }
                finished = { proposal in
                    guard proposal.kind == .command, proposal.state == .succeeded, let gate = (try? cache.gateClient()) ?? nil else { return proposal }
                    return proposer.collectOutputs(proposal) { (index) throws(AirlockError) in try gate.output(proposal.id, index: index) }
                }
            }
            commands = { request in proposer.propose(request) }
        } else {
            commands = nil
        }
        StartupTrace.mark("gateway")
        let agentAPI = AgentAPI(sessionID: id, store: cache, log: log, commands: commands)
        agentAPI.finished = finished
        // Not waited for: connections queue on the listening sockets until the broker is
        // ready, so the agent starts at once.
        broker.serve(aws: listeners[0], gateway: gateway, agentAPI: listeners[1],
                           api: agentAPI) { error in
            log.write("broker: \(error)")
            writeStandardError("airlock: \(error.message): AWS calls from the sandbox will fail\n")
        }
        StartupTrace.mark("aws-serving")
        switch authority.value {
        case .success(let trust):
            do {
                egress.awsInterception = try AWSInterception(ca: trust.ca, gateway: gateway, broker: broker)
            } catch {
                log.write("broker: \(error.message): AWS hosts reached through the proxy are refused")
            }
        case .failure(let error):
            log.write("broker: \(error.message): AWS hosts reached through the proxy are refused")
        }
        if let kubernetes, case .success(let trust) = authority.value {
            // An execution: a prepare step only reads (its dry runs are reads), an approved
            // run's changes are sent and audited under its proposal.
            let kubeGateway = KubernetesGateway(
                sessionID: id, token: kubernetesToken, clusters: kubernetes, store: cache, log: log,
                mutationPolicy: mutationPolicy,
                allowed: kubernetesAllow, readNamespaces: kubernetesReadNamespaces, sensitive: kubernetesSensitive,
                // With a team gate, the gate makes the dry run with its own credentials (this
                // host's may only read, and the gate never reads a host's preview).
                previews: storeCache.gate == nil)
            do {
                broker.serve(kubernetes: listeners[3], gateway: kubeGateway, tls: try trust.ca.context(for: "127.0.0.1")) { error in
                    log.write("broker: \(error)")
                    writeStandardError("airlock: \(error.message): Kubernetes calls from the sandbox will fail\n")
                }
                egress.kubernetesInterception = KubernetesInterception(ca: trust.ca, gateway: kubeGateway, broker: broker)
                log.write("kubernetes: \(kubernetes.config.contexts.count) context(s) of \(kubernetes.sources.joined(separator: ", ")) through the broker")
            } catch {
                log.write("broker: \(error.message): Kubernetes calls from the sandbox will fail")
            }
        } else {
            // Nothing serves it: a client gets a refused connection at once, not a hang.
            close(listeners[3])
        }
        if execution == nil || execution?.spec.githubEndpoint == true, case .success(let trust) = authority.value {
            let githubGateway = GitHubGateway(
                sessionID: id, token: githubToken, credentials: GitHubCredentials(environment: environment, hosts: trust.githubHosts, writableRoots: writableRoots), store: cache, log: log,
                cacheDirectory: stateDir + "/cache/git", mutationPolicy: mutationPolicy,
                repoScopes: githubRepoScopes, pushesGoToGate: storeCache.gate != nil && execution == nil)
            egress.githubInterception = GitHubInterception(ca: trust.ca, gateway: githubGateway, broker: broker)
        }
        StartupTrace.mark("interception")
        egress.fitDescriptorLimit()
        broker.serve(egress: listeners[2], proxy: egress) { error in
            log.write("broker: \(error)")
            writeStandardError("airlock: \(error.message): network access from the sandbox will fail\n")
        }
    }

    public var mutationPolicy: AWSGateway.MutationPolicy {
        switch execution?.mode {
        case nil: return .propose
        case .prepare?: return .refuse("preparing a proposal only reads (a plan); it may not change anything")
        case .apply(let id)?: return .execute(proposalID: id)
        }
    }

    /// The session's intake (StoreCache).
    public var intake: any ProposalIntake { storeCache }

    /// This machine's name (the `Host` a local session's rules see).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }

    /// After the agent ended: tell the human what waits for them. (The process exits next:
    /// the broker's threads and sockets go with it, no graceful shutdown needed.)
    public func finish() {
        egress.drain(timeout: 2)
        log.write("session \(id) ended")
        let refused = egress.refusalSummary()
        if !refused.isEmpty {
            let total = refused.reduce(0) { $0 + $1.count }
            let list = refused.prefix(8).map { $0.count > 1 ? "\($0.target) (×\($0.count))" : $0.target }.joined(separator: ", ")
            // Targets and summaries are the agent's text: neutralized (docs/design.md 5.1).
            writeStandardError(TerminalText.neutralize("airlock: the egress proxy refused \(total) connection\(total == 1 ? "" : "s"): \(list)\(refused.count > 8 ? ", …" : "")") + "\n")
            writeStandardError("  allow a host with `airlock run --allow-domain HOST` or a profile's network.allow; details in \(log.path ?? "the session log")\n")
        }
        guard let store = storeCache.localStore, let mine = try? store.proposals(session: id), !mine.isEmpty else { return }
        let pending = mine.filter { $0.state == .pending }
        var text = "airlock: this session made \(mine.count) proposal\(mine.count == 1 ? "" : "s")"
        if !pending.isEmpty {
            text += "; pending: " + pending.map { "\($0.id) (\($0.summary))" }.joined(separator: ", ")
            text += "\n  review with `airlock review`, or `airlock proposals`, `airlock show ID`, then `airlock approve ID` or `airlock deny ID`"
        }
        writeStandardError(TerminalText.neutralize(text) + "\n")
    }
}

/// The session's intake (docs/architecture.md, "The store by role"): opened on first use
/// (most sessions that only read never need it), recording the session then, once. Locally
/// the state directory's SQLite store; with `--gate` the team gate's client; in an execution
/// sandbox a team gate started, the spool of its calls (an execution proposes nothing).
public final class StoreCache: ProposalIntake, @unchecked Sendable {
    public let stateDir: String
    public let session: Session
    public let gate: GateTarget?
    /// An execution sandbox a team gate started: its records go to this file (ExecutionSpool).
    public let spool: String?
    private var mutex = pthread_mutex_t()

    enum Opened {
        case local(SQLiteProposalStore)
        case gate(GateClient)
        case spool(ExecutionSpool)
    }

    private var opened: Opened?

    public init(stateDir: String, session: Session, gate: GateTarget? = nil, spool: String? = nil) {
        self.stateDir = stateDir
        self.session = session
        self.gate = gate
        self.spool = spool
        pthread_mutex_init(&mutex, nil)
    }

    func open() throws(AirlockError) -> Opened {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let opened { return opened }
        let made: Opened
        if let spool {
            made = .spool(ExecutionSpool(path: spool))
        } else if let gate {
            let client = try GateClient(url: gate.url, token: gate.token, caFile: gate.caFile, blobDirectory: stateDir + "/blobs")
            client.launcherToken = gate.launcherToken
            try client.recordSession(session)
            made = .gate(client)
        } else {
            let store = try SQLiteProposalStore(stateDir: stateDir)
            try store.recordSession(session)
            made = .local(store)
        }
        opened = made
        return made
    }

    /// The local store, if it was opened (the session's summary lists its proposals).
    public var localStore: SQLiteProposalStore? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if case .local(let store)? = opened { return store }
        return nil
    }

    /// The team gate's client (with `--gate`).
    public func gateClient() throws(AirlockError) -> GateClient? {
        if case .gate(let client) = try open() { return client }
        return nil
    }

    /// Where proposals go; an execution sandbox has none.
    func intake() throws(AirlockError) -> any ProposalIntake {
        switch try open() {
        case .local(let store): return store
        case .gate(let client): return client
        case .spool: throw AirlockError("an execution sandbox proposes nothing and waits for nothing (its changes were approved already)")
        }
    }

    /// The session is recorded when the store is first opened.
    public func recordSession(_ session: Session) throws(AirlockError) { _ = try open() }

    /// The session's rules (docs/policy.md), asked before each proposal is stored; nil in an
    /// execution sandbox (what it runs was approved already).
    public var rules: SessionRules?
    /// For a policy's `@airlock_allow` locally: the credentials the one approve path runs with.
    public var approvalEnvironment: [String: String] = [:]
    public var awsProfile: String?
    public var log: BrokerLog?

    public func propose(_ draft: ProposalDraft, pendingLimit: Int) throws(AirlockError) -> Proposal {
        var draft = draft
        var outcome: RuleOutcome?
        if let rules, spool == nil {
            let decided = rules.decide(draft).outcome
            outcome = decided
            rules.note(decided)
            switch decided {
            case .deny(let policies):
                // Audited like any refusal; the agent is told which policy.
                log?.write("\(draft.summary): forbidden by policy \(policies.joined(separator: ", ")); nothing was proposed")
                do {
                    try record(.refusal(sessionID: draft.sessionID, summary: draft.summary, rule: "forbidden by policy \(policies.joined(separator: ", "))"))
                } catch {
                    // Still refused; the session log keeps it when the store cannot.
                    log?.write("the refusal above is not in the audit log: \(error.message)")
                }
                throw SessionRules.forbidden(draft.summary, policies)
            case .allow, .ask:
                // Locally the rules decide; a host's rules only tighten the gate's.
                if gate == nil { draft.requirement = decided.requirement } else { draft.hostAsks = HostRequirement(decided) }
            }
        }
        let proposal = try intake().propose(draft, pendingLimit: pendingLimit)
        if case .allow(let policy)? = outcome, gate == nil, case .local(let store) = try open() {
            // Executed without a human, through the one approve path (freeze, revocation,
            // tamper, drift, expiry), audited as policy:ID. If that path refuses, the proposal
            // stays pending for a human.
            do {
                let ran = try LocalApproval.approveByPolicy(proposal, awsProfile: awsProfile, store: store, environment: approvalEnvironment)
                log?.write("proposal \(proposal.id): \(draft.summary) allowed by policy \(policy): \(ran.state.rawValue)")
                return ran
            } catch {
                log?.write("proposal \(proposal.id): policy \(policy) allows it, but the approve path refused: \(error.message); it waits for a human")
            }
        }
        return proposal
    }

    public func proposal(id: String) throws(AirlockError) -> Proposal? { try intake().proposal(id: id) }

    public func wait(id: String, timeout: Double) throws(AirlockError) -> Proposal? {
        guard case .local(let store) = try open() else { return try intake().wait(id: id, timeout: timeout) }
        // No daemon expires anything locally: a wait past a proposal's deadline expires it
        // (docs/policy.md), checked every second of the wait.
        let end = Clock.monotonicSeconds() + timeout
        while true {
            try store.expireOverdue()
            let remaining = end - Clock.monotonicSeconds()
            let found = try store.wait(id: id, timeout: max(0, min(remaining, 1)))
            guard let found, !found.state.isFinal, remaining > 1 else { return found }
        }
    }

    public func record(_ call: RecordedCall) throws(AirlockError) {
        switch try open() {
        case .local(let store): try store.record(call)
        case .gate(let client): try client.record(call)
        case .spool(let spool): try spool.record(call)
        }
    }
}

/// `airlock run --gate URL`: where this session's proposals go instead of the local store.
public struct GateTarget: Sendable {
    public var url: String
    /// This host's enrollment token (read by the launcher; its file is masked in the sandbox).
    public var token: String
    public var caFile: String?
    /// The launching human's own approver token, when they have one (docs/policy.md).
    public var launcherToken: String?

    public init(url: String, token: String, caFile: String?, launcherToken: String? = nil) {
        self.url = url
        self.token = token
        self.caFile = caFile
        self.launcherToken = launcherToken
    }
}
