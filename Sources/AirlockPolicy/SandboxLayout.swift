import AirlockCore

/// What the launcher found on the host, gathered by I/O code and handed to the pure layout.
public struct HostFacts: Sendable {
    public enum Entry: Sendable, Equatable {
        case directory
        case symlink(String)
    }

    public var uid: UInt32
    public var gid: UInt32
    public var home: String
    /// Homes of every account on the host (from the user database), for masking credentials
    /// when a mounted tree contains other homes.
    public var userHomes: [String] = []
    /// Absolute, symlinks resolved.
    public var workspace: String
    /// The launcher's working directory, symlinks resolved.
    public var cwd: String
    /// Absolute, symlinks resolved.
    public var stateDir: String
    /// The host directory mounted as the agent's persistent home.
    public var agentHome: String
    /// Execution sandboxes (docs/commands.md): the proposal's snapshot is mounted at the
    /// workspace's path instead of the workspace, read-only unless a step may write it, and
    /// the home is a fresh empty tmpfs, never a persistent home the agent could have written.
    public var workspaceSource: String?
    public var workspaceReadOnly = false
    public var freshHome = false
    /// Whether the host has /etc/profile (login shells source it; Airlock wraps it).
    public var hasEtcProfile = false
    public var environment: [String: String]
    /// Which top-level system paths exist and how ("/bin" → symlink "usr/bin").
    public var systemEntries: [String: Entry] = [:]
    /// Realpaths of the profile's paths and of credential paths, keyed by the lexical path.
    /// A profile path missing here does not exist on the host.
    public var resolved: [String: String] = [:]
    /// Credential paths that exist on the host (only those need masking).
    public var existing: Set<String> = []
    /// What the broker's credential loaders read and run for this environment (invariant 9):
    /// their files are masked wherever a mounted tree holds them.
    public var credentialSources = CredentialSources()
    /// Host secrets (`CredentialRules.etcSecrets`, ssh host keys) the agent's identity could
    /// read: these get masked. Unreadable ones need no mount (each mask costs two).
    public var readableSecrets: [String] = []
    /// Hard limits the launcher holds (nil = unlimited); a non-root launcher cannot exceed them.
    public var hardLimits: [ResourceLimit: UInt64?] = [:]
    public var shell: String = "/bin/sh"
    public var sessionID: String

    public var isRoot: Bool { uid == 0 }

    public init(
        uid: UInt32, gid: UInt32, home: String, workspace: String, cwd: String, stateDir: String,
        agentHome: String, environment: [String: String], sessionID: String
    ) {
        self.uid = uid
        self.gid = gid
        self.home = home
        self.workspace = workspace
        self.cwd = cwd
        self.stateDir = stateDir
        self.agentHome = agentHome
        self.environment = environment
        self.sessionID = sessionID
    }
}

/// One step of building the sandbox's root, in order. Targets are paths inside the sandbox.
public enum MountStep: Sendable, Equatable {
    public enum Role: Sendable, Equatable { case system, device, home, workspace, profile }

    case bind(source: String, target: String, writable: Bool, directory: Bool, role: Role)
    case tmpfs(target: String, options: String, noExec: Bool)
    case proc(target: String)
    case devpts(target: String)
    case symlink(target: String, pointsTo: String)
    case file(target: String, contents: String, mode: Int)
    /// Hide whatever is at target: a directory under an empty read-only tmpfs, a file under
    /// `cover` (an empty file unless given). Nothing happens when target does not exist.
    case mask(target: String, cover: String)
    case remountReadOnly(target: String)

    public var target: String {
        switch self {
        case .bind(_, let target, _, _, _), .tmpfs(let target, _, _), .proc(let target),
            .devpts(let target), .symlink(let target, _), .file(let target, _, _),
            .mask(let target, _), .remountReadOnly(let target):
            return target
        }
    }
}

