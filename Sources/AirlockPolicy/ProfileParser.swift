import AirlockCore

/// A profile that cannot be used, located as `file:line: message`.
public struct ProfileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// Parses profile YAML strictly: unknown keys, wrong types, bad values, duplicate keys and
/// YAML anchors/aliases (a classic way to blow up a parser) are errors with a line number.
/// Pure: the caller reads the file.
public enum ProfileParser {
    /// Profiles are small; a huge one is a mistake or an attack.
    public static let maximumSize = 256 * 1024

    static let topLevelKeys = ["description", "extends", "filesystem", "environment", "network", "rlimits", "tools", "snapshot", "home_files", "limits",
                               "kubernetes", "github", "aws"]
    static let awsKeys = ["production_accounts"]
    static let kubernetesKeys = ["read_namespaces", "allow", "sensitive"]
    static let githubKeys = ["repos"]
    static let limitKeys = ["memory", "cpus", "pids"]
    static let snapshotKeys = ["exclude", "limit"]
    static let filesystemKeys = ["readonly", "readonly_if_present", "readwrite", "tmp_size"]
    static let environmentKeys = ["pass", "set", "path"]
    static let networkKeys = ["allow", "deny", "registries", "allow_addresses", "timeouts", "max_tunnels"]
    static let timeoutKeys = ["header", "idle", "total"]

