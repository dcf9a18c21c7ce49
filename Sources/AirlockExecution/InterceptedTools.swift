import AirlockCore
import AirlockPolicy
import AirlockSandbox
import Glibc

/// A tool a session intercepts: its profile (and the text the shim reads inside) and the
/// real binary on the host.
public struct InterceptedTool: Sendable {
    public let name: String
    public let text: String
    public let binary: String
    /// A script's interpreter installation outside the system directories (the venv of a
    /// pip-installed aws CLI): mounted read-only wherever the tool runs.
    public let runtime: String?
    /// Where the profile says the binary may be (kept apart from the parsed profile: the
    /// sandbox's layout needs only these).
    public let binaries: [String]
    private let parsed: ParsedToolProfile

    /// The whole profile, parsed on first use (the broker's first command) unless it was
    /// parsed already.
    public var profile: ToolProfile { parsed.value }

    public init(profile: ToolProfile, text: String, binary: String) {
        self.init(name: profile.tool, text: text, binary: binary, binaries: profile.binaries, parsed: ParsedToolProfile(profile))
    }

    private init(name: String, text: String, binary: String, binaries: [String], parsed: ParsedToolProfile) {
        self.name = name
        self.text = text
        self.binary = binary
        self.binaries = binaries
        self.parsed = parsed
        runtime = Self.runtimeDirectory(of: binary)
    }

    /// `#!/home/me/venv/bin/python3` → `/home/me/venv`, when that is not a system directory.
    public static func runtimeDirectory(of binary: String) -> String? {
        guard let head = try? readFile(binary, limit: 512), head.starts(with: [0x23, 0x21]) else { return nil }
        let line = String(decoding: head.dropFirst(2).prefix { $0 != 0x0A }, as: UTF8.self)
        guard let interpreter = line.split(separator: " ").first.map(String.init), interpreter.hasPrefix("/"),
              !SandboxLayout.isSystemPath(interpreter) else { return nil }
        let directory = PathResolution.normalize(String(interpreter[..<interpreter.lastIndex(of: "/")!]))
        guard directory.hasSuffix("/bin") else { return nil }
        let prefix = String(directory.dropLast(4))
        // Only a Python virtual environment, and never one that holds a home (mounting it
        // would show ~/.aws and the rest): a runtime, not a user's files.
        guard !prefix.isEmpty, access(prefix + "/pyvenv.cfg", R_OK) == 0, !prefix.hasPrefix("/home/") || prefix.split(separator: "/").count > 2,
              prefix != "/root" else { return nil }
        return prefix
    }

    /// Inside the sandbox: the real binary, the shim's copy of the profile.
    public static let directory = SandboxLayout.runDirectory + "/tools"
    public var realPath: String { Self.directory + "/" + name }
    public var profilePath: String { Self.directory + "/" + name + ".yaml" }

    /// Finds `profiles/tools/NAME.yaml` in the profile search path.
    public static func profile(_ name: String, library: ProfileLibrary) throws(AirlockError) -> (ToolProfile, String) {
        let (text, source) = try profileText(name, library: library)
        return (try parse(text, source: source, name: name), text)
    }

    public static func profileText(_ name: String, library: ProfileLibrary) throws(AirlockError) -> (text: String, source: String) {
        guard ProfileName.isValid(name), !name.contains(".") else { throw AirlockError("'\(name)' is not a tool name") }
        for dir in library.searchPath {
            let path = dir + "/tools/" + name + ".yaml"
            guard access(path, R_OK) == 0 else { continue }
            return (try readTextFile(path, limit: ProfileParser.maximumSize), path)
        }
        throw AirlockError("no tool profile for '\(name)'", hint: "looked for tools/\(name).yaml in \(library.searchPath.joined(separator: ", "))", code: .usage)
    }

    public static func parse(_ text: String, source: String, name: String) throws(AirlockError) -> ToolProfile {
        let profile: ToolProfile
        do {
            profile = try ToolProfileParser.parse(text, source: source)
        } catch {
            throw AirlockError("tool profile \(error)", code: .usage)
        }
        guard profile.tool == name else { throw AirlockError("\(source) is for tool '\(profile.tool)', not '\(name)'", code: .usage) }
        return profile
    }

    /// The tools the profiles name that are installed here (a tool that is not installed
    /// has nothing to intercept). A profile whose exact text this build of Airlock parsed
    /// before (`ToolProfileCache`) is not parsed again now: parsing the five shipped profiles
    /// took ~3 ms of every start-up; the broker parses one when the agent first runs it.
    public static func load(_ names: [String], library: ProfileLibrary, home: String, path: String? = nil,
                     cache: ToolProfileCache? = nil) throws(AirlockError) -> [InterceptedTool] {
        var tools: [InterceptedTool] = []
        for name in names {
            let (text, source) = try Self.profileText(name, library: library)
            let summary: ToolProfileCache.Summary
            var parsed: ToolProfile?
            if let known = cache?.summary(of: text, source: source), known.tool == name {
                summary = known
            } else {
                let profile = try Self.parse(text, source: source, name: name)
                summary = ToolProfileCache.Summary(tool: profile.tool, binaries: profile.binaries)
                cache?.remember(summary, of: text, source: source)
                parsed = profile
            }
            guard let binary = installed(name, binaries: summary.binaries, home: home, path: path) else { continue }
            tools.append(InterceptedTool(name: name, text: text, binary: binary, binaries: summary.binaries,
                                         parsed: parsed.map(ParsedToolProfile.init) ?? ParsedToolProfile(text: text, source: source, name: name)))
        }
        return tools
    }

