import AirlockBroker
import AirlockCore
import AirlockExecution
import AirlockGate
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import AirlockStorePostgres
import Glibc

/// What `airlock-gate` builds from `gate.yaml`: the store its config names and the service.
enum GateSetup {
    static func environment() -> [String: String] { currentEnvironment() }

    static func config(_ path: String) throws(AirlockError) -> GateConfig {
        let bytes = try readFile(path, limit: 1 << 20)
        return try GateConfig.parse(String(decoding: bytes, as: UTF8.self), source: path)
    }

    static func store(_ config: GateConfig) throws(AirlockError) -> any ProposalStore {
        switch config.store {
        case .sqlite(let dir):
            try ensureDirectory(dir)
            chmod(dir, 0o700)
            return try SQLiteProposalStore(stateDir: dir)
        case .postgres(let url):
            return try PostgresProposalStore(try PostgresStoreConfiguration(parsing: url), schema: config.postgresSchema)
        }
    }

    /// The store `gate serve` uses: with PostgreSQL, also listening for other replicas' changes.
    static func servingStore(_ config: GateConfig) throws(AirlockError) -> any ProposalStore {
        let store = try Self.store(config)
        (store as? PostgresProposalStore)?.startListening()
        return store
    }

    static func service(_ config: GateConfig, store: any ProposalStore, configPath: String? = nil) throws(AirlockError) -> GateService {
        let environment = environment()
        let library = ProfileLibrary(environment: environment, home: environment["HOME"] ?? "/")
        let catalog = try AWSCatalogFiles.locate(environment: environment, profileSearchPath: library.searchPath)
        try ensureDirectory(config.stateDir)
        chmod(config.stateDir, 0o700)
        // Blobs live where every replica reads them: PostgreSQL's tables (with the parts an
        // earlier release kept in state_dir/blobs still read); a SQLite gate (one replica)
        // keeps them in its state directory.
        let directory = DirectoryBlobStore(directory: config.stateDir + "/blobs")
        let blobs: any BlobStore = (store as? PostgresProposalStore).map { LayeredBlobStore(primary: $0, legacy: directory) } ?? directory
        return GateService(store: store, config: config, catalog: catalog, blobs: blobs,
                           credentials: HostCredentials(environment: environment, profile: config.awsProfile),
                           signer: try signer(config), commands: commandSetup(config, configPath: configPath, environment: environment),
                           kubernetes: try kubernetes(config, environment: environment), github: try github(config, environment: environment),
                           previewCredentials: config.awsPreviewProfile.map { HostCredentials(environment: environment, profile: $0) },
                           rules: try rules(config, catalog: catalog))
    }

    /// The gate's own policy (gate.yaml `policy`), checked whole before the gate serves: a
    /// policy that does not parse or validate stops the start with every problem listed.
    static func rules(_ config: GateConfig, catalog: AWSCatalogFiles) throws(AirlockError) -> AirlockRules {
        guard let path = config.policyFile else { return AirlockRules() }
        let text: String
        do { text = try readTextFile(path, limit: 1 << 20) } catch {
            throw AirlockError("cannot read the gate's policy \(path) (gate.yaml policy): \(error.message)")
        }
        return try AirlockRules([AirlockRules.Source(label: path, text: text)], lookup: SessionRules.lookup(catalog))
    }

    /// The gate's kubeconfig, each mapped context checked to be in it (docs/gate.md,
    /// "Kubernetes and GitHub on the gate").
    static func kubernetes(_ config: GateConfig, environment: [String: String]) throws(AirlockError) -> GateService.KubernetesSetup? {
        guard let path = config.kubeconfig else { return nil }
        var variables = environment
        variables["KUBECONFIG"] = path
        guard let clusters = try KubernetesClusters.load(environment: variables) else {
            throw AirlockError("cannot read the gate's kubeconfig \(path) (gate.yaml kubernetes.kubeconfig)")
        }
        for entry in config.kubernetesClusters where clusters.context(named: entry.context) == nil {
            throw AirlockError("gate.yaml kubernetes.clusters maps \(entry.server) to the context \(entry.context), which \(path) does not have",
                               hint: "kubectl config get-contexts --kubeconfig \(path)")
        }
        return GateService.KubernetesSetup(clusters: clusters, mapping: config.kubernetesClusters)
    }

