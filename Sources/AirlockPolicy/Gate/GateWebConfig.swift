import AirlockCore

/// gate.yaml's `web:` (docs/web.md): how approvers sign in to the gate's page and what each
/// may do there. Pure: values in, decisions out.
///
///     web:
///       url: https://gate.example.com        # what browsers reach (default: the listen address)
///       session_hours: 12
///       oidc: {issuer: https://idp.example.com, client_id: airlock, client_secret_file: /etc/airlock/oidc-secret}
///       proxy: {addresses: [10.0.0.5]}       # oauth2-proxy's X-Forwarded-User / X-Forwarded-Groups
///       roles: {admin: [sre], approver: [deployers], viewer: [engineering]}
public struct GateWebConfig: Sendable, Equatable {
    /// What a person signed in to the page may do. Approver tokens (`airlock gate user add`)
    /// and one-time links are approvers; OpenID Connect and proxy sign-ins get the highest
    /// role one of their groups maps to, and nothing when none does.
    public enum Role: String, Sendable, CaseIterable, Comparable {
        /// Reads the queue, proposals and the audit log.
        case viewer
        /// Also approves and denies.
        case approver
        /// Also freezes and thaws the gate.
        case admin

        public static func < (a: Role, b: Role) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }

        public var mayDecide: Bool { self >= .approver }
    }

    public struct OIDC: Sendable, Equatable {
        public var issuer: String
        public var clientID: String
        public var clientSecretFile: String
        /// The claim that names the person (their Airlock name: `user:NAME`).
        public var usernameClaim = "preferred_username"
        public var groupsClaim = "groups"
        /// Signature algorithms accepted on ID tokens; `none` and HMAC never are.
        public var algorithms = ["RS256", "ES256"]
        /// PEM roots for the provider's TLS certificate (a private CA), nil for the system's.
        public var caFile: String?

        public init(issuer: String, clientID: String, clientSecretFile: String) {
            self.issuer = issuer
            self.clientID = clientID
            self.clientSecretFile = clientSecretFile
        }
    }

    /// A reverse proxy that signs people in (oauth2-proxy's convention): its headers are
    /// believed only on connections from `addresses`.
    public struct Proxy: Sendable, Equatable {
        public var addresses: [String]
        public var userHeader = "x-forwarded-user"
        public var groupsHeader = "x-forwarded-groups"

        public init(addresses: [String]) { self.addresses = addresses }
    }

    /// Who becomes a person on this gate by signing in (docs/web.md, "Sign-in").
    public enum Enrol: String, Sendable, Equatable {
        /// Only accounts an admin bound (`airlock gate user bind`): the default.
        case admin
        /// Also any account of the provider or name of the proxy not seen before, under a
        /// name no enrolled person has (ignoring case); it is bound to that name for good.
        case provider
    }

    public static let signatureAlgorithms: Set<String> = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]

    public var url: String?
    public var sessionHours = 12
    public var enrol = Enrol.admin
    public var oidc: OIDC?
    public var proxy: Proxy?
    public var roles: [Role: [String]] = [:]

    public init() {}

    /// The highest role any of `groups` maps to; nil when none does.
    public func role(groups: [String]) -> Role? {
        let held = Set(groups)
        return Role.allCases.reversed().first { !(roles[$0] ?? []).filter(held.contains).isEmpty }
    }

    /// Whether `address` (the connection's peer) is a configured proxy. IPv4-mapped IPv6
    /// peers (::ffff:a.b.c.d) are their IPv4 address.
    public func isProxy(_ address: String?) -> Bool {
        guard let proxy, var address else { return false }
        if address.hasPrefix("::ffff:"), address.contains(".") { address = String(address.dropFirst(7)) }
        return proxy.addresses.contains(address)
    }
}

