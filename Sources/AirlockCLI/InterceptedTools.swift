import AirlockCore
import AirlockPolicy
import AirlockSandbox
import Glibc

/// A tool a session intercepts: its profile (and the text the shim reads inside) and the
/// real binary on the host.
struct InterceptedTool: Sendable {
    let profile: ToolProfile
    let text: String
    let binary: String
    /// A script's interpreter installation outside the system directories (the venv of a
    /// pip-installed aws CLI): mounted read-only wherever the tool runs.
    let runtime: String?

    init(profile: ToolProfile, text: String, binary: String) {
        self.profile = profile
        self.text = text
        self.binary = binary
        runtime = Self.runtimeDirectory(of: binary)
    }

    /// `#!/home/me/venv/bin/python3` → `/home/me/venv`, when that is not a system directory.
    static func runtimeDirectory(of binary: String) -> String? {
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
    static let directory = SandboxLayout.runDirectory + "/tools"
    var realPath: String { Self.directory + "/" + profile.tool }
    var profilePath: String { Self.directory + "/" + profile.tool + ".yaml" }

    /// Finds `profiles/tools/NAME.yaml` in the profile search path.
    static func profile(_ name: String, library: ProfileLibrary) throws(AirlockError) -> (ToolProfile, String) {
        guard ProfileName.isValid(name), !name.contains(".") else { throw AirlockError("'\(name)' is not a tool name") }
        for dir in library.searchPath {
            let path = dir + "/tools/" + name + ".yaml"
            guard access(path, R_OK) == 0 else { continue }
            let text = try readTextFile(path, limit: ProfileParser.maximumSize)
            let profile: ToolProfile
            do {
                profile = try ToolProfileParser.parse(text, source: path)
            } catch {
                throw AirlockError("tool profile \(error)", exitCode: 2)
            }
            guard profile.tool == name else { throw AirlockError("\(path) is for tool '\(profile.tool)', not '\(name)'", exitCode: 2) }
            return (profile, text)
        }
        throw AirlockError("no tool profile for '\(name)'", hint: "looked for tools/\(name).yaml in \(library.searchPath.joined(separator: ", "))",
                           exitCode: 2)
    }

    /// The tools the profiles name that are installed here (a tool that is not installed
    /// has nothing to intercept).
    static func load(_ names: [String], library: ProfileLibrary, home: String, path: String? = nil) throws(AirlockError) -> [InterceptedTool] {
        var tools: [InterceptedTool] = []
        for name in names {
            let (profile, text) = try Self.profile(name, library: library)
            guard let binary = installed(profile, home: home, path: path) else { continue }
            tools.append(InterceptedTool(profile: profile, text: text, binary: binary))
        }
        return tools
    }

    static func installed(_ profile: ToolProfile, home: String, path searchPath: String? = nil) -> String? {
        for candidate in profile.binaries {
            var paths = [HostPath.expandingTilde(candidate, home: home)]
            if candidate == "$PATH" {
                // Not Airlock's own directories (inside a sandbox the shim is first there).
                paths = (searchPath ?? "").split(separator: ":").filter { $0.hasPrefix("/") && !$0.hasPrefix(SandboxLayout.runDirectory) }
                    .map { $0 + "/" + profile.tool }
            }
            for path in paths {
                if access(path, X_OK) == 0, let real = HostInspection.realPath(path), !real.hasSuffix("/airlock") { return real }
            }
        }
        return nil
    }

    /// In the agent's sandbox: the real binary at /run/airlock/tools/NAME, the shim (this
    /// binary) at /run/airlock/bin/NAME and over the tool's usual paths that the sandbox shows.
    func addShim(to layout: inout SandboxLayout, airlockBinary: String, home: String) {
        layout.addReadOnlyBind(source: binary, target: realPath, directory: false)
        if let runtime { layout.addReadOnlyBind(source: runtime, target: runtime, directory: true) }
        layout.addFile(profilePath, contents: text)
        // A symlink to /run/airlock/bin/airlock (already mounted for `airlock wait`): run
        // through it, argv[0] names the tool. Cheaper than another mount (start-up time).
        layout.mounts.append(.symlink(target: SandboxLayout.runDirectory + "/bin/" + profile.tool, pointsTo: "airlock"))
        var covered = Set<String>()
        for candidate in profile.binaries {
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
    func refusalToExecute(workspace: String, stateDir: String) -> String? {
        for (what, path) in [("binary", binary), ("runtime", runtime)] {
            guard let path else { continue }
            for (place, root) in [("the workspace", workspace), ("the state directory", stateDir)]
            where path == root || path.hasPrefix(root + "/") || root.hasPrefix(path + "/") {
                return "\(profile.tool)'s \(what) \(path) is inside \(place), where the agent can write: an approved run will not execute it. Install \(profile.tool) outside the workspace (pipx, /usr/local)"
            }
        }
        return nil
    }

    /// In an execution sandbox: the real binary only.
    func addBinary(to layout: inout SandboxLayout) {
        layout.addReadOnlyBind(source: binary, target: realPath, directory: false)
        if let runtime { layout.addReadOnlyBind(source: runtime, target: runtime, directory: true) }
    }
}
