/// Which hosts the agent may reach through the egress proxy (docs/design.md §2.2: no way out but the
/// broker). Pure: a host, a port and resolved addresses in; a decision naming its rule out.
public struct EgressRule: Sendable, Equatable, CustomStringConvertible {
    /// `api.anthropic.com`, `*.npmjs.org` (any name under it, not the name itself), or an IP.
    public var pattern: String
    /// nil: the web ports, 80 and 443.
    public var port: Int?
    /// Where the rule came from: a profile, `--allow-domain`, a registry set.
    public var source: String

    public static let webPorts = [80, 443]

    public init(pattern: String, port: Int?, source: String) {
        self.pattern = pattern
        self.port = port
        self.source = source
    }

    /// `host`, `*.suffix`, optionally `:port` (IPv6 literals in brackets).
    public static func parse(_ text: String, source: String) -> EgressRule? {
        var entry = text.lowercased()
        var port: Int?
        if entry.hasPrefix("[") {
            guard let close = entry.firstIndex(of: "]") else { return nil }
            let after = entry[entry.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()), (1...65535).contains(value) else { return nil }
                port = value
            } else if !after.isEmpty { return nil }
            entry = String(entry[entry.index(after: entry.startIndex)..<close])
            return IPAddress(entry) == nil ? nil : EgressRule(pattern: entry, port: port, source: source)
        }
        if let colon = entry.lastIndex(of: ":"), IPAddress(entry) == nil {
            guard let value = Int(entry[entry.index(after: colon)...]), (1...65535).contains(value) else { return nil }
            port = value
            entry = String(entry[..<colon])
        }
        if entry.hasSuffix(".") { entry.removeLast() }
        let name = entry.hasPrefix("*.") ? String(entry.dropFirst(2)) : entry
        guard !name.isEmpty, !name.contains("*"), !name.contains("/") else { return nil }
        if IPAddress(name) == nil {
            guard (try? EgressTarget.splitAuthority(name + ":1", defaultPort: nil)) != nil, name.contains(".") || name == "localhost" else {
                return nil
            }
        } else if entry.hasPrefix("*.") {
            return nil
        }
        return EgressRule(pattern: entry, port: port, source: source)
    }

    /// Whether the rule covers host:port. A rule without a port covers 80 and 443 when it
    /// allows, and every port when it denies (a deny must not be sidestepped by a port).
    public func matches(host: String, port: Int, portlessMeansAny: Bool = false) -> Bool {
        guard self.port.map({ $0 == port }) ?? (portlessMeansAny || Self.webPorts.contains(port)) else { return false }
        if pattern.hasPrefix("*.") { return host.hasSuffix(pattern.dropFirst(1)) }
        return host == pattern
    }

    public var description: String { port.map { "\(pattern):\($0)" } ?? pattern }
}

public enum EgressDecision: Sendable, Equatable {
    case allow(rule: String)
    case refuse(rule: String, hint: String)
}

public struct EgressPolicy: Sendable, Equatable {
    public var allow: [EgressRule]
    public var deny: [EgressRule]
    /// Address ranges a profile explicitly opened (loopback, private…): off by default.
    public var allowedRanges: [IPRange]

    /// Addresses never connected to, whatever name leads there (the team gate's).
    public var deniedAddresses: [IPAddress] = []

    public init(allow: [EgressRule] = [], deny: [EgressRule] = [], allowedRanges: [IPRange] = []) {
        self.allow = allow
        self.deny = deny
        self.allowedRanges = allowedRanges
    }

