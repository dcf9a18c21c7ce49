import AirlockCore
import AirlockPolicy
import AirlockSandbox
import Glibc

/// What the human's shell would run for a tool, resolved outside the sandbox at session start
/// (docs/tools.md): the first match in the human's PATH (a profile's `binaries` list only when
/// PATH has none), followed through symlinks and through version managers' shims and wrappers
/// to the real program, with what that program needs to run (an interpreter installation, a
/// venv, a version's directory) and never more.
public struct ToolResolution: Sendable, Equatable {
    /// The file the search found: a shim, a wrapper, a symlink, or the program itself.
    public var found: String
    /// The real program, symlinks resolved.
    public var binary: String
    /// How it was reached, for people: "pyenv 3.11.7", "tfenv 1.5.7", "asdf terraform 1.5.7", "pipx".
    public var via: String?
    /// Directories the program needs, mounted read-only at their own paths wherever it runs.
    public var runtime: [String]
}

/// A tool found that cannot run inside safely: which, why and what to do.
public struct ToolResolutionFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var tool: String
    public var found: String
    public var why: String
    public var fix: String
    public var description: String { "\(tool) (\(found)): \(why); \(fix)" }
}

public struct ToolResolver: Sendable {
    public let environment: [String: String]
    public let home: String
    /// Where version files (.python-version, .terraform-version, .tool-versions) are looked
    /// for first, then its parents: the workspace, as the human's shell in it would.
    public let directory: String

    public init(environment: [String: String], home: String, directory: String) {
        self.environment = environment
        self.home = HostPath.normalize(home)
        self.directory = HostPath.normalize(directory)
    }

    public enum Outcome: Sendable, Equatable {
        case resolved(ToolResolution)
        case failed(ToolResolutionFailure)
        case notInstalled
    }

    /// PATH first, in order (Airlock's own directories and relative entries skipped), then the
    /// profile's `binaries` (its `$PATH` entry is the PATH search itself).
    public func resolve(_ tool: String, fallbacks: [String] = []) -> Outcome {
        var candidates = pathEntries().map { $0 + "/" + tool }
        candidates += fallbacks.filter { $0 != "$PATH" }.map { HostPath.expandingTilde($0, home: home) }
        for candidate in candidates where isProgram(candidate) {
            let outcome = resolve(tool, found: candidate, depth: 0)
            if outcome != .notInstalled { return outcome }
        }
        return .notInstalled
    }

    func pathEntries(skipping skipped: (String) -> Bool = { _ in false }) -> [String] {
        var seen = Set<String>()
        return (environment["PATH"] ?? "").split(separator: ":").map(String.init)
            .filter { $0.hasPrefix("/") && !HostPath.isWithin(HostPath.normalize($0), SandboxLayout.runDirectory) && !skipped($0) && seen.insert($0).inserted }
    }

