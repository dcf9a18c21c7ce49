/// Reads a tool profile strictly, like sandbox profiles: unknown keys, bad values, duplicate
/// rules and contradictory flags are errors with their line.
public enum ToolProfileParser {
    static let topLevelKeys = ["tool", "description", "binaries", "value_flags", "boolean_flags", "help_flags",
                               "redirect_flags", "allow_flags", "workspace_path_flags", "snapshot_exclude", "default", "rules",
                               "execution_hosts", "execution_environment", "execution_files", "execution_pass", "execution_host_variables",
                               "execution_outputs", "execution_cli_config", "environment"]
    static let ruleKeys = ["command", "decision", "reason", "read_if", "prepare", "pin", "pin_positionals",
                           "method_flags", "body_flags", "read_methods", "destination_prefix", "destination", "only_with",
                           "preview_flag"]

    public static func parse(_ text: String, source: String) throws(ProfileError) -> ToolProfile {
        let reader = Reader(file: source)
        guard text.utf8.count <= ProfileParser.maximumSize else {
            throw reader.error(nil, "tool profile is larger than \(ProfileParser.maximumSize / 1024) KiB")
        }
        let root: YAMLNode?
        do {
            root = try YAML.parse(text)
        } catch {
            throw ProfileError(file: source, line: error.line, message: error.message)
        }
        guard let root else { throw reader.error(nil, "empty tool profile: it needs at least `tool:` and `rules:`") }
        var profile = ToolProfile(tool: "", source: source)
        var sawRules = false
        for (key, value) in try reader.mapping(root, at: "the tool profile", keys: topLevelKeys) {
            switch key {
            case "tool":
                profile.tool = try reader.string(value, at: key)
                guard ProfileName.isValid(profile.tool), !profile.tool.contains(".") else {
                    throw reader.error(value, "tool: '\(profile.tool)' is not a command name")
                }
            case "description": profile.description = try reader.string(value, at: key)
            case "binaries":
                // `$PATH`: wherever the launcher's PATH finds the tool (a pip or pipx install).
                for candidate in try reader.stringOrList(value, at: key) {
                    guard candidate == "$PATH" || candidate.hasPrefix("/") || candidate.hasPrefix("~/"), !candidate.split(separator: "/").contains("..") else {
                        throw reader.error(value, "binaries: '\(candidate)' must be an absolute path, ~/path or $PATH")
                    }
                    profile.binaries.append(candidate)
                }
            case "value_flags": profile.valueFlags = try flags(value, at: key, reader)
            case "boolean_flags": profile.booleanFlags = try flags(value, at: key, reader)
            case "help_flags": profile.helpFlags = try flags(value, at: key, reader)
            case "redirect_flags": profile.redirectFlags = try flags(value, at: key, reader)
            case "allow_flags": profile.allowFlags = try flags(value, at: key, reader)
            case "workspace_path_flags": profile.workspacePathFlags = try flags(value, at: key, reader)
            case "snapshot_exclude":
                profile.snapshotExclude = try reader.stringOrList(value, at: key)
                for pattern in profile.snapshotExclude where !Self.isSnapshotPattern(pattern) {
                    throw reader.error(value, "snapshot_exclude: '\(pattern)' must be a name pattern or a relative path (no .., no leading /)")
                }
            case "execution_outputs":
                profile.executionOutputs = try reader.stringOrList(value, at: key)
                for output in profile.executionOutputs where !SnapshotManifest.isRelativePath(output) || output.contains("*") {
                    throw reader.error(value, "execution_outputs: '\(output)' must be a relative file path (no .., no *)")
                }
            case "execution_cli_config":
                let text = try reader.string(value, at: key)
                guard text == "terraform" else { throw reader.error(value, "execution_cli_config: only `terraform` is known") }
                profile.executionCLIConfig = text
            case "execution_hosts":
                profile.executionHosts = try reader.stringOrList(value, at: key)
                for host in profile.executionHosts where EgressRule.parse(host, source: source) == nil {
                    throw reader.error(value, "execution_hosts: '\(host)' is not a host, *.domain or IP, with an optional :port")
                }
            case "environment":
                for (name, entry) in try reader.mapping(value, at: key, keys: nil) {
                    guard EnvironmentName.isValidName(name) else { throw reader.error(entry, "environment: '\(name)' is not a variable name") }
                    profile.environment[name] = try reader.string(entry, at: "environment.\(name)")
                }
            case "execution_environment":
                for (name, entry) in try reader.mapping(value, at: key, keys: nil) {
                    guard EnvironmentName.isValidName(name) else { throw reader.error(entry, "execution_environment: '\(name)' is not a variable name") }
                    profile.executionEnvironment[name] = try reader.string(entry, at: "execution_environment.\(name)")
                }
            case "execution_files":
                for (name, entry) in try reader.mapping(value, at: key, keys: nil) {
                    guard EnvironmentName.isValidName(name) else { throw reader.error(entry, "execution_files: '\(name)' is not a variable name") }
                    let candidates = try reader.stringOrList(entry, at: "execution_files.\(name)")
                    for candidate in candidates where !(candidate.hasPrefix("/") || candidate.hasPrefix("~/") || candidate.hasPrefix("$")) {
                        throw reader.error(entry, "execution_files.\(name): '\(candidate)' must be an absolute path, ~/path or $VARIABLE")
                    }
                    profile.executionFiles.append((name, candidates))
                }
            case "execution_host_variables":
                profile.executionHostVariables = try reader.stringOrList(value, at: key)
                for name in profile.executionHostVariables where !EnvironmentName.isValidName(name) {
                    throw reader.error(value, "execution_host_variables: '\(name)' is not a variable name")
                }
            case "execution_pass":
                profile.executionPass = try reader.stringOrList(value, at: key)
                for name in profile.executionPass where !EnvironmentName.isValidName(name) {
                    throw reader.error(value, "execution_pass: '\(name)' is not a variable name")
                }
            case "default":
                let text = try reader.string(value, at: key)
                guard let decision = Decision(rawValue: text), decision != .sensitive else {
                    throw reader.error(value, "default: '\(text)' is not read, mutation or deny")
                }
                profile.defaultDecision = decision
            default:
                sawRules = true
                for item in try reader.list(value, at: key) {
                    let rule = try self.rule(item, reader)
                    if profile.rules.contains(where: { $0.command == rule.command }) {
                        throw reader.error(item, "rules: '\(rule.command.joined(separator: " "))' appears twice")
                    }
                    profile.rules.append(rule)
                }
            }
        }
        guard !profile.tool.isEmpty else { throw reader.error(root, "the tool profile needs `tool: NAME`") }
        guard sawRules else { throw reader.error(root, "the tool profile needs `rules:`") }
        let both = profile.valueFlags.intersection(profile.booleanFlags)
        if let flag = both.sorted().first {
            throw reader.error(root, "\(flag) is in both value_flags and boolean_flags")
        }
        let allowedButUnknown = profile.allowFlags.subtracting(profile.redirectFlags)
        if let flag = allowedButUnknown.sorted().first {
            throw reader.error(root, "allow_flags: \(flag) is not one of the redirect_flags")
        }
        return profile
    }

