import AirlockCore
import AirlockPolicy
import AirlockSandbox
import Glibc

/// A tool a session intercepts: its profile (and the text the shim reads inside) and the
/// program the human's shell would run, resolved at session start and pinned by digest
/// (docs/tools.md).
public struct InterceptedTool: Sendable {
    public let name: String
    public let text: String
    /// The real program (shims and symlinks resolved).
    public let binary: String
    /// What the human's PATH found (a shim, a wrapper, a symlink, or `binary` itself).
    public let found: String
    /// How it was reached: "pyenv 3.11.7", "tfenv 1.5.7", "pipx"; nil for a plain program.
    public let via: String?
    /// Directories the program needs (an interpreter installation, a venv, a version's
    /// directory): mounted read-only at their own paths wherever the tool runs.
    public let runtime: [String]
    /// SHA-256 of `binary` when the session started (or as the proposal pinned it).
    public let digest: String
    /// Where the profile says the binary may be (kept apart from the parsed profile: the
    /// sandbox's layout needs only these).
    public let binaries: [String]
    private let parsed: ParsedToolProfile

    /// The whole profile, parsed on first use (the broker's first command) unless it was
    /// parsed already.
    public var profile: ToolProfile { parsed.value }

    public init(profile: ToolProfile, text: String, resolution: ToolResolution, digest: String) {
        self.init(name: profile.tool, text: text, resolution: resolution, digest: digest, binaries: profile.binaries, parsed: ParsedToolProfile(profile))
    }

    private init(name: String, text: String, resolution: ToolResolution, digest: String, binaries: [String], parsed: ParsedToolProfile) {
        self.name = name
        self.text = text
        binary = resolution.binary
        found = resolution.found
        via = resolution.via
        runtime = resolution.runtime
        self.digest = digest
        self.binaries = binaries
        self.parsed = parsed
    }

    /// The tool as the human's shell finds it here (`environment`'s PATH, then the profile's
    /// binaries; version files read from `directory` up), with its digest.
    public static func resolve(_ profile: ToolProfile, text: String, environment: [String: String], directory: String,
                               stateDir: String?) throws(AirlockError) -> InterceptedTool {
        let resolver = ToolResolver(environment: environment, home: environment["HOME"] ?? "/", directory: directory)
        switch resolver.resolve(profile.tool, fallbacks: profile.binaries) {
        case .notInstalled:
            throw AirlockError("\(profile.tool) is not installed here (looked in PATH, then \(profile.binaries.filter { $0 != "$PATH" }.joined(separator: ", ")))")
        case .failed(let failure):
            throw AirlockError("\(failure.tool) cannot run in a sandbox: \(failure.found): \(failure.why)", hint: failure.fix)
        case .resolved(let resolution):
            return InterceptedTool(profile: profile, text: text, resolution: resolution, digest: try ToolDigest.of(resolution.binary, stateDir: stateDir))
        }
    }