    /// An executable regular file. One `stat` (symlinks followed): this runs for every PATH
    /// entry of every tool at each session start, and the resolution is on the launch's
    /// critical path (docs/tools.md). The execute bits are read as the kernel would for this
    /// process's ids; `access(X_OK)` is asked only when the bits alone do not settle it.
    func isProgram(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return false }
        let mode = info.st_mode
        let uid = geteuid()
        if uid == 0 { return mode & 0o111 != 0 }
        if info.st_uid == uid { return mode & 0o100 != 0 }
        if mode & 0o011 == 0 { return false }
        return access(path, X_OK) == 0
    }
    func fail(_ tool: String, _ found: String, _ why: String, _ fix: String) -> Outcome {
        .failed(ToolResolutionFailure(tool: tool, found: found, why: why, fix: fix))
    }

    /// `found` is an executable file; what runs when the shell runs it.
    func resolve(_ tool: String, found: String, depth: Int) -> Outcome {
        guard depth < 4 else { return fail(tool, found, "its shims lead to more shims", "put the real program first in PATH") }
        guard let real = HostInspection.realPath(found) else { return .notInstalled }
        // Airlock itself (the shim of an enclosing session) is never the tool.
        if real.hasSuffix("/airlock") { return .notInstalled }
        let head = (try? readFile(real, limit: 4096)) ?? []
        if head.starts(with: [0x23, 0x21]) {
            let text = String(decoding: head, as: UTF8.self)
            if let manager = VersionManagerShim.recognize(text, path: found, realPath: real, home: home, environment: environment) {
                return resolveShim(manager, tool: tool, found: found, depth: depth)
            }
            return script(tool, found: found, real: real, text: text, depth: depth)
        }
        if real.hasSuffix("/mise") || found.contains("/mise/shims/") {
            return fail(tool, found, "it is a mise shim, whose version mise chooses at every run from files the agent can write",
                        "start airlock from a shell with `eval \"$(mise activate bash)\"` (PATH entries instead of shims), or put the real \(tool) first in PATH")
        }
        return program(tool, found: found, real: real, via: found.contains("/pipx/") || real.contains("/pipx/venvs/") ? "pipx" : nil)
    }

    /// A native program: itself, plus the store it lives in when that is Nix's or Homebrew's.
    func program(_ tool: String, found: String, real: String, via: String?, runtime base: [String] = [], isScript: Bool = false) -> Outcome {
        var runtime = base
        for store in Self.stores where HostPath.isWithin(real, store) && !runtime.contains(store) { runtime.append(store) }
        if !SandboxLayout.isSystemPath(real), let version = Self.versionDirectory(of: real), !runtime.contains(where: { HostPath.isWithin(version, $0) }) {
            runtime.append(version)
        }
        // A system program's loader is the system's: only others are read (start-up time).
        if !isScript, !SandboxLayout.isSystemPath(real), let loader = ELFInterpreter.of(real), !SandboxLayout.isSystemPath(loader),
           !runtime.contains(where: { HostPath.isWithin(loader, $0) }) {
            return fail(tool, found, "\(real) is linked against \(loader), outside the system directories the sandbox shows",
                        "install \(tool) from your distribution or its vendor's static build")
        }
        return checked(tool, ToolResolution(found: found, binary: real, via: via, runtime: runtime))
    }

    /// The version directory a program lies in, when its path is a version manager's layout:
    /// `…/versions/V/PROGRAM` or `…/versions/V/bin/PROGRAM` (pyenv, tfenv, nodenv),
    /// `…/installs/PLUGIN/V/bin/PROGRAM` (asdf, mise). The same directory whether the program
    /// was reached through the manager's shim at session start or named by a pin later.
    static func versionDirectory(of program: String) -> String? {
        var directory = HostPath.parent(of: program)
        for _ in 0..<3 where HostPath.depth(directory) >= 3 {
            let parent = HostPath.parent(of: directory)
            if parent.hasSuffix("/versions") || HostPath.parent(of: parent).hasSuffix("/installs") { return directory }
            directory = parent
        }
        return nil
    }

    /// Package stores whose programs need the store itself: read-only, content-addressed, no
    /// person's files.
    static let stores = ["/nix/store", "/home/linuxbrew/.linuxbrew"]

    /// A script: its interpreter's installation (a venv and the Python it was made from, a
    /// pyenv version) is what it needs.
    func script(_ tool: String, found: String, real: String, text: String, depth: Int) -> Outcome {
        let firstLine = text.utf8.dropFirst(2).prefix { $0 != 0x0A }
        let words = firstLine.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }).map { String(decoding: $0, as: UTF8.self) }
        guard var interpreter = words.first, interpreter.hasPrefix("/") else {
            return fail(tool, found, "its first line names no interpreter by absolute path", "reinstall \(tool) (pip, pipx and npm write absolute interpreters)")
        }
        let via = found.contains("/pipx/") || real.contains("/pipx/venvs/") ? "pipx" : nil
        if interpreter == "/usr/bin/env" || interpreter == "/bin/env" {
            // Inside the sandbox `env` searches the sandbox's PATH, which is not the human's:
            // only a system interpreter is found the same way there.
            guard let name = words.dropFirst().first(where: { !$0.hasPrefix("-") }) else {
                return fail(tool, found, "its first line runs env without a program", "reinstall \(tool)")
            }
            let hit = pathEntries().map { $0 + "/" + name }.first(where: isProgram)
            guard let hit, let resolved = HostInspection.realPath(hit), SandboxLayout.isSystemPath(resolved),
                  SandboxLayout.isSystemPath(hit) || hit.hasPrefix("/usr/local/") else {
                return fail(tool, found, "it starts with `#!/usr/bin/env \(name)`, and your PATH's \(name) is not the system's, which is what env finds inside the sandbox",
                            "install \(tool) with an absolute interpreter (pipx install, or pip into a venv)")
            }
            interpreter = resolved
        }
        var runtime: [String] = []
        if !SandboxLayout.isSystemPath(interpreter) || !(HostInspection.realPath(interpreter).map(SandboxLayout.isSystemPath) ?? false) {
            switch installation(of: interpreter) {
            case .success(let directories): runtime = directories
            case .failure(let why): return fail(tool, found, why.text, "install \(tool) with pipx or into a Python installed under /usr or /opt")
            }
        }
        return program(tool, found: found, real: real, via: via, runtime: runtime, isScript: true)
    }

    /// `/x/venv/bin/python3` → the venv, and the installation its python links to when that
    /// is not a system one; `/x/versions/3.11.7/bin/python3.11` → that installation.
    func installation(of interpreter: String) -> Result<[String], Why> {
        var directories: [String] = []
        let bin = HostPath.parent(of: HostPath.normalize(interpreter))
        guard bin.hasSuffix("/bin") else { return .failure(Why("its interpreter \(interpreter) is not in an installation's bin directory")) }
        let prefix = HostPath.parent(of: bin)
        if access(prefix + "/pyvenv.cfg", R_OK) == 0 {
            directories.append(prefix)
        }
        guard let real = HostInspection.realPath(interpreter) else { return .failure(Why("its interpreter \(interpreter) does not exist")) }
        if !SandboxLayout.isSystemPath(real) {
            let realBin = HostPath.parent(of: real)
            let base = HostPath.parent(of: realBin)
            guard realBin.hasSuffix("/bin"), access(base + "/lib", X_OK) == 0 else {
                return .failure(Why("its interpreter \(real) is not inside an installation (bin/ and lib/)"))
            }
            if !directories.contains(base) { directories.append(base) }
        }
        return .success(directories)
    }

    /// Every runtime directory is a tool's own tree: not /, not the home or a directory
    /// holding it, not a credential path or inside one, and holding none.
    func checked(_ tool: String, _ resolution: ToolResolution) -> Outcome {
        let credentials = CredentialRules.paths(home: home)
        var resolution = resolution
        // Checked and mounted by its real path: a link in the path (`h -> ../../home`) must
        // not carry the mount somewhere the check did not look.
        resolution.runtime = resolution.runtime.map { HostInspection.realPath($0) ?? $0 }
        for directory in resolution.runtime {
            if HostPath.depth(directory) < 2 || HostPath.isWithin(home, directory) {
                return fail(tool, resolution.found, "it needs \(directory), which holds your whole home",
                            "install \(tool) (or its interpreter) in a directory of its own")
            }
            if let credential = credentials.first(where: { HostPath.isWithin(directory, $0) || HostPath.isWithin($0, directory) }) {
                return fail(tool, resolution.found, "it needs \(directory), and \(credential) holds credentials",
                            "install \(tool) outside your credential directories")
            }
        }
        return .resolved(resolution)
    }

    func resolveShim(_ shim: VersionManagerShim, tool: String, found: String, depth: Int) -> Outcome {
        switch shim.select(tool: tool, resolver: self) {
        case .failure(let failure):
            return fail(tool, found, failure.why, failure.fix)
        case .success(let selection):
            switch selection {
            case .system:
                // The manager defers to the system's: the next match in PATH past its shims.
                let next = pathEntries(skipping: { HostPath.normalize($0) == shim.shimDirectory }).map { $0 + "/" + tool }
                    .first { isProgram($0) && shimAt($0) == nil }
                guard let next else {
                    return fail(tool, found, "\(shim.name) selects the system's \(tool), and none is in PATH past its shims", "install \(tool) or select a version")
                }
                return resolve(tool, found: next, depth: depth + 1)
            case .program(let path, let version, let versionDirectory):
                guard isProgram(path) else {
                    return fail(tool, found, "\(shim.name) selects \(version), which has no \(tool) (\(path))", shim.installHint(tool: tool, version: version))
                }
                let outcome = resolve(tool, found: path, depth: depth + 1)
                guard case .resolved(var resolution) = outcome else { return outcome }
                resolution.found = found
                resolution.via = "\(shim.name) \(version)"
                if let versionDirectory, !resolution.runtime.contains(where: { HostPath.isWithin(versionDirectory, $0) }) {
                    resolution.runtime.append(versionDirectory)
                }
                return checked(tool, resolution)
            }
        }
    }

    /// The version manager whose shim or wrapper `path` is, if any.
    func shimAt(_ path: String) -> VersionManagerShim? {
        guard let real = HostInspection.realPath(path), let head = try? readFile(real, limit: 4096), head.starts(with: [0x23, 0x21]) else { return nil }
        return VersionManagerShim.recognize(String(decoding: head, as: UTF8.self), path: path, realPath: real, home: home, environment: environment)
    }

    /// Version files named `name` in the directory or its parents, then (when `thenHome`) in
    /// the home or its parents, nearest first, as the managers search: regular files only.
    func versionFiles(_ name: String, thenHome: Bool) -> [String] {
        var found: [String] = []
        for start in thenHome ? [directory, home] : [directory] {
            var dir = start
            while true {
                let path = (dir == "/" ? "" : dir) + "/" + name
                var info = stat()
                if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, !found.contains(path) { found.append(path) }
                if dir == "/" { break }
                dir = HostPath.parent(of: dir)
            }
        }
        return found
    }

    func versionFile(_ name: String, thenHome: Bool) -> String? { versionFiles(name, thenHome: thenHome).first }
}