    public static func parse(_ text: String, name: String, source: String) throws(ProfileError) -> Profile {
        let reader = Reader(file: source)
        guard text.utf8.count <= maximumSize else {
            throw reader.error(nil, "profile is larger than \(maximumSize / 1024) KiB")
        }
        let root: YAMLNode?
        do {
            root = try YAML.parse(text)
        } catch {
            throw ProfileError(file: source, line: error.line, message: error.message)
        }
        var profile = Profile(name: name, source: source)
        guard let root else { return profile }  // an empty file is an empty profile
        for (key, value) in try reader.mapping(root, at: "the profile", keys: topLevelKeys) {
            switch key {
            case "description":
                profile.description = try reader.string(value, at: key)
            case "extends":
                profile.extends = try reader.stringOrList(value, at: key)
                for parent in profile.extends where !ProfileName.isValid(parent) {
                    throw reader.error(value, "extends: '\(parent)' is not a profile name")
                }
            case "filesystem":
                for (fsKey, fsValue) in try reader.mapping(value, at: key, keys: filesystemKeys) {
                    switch fsKey {
                    case "readonly": profile.filesystem.readOnly = try reader.paths(fsValue, at: fsKey)
                    case "readonly_if_present": profile.filesystem.readOnlyIfPresent = try reader.paths(fsValue, at: fsKey)
                    case "readwrite": profile.filesystem.readWrite = try reader.paths(fsValue, at: fsKey)
                    default: profile.filesystem.tmpSize = try reader.size(fsValue, at: fsKey)
                    }
                }
            case "environment":
                for (envKey, envValue) in try reader.mapping(value, at: key, keys: environmentKeys) {
                    switch envKey {
                    case "pass": profile.environment.pass = try reader.environmentPass(envValue)
                    case "path": profile.environment.path = try reader.paths(envValue, at: "environment.path")
                    default: profile.environment.set = try reader.environmentSet(envValue)
                    }
                }
            case "network":
                profile.network = try reader.network(value)
            case "tools":
                let tools = try reader.stringOrList(value, at: key)
                for tool in tools where !ProfileName.isValid(tool) || tool.contains(".") {
                    throw reader.error(value, "tools: '\(tool)' is not a tool name (profiles/tools/NAME.yaml)")
                }
                profile.tools = tools
            case "limits":
                for (limitKey, limitValue) in try reader.mapping(value, at: key, keys: limitKeys) {
                    let text = try reader.string(limitValue, at: "limits.\(limitKey)")
                    switch limitKey {
                    case "memory":
                        guard let bytes = ByteSize.parse(text), bytes >= 16 << 20 else {
                            throw reader.error(limitValue, "limits.memory: '\(text)' is not a size of at least 16MiB (examples: 512MiB, 8GiB)")
                        }
                        profile.limits.memory = bytes
                    case "cpus":
                        guard let cpus = Double(text), cpus >= 0.01, cpus <= 4096 else {
                            throw reader.error(limitValue, "limits.cpus: '\(text)' is not a number of CPUs (examples: 0.5, 2)")
                        }
                        profile.limits.cpus = cpus
                    default:
                        guard let pids = Int(text), pids >= 8, pids <= 4_194_304 else {
                            throw reader.error(limitValue, "limits.pids: '\(text)' is not a number of processes of at least 8")
                        }
                        profile.limits.pids = pids
                    }
                }
            case "home_files":
                for (path, entry) in try reader.mapping(value, at: key, keys: nil) {
                    guard SnapshotManifest.isRelativePath(path) else {
                        throw reader.error(entry, "home_files: '\(path)' must be a path relative to the home (no .., no leading /)")
                    }
                    let contents = try reader.string(entry, at: "home_files.\(path)")
                    guard contents.utf8.count <= 64 << 10 else { throw reader.error(entry, "home_files.\(path) is larger than 64 KiB") }
                    profile.homeFiles[path] = contents
                }
            case "kubernetes":
                for (entryKey, entryValue) in try reader.mapping(value, at: key, keys: kubernetesKeys) {
                    let items = try reader.stringOrList(entryValue, at: "kubernetes.\(entryKey)")
                    if entryKey == "allow" {
                        for item in items where !KubernetesClassifier.interactive.contains(item) {
                            throw reader.error(entryValue, "kubernetes.allow: '\(item)' is not one of \(KubernetesClassifier.interactive.sorted().joined(separator: ", "))")
                        }
                        profile.kubernetes.allow = items
                    } else if entryKey == "sensitive" {
                        // `resource` (core group) or `resource.group`, as kubectl names them.
                        for item in items where item.isEmpty || item.contains("/") || item.contains("*") || item != item.lowercased() {
                            throw reader.error(entryValue, "kubernetes.sensitive: '\(item)' is not a resource name (configmaps, or widgets.example.com for another API group)")
                        }
                        profile.kubernetes.sensitive = items
                    } else {
                        for item in items where item.isEmpty || item.contains("/") || item.contains("*") {
                            throw reader.error(entryValue, "kubernetes.read_namespaces: '\(item)' is not a namespace name")
                        }
                        profile.kubernetes.readNamespaces = items
                    }
                }
            case "aws":
                for (_, entryValue) in try reader.mapping(value, at: key, keys: awsKeys) {
                    let items = try reader.stringOrList(entryValue, at: "aws.production_accounts")
                    for item in items where item.count != 12 || !item.allSatisfy(\.isNumber) {
                        throw reader.error(entryValue, "aws.production_accounts: '\(item)' is not a 12-digit AWS account id (quote it: \"012345678901\")")
                    }
                    profile.aws.productionAccounts = items
                }
            case "github":
                for (_, entryValue) in try reader.mapping(value, at: key, keys: githubKeys) {
                    let items = try reader.stringOrList(entryValue, at: "github.repos")
                    for item in items where item.split(separator: "/", omittingEmptySubsequences: false).count != 2 || item.contains("..") {
                        throw reader.error(entryValue, "github.repos: '\(item)' is not OWNER/REPO (either may be a glob, e.g. acme/*)")
                    }
                    profile.github.repos = items
                }
            case "snapshot":
                for (snapshotKey, snapshotValue) in try reader.mapping(value, at: key, keys: snapshotKeys) {
                    if snapshotKey == "limit" {
                        profile.snapshot.limit = try reader.size(snapshotValue, at: "snapshot.limit")
                        continue
                    }
                    profile.snapshot.exclude = try reader.stringOrList(snapshotValue, at: "snapshot.exclude")
                    for pattern in profile.snapshot.exclude where !ToolProfileParser.isSnapshotPattern(pattern) {
                        throw reader.error(snapshotValue, "snapshot.exclude: '\(pattern)' must be a name pattern or a relative path (no .., no leading /)")
                    }
                }
            default:
                profile.rlimits = try reader.rlimits(value)
            }
        }
        return profile
    }
}

