import AirlockCore
import AirlockGate
import AirlockPolicy
import AirlockStore
import AirlockWeb
import ArgumentParser
import Glibc
import Logging
import Metrics
import Prometheus

/// `airlock-gate`: the team gate (docs/gate.md, "Team gate"). `airlock gate …` runs it.
@main
struct AirlockGateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "airlock gate",
        abstract: "The team gate: serve it, enrol agent hosts and approvers, freeze it, export its audit log.",
        discussion: """
            Every command but audit-key new reads gate.yaml (--config, or
            AIRLOCK_GATE_CONFIG):
              airlock gate serve --config gate.yaml
              airlock gate host add NAME      enrol an agent host; prints its token once
              airlock gate user add NAME      enrol an approver; prints their token once
                  --login-link                    and a one-time link to the web page
              airlock gate user link NAME     a new one-time link to the web page
              airlock gate user bind NAME --subject SUB | --proxy
                                              this identity provider account (its sub) or
                                              the proxy's NAME is the person NAME
              airlock gate host revoke NAME   (user revoke NAME likewise)
              airlock gate hosts|users [--json]
              airlock gate freeze [REASON]    no execution starts on any replica
              airlock gate thaw
              airlock gate session revoke ID  revoke a session, deny its pending
              airlock gate audit-key new FILE make an Ed25519 audit signing key
              airlock gate audit-key public   the public key verifiers pin
              airlock gate audit export       the log and its signed checkpoints
              airlock gate ui                 the web page for your own store, on loopback
                                              (what `airlock ui` runs; no gate.yaml)

            The gate holds the proposal store (SQLite or PostgreSQL), the execution credentials (an AWS profile with write rights) and the executor. Agent hosts propose with their token; approvers decide with theirs; a host's token is refused for every decision.
            """,
        subcommands: [Serve.self, Freeze.self, Thaw.self, SessionCommands.self, AuditKey.self, Audit.self, Identities.self,
                      Hosts.self, Users.self, LocalUI.self])
}

/// `--config` (or AIRLOCK_GATE_CONFIG) and `--json`, for every subcommand that reads gate.yaml.
struct GateOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The gate's configuration (docs/gate.md).", valueName: "gate.yaml")) var config: String?
    @Flag(help: "Print JSON.") var json = false

    func load() throws(AirlockError) -> (path: String, config: GateConfig) {
        guard let path = config ?? GateSetup.environment()["AIRLOCK_GATE_CONFIG"] else {
            throw AirlockError("--config gate.yaml is required", hint: "docs/gate.md, \"Team gate\", has an example", code: .usage)
        }
        return (path, try GateSetup.config(path))
    }
}

/// Runs a subcommand's body; an Airlock error ends the process the same way everywhere.
func perform(_ body: () async throws(AirlockError) -> Void) async throws {
    do throws(AirlockError) {
        try await body()
    } catch {
        writeStandardError("airlock gate: \(error.message)\n")
        if let hint = error.hint { writeStandardError("  hint: \(hint)\n") }
        throw ExitCode(error.exitStatus())
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the gate's API (TLS unless on loopback) until SIGTERM.")
    @OptionGroup var options: GateOptions

    func run() async throws {
        try await perform { () async throws(AirlockError) in
            let (path, config) = try options.load()
            try GateSetup.lockSQLite(config)
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, json: config.jsonLogs) }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            let store = try GateSetup.servingStore(config)
            let service = try GateSetup.service(config, store: store, configPath: path)
            service.recoverExpiredExecutions()
            try await GateServer.serve(service, registry: registry)
        }
    }
}

struct Freeze: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Freeze every execution on every replica (approvals are refused).")
    @Argument(help: "Why (recorded in the audit log).") var reason: [String] = []
    @OptionGroup var options: GateOptions

    func run() async throws {
        try await perform { () async throws(AirlockError) in
            let store = try GateSetup.store(try options.load().config)
            try store.setControl(GateControl.freeze, on: true, by: Actor.currentUser(), reason: reason.isEmpty ? nil : reason.joined(separator: " "))
            print("frozen: no execution starts on any replica until `airlock gate thaw`")
        }
    }
}

struct Thaw: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Thaw the gate: approved proposals execute again.")
    @OptionGroup var options: GateOptions

    func run() async throws {
        try await perform { () async throws(AirlockError) in
            let store = try GateSetup.store(try options.load().config)
            try store.setControl(GateControl.freeze, on: false, by: Actor.currentUser(), reason: nil)
            print("thawed: approved proposals execute again")
        }
    }
}