    /// The host of an http(s) URL, lowercased, without brackets, port or user.
    public static func host(ofURL url: String) -> String {
        var authority = Substring(url)
        if let scheme = url.range(ofText: "://") { authority = url[scheme.upperBound...] }
        authority = authority.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var host = String(authority).lowercased()
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            host = String(host[..<colon])
        }
        while host.hasSuffix(".") { host.removeLast() }  // gate.internal. is gate.internal
        return host
    }

    static let gateHint = "nothing in the sandbox needs the gate: proposals reach it through the broker"
    static let gateSource = "the team gate: agents never talk to it, only this host's broker does"

    /// This policy refusing the team gate (docs/gate.md, "Team gate"): its name on every port,
    /// and its addresses (`resolved`, looked up at launch) under any name or as literals. The
    /// agent holds no token for it; refusing it anyway leaves nothing to probe.
    public func refusingGate(url: String, resolved: [IPAddress]) -> EgressPolicy {
        var policy = self
        let host = Self.host(ofURL: url)
        if !host.isEmpty { policy.deny.append(EgressRule(pattern: host, port: nil, source: Self.gateSource)) }
        for address in (resolved + (IPAddress(host).map { [$0] } ?? [])).map(\.unmapped) where !policy.deniedAddresses.contains(address) {
            policy.deniedAddresses.append(address)
            policy.deny.append(EgressRule(pattern: address.description, port: nil, source: Self.gateSource))
        }
        return policy
    }

    static let awsSuffixes = [".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".aws.amazon.com"]

    /// By name and port, before any resolution. Deny rules win; AWS is always refused here
    /// (it has its own endpoint, where changes are gated); IP literals need a rule or range.
    public func decide(host: String, port: Int) -> EgressDecision {
        if let rule = deny.first(where: { $0.matches(host: host, port: port, portlessMeansAny: true) }) {
            return .refuse(rule: "deny \(rule) (\(rule.source))", hint: rule.source == Self.gateSource ? Self.gateHint
                           : "a deny rule wins over every allow; remove it from the profile to allow this")
        }
        if Self.awsSuffixes.contains(where: { host.hasSuffix($0) || host == String($0.dropFirst()) }) {
            return .refuse(rule: "AWS goes through Airlock's AWS endpoint, not the proxy",
                           hint: "AWS SDKs and the aws CLI in this sandbox already use it (AWS_CONFIG_FILE); changes wait for approval there")
        }
        if let address = IPAddress(host) {
            // The gate's address in any spelling (::ffff:a.b.c.d included).
            if deniedAddresses.contains(address.unmapped) {
                return .refuse(rule: "deny \(address) (\(Self.gateSource))", hint: Self.gateHint)
            }
            if let rule = allow.first(where: { $0.matches(host: host, port: port) }) {
                return .allow(rule: "allow \(rule) (\(rule.source))")
            }
            // allow_addresses does not admit literals: opening 10.0.0.0/8 for an internal
            // registry's name must not let the agent dial every host in it.
            return .refuse(rule: "IP addresses need an explicit rule (\(address))",
                           hint: "use the host name, or allow the address and port in a profile's network.allow")
        }
        if let rule = allow.first(where: { $0.matches(host: host, port: port) }) {
            return .allow(rule: "allow \(rule) (\(rule.source))")
        }
        let portNote = Self.isWebPort(port) ? "" : " (rules without a port allow only 80 and 443)"
        return .refuse(rule: "\(host) is not on the allow list\(portNote)",
                       hint: "allow it for one session with `airlock run --allow-domain \(host)\(Self.isWebPort(port) ? "" : ":\(port)")`, or add it to a profile's network.allow")
    }

    static func isWebPort(_ port: Int) -> Bool { EgressRule.webPorts.contains(port) }

    /// After resolution: the addresses the proxy may connect to, or why none. An allowed name
    /// that resolves to loopback, private, link-local or multicast space is refused unless a
    /// profile opened that range (a DNS rebinding or metadata-service attack otherwise).
    public func permittedAddresses(_ addresses: [IPAddress], host: String) -> Result<[IPAddress], EgressRefusal> {
        if let gate = addresses.first(where: { deniedAddresses.contains($0.unmapped) }) {
            return .failure(EgressRefusal(rule: "\(host) resolves to \(gate), \(Self.gateSource)", hint: Self.gateHint))
        }
        var reasons: [String] = []
        let permitted = addresses.filter { address in
            guard let purpose = address.specialPurpose else { return true }
            if allowedRanges.contains(where: { $0.contains(address) }) { return true }
            reasons.append("\(address) is \(purpose)")
            return false
        }
        if !permitted.isEmpty { return .success(permitted) }
        if addresses.isEmpty { return .failure(EgressRefusal(rule: "\(host) does not resolve", hint: "check the name")) }
        return .failure(EgressRefusal(
            rule: "\(host) resolves to a non-public address (\(reasons.joined(separator: "; ")))",
            hint: "if that is intended, open the range in a profile's network.allow_addresses"))
    }
}

public struct EgressRefusal: Error, Sendable, Equatable {
    public var rule: String
    public var hint: String
}

/// Package registries an agent profile can opt into by name.
public enum EgressRegistries {
    public static let hosts: [String: [String]] = [
        "npm": ["registry.npmjs.org", "*.npmjs.org", "registry.yarnpkg.com", "npm.pkg.github.com"],
        "pypi": ["pypi.org", "files.pythonhosted.org"],
        "crates": ["crates.io", "index.crates.io", "static.crates.io", "static.rust-lang.org"],
        "go": ["proxy.golang.org", "sum.golang.org", "index.golang.org", "storage.googleapis.com"],
        "rubygems": ["rubygems.org", "index.rubygems.org"],
        "maven": ["repo.maven.apache.org", "repo1.maven.org", "plugins.gradle.org", "services.gradle.org"],
        "github": ["github.com", "codeload.github.com", "objects.githubusercontent.com", "raw.githubusercontent.com"],
        "debian": ["deb.debian.org", "security.debian.org"],
    ]
}
