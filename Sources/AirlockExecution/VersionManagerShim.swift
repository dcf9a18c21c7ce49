import AirlockCore
import AirlockSandbox
import Glibc

/// A version manager's shim or wrapper, and the version it would select, read the way the
/// manager reads it (docs/tools.md): pyenv (shims exec `pyenv exec`), tfenv (its
/// `bin/terraform` wrapper), asdf (shims naming `# asdf-plugin:`). Resolved once, outside the
/// sandbox; the manager itself never runs inside, and a version file the agent writes later
/// changes nothing pinned.
struct VersionManagerShim: Sendable {
    enum Kind: Sendable {
        case pyenv(root: String)
        case tfenv(configDirectory: String)
        case asdf(dataDirectory: String, plugins: [String])
    }

    enum Selection: Sendable {
        /// The manager defers to the system's program: the next one in PATH.
        case system
        case program(path: String, version: String, versionDirectory: String?)
    }

    struct Refusal: Error, Sendable {
        var why: String
        var fix: String
    }

    let kind: Kind
    /// Where the manager keeps its shims (skipped when it selects the system's program).
    let shimDirectory: String

    var name: String {
        switch kind {
        case .pyenv: return "pyenv"
        case .tfenv: return "tfenv"
        case .asdf: return "asdf"
        }
    }

    /// `text` is the file's first bytes; `path` where PATH found it, `realPath` with symlinks
    /// resolved.
    static func recognize(_ text: String, path: String, realPath: String, home: String, environment: [String: String]) -> VersionManagerShim? {
        guard text.hasPrefix("#!") else { return nil }
        // Most scripts are no shim (a venv's aws): a byte search for the managers' marks
        // first, the line-by-line reading only for a shim (start-up time, docs/tools.md).
        let marks = ["/libexec/pyenv\" exec", "exec pyenv exec", "# asdf-plugin: ", "tfenv"]
        guard marks.contains(where: { text.range(ofText: $0) != nil }) else { return nil }
        let lines = text.split(separator: "\n").map { String($0).trimmingWhitespace }
        let shimDirectory = HostPath.parent(of: HostPath.normalize(realPath))
        // pyenv: `exec "/home/me/.pyenv/libexec/pyenv" exec "$program" "$@"`.
        if lines.contains(where: { $0.hasPrefix("exec ") && $0.contains("/libexec/pyenv\" exec") || $0.hasPrefix("exec pyenv exec") }) {
            let declared = lines.first { $0.hasPrefix("export PYENV_ROOT=") }.map {
                String(String($0.dropFirst("export PYENV_ROOT=".count)).filter { $0 != "\"" && $0 != "'" })
            }
            let root = declared ?? environment["PYENV_ROOT"] ?? home + "/.pyenv"
            return VersionManagerShim(kind: .pyenv(root: HostPath.normalize(root)), shimDirectory: shimDirectory)
        }
        // asdf: `# asdf-plugin: terraform 1.5.7` lines, then `exec …/asdf exec "terraform" "$@"`.
        let plugins = lines.compactMap { line -> String? in
            guard line.hasPrefix("# asdf-plugin: ") else { return nil }
            return line.dropFirst("# asdf-plugin: ".count).split(separator: " ").first.map(String.init)
        }
        if !plugins.isEmpty {
            let data = environment["ASDF_DATA_DIR"] ?? (shimDirectory.hasSuffix("/shims") ? HostPath.parent(of: shimDirectory) : home + "/.asdf")
            var unique: [String] = []
            for plugin in plugins where !unique.contains(plugin) { unique.append(plugin) }
            return VersionManagerShim(kind: .asdf(dataDirectory: HostPath.normalize(data), plugins: unique), shimDirectory: shimDirectory)
        }
        // tfenv: its `bin/terraform` beside `libexec/tfenv-exec`.
        let root = HostPath.parent(of: shimDirectory)
        if shimDirectory.hasSuffix("/bin"), access(root + "/libexec/tfenv-exec", F_OK) == 0 || text.contains("tfenv-exec") {
            let tfenvRoot = environment["TFENV_ROOT"] ?? root
            let config = environment["TFENV_CONFIG_DIR"] ?? tfenvRoot
            return VersionManagerShim(kind: .tfenv(configDirectory: HostPath.normalize(config)), shimDirectory: shimDirectory)
        }
        return nil
    }