    /// The program a proposal pinned, if its bytes are still the pinned ones: what an
    /// execution runs, whatever PATH or a version file says now.
    public static func pinned(_ profile: ToolProfile, text: String, binary: String, digest: String?, environment: [String: String],
                              stateDir: String?) throws(AirlockError) -> InterceptedTool {
        guard binary.hasPrefix("/"), HostPath.normalize(binary) == binary else { throw AirlockError("the pinned \(profile.tool) is not an absolute path: \(binary)") }
        let resolver = ToolResolver(environment: environment, home: environment["HOME"] ?? "/", directory: "/")
        guard resolver.isProgram(binary) else {
            throw AirlockError("\(profile.tool) as pinned (\(binary)) is gone; nothing ran. Make a new proposal")
        }
        let actual = try ToolDigest.of(binary, stateDir: stateDir)
        if let digest, actual != digest {
            throw AirlockError("\(binary) changed since it was pinned (sha256 \(digest.prefix(12))…, now \(actual.prefix(12))…); nothing ran. Make a new proposal")
        }
        switch resolver.resolve(profile.tool, found: binary, depth: 0) {
        case .notInstalled:
            throw AirlockError("\(profile.tool) as pinned (\(binary)) is gone; nothing ran. Make a new proposal")
        case .failed(let failure):
            throw AirlockError("\(failure.tool) cannot run in a sandbox: \(failure.found): \(failure.why)", hint: failure.fix)
        case .resolved(let resolution):
            guard resolution.binary == binary else {
                throw AirlockError("the pinned \(profile.tool) (\(binary)) is not a program but leads to \(resolution.binary); nothing ran. Make a new proposal")
            }
            return InterceptedTool(profile: profile, text: text, resolution: resolution, digest: actual)
        }
    }

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
    /// has nothing to intercept), resolved as the human's shell in `directory` finds them;
    /// and those found that cannot run inside (which, why, what to do). A profile whose exact
    /// text this build of Airlock parsed before (`ToolProfileCache`) is not parsed again now:
    /// parsing the five shipped profiles took ~3 ms of every start-up; the broker parses one
    /// when the agent first runs it.
    public static func load(_ names: [String], library: ProfileLibrary, environment: [String: String], directory: String,
                            stateDir: String?, cache: ToolProfileCache? = nil) throws(AirlockError)
        -> (tools: [InterceptedTool], problems: [ToolResolutionFailure]) {
        var tools: [InterceptedTool] = []
        var problems: [ToolResolutionFailure] = []
        let resolver = ToolResolver(environment: environment, home: environment["HOME"] ?? "/", directory: directory)
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
            switch resolver.resolve(name, fallbacks: summary.binaries) {
            case .notInstalled:
                continue
            case .failed(let failure):
                problems.append(failure)
            case .resolved(let resolution):
                let digest: String
                do {
                    digest = try ToolDigest.of(resolution.binary, stateDir: stateDir)
                } catch {
                    problems.append(ToolResolutionFailure(tool: name, found: resolution.found, why: error.message, fix: "check the file's permissions"))
                    continue
                }
                tools.append(InterceptedTool(name: name, text: text, resolution: resolution, digest: digest, binaries: summary.binaries,
                                             parsed: parsed.map(ParsedToolProfile.init) ?? ParsedToolProfile(text: text, source: source, name: name)))
            }
        }
        return (tools, problems)
    }

    /// Inside the sandbox: the real binary, the shim's copy of the profile.
    public static let directory = SandboxLayout.runDirectory + "/tools"
    public var realPath: String { Self.directory + "/" + name }
    public var profilePath: String { Self.directory + "/" + name + ".yaml" }

    /// In the agent's sandbox: the real binary at /run/airlock/tools/NAME, the shim (this
    /// binary) at /run/airlock/bin/NAME and over the tool's usual paths that the sandbox shows.
    public func addShim(to layout: inout SandboxLayout, airlockBinary: String, home: String) {
        layout.addReadOnlyBind(source: binary, target: realPath, directory: false)
        for directory in runtime { layout.addReadOnlyBind(source: directory, target: directory, directory: true) }
        layout.addFile(profilePath, contents: text)
        // A symlink to /run/airlock/bin/airlock (already mounted for `airlock wait`): run
        // through it, argv[0] names the tool. Cheaper than another mount (start-up time).
        layout.mounts.append(.symlink(target: SandboxLayout.runDirectory + "/bin/" + name, pointsTo: "airlock"))
        var covered = Set<String>()
        for candidate in binaries + [found] {
            let path = HostPath.expandingTilde(candidate, home: home)
            guard access(path, X_OK) == 0, let real = HostInspection.realPath(path),
                  SandboxLayout.isSystemPath(real), covered.insert(real).inserted else { continue }
            layout.addReadOnlyBind(source: airlockBinary, target: real, directory: false)
        }
        // Inside a runtime the sandbox shows (a venv, a pyenv version, mounted above): the shim
        // covers the program there too, so calling it by path is still one proposal per
        // command rather than one per API call.
        if runtime.contains(where: { HostPath.isWithin(binary, $0) }), covered.insert(binary).inserted {
            layout.addReadOnlyBind(source: airlockBinary, target: binary, directory: false)
        }
    }

    /// An approved run executes this binary (and its runtime) with the approval's AWS rights:
    /// it must not be where the agent can write (the workspace, the state directory), or the
    /// agent could change what the approval runs after the human looked.
    public func refusalToExecute(workspace: String, stateDir: String) -> String? {
        for (what, path) in [("binary", binary)] + runtime.map({ ("runtime", $0) }) {
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
        for directory in runtime { layout.addReadOnlyBind(source: directory, target: directory, directory: true) }
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
