import AirlockCore
import AirlockPolicy
import Glibc

/// Finds and reads profiles: a path (contains `/` or ends in `.yaml`) is read as is; a name is
/// looked up (as NAME.yaml, then agents/NAME.yaml) in, first to last: `$AIRLOCK_PROFILE_PATH` (colon-separated), the user's
/// `~/.config/airlock/profiles`, `/etc/airlock/profiles`, `<prefix>/share/airlock/profiles`
/// next to the binary, and the `profiles/` directory of the source checkout the binary was
/// built in. `extends:` is resolved the same way.
public struct ProfileLibrary: Sendable {
    public var searchPath: [String]

    public init(environment: [String: String], home: String) {
        var dirs: [String] = []
        if let extra = environment["AIRLOCK_PROFILE_PATH"] {
            dirs += extra.split(separator: ":").map(String.init).filter { $0.hasPrefix("/") }
        }
        dirs.append(home + "/.config/airlock/profiles")
        dirs.append("/etc/airlock/profiles")
        if let exe = HostInspection.realPath("/proc/self/exe") {
            var dir = HostPath.normalize(exe + "/..")
            dirs.append(HostPath.normalize(dir + "/../share/airlock/profiles"))
            for _ in 0..<5 {
                if access(dir + "/profiles/default.yaml", R_OK) == 0 {
                    dirs.append(dir + "/profiles")
                    break
                }
                dir = HostPath.normalize(dir + "/..")
            }
        }
        self.searchPath = dirs
    }

    public func locate(_ reference: String) throws(AirlockError) -> (name: String, path: String) {
        if reference.contains("/") || reference.hasSuffix(".yaml") || reference.hasSuffix(".yml") {
            let base = reference.split(separator: "/").last.map(String.init) ?? reference
            var name = base
            for suffix in [".yaml", ".yml"] where name.hasSuffix(suffix) { name = String(name.dropLast(suffix.count)) }
            guard access(reference, R_OK) == 0 else {
                throw AirlockError("profile file \(reference) cannot be read: \(String(cString: strerror(errno)))", code: .usage)
            }
            return (ProfileName.isValid(name) ? name : "custom", reference)
        }
        guard ProfileName.isValid(reference) else {
            throw AirlockError("'\(reference)' is not a profile name or file", code: .usage)
        }
        for dir in searchPath {
            for candidate in [dir + "/" + reference + ".yaml", dir + "/agents/" + reference + ".yaml"]
            where access(candidate, R_OK) == 0 {
                return (reference, candidate)
            }
        }
        throw AirlockError(
            "no profile named '\(reference)'",
            hint: "looked in: \(searchPath.joined(separator: ", ")); pass a file path, or set AIRLOCK_PROFILE_PATH", code: .usage)
    }

    /// Loads the profiles named on the command line with everything they extend, parents
    /// first, each file once.
    public func loadStack(_ references: [String]) throws(AirlockError) -> ProfileStack {
        var layers: [Profile] = []
        var loaded = Set<String>()
        for reference in references.isEmpty ? ["default"] : references {
            try load(reference, into: &layers, loaded: &loaded, chain: [])
        }
        return ProfileStack(layers)
    }

    private func load(_ reference: String, into layers: inout [Profile], loaded: inout Set<String>, chain: [String]) throws(AirlockError) {
        let (name, path) = try locate(reference)
        guard !chain.contains(path) else {
            throw AirlockError("profile \(path) extends itself (through \(chain.joined(separator: " → ")))", code: .usage)
        }
        guard chain.count < 8 else { throw AirlockError("profile \(path): extends: nests too deeply", code: .usage) }
        guard !loaded.contains(path) else { return }
        let profile = try read(path, name: name)
        for parent in profile.extends {
            try load(parent, into: &layers, loaded: &loaded, chain: chain + [path])
        }
        loaded.insert(path)
        layers.append(profile)
    }

    public func read(_ path: String, name: String) throws(AirlockError) -> Profile {
        let text: String
        do {
            text = try readTextFile(path, limit: ProfileParser.maximumSize + 1)
        } catch {
            throw AirlockError("profile \(path) cannot be read: \(error)", code: .usage)
        }
        do {
            return try ProfileParser.parse(text, name: name, source: path)
        } catch {
            throw AirlockError(error.description, code: .usage)
        }
    }
}

