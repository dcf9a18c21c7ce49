import AirlockCore

/// Every file the broker's credential loaders read, and every helper program they run
/// (docs/design.md, invariant 9; docs/sandbox.md, "Credential files"). One source of truth: the
/// loaders (HostCredentials, KubernetesClusters, GitHubCredentials, `git credential fill`) take
/// their paths from the functions here, and the launcher masks what `find` lists, wherever the
/// sandbox could otherwise see it: a variable pointing into the workspace, a profile's read path
/// or a system directory does not let a credential file in. Pure: the caller reads files.
public struct CredentialSources: Sendable, Equatable {
    public struct File: Sendable, Equatable {
        /// As the loader opens it: absolute, normalized.
        public var path: String
        /// Which loader reads it and why, for warnings and `airlock doctor`.
        public var loader: String
    }

    /// A program a loader runs to get a credential (`credential_process`, a kubeconfig exec
    /// plugin, a git credential helper): it may read files nobody can list.
    public struct Helper: Sendable, Equatable {
        public var command: String
        public var loader: String
        /// The file that names it.
        public var configuredIn: String
    }

    public var files: [File] = []
    public var helpers: [Helper] = []
    /// Every git configuration file `git credential fill` would read (existing or not, includes
    /// followed): where one lies in a tree the agent can write, the broker must not run git
    /// there, or the agent would choose the helper it runs outside the sandbox.
    public var gitConfigurations: [String] = []

    public init() {}

    // MARK: Where each loader looks (the loaders call these)

    /// `~/x` expanded, a relative path resolved against `cwd`, normalized.
    public static func absolute(_ path: String, home: String, cwd: String) -> String {
        let expanded = HostPath.expandingTilde(path, home: home)
        return HostPath.normalize(expanded.hasPrefix("/") ? expanded : cwd + "/" + expanded)
    }

    /// The AWS shared credentials file botocore reads.
    public static func awsCredentialsFile(_ environment: [String: String], home: String) -> String {
        nonEmpty(environment["AWS_SHARED_CREDENTIALS_FILE"]) ?? home + "/.aws/credentials"
    }

    /// The AWS config file botocore reads.
    public static func awsConfigFile(_ environment: [String: String], home: String) -> String {
        nonEmpty(environment["AWS_CONFIG_FILE"]) ?? home + "/.aws/config"
    }