struct SessionCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "session", abstract: "Sessions of agent hosts.", subcommands: [Revoke.self])

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a session: it proposes nothing more; its pending proposals are denied.")
        @Argument(help: "The session id (airlock proposals shows them).") var id: String
        @Argument(help: "Why.") var reason: [String] = []
        @OptionGroup var options: GateOptions

        func run() async throws {
            try await perform { () async throws(AirlockError) in
                let store = try GateSetup.store(try options.load().config)
                guard try store.session(id: id) != nil else { throw AirlockError("no session \(id) on this gate", code: .noSuchSession) }
                let denied = try store.revokeSession(id, by: Actor.currentUser(), reason: reason.isEmpty ? nil : reason.joined(separator: " "))
                if options.json {
                    print(JSON.object([("session", .string(id)), ("denied", .array(denied.map(JSON.string)))]).serialized())
                } else {
                    print("revoked session \(id); denied \(denied.count) pending proposal\(denied.count == 1 ? "" : "s")\(denied.isEmpty ? "" : ": " + denied.joined(separator: " "))")
                }
            }
        }
    }
}

struct AuditKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit-key", abstract: "The Ed25519 key that signs audit checkpoints.",
                                                    subcommands: [New.self, Public.self])

    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a key (0600, never overwritten); prints its public key.")
        @Argument(help: "Where to write it; it must not exist.") var file: String

        func run() async throws {
            try await perform { () async throws(AirlockError) in
                // Written once, 0600, never overwritten: replacing a key orphans every checkpoint.
                let signer = AuditSigner()
                let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard fd >= 0 else {
                    throw AirlockError("cannot create \(file): \(String(cString: strerror(errno)))", hint: "the file must not exist yet", code: .refused)
                }
                let text = Array(signer.pem.utf8)
                _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                fsync(fd)
                close(fd)
                print(Base64.encode(signer.publicKey))
                writeStandardError("airlock gate: wrote the Ed25519 key \(file) (key id \(signer.keyID)); the line above is its public key, for `airlock audit verify --public-key`\n")
            }
        }
    }

    struct Public: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The public key verifiers pin (airlock audit verify --public-key).")
        @OptionGroup var options: GateOptions

        func run() async throws {
            try await perform { () async throws(AirlockError) in
                guard let signer = try GateSetup.signer(try options.load().config) else {
                    throw AirlockError("gate.yaml names no audit signing key", hint: "add audit: {signing_key: /etc/airlock/gate-audit.pem}", code: .refused)
                }
                print(Base64.encode(signer.publicKey))
            }
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The audit log.", subcommands: [Export.self])

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The log and its signed checkpoints, as JSON.")
        @OptionGroup var options: GateOptions

        func run() async throws {
            try await perform { () async throws(AirlockError) in
                let config = try options.load().config
                let store = try GateSetup.store(config)
                let signer = try GateSetup.signer(config)
                print(AuditExport.json(entries: try store.auditEntries(), checkpoints: try store.checkpoints(), publicKey: signer?.publicKey).serialized())
            }
        }
    }
}