extension GateWebConfig {
    /// Parses the `web:` mapping of gate.yaml; `fail(line, message)` makes the error.
    static func parse(_ node: YAMLNode, fail: (Int, String) -> AirlockError) throws(AirlockError) -> GateWebConfig {
        func mapping(_ node: YAMLNode, _ place: String, _ keys: Set<String>) throws(AirlockError) -> [String: YAMLNode] {
            guard case .mapping(let entries) = node.value else { throw fail(node.line, "\(place) must be a mapping") }
            var found: [String: YAMLNode] = [:]
            for entry in entries {
                guard keys.contains(entry.key) else {
                    throw fail(entry.value.line, "\(place) has no key \(entry.key) (it takes \(keys.sorted().joined(separator: ", ")))")
                }
                found[entry.key] = entry.value
            }
            return found
        }
        func string(_ node: YAMLNode?, _ place: String, line: Int) throws(AirlockError) -> String {
            guard let node else { throw fail(line, "\(place) is required") }
            guard let text = node.scalar, !node.isNull, !text.isEmpty else { throw fail(node.line, "\(place) must be a value") }
            return text
        }
        func list(_ node: YAMLNode, _ place: String) throws(AirlockError) -> [String] {
            guard case .sequence(let items) = node.value else { throw fail(node.line, "\(place) must be a list: [a, b]") }
            var found: [String] = []
            for item in items { found.append(try string(item, place, line: item.line)) }
            return found
        }
        func loopbackOrHTTPS(_ url: String) -> Bool {
            url.hasPrefix("https://") || url.hasPrefix("http://127.0.0.1") || url.hasPrefix("http://localhost") || url.hasPrefix("http://[::1]")
        }
        let fields = try mapping(node, "web", ["url", "session_hours", "enrol", "oidc", "proxy", "roles"])
        var web = GateWebConfig()
        if fields["url"] != nil {
            var url = try string(fields["url"], "web.url", line: node.line)
            while url.hasSuffix("/") { url.removeLast() }
            guard loopbackOrHTTPS(url) else {
                throw fail(fields["url"]?.line ?? node.line, "web.url must be https:// (http only on loopback): session cookies are Secure")
            }
            web.url = url
        }
        if fields["session_hours"] != nil {
            let text = try string(fields["session_hours"], "web.session_hours", line: node.line)
            guard let hours = Int(text), (1...720).contains(hours) else {
                throw fail(fields["session_hours"]?.line ?? node.line, "web.session_hours must be a whole number of hours, 1-720")
            }
            web.sessionHours = hours
        }
        if fields["enrol"] != nil {
            let text = try string(fields["enrol"], "web.enrol", line: node.line)
            guard let enrol = Enrol(rawValue: text) else {
                throw fail(fields["enrol"]?.line ?? node.line, "web.enrol must be admin (only accounts an admin bound sign in) or provider (new names enrol themselves)")
            }
            web.enrol = enrol
        }
        if let oidc = fields["oidc"] {
            let entry = try mapping(oidc, "web.oidc", ["issuer", "client_id", "client_secret_file", "username_claim", "groups_claim", "algorithms", "ca"])
            // Exactly as the provider names itself (a trailing "/" included): ID tokens' iss
            // is compared with it byte for byte.
            let issuer = try string(entry["issuer"], "web.oidc.issuer", line: oidc.line)
            guard loopbackOrHTTPS(issuer) else {
                throw fail(entry["issuer"]?.line ?? oidc.line, "web.oidc.issuer must be the provider's https:// issuer URL (http only on loopback)")
            }
            let secret = try string(entry["client_secret_file"], "web.oidc.client_secret_file", line: oidc.line)
            guard secret.hasPrefix("/") else { throw fail(entry["client_secret_file"]?.line ?? oidc.line, "web.oidc.client_secret_file must be an absolute path") }
            var config = OIDC(issuer: issuer, clientID: try string(entry["client_id"], "web.oidc.client_id", line: oidc.line), clientSecretFile: secret)
            if entry["username_claim"] != nil { config.usernameClaim = try string(entry["username_claim"], "web.oidc.username_claim", line: oidc.line) }
            if entry["groups_claim"] != nil { config.groupsClaim = try string(entry["groups_claim"], "web.oidc.groups_claim", line: oidc.line) }
            if let algorithms = entry["algorithms"] {
                let named = try list(algorithms, "web.oidc.algorithms")
                guard !named.isEmpty, let bad = Optional(named.filter { !signatureAlgorithms.contains($0) }), bad.isEmpty else {
                    throw fail(algorithms.line, "web.oidc.algorithms takes signature algorithms (\(signatureAlgorithms.sorted().joined(separator: ", "))); none and HMAC are never accepted")
                }
                config.algorithms = named
            }
            if entry["ca"] != nil {
                let ca = try string(entry["ca"], "web.oidc.ca", line: oidc.line)
                guard ca.hasPrefix("/") else { throw fail(entry["ca"]?.line ?? oidc.line, "web.oidc.ca must be an absolute path") }
                config.caFile = ca
            }
            web.oidc = config
        }
        if let proxy = fields["proxy"] {
            let entry = try mapping(proxy, "web.proxy", ["addresses", "user_header", "groups_header"])
            guard let addresses = entry["addresses"] else { throw fail(proxy.line, "web.proxy.addresses is required: the proxies' IP addresses") }
            let named = try list(addresses, "web.proxy.addresses")
            guard !named.isEmpty, named.allSatisfy({ $0.allSatisfy { $0.isHexDigit || $0 == "." || $0 == ":" } }) else {
                throw fail(addresses.line, "web.proxy.addresses must list IP addresses (no names, no ranges)")
            }
            var config = Proxy(addresses: named)
            func header(_ key: String) throws(AirlockError) -> String? {
                guard entry[key] != nil else { return nil }
                let name = try string(entry[key], "web.proxy.\(key)", line: proxy.line).lowercased()
                guard name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) else {
                    throw fail(entry[key]?.line ?? proxy.line, "web.proxy.\(key) must be a header name: letters, digits and '-'")
                }
                return name
            }
            config.userHeader = try header("user_header") ?? config.userHeader
            config.groupsHeader = try header("groups_header") ?? config.groupsHeader
            web.proxy = config
        }
        if let roles = fields["roles"] {
            let entry = try mapping(roles, "web.roles", Set(Role.allCases.map(\.rawValue)))
            for role in Role.allCases {
                if let groups = entry[role.rawValue] { web.roles[role] = try list(groups, "web.roles.\(role.rawValue)") }
            }
        }
        if (web.oidc != nil || web.proxy != nil) && web.roles.values.allSatisfy(\.isEmpty) {
            throw fail(node.line, "web.roles is required with oidc or proxy: which groups are viewers, approvers and admins (a person in none is refused)")
        }
        return web
    }
}