    /// The kubeconfig files kubectl reads: `KUBECONFIG` (a colon-separated list) or
    /// `~/.kube/config`.
    public static func kubeconfigFiles(_ environment: [String: String], home: String) -> [String] {
        if let list = nonEmpty(environment["KUBECONFIG"]) {
            return list.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        return [home + "/.kube/config"]
    }

    /// gh's configuration directory: `GH_CONFIG_DIR`, `XDG_CONFIG_HOME/gh`, `~/.config/gh`.
    public static func ghConfigDirectory(_ environment: [String: String], home: String) -> String {
        if let directory = nonEmpty(environment["GH_CONFIG_DIR"]) { return directory }
        if let xdg = nonEmpty(environment["XDG_CONFIG_HOME"]) { return xdg + "/gh" }
        return home + "/.config/gh"
    }

    /// The git configuration files `git credential fill` reads, in git's order: system
    /// (`GIT_CONFIG_SYSTEM`, else /etc/gitconfig, unless `GIT_CONFIG_NOSYSTEM`), then global
    /// (`GIT_CONFIG_GLOBAL`, else `$XDG_CONFIG_HOME/git/config` and `~/.gitconfig`).
    public static func gitConfigFiles(_ environment: [String: String], home: String) -> [String] {
        var files: [String] = []
        if !isTrue(environment["GIT_CONFIG_NOSYSTEM"]) { files.append(nonEmpty(environment["GIT_CONFIG_SYSTEM"]) ?? "/etc/gitconfig") }
        if let global = environment["GIT_CONFIG_GLOBAL"] {
            if !global.isEmpty && global != "/dev/null" { files.append(global) }
        } else {
            files.append((nonEmpty(environment["XDG_CONFIG_HOME"]) ?? home + "/.config") + "/git/config")
            files.append(home + "/.gitconfig")
        }
        return files
    }

    /// The netrc file curl, git's netrc helper and Python read: `NETRC`, else `~/.netrc`.
    public static func netrcFile(_ environment: [String: String], home: String) -> String {
        nonEmpty(environment["NETRC"]) ?? home + "/.netrc"
    }

    /// Variables that name credential files outside any loader (a service account key,
    /// docker's and gpg's directories, the team gate's own secrets, colon-separated lists).
    public static let namedByVariables = ["GOOGLE_APPLICATION_CREDENTIALS", "DOCKER_CONFIG", "GNUPGHOME", "AIRLOCK_GATE_TOKEN_FILE",
                                          "AIRLOCK_GATE_SECRET_FILES", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]

    // MARK: Everything, for the masks

    /// What every loader reads for this environment. `read` returns a file's text (nil when it
    /// does not exist or cannot be read); configuration files are read to find the files and
    /// helpers they name (a kubeconfig's token file, `credential_process`, a git helper's store).
    public static func find(environment: [String: String], home: String, cwd: String, read: (String) -> String?) -> CredentialSources {
        var sources = CredentialSources()
        func file(_ path: String, _ loader: String) {
            let full = absolute(path, home: home, cwd: cwd)
            if !sources.files.contains(where: { $0.path == full }) { sources.files.append(File(path: full, loader: loader)) }
        }
        func helper(_ command: String, _ loader: String, in configuration: String) {
            sources.helpers.append(Helper(command: command, loader: loader, configuredIn: configuration))
            // Absolute paths among its arguments are files it reads (a key, its own configuration).
            for word in ShellWords.split(command).dropFirst() {
                let value = word.hasPrefix("-") && word.contains("=") ? String(word.drop { $0 != "=" }.dropFirst()) : word
                if value.hasPrefix("/") || value.hasPrefix("~/") { file(value, "\(loader): an argument of \(configuration)'s helper") }
            }
        }

        // AWS: the shared files, what their profiles name, the web identity token.
        for (path, what) in [(awsCredentialsFile(environment, home: home), "AWS shared credentials file"),
                             (awsConfigFile(environment, home: home), "AWS config file")] {
            file(path, what)
            guard let text = read(absolute(path, home: home, cwd: cwd)) else { continue }
            for (section, keys) in INI.parse(text).sorted(by: { $0.key < $1.key }) {
                if let command = keys["credential_process"] { helper(command, "AWS credential_process ([\(section)])", in: path) }
                if let token = keys["web_identity_token_file"] { file(token, "AWS web identity token ([\(section)])") }
            }
        }

        // Kubernetes: every kubeconfig, and the files and plugins its users name (relative
        // paths resolve against the kubeconfig's directory, as kubectl resolves them).
        for path in kubeconfigFiles(environment, home: home) {
            let full = absolute(path, home: home, cwd: cwd)
            file(full, "kubeconfig")
            guard let text = read(full), let root = try? YAML.parse(text), case .sequence(let users)? = root["users"]?.value else { continue }
            let base = HostPath.parent(of: full)
            for entry in users {
                guard let user = entry["user"] else { continue }
                let name = entry["name"]?.scalar ?? "?"
                for key in ["tokenFile", "client-certificate", "client-key"] {
                    if let value = user[key]?.scalar, !value.isEmpty {
                        file(value.hasPrefix("/") || value.hasPrefix("~/") ? value : base + "/" + value, "kubeconfig user \(name) (\(key))")
                    }
                }
                if let exec = user["exec"], let command = exec["command"]?.scalar {
                    var words = [command]
                    if case .sequence(let list)? = exec["args"]?.value { words += list.compactMap(\.scalar) }
                    helper(words.map(shellQuoted).joined(separator: " "), "kubeconfig user \(name) (exec plugin)", in: full)
                }
            }
        }

        // GitHub: gh's hosts file (its oauth_token), which the broker and `gh auth token` read.
        file(ghConfigDirectory(environment, home: home) + "/hosts.yml", "gh hosts file")

        // git: `git credential fill` reads the configuration files; their helpers decide what else.
        var configurations = gitConfigFiles(environment, home: home).map { absolute($0, home: home, cwd: cwd) }
        var index = 0
        let xdgConfig = nonEmpty(environment["XDG_CONFIG_HOME"]) ?? home + "/.config"
        let xdgCache = nonEmpty(environment["XDG_CACHE_HOME"]) ?? home + "/.cache"
        while index < configurations.count && index < 32 {
            let path = configurations[index]
            index += 1
            guard let text = read(path) else { continue }
            let entries = GitConfig.parse(text)
            let base = HostPath.parent(of: path)
            for entry in entries where entry.key == "path" && (entry.section == "include" || entry.section == "includeif") {
                let included = entry.value.hasPrefix("/") || entry.value.hasPrefix("~/") ? entry.value : base + "/" + entry.value
                let full = absolute(included, home: home, cwd: cwd)
                if !configurations.contains(full) { configurations.append(full) }
            }
            // A configuration file that sets up credentials is one itself (a helper can be an
            // inline script holding a token); GIT_CONFIG_GLOBAL is the human's to point anywhere.
            let helpers = entries.filter { $0.section == "credential" && $0.key == "helper" }.map(\.value)
            let isGlobal = environment["GIT_CONFIG_GLOBAL"].map { absolute($0, home: home, cwd: cwd) == path } ?? false
            if !helpers.isEmpty || entries.contains(where: { $0.section == "credential" }) || isGlobal { file(path, "git configuration") }
            for value in helpers where !value.isEmpty {
                let words = ShellWords.split(value)
                let name = words.first ?? ""
                if name == "store" {
                    if let explicit = option("--file", in: words) { file(explicit, "git credential store (\(path))") } else {
                        file(home + "/.git-credentials", "git credential store (\(path))")
                        file(xdgConfig + "/git/credentials", "git credential store (\(path))")
                    }
                } else if name == "cache" {
                    // Whoever can connect to the cache daemon's socket gets its credentials.
                    if let socket = option("--socket", in: words) { file(socket, "git credential cache socket (\(path))") } else {
                        file(xdgCache + "/git/credential/socket", "git credential cache socket (\(path))")
                        file(home + "/.git-credential-cache/socket", "git credential cache socket (\(path))")
                    }
                } else if name == "netrc" {
                    var explicit: [String] = []
                    for (position, word) in words.enumerated() where (word == "-f" || word == "--file") && position + 1 < words.count {
                        explicit.append(words[position + 1])
                    }
                    for netrc in explicit.isEmpty ? [home + "/.authinfo.gpg", home + "/.authinfo", home + "/.netrc.gpg", home + "/.netrc"] : explicit {
                        file(netrc, "git credential netrc (\(path))")
                    }
                } else {
                    helper(value, "git credential helper", in: path)
                }
            }
        }

        sources.gitConfigurations = configurations
        file(netrcFile(environment, home: home), "netrc")
        for name in namedByVariables {
            for part in (environment[name] ?? "").split(separator: ":") where !part.isEmpty {
                file(String(part), "named by \(name)")
            }
        }
        return sources
    }

    /// The last value of `--name VALUE` or `--name=VALUE` among a helper's words.
    static func option(_ name: String, in words: [String]) -> String? {
        var found: String?
        for (position, word) in words.enumerated() {
            if word.hasPrefix(name + "=") { found = String(word.dropFirst(name.count + 1)) }
            if word == name, position + 1 < words.count { found = words[position + 1] }
        }
        return found
    }

    static func nonEmpty(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }

    static func isTrue(_ value: String?) -> Bool {
        guard let value = value?.lowercased() else { return false }
        return ["1", "true", "yes", "on"].contains(value)
    }

    static func shellQuoted(_ word: String) -> String {
        word.allSatisfy { $0.isLetter || $0.isNumber || "/._-=:@+,".contains($0) } && !word.isEmpty
            ? word : SandboxLayout.shellQuoted(word)
    }
}

/// Just enough of git's configuration syntax to find what `git credential fill` would use:
/// `[section]`, `[section "subsection"]`, `[section.subsection]`, `key = value` (quotes,
/// escapes, `#`/`;` comments, `\` line continuations), a bare `key` (true). Section and key
/// names are case-insensitive (lowercased here). Pure.
public enum GitConfig {
    public struct Entry: Sendable, Equatable {
        public var section: String
        public var subsection: String?
        public var key: String
        public var value: String
        public init(section: String, subsection: String?, key: String, value: String) {
            self.section = section
            self.subsection = subsection
            self.key = key
            self.value = value
        }
    }

