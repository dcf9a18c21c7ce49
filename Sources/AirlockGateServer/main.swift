import AirlockCore
import AirlockGate
import AirlockPolicy
import AirlockStore
import Glibc
import Logging
import Metrics
import Prometheus

/// `airlock-gate`: the team gate (docs/gate.md, "Team gate"). `airlock gate …` runs it.
let usage = """
    usage: airlock gate serve --config gate.yaml
           airlock gate freeze [REASON] --config gate.yaml   no execution starts on any replica
           airlock gate thaw --config gate.yaml
           airlock gate session revoke ID --config gate.yaml revoke a session, deny all its pending
           airlock gate audit-key new FILE                   make an Ed25519 audit signing key; prints its public key
           airlock gate audit-key public --config gate.yaml  the public key verifiers pin (--public-key)
           airlock gate audit export --config gate.yaml      the log and its signed checkpoints (JSON)
           airlock gate host add NAME --config gate.yaml     enrol an agent host; prints its token once
           airlock gate user add NAME --config gate.yaml     enrol an approver; prints their token once
           airlock gate host revoke NAME --config gate.yaml  (user revoke NAME likewise)
           airlock gate hosts|users --config gate.yaml [--json]

    The gate holds the proposal store (SQLite or PostgreSQL), the execution credentials (an
    AWS profile with write rights) and the executor. Agent hosts propose with their token;
    approvers decide with theirs; a host's token is refused for every decision.
    """

func fail(_ error: AirlockError) -> Never {
    writeStandardError("airlock gate: \(error.message)\n")
    if let hint = error.hint { writeStandardError("  hint: \(hint)\n") }
    exit(error.exitStatus())
}