struct Why: Error {
    let text: String
    init(_ text: String) { self.text = text }
}

/// The dynamic loader an ELF program names (PT_INTERP), if it is one and names any.
enum ELFInterpreter {
    static func of(_ path: String) -> String? {
        // The program headers follow the ELF header, PT_INTERP's string right after them.
        guard let bytes = try? readFile(path, limit: 4096), bytes.count > 64, bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46]),
              bytes[4] == 2, bytes[5] == 1 else { return nil }   // 64-bit little-endian: what this project builds for
        func int(_ at: Int, _ size: Int) -> Int? {
            guard at >= 0, at + size <= bytes.count else { return nil }
            var value = 0
            for index in (0..<size).reversed() { value = value << 8 | Int(bytes[at + index]) }
            return value
        }
        guard let table = int(0x20, 8), let entrySize = int(0x36, 2), let count = int(0x38, 2), entrySize >= 56 else { return nil }
        for index in 0..<min(count, 64) {
            let entry = table + index * entrySize
            guard let type = int(entry, 4) else { return nil }
            guard type == 3, let offset = int(entry + 8, 8), let size = int(entry + 0x20, 8), size > 1, size < 4096,
                  offset + size <= bytes.count else { continue }
            return String(decoding: bytes[offset..<(offset + size - 1)], as: UTF8.self)
        }
        return nil
    }
}
