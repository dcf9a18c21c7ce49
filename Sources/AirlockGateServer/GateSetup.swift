import AirlockBroker
import AirlockCore
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
            return try PostgresProposalStore(try PostgresStoreConfiguration(parsing: url))
        }
    }

    static func service(_ config: GateConfig, store: any ProposalStore) throws(AirlockError) -> GateService {
        let environment = environment()
        let library = ProfileLibrary(environment: environment, home: environment["HOME"] ?? "/")
        let catalog = try AWSCatalogFiles.locate(environment: environment, profileSearchPath: library.searchPath)
        try ensureDirectory(config.stateDir)
        chmod(config.stateDir, 0o700)
        return GateService(store: store, config: config, catalog: catalog,
                           credentials: HostCredentials(environment: environment, profile: config.awsProfile))
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