/// The complete description of one sandbox: computed from profiles and host facts without
/// touching the host, so every rule here is unit-tested.
public struct SandboxLayout: Sendable {
    public static let agentUID: UInt32 = 1000
    public static let agentHomePath = "/home/agent"
    public static let runDirectory = "/run/airlock"
    public static let emptyFile = "/run/airlock/empty"
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public var mounts: [MountStep] = []
    /// Where the agent may write (Landlock rules), besides devices.
    public var writable: [String] = []
    public var cwd: String = "/"
    public var environment: [(name: String, value: String)] = []
    /// More variables, as `NAME=value`, whose names are Airlock's own and unique (the
    /// per-service AWS endpoints: hundreds, kept out of the sorted list for speed).
    public var extraEnvironment: [String] = []
    public var withheldEnvironment: [String] = []
    public var rlimits: [(limit: ResourceLimit, value: LimitValue)] = []
    public var warnings: [String] = []
    public var hostname = "airlock"

    /// Paths that are only ever the sandbox's own.
    static let reservedTargets = ["/proc", "/dev", "/sys", "/run/airlock", agentHomePath]
    static let systemPaths = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc", "/opt"]
    static let devices = ["null", "zero", "full", "random", "urandom", "tty"]

    public static func make(profiles: ProfileStack, host: HostFacts) throws(AirlockError) -> SandboxLayout {
        var layout = SandboxLayout()
        let workspace = HostPath.normalize(host.workspace)
        var trees: [(path: String, writable: Bool, role: MountStep.Role)] = [(workspace, !host.workspaceReadOnly, .workspace)]
        var treeNames = ["workspace"]
        var aliases: [(name: String, real: String)] = []
        for (paths, writable, optional) in [(profiles.readOnly, false, false), (profiles.readOnlyIfPresent, false, true),
                                            (profiles.readWrite, true, false)] {
            for entry in paths {
                let lexical = HostPath.normalize(HostPath.expandingTilde(entry, home: host.home))
                guard let real = host.resolved[lexical] else {
                    if !optional { layout.warnings.append("profile path \(entry) does not exist on this host; skipped") }
                    continue
                }
                if real == workspace { continue }
                trees.append((real, writable, .profile))
                treeNames.append("profile path \(entry)")
                if real != lexical { aliases.append((lexical, real)) }
            }
        }
        let credentials = credentialPaths(host: host, trees: trees.map(\.path))
        for (tree, name) in zip(trees, treeNames) {
            try checkTree(tree.path, what: name, credentials: credentials, host: host)
        }

        layout.mounts = systemMounts(host: host) + generatedFiles(host: host) + deviceMounts()
        layout.mounts += [
            .proc(target: "/proc"),
            .tmpfs(target: "/tmp", options: "mode=1777,size=\(profiles.tmpSize)", noExec: false),
            .tmpfs(target: "/var/tmp", options: "mode=1777,size=\(profiles.tmpSize)", noExec: false),
            host.freshHome
                ? .tmpfs(target: agentHomePath, options: "mode=0700,size=\(profiles.tmpSize)", noExec: false)
                : .bind(source: host.agentHome, target: agentHomePath, writable: true, directory: true, role: .home),
        ]
        // Parents before children: a tree inside another is mounted on top of it.
        for tree in trees.sorted(by: { HostPath.depth($0.path) < HostPath.depth($1.path) }) {
            let source = tree.role == .workspace ? host.workspaceSource ?? tree.path : tree.path
            layout.mounts.append(
                .bind(source: source, target: tree.path, writable: tree.writable, directory: true, role: tree.role))
        }
        // A profile path that is a symlink on the host (~/.local/bin/claude → …/versions/1.2)
        // is mounted at its real path and keeps its name as a symlink, where that name is
        // not inside something already mounted.
        let mounted = trees.map(\.path) + systemPaths + reservedTargets + ["/tmp", "/var/tmp"]
        for alias in aliases where !mounted.contains(where: { HostPath.isWithin(alias.name, $0) }) {
            layout.mounts.append(.symlink(target: alias.name, pointsTo: alias.real))
        }
        layout.mounts += host.readableSecrets.map { .mask(target: $0, cover: emptyFile) }
        var masked = Set<String>()
        for tree in trees {
            for credential in credentials
            where credential != tree.path && HostPath.isWithin(credential, tree.path) && host.existing.contains(credential) {
                guard masked.insert(credential).inserted else { continue }
                layout.mounts.append(.mask(target: credential, cover: emptyFile))
                layout.warnings.append("\(tree.path) contains \(credential); it is masked inside the sandbox")
            }
        }

        layout.warnings += helperWarnings(host.credentialSources.helpers, trees: trees.map(\.path), home: host.home, cwd: host.cwd)

        layout.writable = ["/tmp", "/var/tmp", "/dev/shm", agentHomePath] + trees.filter(\.writable).map(\.path)
        layout.cwd = HostPath.isWithin(host.cwd, workspace) ? host.cwd : workspace
        let env = EnvironmentPolicy.build(
            host: host.environment, pass: profiles.pass, set: profiles.set,
            airlock: airlockEnvironment(profiles: profiles, host: host, workspace: workspace))
        layout.environment = env.variables
        layout.withheldEnvironment = env.withheld
        for name in env.withheld {
            layout.warnings.append("\(name) is not passed: it looks like a credential or an API key not named exactly")
        }
        layout.rlimits = clampedLimits(
            profiles.rlimits, explicit: Set(profiles.layers.flatMap(\.rlimits.keys)), host: host,
            warnings: &layout.warnings)
        return layout
    }

