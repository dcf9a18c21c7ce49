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
    static func load(_ names: [String], library: ProfileLibrary, home: String) throws(AirlockError) -> [InterceptedTool] {
        var tools: [InterceptedTool] = []
        for name in names {
            let (profile, text) = try Self.profile(name, library: library)
            guard let binary = installed(profile, home: home) else { continue }
            tools.append(InterceptedTool(profile: profile, text: text, binary: binary))
        }
        return tools
    }

    static func installed(_ profile: ToolProfile, home: String) -> String? {
        for candidate in profile.binaries {
            let path = HostPath.expandingTilde(candidate, home: home)
            if access(path, X_OK) == 0, let real = HostInspection.realPath(path) { return real }
        }
        return nil
    }

    /// In the agent's sandbox: the real binary at /run/airlock/tools/NAME, the shim (this
    /// binary) at /run/airlock/bin/NAME and over the tool's usual paths that the sandbox shows.
    func addShim(to layout: inout SandboxLayout, airlockBinary: String, home: String) {
        layout.addReadOnlyBind(source: binary, target: realPath, directory: false)
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
    }

    /// In an execution sandbox: the real binary only.
    func addBinary(to layout: inout SandboxLayout) {
        layout.addReadOnlyBind(source: binary, target: realPath, directory: false)
    }
}