/// `host add|revoke NAME` and `user add|revoke NAME`.
struct Identities: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "host", abstract: "Enrol or revoke an agent host; `user …` for approvers, who also get login links and bound accounts.",
                                                    aliases: ["user"])
    @Argument(help: "add, revoke, or for people: link (a new one-time link to the web page), bind (an account is this person)") var action: String
    @Argument(help: "The host's or approver's name: letters, digits, '.', '_', '-' or '@'.") var name: String
    @Flag(help: "user add: also print a one-time link that signs them in to the web page (docs/web.md).") var loginLink = false
    @Option(help: ArgumentHelp("How long a login link works.", valueName: "hours")) var linkHours = 24
    @Option(help: ArgumentHelp("user bind: the identity provider's subject (sub) of the person's account; the refused sign-in page names it.",
                               valueName: "SUB")) var subject: String?
    @Flag(help: "user bind: the sign-in proxy's name NAME is this person.") var proxy = false
    @OptionGroup var options: GateOptions

    func run() async throws {
        // Which of `host` or `user` was typed: the alias decides the role.
        let role: GateAccess.Role = CommandLine.arguments.dropFirst().first == "user" ? .approver : .host
        try await perform { () async throws(AirlockError) in
            let store = try GateSetup.store(try options.load().config)
            switch action {
            case "add":
                guard GateIdentity.isValidName(name) else {
                    throw AirlockError("\(role == .host ? "host" : "user") add needs one NAME of letters, digits, '.', '_' or '-'", code: .usage)
                }
                guard !loginLink || role == .approver else { throw AirlockError("--login-link is for people: user add NAME --login-link", code: .usage) }
                let token = GateToken.make(role)
                try store.addIdentity(GateIdentity(name: name, role: role, tokenHash: GateToken.hash(token), createdAt: Clock.now()), by: Actor.currentUser())
                let link = loginLink ? try Self.issueLink(name, store: store, config: try options.load().config, hours: linkHours) : nil
                if options.json {
                    var fields: [(String, JSON)] = [("name", .string(name)), ("role", .string(role.rawValue)), ("token", .string(token))]
                    if let link { fields.append(("login_link", .string(link))) }
                    print(JSON.object(fields).serialized())
                } else {
                    print(token)
                    if let link { print(link) }
                    writeStandardError("airlock gate: enrolled \(role == .host ? "host" : "user") \(name); the token above is shown once (the gate keeps only its hash)\n")
                    if link != nil { writeStandardError("airlock gate: the link below it signs \(name) in to the web page once, within \(linkHours) h\n") }
                }
            case "bind":
                // One identity per person (docs/web.md): an account of the provider, or a name
                // the proxy sends, becomes this person; created as an approver if new here.
                guard role == .approver else { throw AirlockError("accounts are bound to people: airlock gate user bind NAME …", code: .usage) }
                guard GateIdentity.isValidName(name) else { throw AirlockError("user bind needs one NAME of letters, digits, '.', '_', '-' or '@'", code: .usage) }
                let config = try options.load().config
                let kind: String, bound: String
                switch (subject, proxy) {
                case (let subject?, false):
                    guard let issuer = config.web.oidc?.issuer else {
                        throw AirlockError("gate.yaml names no identity provider (web.oidc)", code: .usage)
                    }
                    guard !subject.isEmpty, subject.utf8.count <= 255 else { throw AirlockError("--subject must be 1-255 bytes", code: .usage) }
                    (kind, bound) = (issuer, subject)
                case (nil, true):
                    guard config.web.proxy != nil else { throw AirlockError("gate.yaml names no sign-in proxy (web.proxy)", code: .usage) }
                    (kind, bound) = ("proxy", name)
                default:
                    throw AirlockError("user bind takes --subject SUB (an identity provider account) or --proxy (the proxy's name), one of them", code: .usage)
                }
                guard let signIns = store as? any WebSignInStore else { throw AirlockError("this store keeps no web sign-ins") }
                if let other = try signIns.boundName(kind: kind, subject: bound), other != name {
                    throw AirlockError("that account is bound to user:\(other) already; one account is one person", code: .refused)
                }
                if let existing = try store.identities().first(where: { $0.name == name && $0.role == .approver }) {
                    guard existing.revokedAt == nil else { throw AirlockError("user:\(name) was revoked; revoked names stay revoked", code: .refused) }
                } else {
                    try store.addIdentity(GateIdentity(name: name, role: .approver, tokenHash: GateToken.hash(GateToken.make(.approver)), createdAt: Clock.now()),
                                          by: Actor.currentUser())
                }
                try signIns.bindSubject(kind: kind, subject: bound, name: name, by: Actor.currentUser())
                print("bound \(kind == "proxy" ? "the proxy's \(name)" : "\(kind) subject \(bound)") to user:\(name)")
            case "link":
                guard role == .approver else { throw AirlockError("links are for people: airlock gate user link NAME", code: .usage) }
                guard try store.identities().contains(where: { $0.name == name && $0.role == .approver && $0.revokedAt == nil }) else {
                    throw AirlockError("user:\(name) is not an active approver on this gate", hint: "airlock gate user add \(name) --login-link", code: .noSuchIdentity)
                }
                let link = try Self.issueLink(name, store: store, config: try options.load().config, hours: linkHours)
                if options.json { print(JSON.object([("name", .string(name)), ("login_link", .string(link))]).serialized()) } else {
                    print(link)
                    writeStandardError("airlock gate: the link signs \(name) in to the web page once, within \(linkHours) h\n")
                }
            case "revoke":
                let (revoked, denied) = try store.revokeIdentityAndWork(name: name, role: role, by: Actor.currentUser())
                print("revoked \(revoked.actor) (its token is refused from now on)" + (denied.isEmpty ? "" : "; denied its \(denied.count) pending proposal\(denied.count == 1 ? "" : "s")"))
            default:
                throw AirlockError("\(role == .host ? "host" : "user") takes add or revoke\(role == .host ? "" : " or link"), not \(action)", code: .usage)
            }
        }
    }
}