    public static func parse(_ text: String) -> [Entry] {
        var entries: [Entry] = []
        var section = ""
        var subsection: String?
        let characters = Array(text)
        var index = 0
        func skipSpaces() { while index < characters.count, characters[index] == " " || characters[index] == "\t" { index += 1 } }
        func skipLine() { while index < characters.count, characters[index] != "\n" { index += 1 } }
        while index < characters.count {
            skipSpaces()
            guard index < characters.count else { break }
            let c = characters[index]
            if c == "\n" || c == "\r" { index += 1; continue }
            if c == "#" || c == ";" { skipLine(); continue }
            if c == "[" {
                index += 1
                var name = ""
                while index < characters.count, characters[index] != "]", characters[index] != "\"", characters[index] != " ", characters[index] != "\n" {
                    name.append(characters[index])
                    index += 1
                }
                skipSpaces()
                subsection = nil
                if index < characters.count, characters[index] == "\"" {
                    index += 1
                    var sub = ""
                    while index < characters.count, characters[index] != "\"", characters[index] != "\n" {
                        if characters[index] == "\\", index + 1 < characters.count { index += 1 }
                        sub.append(characters[index])
                        index += 1
                    }
                    subsection = sub
                    while index < characters.count, characters[index] != "]", characters[index] != "\n" { index += 1 }
                } else if let dot = name.firstIndex(of: ".") {
                    subsection = String(name[name.index(after: dot)...])
                    name = String(name[..<dot])
                }
                if index < characters.count, characters[index] == "]" { index += 1 }
                section = name.lowercased()
                continue
            }
            var key = ""
            while index < characters.count, characters[index].isLetter || characters[index].isNumber || characters[index] == "-" {
                key.append(characters[index])
                index += 1
            }
            guard !key.isEmpty else { skipLine(); continue }
            skipSpaces()
            var value = ""
            if index < characters.count, characters[index] == "=" {
                index += 1
                skipSpaces()
                var quoted = false
                var pendingSpaces = ""
                while index < characters.count {
                    let ch = characters[index]
                    if ch == "\n" && !quoted { break }
                    if (ch == "#" || ch == ";") && !quoted { skipLine(); break }
                    if ch == "\"" { quoted.toggle(); index += 1; continue }
                    if ch == "\\", index + 1 < characters.count {
                        let next = characters[index + 1]
                        index += 2
                        switch next {
                        case "\n": continue  // a continuation line
                        case "n": value += pendingSpaces + "\n"
                        case "t": value += pendingSpaces + "\t"
                        default: value += pendingSpaces + String(next)
                        }
                        pendingSpaces = ""
                        continue
                    }
                    if (ch == " " || ch == "\t") && !quoted { pendingSpaces.append(ch); index += 1; continue }
                    if ch == "\r" { index += 1; continue }
                    value += pendingSpaces + String(ch)
                    pendingSpaces = ""
                    index += 1
                }
            } else {
                value = "true"
            }
            entries.append(Entry(section: section, subsection: subsection, key: key.lowercased(), value: value))
        }
        return entries
    }
}
