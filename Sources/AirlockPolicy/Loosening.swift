/// A way a profile makes the sandbox more permissive than Airlock's defaults (docs/design.md §2.5:
/// `airlock profile check` shows every one).
public struct Loosening: Sendable, Equatable, CustomStringConvertible {
    public var profile: String
    public var what: String

    public var description: String { "\(what)  [\(profile)]" }

    public static func of(_ profile: Profile) -> [Loosening] {
        var out: [Loosening] = []
        func add(_ what: String) { out.append(Loosening(profile: profile.name, what: what)) }
        for path in profile.filesystem.readWrite { add("host path \(path) is writable by the agent") }
        for path in profile.filesystem.readOnly + profile.filesystem.readOnlyIfPresent {
            add("host path \(path) is readable by the agent")
        }
        for entry in profile.network.allow { add("the agent may connect to \(entry) through the egress proxy") }
        if let tools = profile.tools {
            for tool in SandboxDefaults.tools where !tools.contains(tool) {
                add("\(tool) is not intercepted: its changes are not gated as one proposal (its AWS calls still are)")
            }
        }
        for registry in profile.network.registries {
            add("the agent may reach the \(registry) registry (\((EgressRegistries.hosts[registry] ?? []).joined(separator: ", ")))")
        }
        for range in profile.network.allowAddresses {
            add("the egress proxy may connect to \(range) although it is not public address space")
        }
        for entry in profile.environment.pass {
            if Glob(entry).isLiteral, CredentialRules.agentKeyPattern.matches(entry) {
                add("the agent's own API key \(entry) is passed into the sandbox")
            } else if Glob(entry).isLiteral {
                add("launcher variable \(entry) is passed into the sandbox")
            } else {
                add("launcher variables matching \(entry) are passed (credential-shaped ones never are)")
            }
        }
        if let size = profile.filesystem.tmpSize, size > SandboxDefaults.tmpSize {
            add("/tmp may grow to \(ByteSize.format(size)) (default \(ByteSize.format(SandboxDefaults.tmpSize)))")
        }
        for limit in profile.rlimits.keys.sorted() {
            guard let value = profile.rlimits[limit] else { continue }
            if let base = SandboxDefaults.rlimits[limit] {
                if value.isLooser(than: base) {
                    add("rlimit \(limit.rawValue) is \(value.formatted(for: limit)) (default \(base.formatted(for: limit)))")
                }
            } else if value == .unlimited {
                add("rlimit \(limit.rawValue) is unlimited")
            }
        }
        return out
    }
}