extension Identities {
    /// A one-time link to the web page (docs/web.md): the store keeps its hash.
    static func issueLink(_ name: String, store: any ProposalStore, config: GateConfig, hours: Int) throws(AirlockError) -> String {
        guard (1...720).contains(hours) else { throw AirlockError("--link-hours must be 1-720", code: .usage) }
        guard let signIns = store as? any WebSignInStore else { throw AirlockError("this store keeps no web sign-ins") }
        let token = WebCookies.token()
        try signIns.addLoginLink(hash: WebCookies.hash(token), name: name, expiresAt: Clock.epochMilliseconds() + Int64(hours) * 3_600_000,
                                 by: Actor.currentUser())
        return config.webURL + "/ui/login/" + token
    }
}

/// `airlock gate ui` (`airlock ui`): the page for the human's own store, on loopback.
struct LocalUI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        abstract: "Serve the approvers' page for your own store on 127.0.0.1 and print a one-time link to it.",
        discussion: """
            The same page as the team gate's (docs/web.md): the live queue, each proposal with its \
            preview, approve and deny. Only 127.0.0.1 listens; the link signs one browser in once \
            (within 15 minutes). Approving here runs the change as `airlock approve` does, with your \
            credentials. Stop it with Ctrl-C.
            """)
    @Option(name: .customLong("state-dir"), help: ArgumentHelp("The state directory of the runs to review.", valueName: "DIR")) var stateDir: String?
    @Option(help: "The port (default: any free one).") var port = 0
    @Option(name: .customLong("aws-profile"), help: ArgumentHelp("The AWS profile approved AWS calls run with.", valueName: "NAME")) var awsProfile: String?

    func run() async throws {
        try await perform { () async throws(AirlockError) in
            let environment = GateSetup.environment()
            let dir = StateDirectory.resolve(explicit: stateDir, environment: environment, home: environment["HOME"] ?? "/")
            guard access(SQLiteProposalStore.databasePath(stateDir: dir), F_OK) == 0 else {
                throw AirlockError("no proposals have been made with state directory \(dir)",
                                   hint: "proposals appear when an agent in `airlock run` tries a change; pass --state-dir if that run used another", code: .refused)
            }
            guard (0...65535).contains(port) else { throw AirlockError("--port must be 0-65535", code: .usage) }
            let store = try SQLiteProposalStore(stateDir: dir)
            try store.recoverInterruptedExecutions()
            _ = try store.expireOverdue()
            let backend = LocalWebBackend(store: store, user: Actor.currentUser(), awsProfile: awsProfile, environment: environment)
            try await LocalWebServer.serve(backend: backend, port: port) { link in
                print(link)
                fflush(nil)
                writeStandardError("airlock ui: open the link above (it works once, for 15 minutes); only 127.0.0.1 listens; Ctrl-C stops\n")
            }
        }
    }
}

/// `hosts` and `users`: the enrolled identities of a role.
func listIdentities(_ role: GateAccess.Role, _ options: GateOptions) async throws {
    try await perform { () async throws(AirlockError) in
        let listed = try GateSetup.store(try options.load().config).identities().filter { $0.role == role }
        if options.json {
            print(JSON.array(listed.map { .object([("name", .string($0.name)), ("created_at", .string($0.createdAt)),
                                                   ("revoked_at", $0.revokedAt.map(JSON.string) ?? .null)]) }).serialized())
        } else {
            for identity in listed { print("\(identity.name)\t\(identity.createdAt)\t\(identity.revokedAt.map { "revoked \($0)" } ?? "active")") }
        }
    }
}

struct Hosts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The enrolled agent hosts.")
    @OptionGroup var options: GateOptions
    func run() async throws { try await listIdentities(.host, options) }
}

struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The enrolled approvers.")
    @OptionGroup var options: GateOptions
    func run() async throws { try await listIdentities(.approver, options) }
}
