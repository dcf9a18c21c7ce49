/// Where a command runs: the workspace and the directory it was started in (both absolute,
/// as the sandbox sees them; the workspace is at the same path inside and out).
public struct CommandContext: Sendable, Equatable {
    public var workspace: String
    public var directory: String

    public init(workspace: String, directory: String) {
        self.workspace = workspace
        self.directory = directory
    }
}

/// One argument as the tool will read it.
public enum CommandToken: Sendable, Equatable {
    /// `--name value`, `--name=value` (value nil for a flag without one) at `index` in argv.
    case flag(name: String, value: String?, index: Int)
    case positional(String, index: Int)
}

/// What the gate does with one command line.
public struct CommandRuling: Sendable, Equatable {
    public var decision: Decision
    /// The rule that decided, e.g. "terraform apply (mutation)".
    public var rule: String
    /// Why, for the agent and the human.
    public var reason: String
    /// The matched subcommand words.
    public var words: [String]
    public var prepare: ToolRule.Prepare
    /// dry-run preparations: the flag that makes the preview.
    public var previewFlag: String? = nil
    /// by-destination changes whose last argument is a local path (a move from S3 into the
    /// workspace): the approved run, on the read-only snapshot, could not write it.
    public var writesLocally = false
    /// Absolute paths of the files the command names that are pinned (`-f`, `-var-file`);
    /// the working directory's `pinGlobs` are added by whoever lists the directory.
    public var pinnedPaths: [String]
    /// Where the tool works: the starting directory, or terraform's `-chdir`.
    public var workingDirectory: String
    public var tokens: [CommandToken]
}