    /// A version name read from a file or variable: a name, never a path.
    static func isVersionName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && name.count <= 128
            && name.allSatisfy { $0.isLetter || $0.isNumber || "._+-".contains($0) }
    }

    func select(tool: String, resolver: ToolResolver) -> Result<Selection, Refusal> {
        switch kind {
        case .pyenv(let root): return pyenv(tool: tool, root: root, resolver: resolver)
        case .tfenv(let config): return tfenv(tool: tool, config: config, resolver: resolver)
        case .asdf(let data, let plugins): return asdf(tool: tool, data: data, plugins: plugins, resolver: resolver)
        }
    }

    func installHint(tool: String, version: String) -> String {
        switch kind {
        case .pyenv: return "install \(tool) into Python \(version) (`pyenv shell \(version)` then `pip install`), or select another version"
        case .tfenv: return "run `tfenv install \(version)`"
        case .asdf: return "run `asdf install` in the workspace"
        }
    }

    /// Words of a version file: whitespace-separated, `#` comments skipped.
    static func words(_ path: String) -> [String] {
        guard let text = regularFileText(path) else { return [] }
        return text.split(separator: "\n").filter { !String($0).trimmingWhitespace.hasPrefix("#") }
            .flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }) }.map(String.init)
    }

    // pyenv: PYENV_VERSION, else .python-version here or above, else $PYENV_ROOT/version,
    // else the system's; each name in turn until one has the tool; a name with no installed
    // version of its own is the newest installed one it prefixes (`3.11` → 3.11.7).
    func pyenv(tool: String, root: String, resolver: ToolResolver) -> Result<Selection, Refusal> {
        var source = "PYENV_VERSION"
        var names: [String]
        if let variable = resolver.environment["PYENV_VERSION"], !variable.isEmpty {
            names = variable.split(separator: ":").map(String.init)
        } else if let file = resolver.versionFile(".python-version", thenHome: false) {
            source = file
            names = Self.words(file)
        } else if access(root + "/version", R_OK) == 0 {
            source = root + "/version"
            names = Self.words(root + "/version")
        } else {
            return .success(.system)
        }
        if names.isEmpty { return .success(.system) }
        var tried: [String] = []
        for name in names {
            if name == "system" { return .success(.system) }
            guard Self.isVersionName(name) else {
                return .failure(Refusal(why: "pyenv's version in \(source) is not a version name", fix: "fix \(source)"))
            }
            let version = access(root + "/versions/" + name, F_OK) == 0 ? name : Self.newest(in: root + "/versions", prefixedBy: name + ".")
            guard let version else { tried.append(name); continue }
            let directory = HostInspection.realPath(root + "/versions/" + version) ?? root + "/versions/" + version
            let candidate = root + "/versions/" + version + "/bin/" + tool
            if resolver.isProgram(candidate) { return .success(.program(path: candidate, version: version, versionDirectory: directory)) }
            tried.append(version)
        }
        return .failure(Refusal(why: "pyenv selects \(tried.joined(separator: ", ")) (from \(source)), which has no \(tool)",
                                fix: "install \(tool) into that Python (`pip install`), or select one that has it (`pyenv which \(tool)` says the same)"))
    }

    // tfenv: TFENV_TERRAFORM_VERSION, else .terraform-version here or above, then in the home
    // or above, else $TFENV_CONFIG_DIR/version. Only an exact installed version: `latest`,
    // `latest:REGEX` and `min-required` are resolved by tfenv against the internet or the
    // configuration the agent writes, at every run.
    func tfenv(tool: String, config: String, resolver: ToolResolver) -> Result<Selection, Refusal> {
        var source = "TFENV_TERRAFORM_VERSION"
        var value = resolver.environment["TFENV_TERRAFORM_VERSION"] ?? ""
        if value.isEmpty {
            if let file = resolver.versionFile(".terraform-version", thenHome: true) {
                source = file
            } else {
                source = config + "/version"
            }
            value = Self.words(source).first ?? ""
        }
        guard !value.isEmpty else {
            return .failure(Refusal(why: "tfenv has no version selected (no .terraform-version, no \(config)/version)", fix: "run `tfenv use VERSION`"))
        }
        let version = value.hasPrefix("v") ? String(value.dropFirst()) : value
        guard Self.isVersionName(version), version.first?.isNumber == true else {
            return .failure(Refusal(why: "tfenv's version\(Self.isVersionName(value) ? " \"\(value)\"" : "") (from \(source)) is chosen anew at every run",
                                    fix: "pin an installed version in \(source) (say `tfenv use 1.5.7`)"))
        }
        let directory = config + "/versions/" + version
        return .success(.program(path: directory + "/terraform", version: version, versionDirectory: directory))
    }

    // asdf: ASDF_<PLUGIN>_VERSION, else the plugin's line in .tool-versions here or above,
    // then in the home; each version on the line in turn.
    func asdf(tool: String, data: String, plugins: [String], resolver: ToolResolver) -> Result<Selection, Refusal> {
        let fileName = resolver.environment["ASDF_DEFAULT_TOOL_VERSIONS_FILENAME"].flatMap { Self.isVersionName($0) ? $0 : nil } ?? ".tool-versions"
        var tried: [String] = []
        for plugin in plugins {
            let variable = "ASDF_" + String(plugin.uppercased().map { $0 == "-" ? "_" : $0 }) + "_VERSION"
            var source = variable
            var versions: [String] = []
            if let value = resolver.environment[variable], !value.isEmpty {
                versions = value.split(separator: " ").map(String.init)
            } else {
                for file in resolver.versionFiles(fileName, thenHome: true) {
                    let text: String = Self.regularFileText(file) ?? ""
                    let lines = text.split(separator: "\n")
                    if let line = lines.first(where: { $0.split(separator: " ").first.map(String.init) == plugin }) {
                        let words: [String] = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().map(String.init)
                        versions = Array(words.prefix { !$0.hasPrefix("#") })
                        source = file
                        break
                    }
                }
            }
            for version in versions {
                if version == "system" { return .success(.system) }
                if version.hasPrefix("path:") {
                    // A directory named in a file the agent may have written: never mounted.
                    return .failure(Refusal(why: "asdf's version of \(plugin) (from \(source)) is a path:, which names any directory",
                                            fix: "install a version (`asdf install \(plugin) VERSION`) and name it"))
                }
                guard Self.isVersionName(version) else {
                    return .failure(Refusal(why: "asdf's version of \(plugin) (from \(source)) is not an installed version's name",
                                            fix: "pin an installed version in \(source)"))
                }
                let directory = data + "/installs/" + plugin + "/" + version
                for candidate in [directory + "/bin/" + tool, directory + "/" + tool] where resolver.isProgram(candidate) {
                    return .success(.program(path: candidate, version: "\(plugin) \(version)", versionDirectory: directory))
                }
                tried.append("\(plugin) \(version)")
            }
        }
        if tried.isEmpty {
            return .failure(Refusal(why: "asdf has no version of \(plugins.joined(separator: ", ")) selected here",
                                    fix: "add a line to .tool-versions (`asdf set` or `asdf local`)"))
        }
        return .failure(Refusal(why: "asdf selects \(tried.joined(separator: ", ")), which is not installed", fix: "run `asdf install`"))
    }

    /// A version file's text: a regular file only, opened without following a link at its
    /// last component and without blocking (a FIFO planted as `.python-version` must not hang
    /// the next `airlock run`).
    static func regularFileText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        var bytes = [UInt8](repeating: 0, count: 64 << 10)
        let count = read(fd, &bytes, bytes.count)
        guard count >= 0 else { return nil }
        return String(decoding: bytes.prefix(count), as: UTF8.self)
    }

    /// The newest installed version in `directory` whose name starts with `prefix`, by
    /// numeric components.
    static func newest(in directory: String, prefixedBy prefix: String) -> String? {
        guard let dir = opendir(directory) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasPrefix(prefix), isVersionName(name) { names.append(name) }
        }
        func key(_ name: String) -> [Int] { name.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) } }
        return names.max { key($0).lexicographicallyPrecedes(key($1)) }
    }
}