    public static func installed(_ profile: ToolProfile, home: String, path searchPath: String? = nil) -> String? {
        installed(profile.tool, binaries: profile.binaries, home: home, path: searchPath)
    }

    public static func installed(_ tool: String, binaries: [String], home: String, path searchPath: String?) -> String? {
        for candidate in binaries {
            var paths = [HostPath.expandingTilde(candidate, home: home)]
            if candidate == "$PATH" {
                // Not Airlock's own directories (inside a sandbox the shim is first there).
                paths = (searchPath ?? "").split(separator: ":").filter { $0.hasPrefix("/") && !$0.hasPrefix(SandboxLayout.runDirectory) }
                    .map { $0 + "/" + tool }
            }
            for path in paths {
                if access(path, X_OK) == 0, let real = HostInspection.realPath(path), !real.hasSuffix("/airlock") { return real }
            }
        }
        return nil
    }

    /// In the agent's sandbox: the real binary at /run/airlock/tools/NAME, the shim (this
    /// binary) at /run/airlock/bin/NAME and over the tool's usual paths that the sandbox shows.
    public func addShim(to layout: inout SandboxLayout, airlockBinary: String, home: String) {
        layout.addReadOnlyBind(source: binary, target: realPath, directory: false)
        if let runtime { layout.addReadOnlyBind(source: runtime, target: runtime, directory: true) }
        layout.addFile(profilePath, contents: text)
        // A symlink to /run/airlock/bin/airlock (already mounted for `airlock wait`): run
        // through it, argv[0] names the tool. Cheaper than another mount (start-up time).
        layout.mounts.append(.symlink(target: SandboxLayout.runDirectory + "/bin/" + name, pointsTo: "airlock"))
        var covered = Set<String>()
        for candidate in binaries {
            let path = HostPath.expandingTilde(candidate, home: home)
            guard access(path, X_OK) == 0, let real = HostInspection.realPath(path),
                  SandboxLayout.isSystemPath(real), covered.insert(real).inserted else { continue }
            layout.addReadOnlyBind(source: airlockBinary, target: real, directory: false)
        }
        // Found on PATH inside a virtual environment the sandbox shows (it is mounted above):
        // the shim covers the venv's own `bin/aws` too, so calling it by path is still one
        // proposal per command rather than one per API call.
        if let runtime, binary.hasPrefix(runtime + "/"), covered.insert(binary).inserted {
            layout.addReadOnlyBind(source: airlockBinary, target: binary, directory: false)
        }
    }

    /// An approved run executes this binary (and its runtime) with the approval's AWS rights:
    /// it must not be where the agent can write (the workspace, the state directory), or the
    /// agent could change what the approval runs after the human looked.
    public func refusalToExecute(workspace: String, stateDir: String) -> String? {
        for (what, path) in [("binary", binary), ("runtime", runtime)] {
            guard let path else { continue }
            for (place, root) in [("the workspace", workspace), ("the state directory", stateDir)]
            where path == root || path.hasPrefix(root + "/") || root.hasPrefix(path + "/") {
                return "\(name)'s \(what) \(path) is inside \(place), where the agent can write: an approved run will not execute it. Install \(name) outside the workspace (pipx, /usr/local)"
            }
        }
        return nil
    }

    /// In an execution sandbox: the real binary only.
    public func addBinary(to layout: inout SandboxLayout) {
        layout.addReadOnlyBind(source: binary, target: realPath, directory: false)
        if let runtime { layout.addReadOnlyBind(source: runtime, target: runtime, directory: true) }
    }
}

/// A tool profile parsed once, when first asked for. Its text parsed before (the cache says
/// so, for this build of Airlock), so it parses now; were it not to, every command of the
/// tool is a change (fail closed), and the session log says why.
public final class ParsedToolProfile: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var parsed: ToolProfile?
    private let text: String
    private let source: String
    private let name: String

    public init(_ profile: ToolProfile) {
        parsed = profile
        text = ""
        source = profile.source
        name = profile.tool
        pthread_mutex_init(&mutex, nil)
    }

    public init(text: String, source: String, name: String) {
        self.text = text
        self.source = source
        self.name = name
        pthread_mutex_init(&mutex, nil)
    }

    public var value: ToolProfile {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let parsed { return parsed }
        let profile: ToolProfile
        do {
            profile = try InterceptedTool.parse(text, source: source, name: name)
        } catch {
            writeStandardError("airlock: \(error.message); every \(name) command is treated as a change\n")
            profile = ToolProfile(tool: name, source: source)
        }
        parsed = profile
        return profile
    }
}