/// Classifies argv with a tool profile (docs/design.md §4.1). Pure: values in, a ruling out.
public enum CommandClassifier {
    public static func classify(_ arguments: [String], profile: ToolProfile, context: CommandContext) -> CommandRuling {
        let tool = profile.tool
        func ruling(_ decision: Decision, _ rule: String, _ reason: String, words: [String] = [], tokens: [CommandToken] = [],
                    prepare: ToolRule.Prepare = .none, pinned: [String] = [], directory: String? = nil) -> CommandRuling {
            CommandRuling(decision: decision, rule: rule, reason: reason, words: words, prepare: prepare, pinnedPaths: pinned,
                          workingDirectory: directory ?? context.directory, tokens: tokens)
        }
        guard arguments.count <= 4096, arguments.allSatisfy({ $0.utf8.count <= 65536 && !$0.contains("\0") }) else {
            return ruling(.deny, "\(tool): argument limits", "more than 4096 arguments or one above 64 KiB")
        }
        // Unknown flags are read both ways (with and without a value): when the two readings
        // reach different rules, nobody can tell which the tool will run.
        let asBoolean = tokenize(arguments, profile: profile, unknownTakesValue: false)
        let asValued = tokenize(arguments, profile: profile, unknownTakesValue: true)
        let first = match(asBoolean, profile: profile)
        let second = match(asValued, profile: profile)
        let tokens = asBoolean
        let flags = tokens.compactMap { token -> (String, String?)? in
            if case .flag(let name, let value, _) = token { return (name, value) }
            return nil
        }

        // Redirections first: they would send the tool's credentials or requests elsewhere.
        // Looked for in every argument, not only where a flag is expected: what reads as a
        // flag's value here might be read as a flag by the tool.
        for argument in arguments {
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if profile.redirectFlags.contains(name) && !profile.allowFlags.contains(name) {
                return ruling(.deny, "\(tool) \(name)",
                              "\(name) changes where \(tool) gets credentials or which server it talks to; Airlock supplies those. "
                              + "Allow it in the tool profile's allow_flags (\(profile.source)) if you must", tokens: asBoolean)
            }
        }
        if first?.command != second?.command {
            let unknown = flags.map(\.0).first { profile.takesValue($0) == nil } ?? "?"
            return ruling(profile.defaultDecision == .read ? .mutation : profile.defaultDecision, "\(tool): ambiguous flag \(unknown)",
                          "\(unknown) is not in \(profile.source), so whether it takes a value, and so which subcommand runs, is unknown; treated as a change",
                          tokens: tokens)
        }
        // Paths the tool will write or read must stay in the workspace (the execution sees only it).
        // terraform's -chdir moves first; the subcommand's paths are then relative to it.
        var directory = context.directory
        for (name, value) in flags where name == "-chdir" || name == "--chdir" {
            directory = PathResolution.absolute(value ?? "", from: context.directory)
        }
        for (name, value) in flags where profile.workspacePathFlags.contains(name) {
            guard let value, !value.isEmpty else {
                return ruling(.deny, "\(tool) \(name)", "\(name) needs a path", tokens: tokens)
            }
            let isChdir = name == "-chdir" || name == "--chdir"
            let resolved = PathResolution.absolute(value, from: isChdir ? context.directory : directory)
            guard PathResolution.isInside(resolved, context.workspace) else {
                return ruling(.deny, "\(tool) \(name)", "\(name) \(value) is outside the workspace \(context.workspace)", tokens: tokens)
            }
        }
        if let help = flags.first(where: { profile.helpFlags.contains($0.0) }) {
            return ruling(.read, "\(tool) \(help.0)", "prints help", tokens: tokens, directory: directory)
        }
        let positionals = tokens.compactMap { token -> String? in
            if case .positional(let word, _) = token { return word }
            return nil
        }
        if positionals.isEmpty {
            return ruling(.read, "\(tool) (no subcommand)", "prints usage", tokens: tokens, directory: directory)
        }
        guard let rule = first else {
            return ruling(profile.defaultDecision, "\(tool) \(positionals[0]): unknown subcommand",
                          "\(tool) \(positionals[0]) is not in \(profile.source); unknown means \(profile.defaultDecision.rawValue)",
                          words: [positionals[0]], tokens: tokens, directory: directory)
        }
        let name = "\(tool) \(rule.command.joined(separator: " "))"
        let source = "\(name) (\(profile.source))"
        if rule.kind != .deny, let flag = readIfMatch(rule.readIf, flags) {
            return ruling(.read, source, "\(flag) changes nothing", words: rule.command, tokens: tokens, directory: directory)
        }
        var pinned: [String] = []
        for (flag, value) in flags where rule.pinFlags.contains(flag) {
            guard let value, !value.isEmpty else { continue }
            if value == "-" || value.contains("://") {
                return ruling(.deny, source, "\(flag) \(value): only files in the workspace can be pinned for approval; write it to a file there",
                              words: rule.command, tokens: tokens)
            }
            let path = PathResolution.absolute(value, from: directory)
            guard PathResolution.isInside(path, context.workspace) else {
                return ruling(.deny, source, "\(flag) \(value) is outside the workspace; copy it into \(context.workspace)",
                              words: rule.command, tokens: tokens)
            }
            pinned.append(path)
        }
        if rule.pinPositionals {
            for word in positionals.dropFirst(rule.command.count) where !word.contains("://") {
                let path = PathResolution.absolute(word, from: directory)
                if PathResolution.isInside(path, context.workspace) { pinned.append(path) }
            }
        }
        switch rule.kind {
        case .read:
            return ruling(.read, source, rule.reason ?? "reads only", words: rule.command, tokens: tokens, directory: directory)
        case .deny:
            return ruling(.deny, source, rule.reason ?? "refused by \(profile.source)", words: rule.command, tokens: tokens)
        case .mutation, .sensitive:
            var result = ruling(rule.kind == .sensitive ? .sensitive : .mutation, source, rule.reason ?? "changes infrastructure",
                                words: rule.command, tokens: tokens, prepare: rule.prepare, pinned: pinned, directory: directory)
            result.previewFlag = rule.previewFlag
            return result
        case .byDestination:
            let arguments = positionals.dropFirst(rule.command.count)
            let targets = rule.anyPositional ? Array(arguments) : arguments.last.map { [$0] } ?? []
            let writes = targets.contains { $0.hasPrefix(rule.destinationPrefix) }
            let required = rule.onlyWith.isEmpty || flags.contains { rule.onlyWith.contains($0.0) }
            guard writes && required else {
                let why = writes ? "one object: the broker gates its call" : "writes only local files"
                return ruling(.read, source, why, words: rule.command, tokens: tokens, directory: directory)
            }
            var result = ruling(.mutation, source, rule.reason ?? "writes to \(rule.destinationPrefix)", words: rule.command, tokens: tokens,
                                prepare: rule.prepare, pinned: pinned, directory: directory)
            result.previewFlag = rule.previewFlag
            result.writesLocally = !(arguments.last?.hasPrefix(rule.destinationPrefix) ?? false)
            return result
        case .byMethod:
            let method = flags.last { rule.methodFlags.contains($0.0) }?.1?.uppercased()
                ?? (flags.contains { rule.bodyFlags.contains($0.0) } ? "POST" : "GET")
            if rule.readMethods.contains(method) {
                return ruling(.read, source, "\(method) reads", words: rule.command, tokens: tokens, directory: directory)
            }
            return ruling(.mutation, source, "\(method) changes", words: rule.command, tokens: tokens, pinned: pinned, directory: directory)
        }
    }