/// Profile names become directory names (the agent's persistent home): keep them plain.
public enum ProfileName {
    public static func isValid(_ name: String) -> Bool {
        guard !name.isEmpty, name.count <= 64, name.first != ".", name.first != "-" else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || $0 == "-" || $0 == "_" || $0 == "."
        }
    }
}

struct Reader {
    let file: String

    func error(_ node: YAMLNode?, _ message: String) -> ProfileError {
        ProfileError(file: file, line: node?.line, message: message)
    }

    /// The mapping's entries in order, keys checked against `keys` (unknown → error; the
    /// YAML reader already refuses repeated keys).
    func mapping(_ node: YAMLNode, at place: String, keys: [String]?) throws(ProfileError) -> [(String, YAMLNode)] {
        if node.isNull { return [] }
        guard case .mapping(let entries) = node.value else {
            throw error(node, "\(place) must be a mapping (key: value lines)")
        }
        for entry in entries {
            if let keys, !keys.contains(entry.key) {
                throw ProfileError(file: file, line: entry.line,
                                   message: "unknown key '\(entry.key)' in \(place) (known: \(keys.joined(separator: ", ")))")
            }
        }
        return entries.map { ($0.key, $0.value) }
    }

    func string(_ node: YAMLNode, at place: String) throws(ProfileError) -> String {
        guard let text = node.scalar else { throw error(node, "\(place) must be a single value") }
        return text
    }

    func list(_ node: YAMLNode, at place: String) throws(ProfileError) -> [YAMLNode] {
        if node.isNull { return [] }
        guard case .sequence(let items) = node.value else { throw error(node, "\(place) must be a list") }
        return items
    }

    func stringOrList(_ node: YAMLNode, at place: String) throws(ProfileError) -> [String] {
        if node.scalar != nil { return [try string(node, at: place)] }
        var out: [String] = []
        for item in try list(node, at: place) { out.append(try string(item, at: place)) }
        return out
    }

    func paths(_ node: YAMLNode, at place: String) throws(ProfileError) -> [String] {
        var out: [String] = []
        for item in try list(node, at: place) {
            let path = try string(item, at: place)
            guard path.hasPrefix("/") || path == "~" || path.hasPrefix("~/") else {
                throw error(item, "\(place): '\(path)' must be an absolute path or start with ~/")
            }
            guard !path.contains("\0"), !path.split(separator: "/").contains("..") else {
                throw error(item, "\(place): '\(path)' must not contain '..'")
            }
            out.append(path)
        }
        return out
    }

    func size(_ node: YAMLNode, at place: String) throws(ProfileError) -> UInt64 {
        let text = try string(node, at: place)
        guard let value = ByteSize.parse(text), value > 0 else {
            throw error(node, "\(place): '\(text)' is not a size (examples: 512MiB, 2GiB)")
        }
        return value
    }

    func environmentPass(_ node: YAMLNode) throws(ProfileError) -> [String] {
        var out: [String] = []
        for item in try list(node, at: "environment.pass") {
            let entry = try string(item, at: "environment.pass")
            guard EnvironmentName.isValidPattern(entry) else {
                throw error(item, "environment.pass: '\(entry)' is not a variable name or NAME_* pattern")
            }
            guard EnvironmentPolicy.isPermittedPassEntry(entry) else {
                throw error(item, "environment.pass: '\(entry)' looks like a credential; Airlock never passes credentials into a sandbox (the broker holds them)")
            }
            out.append(entry)
        }
        return out
    }

    func environmentSet(_ node: YAMLNode) throws(ProfileError) -> [String: String] {
        var out: [String: String] = [:]
        for (name, value) in try mapping(node, at: "environment.set", keys: nil) {
            guard EnvironmentName.isValidName(name) else {
                throw error(value, "environment.set: '\(name)' is not a variable name")
            }
            guard !CredentialRules.isCredentialName(name) else {
                throw error(value, "environment.set: '\(name)' looks like a credential; profiles cannot put credentials into a sandbox")
            }
            guard !name.hasPrefix("AIRLOCK_") else {
                throw error(value, "environment.set: AIRLOCK_* variables are set by Airlock itself")
            }
            out[name] = try string(value, at: "environment.set.\(name)")
        }
        return out
    }