    /// Every credential location this launch must keep out of `trees` (the host paths it
    /// mounts): the launcher's own credential paths, those of any other account whose home
    /// is in or around a tree, files named by credential variables, and Airlock's state
    /// directory; plus the real paths symlinks among them lead to.
    public static func credentialPaths(host: HostFacts, trees: [String]) -> [String] {
        var paths = CredentialRules.paths(home: host.home)
        for home in host.userHomes where home != "/" && home != host.home {
            let relevant = trees.contains { HostPath.isWithin(home, $0) || HostPath.isWithin($0, home) }
            if relevant { paths += CredentialRules.paths(home: HostPath.normalize(home)) }
        }
        // Every file a credential loader reads, through whatever variable pointed to it.
        paths += host.credentialSources.files.map(\.path)
        paths.append(HostPath.normalize(host.stateDir))
        paths += paths.compactMap { host.resolved[$0] }
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }

    /// A credential helper (`credential_process`, an exec plugin, a git helper) may read files
    /// nobody can list, so they cannot be masked: say so when the helper or the file that
    /// names it lies in a tree the sandbox sees (the file itself is masked).
    static func helperWarnings(_ helpers: [CredentialSources.Helper], trees: [String], home: String, cwd: String) -> [String] {
        var warnings: [String] = []
        for helper in helpers {
            let program = ShellWords.split(helper.command.hasPrefix("!") ? String(helper.command.dropFirst()) : helper.command).first ?? ""
            let candidates = [helper.configuredIn] + (program.hasPrefix("/") || program.hasPrefix("~/") || program.hasPrefix(".")
                ? [CredentialSources.absolute(program, home: home, cwd: cwd)] : [])
            guard let seen = candidates.first(where: { path in trees.contains { HostPath.isWithin(path, $0) } }),
                  let tree = trees.first(where: { HostPath.isWithin(seen, $0) }) else { continue }
            warnings.append("\(helper.loader) runs `\(helper.command.prefix(120))` (named in \(helper.configuredIn)); \(seen) lies in \(tree), "
                + "which the sandbox sees: the files such a helper reads cannot be listed, so they are not masked. "
                + "Keep credential helpers and their files outside the workspace and the profile's paths")
        }
        return warnings
    }