    /// Each mapped GitHub host's token, from its file (not readable by others).
    static func github(_ config: GateConfig, environment: [String: String]) throws(AirlockError) -> GitHubCredentials? {
        guard !config.githubHosts.isEmpty else { return nil }
        var tokens: [String: String] = [:]
        for entry in config.githubHosts {
            var info = stat()
            guard stat(entry.tokenFile, &info) == 0 else {
                throw AirlockError("cannot read the GitHub token file \(entry.tokenFile) for \(entry.host): \(String(cString: strerror(errno)))")
            }
            guard info.st_mode & 0o077 == 0 else {
                throw AirlockError("the GitHub token file \(entry.tokenFile) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8)))",
                                   hint: "chmod 600 \(entry.tokenFile)")
            }
            let token = String(try readTextFile(entry.tokenFile, limit: 4096).filter { !$0.isWhitespace })
            guard !token.isEmpty else { throw AirlockError("the GitHub token file \(entry.tokenFile) for \(entry.host) is empty") }
            tokens[entry.host] = token
        }
        return GitHubCredentials(gateTokens: tokens, environment: environment)
    }

    /// Command proposals run when `airlock` is installed beside `airlock-gate`. Every
    /// execution sandbox masks the gate's own secrets (its configuration, TLS key, audit key,
    /// SQLite directory), as it masks credential paths and the state directory.
    static func commandSetup(_ config: GateConfig, configPath: String?, environment: [String: String]) -> GateService.CommandSetup? {
        guard let me = HostInspection.realPath("/proc/self/exe") else { return nil }
        let launcher = String(me[..<(me.lastIndex(of: "/") ?? me.startIndex)]) + "/airlock"
        guard access(launcher, X_OK) == 0 else { return nil }
        var named: [String?] = [configPath, config.tlsKey, config.auditSigningKey, config.kubeconfig] + config.githubHosts.map(\.tokenFile)
        if let kubeconfig = config.kubeconfig {
            // And what the gate's kubeconfig names: client keys, token files, exec plugins' files.
            var variables = environment
            variables["KUBECONFIG"] = kubeconfig
            let found = CredentialSources.find(environment: variables, home: environment["HOME"] ?? "/", cwd: "/") { try? readTextFile($0, limit: 4 << 20) }
            named += found.files.map(\.path)
        }
        var secrets = named.compactMap { $0 }.map { PinnedFiles.realPath($0) ?? $0 }
        if case .sqlite(let dir) = config.store { secrets.append(dir) }
        var variables = environment
        variables["AIRLOCK_GATE_SECRET_FILES"] = secrets.filter { $0.hasPrefix("/") }.joined(separator: ":")
        return GateService.CommandSetup(environment: variables, launcher: launcher)
    }

    /// The audit signing key, when gate.yaml names one. It must not be readable by others.
    static func signer(_ config: GateConfig) throws(AirlockError) -> AuditSigner? {
        guard let path = config.auditSigningKey else { return nil }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw AirlockError("cannot read the audit signing key \(path): \(String(cString: strerror(errno)))",
                               hint: "make one: airlock gate audit-key new \(path)")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw AirlockError("the audit signing key \(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8)))",
                               hint: "chmod 600 \(path)")
        }
        let bytes = try readFile(path, limit: 1 << 16)
        return try AuditSigner(pem: String(decoding: bytes, as: UTF8.self), source: path)
    }

    /// One `gate serve` per SQLite store: a second would be a second executor on one file
    /// (local `airlock` sessions still share it). Held until the process exits.
    static func lockSQLite(_ config: GateConfig) throws(AirlockError) {
        guard case .sqlite(let dir) = config.store else { return }
        try ensureDirectory(dir)
        let path = dir + "/gate.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AirlockError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw AirlockError("another airlock gate serve already uses the SQLite store in \(dir)",
                               hint: "stop it, or use PostgreSQL (store: {postgres: URL}) to run several gate replicas on one store")
        }
    }
}