    /// `node_modules`, `*.log`, `data/raw`: no `..`, `.` or empty component, no leading `/`.
    public static func isSnapshotPattern(_ pattern: String) -> Bool {
        let trimmed = pattern.hasSuffix("/") ? String(pattern.dropLast()) : pattern
        return SnapshotManifest.isRelativePath(trimmed)
    }

    static func flags(_ node: YAMLNode, at place: String, _ reader: Reader) throws(ProfileError) -> Set<String> {
        var out = Set<String>()
        for flag in try reader.stringOrList(node, at: place) {
            guard flag.hasPrefix("-"), flag.count >= 2, flag.count <= 64, !flag.contains("="),
                  !flag.contains(where: { $0 == " " || $0 == "\t" }) else {
                throw reader.error(node, "\(place): '\(flag)' is not a flag (-x, --name or -name, without =)")
            }
            out.insert(flag)
        }
        return out
    }

    static func rule(_ node: YAMLNode, _ reader: Reader) throws(ProfileError) -> ToolRule {
        var command: [String]?
        var kind: ToolRule.Kind?
        var rule = ToolRule(command: [], kind: .mutation)
        for (key, value) in try reader.mapping(node, at: "a rule", keys: ruleKeys) {
            switch key {
            case "command":
                let words = try reader.string(value, at: key).split(separator: " ").map(String.init)
                guard !words.isEmpty, words.allSatisfy({ !$0.hasPrefix("-") }) else {
                    throw reader.error(value, "command: give the subcommand words, e.g. `state rm`")
                }
                command = words
            case "decision":
                let text = try reader.string(value, at: key)
                guard let parsed = ToolRule.Kind(rawValue: text) else {
                    throw reader.error(value, "decision: '\(text)' is not one of \(ToolRule.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                kind = parsed
            case "reason": rule.reason = try reader.string(value, at: key)
            case "read_if":
                rule.readIf = try reader.stringOrList(value, at: key)
                for flag in rule.readIf where !flag.hasPrefix("-") {
                    throw reader.error(value, "read_if: '\(flag)' is not a flag")
                }
            case "prepare":
                let text = try reader.string(value, at: key)
                guard let parsed = ToolRule.Prepare(rawValue: text) else {
                    throw reader.error(value, "prepare: '\(text)' is not one of \(ToolRule.Prepare.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                rule.prepare = parsed
            case "pin": rule.pinFlags = try flags(value, at: key, reader)
            case "pin_positionals":
                let text = try reader.string(value, at: key)
                guard text == "true" || text == "false" else { throw reader.error(value, "pin_positionals: true or false") }
                rule.pinPositionals = text == "true"
            case "method_flags": rule.methodFlags = try flags(value, at: key, reader)
            case "body_flags": rule.bodyFlags = try flags(value, at: key, reader)
            case "destination_prefix":
                rule.destinationPrefix = try reader.string(value, at: key)
                guard rule.destinationPrefix.contains("://") else { throw reader.error(value, "destination_prefix: give a URL scheme, e.g. s3://") }
            case "destination":
                let text = try reader.string(value, at: key)
                guard text == "last" || text == "any" else { throw reader.error(value, "destination: last or any") }
                rule.anyPositional = text == "any"
            case "only_with": rule.onlyWith = Array(try flags(value, at: key, reader)).sorted()
            case "preview_flag":
                let flag = try reader.string(value, at: key)
                guard flag.hasPrefix("-"), !flag.contains("=") else { throw reader.error(value, "preview_flag: '\(flag)' is not a flag") }
                rule.previewFlag = flag
            default:
                rule.readMethods = Set(try reader.stringOrList(value, at: key).map { $0.uppercased() })
            }
        }
        guard let command else { throw reader.error(node, "a rule needs `command:`") }
        guard let kind else { throw reader.error(node, "rule '\(command.joined(separator: " "))' needs `decision:`") }
        rule.command = command
        rule.kind = kind
        if kind == .byMethod && rule.methodFlags.isEmpty {
            throw reader.error(node, "rule '\(command.joined(separator: " "))': by-method needs method_flags")
        }
        if rule.prepare != .none && kind != .mutation && kind != .sensitive && kind != .byDestination {
            throw reader.error(node, "rule '\(command.joined(separator: " "))': only mutations are prepared")
        }
        if kind == .byDestination && rule.destinationPrefix.isEmpty {
            throw reader.error(node, "rule '\(command.joined(separator: " "))': by-destination needs destination_prefix")
        }
        if rule.prepare == .dryRun && rule.previewFlag == nil {
            throw reader.error(node, "rule '\(command.joined(separator: " "))': prepare: dry-run needs preview_flag")
        }
        return rule
    }
}