    func network(_ node: YAMLNode) throws(ProfileError) -> Profile.Network {
        var network = Profile.Network()
        for (key, value) in try mapping(node, at: "network", keys: ProfileParser.networkKeys) {
            switch key {
            case "allow", "deny":
                var entries: [String] = []
                for item in try list(value, at: "network.\(key)") {
                    let entry = try string(item, at: "network.\(key)")
                    guard EgressRule.parse(entry, source: file) != nil else {
                        throw error(item, "network.\(key): '\(entry)' is not a host, *.domain or IP, with an optional :port")
                    }
                    entries.append(entry)
                }
                if key == "allow" { network.allow = entries } else { network.deny = entries }
            case "registries":
                for item in try list(value, at: "network.registries") {
                    let name = try string(item, at: "network.registries")
                    guard EgressRegistries.hosts[name] != nil else {
                        throw error(item, "network.registries: unknown registry '\(name)' (known: \(EgressRegistries.hosts.keys.sorted().joined(separator: ", ")))")
                    }
                    network.registries.append(name)
                }
            case "allow_addresses":
                for item in try list(value, at: "network.allow_addresses") {
                    let text = try string(item, at: "network.allow_addresses")
                    guard IPRange(text) != nil else { throw error(item, "network.allow_addresses: '\(text)' is not an address or CIDR range") }
                    network.allowAddresses.append(text)
                }
            case "max_tunnels":
                let text = try string(value, at: "network.max_tunnels")
                guard let number = Int(text), (1...100_000).contains(number) else {
                    throw error(value, "network.max_tunnels: '\(text)' is not a number from 1 to 100000")
                }
                network.maxTunnels = number
            default:
                for (name, entry) in try mapping(value, at: "network.timeouts", keys: ProfileParser.timeoutKeys) {
                    let text = try string(entry, at: "network.timeouts.\(name)")
                    guard let seconds = Duration.seconds(text) else {
                        throw error(entry, "network.timeouts.\(name): '\(text)' is not a duration (examples: 10s, 5m, 2h)")
                    }
                    switch name {
                    case "header": network.headerTimeout = seconds
                    case "idle": network.idleTimeout = seconds
                    default: network.totalTimeout = seconds
                    }
                }
            }
        }
        return network
    }

    func rlimits(_ node: YAMLNode) throws(ProfileError) -> [ResourceLimit: LimitValue] {
        let known = ResourceLimit.allCases.map(\.rawValue)
        var out: [ResourceLimit: LimitValue] = [:]
        for (key, value) in try mapping(node, at: "rlimits", keys: known) {
            guard let limit = ResourceLimit(rawValue: key) else { continue }  // checked above
            let text = try string(value, at: "rlimits.\(key)")
            if text == "unlimited" {
                out[limit] = .unlimited
            } else if let number = limit.isSize ? ByteSize.parse(text) : UInt64(text) {
                out[limit] = .limited(number)
            } else {
                let example = limit.isSize ? "8GiB" : "1024"
                throw error(value, "rlimits.\(key): '\(text)' is not a valid value (a number like \(example), or unlimited)")
            }
        }
        return out
    }
}

enum Duration {
    /// `30`, `30s`, `5m`, `2h` → seconds (at least 1).
    static func seconds(_ text: String) -> Int? {
        let units: [(String, Int)] = [("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let value = Int(text.dropLast()), value > 0, value <= 30 * 86400 / factor else { return nil }
            return value * factor
        }
        guard let value = Int(text), value > 0, value <= 30 * 86400 else { return nil }
        return value
    }
}

enum EnvironmentName {
    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
        }
    }

    static func isValidPattern(_ entry: String) -> Bool {
        let stripped = entry.replacingStars(with: "")
        return entry == "*" || (!stripped.isEmpty && isValidName(stripped))
    }
}