    /// A mounted tree must not be `/`, a credential path or inside one, the state directory
    /// or a path reserved for the sandbox itself.
    static func checkTree(_ path: String, what: String, credentials: [String], host: HostFacts) throws(AirlockError) {
        if path == "/" {
            throw AirlockError(
                "refusing to mount / as \(what): it would expose the whole host",
                hint: "choose the project directory, e.g. --workspace ~/src/project")
        }
        if let credential = credentials.first(where: { HostPath.isWithin(path, $0) }) {
            throw AirlockError(
                "refusing to mount \(path) as \(what): it is (inside) \(credential), which holds credentials",
                hint: "credential paths never enter a sandbox; the broker uses them on the agent's behalf")
        }
        if let reserved = reservedTargets.first(where: { HostPath.isWithin(path, $0) }) {
            throw AirlockError(
                "refusing to mount \(path) as \(what): \(reserved) belongs to the sandbox itself",
                hint: "pick a path outside \(reservedTargets.joined(separator: ", "))")
        }
    }

    static func systemMounts(host: HostFacts) -> [MountStep] {
        systemPaths.compactMap { path in
            switch host.systemEntries[path] {
            case .directory?:
                return .bind(source: path, target: path, writable: false, directory: true, role: .system)
            case .symlink(let destination)?:
                return .symlink(target: path, pointsTo: destination)
            case nil:
                return nil
            }
        }
    }

    /// Files generated for the sandbox: its own user database (the agent is `agent`, 1000),
    /// hostname and hosts, and the empty file masks are made of.
    static func generatedFiles(host: HostFacts) -> [MountStep] {
        let passwd = """
            root:x:0:0:root:/root:/usr/sbin/nologin
            agent:x:1000:1000:Airlock agent:\(agentHomePath):\(host.shell)
            nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

            """
        let group = "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n"
        // (The host's /etc/hosts and /etc/hostname stay: the uts namespace names the host
        // `airlock` and localhost resolves either way.)
        let generated: [(String, String)] = [("passwd", passwd), ("group", group)]
        var steps: [MountStep] = [.file(target: emptyFile, contents: "", mode: 0o444)]
        for (name, contents) in generated {
            steps.append(.file(target: "\(runDirectory)/etc/\(name)", contents: contents, mode: 0o444))
            steps.append(.mask(target: "/etc/\(name)", cover: "\(runDirectory)/etc/\(name)"))
        }
        return steps
    }

    static func deviceMounts() -> [MountStep] {
        var steps: [MountStep] = [.tmpfs(target: "/dev", options: "mode=0755,size=64k", noExec: true)]
        steps += devices.map {
            .bind(source: "/dev/\($0)", target: "/dev/\($0)", writable: true, directory: false, role: .device)
        }
        steps += [
            .devpts(target: "/dev/pts"),
            .symlink(target: "/dev/ptmx", pointsTo: "pts/ptmx"),
            .symlink(target: "/dev/fd", pointsTo: "/proc/self/fd"),
            .symlink(target: "/dev/stdin", pointsTo: "/proc/self/fd/0"),
            .symlink(target: "/dev/stdout", pointsTo: "/proc/self/fd/1"),
            .symlink(target: "/dev/stderr", pointsTo: "/proc/self/fd/2"),
            .tmpfs(target: "/dev/shm", options: "mode=1777", noExec: false),
            .remountReadOnly(target: "/dev"),
        ]
        return steps
    }

    static func airlockEnvironment(profiles: ProfileStack, host: HostFacts, workspace: String) -> [String: String] {
        let path = profiles.set["PATH"] ?? defaultPath
        let extra = profiles.path.map { HostPath.normalize(HostPath.expandingTilde($0, home: host.home)) + ":" }.joined()
        return [
            "HOME": agentHomePath, "USER": "agent", "LOGNAME": "agent", "SHELL": host.shell,
            "PATH": "\(runDirectory)/bin:\(extra)\(path)", "TMPDIR": "/tmp",
            "AIRLOCK_SESSION": host.sessionID, "AIRLOCK_WORKSPACE": workspace,
        ]
    }