    /// argv as the tool reads it. `--` ends the flags.
    public static func tokenize(_ arguments: [String], profile: ToolProfile, unknownTakesValue: Bool) -> [CommandToken] {
        var tokens: [CommandToken] = []
        var index = 0
        var flagsEnded = false
        while index < arguments.count {
            let argument = arguments[index]
            if flagsEnded || !argument.hasPrefix("-") || argument == "-" {
                tokens.append(.positional(argument, index: index))
                index += 1
                continue
            }
            if argument == "--" {
                flagsEnded = true
                index += 1
                continue
            }
            if let equals = argument.firstIndex(of: "=") {
                tokens.append(.flag(name: String(argument[..<equals]), value: String(argument[argument.index(after: equals)...]), index: index))
                index += 1
                continue
            }
            let takes = profile.takesValue(argument) ?? unknownTakesValue
            if takes && index + 1 < arguments.count {
                tokens.append(.flag(name: argument, value: arguments[index + 1], index: index))
                index += 2
            } else {
                tokens.append(.flag(name: argument, value: nil, index: index))
                index += 1
            }
        }
        return tokens
    }

    /// The rule with the most subcommand words that begin the positional arguments.
    static func match(_ tokens: [CommandToken], profile: ToolProfile) -> ToolRule? {
        let words = tokens.compactMap { token -> String? in
            if case .positional(let word, _) = token { return word }
            return nil
        }
        return profile.rules
            .filter { $0.command.count <= words.count && Array(words.prefix($0.command.count)) == $0.command }
            .max { $0.command.count < $1.command.count }
    }

    static func readIfMatch(_ patterns: [String], _ flags: [(String, String?)]) -> String? {
        for pattern in patterns {
            if let equals = pattern.firstIndex(of: "=") {
                let name = String(pattern[..<equals]), value = String(pattern[pattern.index(after: equals)...])
                if flags.contains(where: { $0.0 == name && $0.1 == value }) { return pattern }
            } else if flags.contains(where: { $0.0 == pattern }) {
                return pattern
            }
        }
        return nil
    }
}

/// Lexical path arithmetic (no file system: symlinks are the caller's to check).
public enum PathResolution {
    public static func absolute(_ path: String, from directory: String) -> String {
        normalize(path.hasPrefix("/") ? path : directory + "/" + path)
    }

    public static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    public static func isInside(_ path: String, _ directory: String) -> Bool {
        let directory = normalize(directory)
        return path == directory || path.hasPrefix(directory == "/" ? "/" : directory + "/")
    }
}