func option(_ name: String, in arguments: inout [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    let value = arguments[index + 1]
    arguments.removeSubrange(index...(index + 1))
    return value
}

func flag(_ name: String, in arguments: inout [String]) -> Bool {
    guard let index = arguments.firstIndex(of: name) else { return false }
    arguments.remove(at: index)
    return true
}

func gateMain() async {
var arguments = Array(CommandLine.arguments.dropFirst())

if arguments.isEmpty || arguments.contains("--help") || arguments.contains("-h") {
    print(usage)
    exit(arguments.isEmpty ? 2 : 0)
}
if arguments.count == 3, arguments[0] == "audit-key", arguments[1] == "new" {
    // Written once, 0600, never overwritten: replacing a key orphans every checkpoint.
    let path = arguments[2]
    let signer = AuditSigner()
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
        fail(AirlockError("cannot create \(path): \(String(cString: strerror(errno)))", hint: "the file must not exist yet"))
    }
    let text = Array(signer.pem.utf8)
    _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    fsync(fd)
    close(fd)
    print(Base64.encode(signer.publicKey))
    writeStandardError("airlock gate: wrote the Ed25519 key \(path) (key id \(signer.keyID)); the line above is its public key, for `airlock audit verify --public-key`\n")
    exit(0)
}
guard let configPath = option("--config", in: &arguments) ?? GateSetup.environment()["AIRLOCK_GATE_CONFIG"] else {
    fail(AirlockError("--config gate.yaml is required", hint: "docs/gate.md, \"Team gate\", has an example", code: .usage))
}
let json = flag("--json", in: &arguments)

do throws(AirlockError) {
    let config = try GateSetup.config(configPath)
    switch (arguments.first, arguments.dropFirst().first) {
    case ("serve"?, _):
        try GateSetup.lockSQLite(config)
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, json: config.jsonLogs) }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let store = try GateSetup.servingStore(config)
        let service = try GateSetup.service(config, store: store, configPath: configPath)
        service.recoverExpiredExecutions()
        try await GateServer.serve(service, registry: registry)
    case ("host"?, "add"?), ("user"?, "add"?):
        guard arguments.count == 3, GateIdentity.isValidName(arguments[2]) else {
            throw AirlockError("\(arguments[0]) add needs one NAME of letters, digits, '.', '_' or '-'", code: .usage)
        }
        let role: GateAccess.Role = arguments[0] == "host" ? .host : .approver
        let token = GateToken.make(role)
        let store = try GateSetup.store(config)
        try store.addIdentity(GateIdentity(name: arguments[2], role: role, tokenHash: GateToken.hash(token), createdAt: Clock.now()),
                              by: Actor.currentUser())
        if json {
            print(JSON.object([("name", .string(arguments[2])), ("role", .string(role.rawValue)), ("token", .string(token))]).serialized())
        } else {
            print(token)
            writeStandardError("airlock gate: enrolled \(role == .host ? "host" : "user") \(arguments[2]); the token above is shown once (the gate keeps only its hash)\n")
        }
    case ("host"?, "revoke"?), ("user"?, "revoke"?):
        guard arguments.count == 3 else { throw AirlockError("\(arguments[0]) revoke needs one NAME", code: .usage) }
        let role: GateAccess.Role = arguments[0] == "host" ? .host : .approver
        let (revoked, denied) = try GateSetup.store(config).revokeIdentityAndWork(name: arguments[2], role: role, by: Actor.currentUser())
        print("revoked \(revoked.actor) (its token is refused from now on)" + (denied.isEmpty ? "" : "; denied its \(denied.count) pending proposal\(denied.count == 1 ? "" : "s")"))
    case ("freeze"?, _), ("thaw"?, _):
        let store = try GateSetup.store(config)
        let frozen = arguments[0] == "freeze"
        try store.setControl(GateControl.freeze, on: frozen, by: Actor.currentUser(),
                             reason: arguments.count > 1 ? arguments.dropFirst().joined(separator: " ") : nil)
        print(frozen ? "frozen: no execution starts on any replica until `airlock gate thaw`" : "thawed: approved proposals execute again")
    case ("session"?, "revoke"?):
        guard arguments.count >= 3 else { throw AirlockError("session revoke needs a session ID (airlock proposals shows them)", code: .usage) }
        let store = try GateSetup.store(config)
        guard try store.session(id: arguments[2]) != nil else { throw AirlockError("no session \(arguments[2]) on this gate", code: .refused) }
        let denied = try store.revokeSession(arguments[2], by: Actor.currentUser(),
                                             reason: arguments.count > 3 ? arguments.dropFirst(3).joined(separator: " ") : nil)
        if json {
            print(JSON.object([("session", .string(arguments[2])), ("denied", .array(denied.map(JSON.string)))]).serialized())
        } else {
            print("revoked session \(arguments[2]); denied \(denied.count) pending proposal\(denied.count == 1 ? "" : "s")\(denied.isEmpty ? "" : ": " + denied.joined(separator: " "))")
        }
    case ("audit-key"?, "public"?):
        guard let signer = try GateSetup.signer(config) else {
            throw AirlockError("gate.yaml names no audit signing key", hint: "add audit: {signing_key: /etc/airlock/gate-audit.pem}", code: .refused)
        }
        print(Base64.encode(signer.publicKey))
    case ("audit"?, "export"?):
        let store = try GateSetup.store(config)
        let signer = try GateSetup.signer(config)
        print(AuditExport.json(entries: try store.auditEntries(), checkpoints: try store.checkpoints(), publicKey: signer?.publicKey).serialized())
    case ("hosts"?, _), ("users"?, _):
        let role: GateAccess.Role = arguments[0] == "hosts" ? .host : .approver
        let listed = try GateSetup.store(config).identities().filter { $0.role == role }
        if json {
            print(JSON.array(listed.map { .object([("name", .string($0.name)), ("created_at", .string($0.createdAt)),
                                                   ("revoked_at", $0.revokedAt.map(JSON.string) ?? .null)]) }).serialized())
        } else {
            for identity in listed { print("\(identity.name)\t\(identity.createdAt)\t\(identity.revokedAt.map { "revoked \($0)" } ?? "active")") }
        }
    default:
        throw AirlockError("unknown gate command: \(arguments.joined(separator: " "))", hint: "airlock gate --help", code: .usage)
    }
} catch {
    fail(error)
}
}

await gateMain()