    /// Limits above the launcher's hard limits are lowered to them, with a warning: the child
    /// has capabilities only in its own user namespace, so it cannot raise a hard limit. The
    /// result is sorted by name. Only limits a profile set explicitly are worth a warning.
    static func clampedLimits(
        _ limits: [ResourceLimit: LimitValue], explicit: Set<ResourceLimit>, host: HostFacts,
        warnings: inout [String]
    ) -> [(limit: ResourceLimit, value: LimitValue)] {
        limits.keys.sorted().map { limit in
            guard let wanted = limits[limit] else { return (limit, .unlimited) }
            guard let hard = host.hardLimits[limit], let hardValue = hard else {
                return (limit, wanted)
            }
            let ceiling = LimitValue.limited(hardValue)
            if wanted.isLooser(than: ceiling) {
                if explicit.contains(limit) {
                    warnings.append("rlimit \(limit.rawValue) lowered to \(ceiling.formatted(for: limit)), the launcher's hard limit")
                }
                return (limit, ceiling)
            }
            return (limit, wanted)
        }
    }
}

extension SandboxLayout {
    /// A generated file inside the sandbox (under /run/airlock, read-only once set up).
    public mutating func addFile(_ target: String, contents: String, mode: Int = 0o444) {
        mounts.append(.file(target: target, contents: contents, mode: mode))
    }

    /// A host directory mounted read-write at `target` (writes allowed there by Landlock too).
    public mutating func addWritableBind(source: String, target: String) {
        mounts.append(.bind(source: source, target: target, writable: true, directory: true, role: .profile))
        writable.append(target)
    }

    /// Whether a host path is inside the system directories every sandbox shows.
    public static func isSystemPath(_ path: String) -> Bool {
        systemPaths.contains { HostPath.isWithin(path, $0) }
    }

    /// A host file or directory mounted read-only at `target`.
    public mutating func addReadOnlyBind(source: String, target: String, directory: Bool) {
        mounts.append(.bind(source: source, target: target, writable: false, directory: directory, role: .system))
    }

    /// Login shells (`bash -l`, `sh -l`, Codex's `bash -lc`) source /etc/profile, which on
    /// Debian and Ubuntu resets PATH: `/run/airlock/bin` (the shims, `airlock wait`) and a
    /// profile's `environment.path` would be gone. Inside the sandbox /etc/profile is Airlock's
    /// own (the host's file is not touched): it sources the host's, then puts Airlock's PATH
    /// first again and sets Airlock's variables again (a profile.d script may set a proxy).
    /// Call last, once every variable is set.
    public mutating func addLoginShellProfile(hostHasEtcProfile: Bool) {
        let host = Self.runDirectory + "/etc/profile.host"
        var lines = ["# Generated by Airlock for this sandbox (docs/sandbox.md): the host's /etc/profile, then",
                     "# Airlock's PATH and variables again, so login shells keep the shims and `airlock wait`."]
        if hostHasEtcProfile {
            mounts.append(.bind(source: "/etc/profile", target: host, writable: false, directory: false, role: .system))
            lines.append("if [ -r \(host) ]; then . \(host); fi")
        }
        for (name, value) in environment where !EnvironmentPolicy.alwaysPassed.contains(where: { $0.matches(name) }) {
            if name == "PATH" {
                lines.append("PATH=\(Self.shellQuoted(value))${PATH:+:$PATH}; export PATH")
            } else {
                lines.append("export \(name)=\(Self.shellQuoted(value))")
            }
        }
        let target = Self.runDirectory + "/etc/profile"
        mounts.append(.file(target: target, contents: lines.joined(separator: "\n") + "\n", mode: 0o444))
        mounts.append(.mask(target: "/etc/profile", cover: target))
    }

    /// `'…'` with embedded quotes closed and escaped, for sh.
    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Variables Airlock itself sets (they win over anything passed).
    public mutating func setEnvironment(_ variables: [String: String]) {
        var merged = Dictionary(environment.map { ($0.name, $0.value) }, uniquingKeysWith: { _, new in new })
        merged.merge(variables) { _, new in new }
        environment = merged.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
    }
}
