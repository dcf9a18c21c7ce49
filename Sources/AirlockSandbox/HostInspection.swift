import AirlockCore
import AirlockPolicy
import Glibc

/// Reads what the pure layout needs from the host: identity, homes, the workspace, which
/// system paths exist, where symlinks lead. Creates the state directory and agent home.
public enum HostInspection {
    public static func gather(
        profiles: ProfileStack, workspace explicitWorkspace: String?, stateDir explicitState: String?,
        environment: [String: String], createDirectories: Bool = true
    ) throws(AirlockError) -> HostFacts {
        let uid = getuid(), gid = getgid()
        let home = homeDirectory(uid: uid, environment: environment)
        let cwd = realPath(currentDirectoryPath()) ?? "/"
        let requested = explicitWorkspace.map { $0.hasPrefix("/") ? $0 : cwd + "/" + $0 } ?? cwd
        guard let workspace = realPath(requested), isDirectory(workspace) else {
            throw AirlockError(
                "workspace \(requested) is not a directory",
                hint: "pass an existing directory with --workspace DIR (default: the current directory)")
        }
        let stateRequest = StateDirectory.resolve(explicit: explicitState, environment: environment, home: home)
        let statePath = stateRequest.hasPrefix("/") ? stateRequest : cwd + "/" + stateRequest
        if createDirectories { try makeDirectory(statePath, mode: 0o700) }
        let stateDir = realPath(statePath) ?? HostPath.normalize(statePath)
        let agentHome = stateDir + "/homes/" + profiles.homeName
        if createDirectories {
            try makeDirectory(stateDir + "/homes", mode: 0o700)
            try makeDirectory(agentHome, mode: 0o700)
        }

        var facts = HostFacts(
            uid: uid, gid: gid, home: home, workspace: workspace, cwd: cwd, stateDir: stateDir,
            agentHome: agentHome, environment: environment, sessionID: newSessionID())
        facts.userHomes = accountHomes()
        for path in ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc", "/opt"] {
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFLNK {
                if let destination = readLink(path) { facts.systemEntries[path] = .symlink(destination) }
            } else if (st.st_mode & S_IFMT) == S_IFDIR {
                facts.systemEntries[path] = .directory
            }
        }
        facts.credentialSources = CredentialSources.find(environment: environment, home: home, cwd: cwd) { path in
            try? readTextFile(path, limit: 4 << 20)
        }
        var trees = [workspace]
        for entry in profiles.readOnly + profiles.readOnlyIfPresent + profiles.readWrite {
            let lexical = HostPath.normalize(HostPath.expandingTilde(entry, home: home))
            if let real = realPath(lexical) {
                facts.resolved[lexical] = real
                trees.append(real)
            }
        }
        for credential in SandboxLayout.credentialPaths(host: facts, trees: trees) {
            var st = stat()
            guard lstat(credential, &st) == 0 else { continue }
            facts.existing.insert(credential)
            if let real = realPath(credential), real != credential {
                facts.resolved[credential] = real
                facts.existing.insert(real)
            }
        }
        let hostKeys = listDirectory("/etc/ssh")
            .filter { $0.hasPrefix("ssh_host_") && $0.hasSuffix("_key") }
            .map { "/etc/ssh/" + $0 }
        let agentID = uid == 0 ? Launcher.rootAgentID(environment: environment) : uid
        // Files a credential loader reads where the sandbox's system mounts would show them (a
        // gate token or a team gate's own key under /etc or /opt, a kubeconfig's token file
        // there): masked like /etc/shadow. Elsewhere they are masked where a mounted tree holds them.
        var named: [String] = []
        for path in facts.credentialSources.files.map(\.path) {
            if SandboxLayout.isSystemPath(path) { named.append(path) }
            if let real = realPath(path), real != path, SandboxLayout.isSystemPath(real) { named.append(real) }
        }
        facts.readableSecrets = (CredentialRules.etcSecrets + hostKeys + named).filter {
            agentCouldRead($0, launchedAsRoot: uid == 0, agentID: agentID)
        }
        for limit in ResourceLimit.allCases {
            var value = rlimit()
            if getrlimit(__rlimit_resource_t(limit.resource), &value) == 0 {
                facts.hardLimits[limit] = value.rlim_max == rlim_t.max ? .some(nil) : .some(UInt64(value.rlim_max))
            }
        }
        facts.shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh"
        var profile = stat()
        facts.hasEtcProfile = stat("/etc/profile", &profile) == 0 && profile.st_mode & S_IFMT == S_IFREG
        return facts
    }

    /// Whether the agent could open `path` for reading (or list it, for a directory). An
    /// unprivileged launch keeps the user's uid and groups: ask the kernel. A root launch
    /// runs the agent as `agentID` with no supplementary groups: judge by the mode bits.
    static func agentCouldRead(_ path: String, launchedAsRoot: Bool, agentID: UInt32) -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0 else { return false }
        guard launchedAsRoot else { return access(path, R_OK) == 0 }
        if st.st_uid == agentID { return st.st_mode & 0o400 != 0 }
        if st.st_gid == agentID { return st.st_mode & 0o040 != 0 }
        return st.st_mode & 0o004 != 0
    }

    static func homeDirectory(uid: uid_t, environment: [String: String]) -> String {
        if let home = environment["HOME"], home.hasPrefix("/") { return HostPath.normalize(home) }
        return passwdEntries().first { $0.uid == uid }?.home ?? "/"
    }

    /// Local accounts from /etc/passwd, read directly: NSS (getpwent) can load
    /// systemd-userdb and friends, costs milliseconds per launch, and cannot work in a static
    /// executable.
    static func passwdEntries() -> [(uid: uid_t, home: String)] {
        guard let text = try? readTextFile("/etc/passwd", limit: 1 << 20) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, let uid = uid_t(fields[2]) else { return nil }
            return (uid, String(fields[5]))
        }
    }

    /// Home directories of the local accounts.
    static func accountHomes() -> [String] {
        var homes: [String] = []
        for entry in passwdEntries() where entry.home.hasPrefix("/") && entry.home != "/" && !homes.contains(entry.home) {
            homes.append(entry.home)
        }
        return homes
    }

    static func newSessionID() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// mkdir -p; the last component gets `mode`. Existing directories are left as they are.
    public static func makeDirectory(_ path: String, mode: mode_t) throws(AirlockError) {
        var current = ""
        let parts = path.split(separator: "/")
        for (index, part) in parts.enumerated() {
            current += "/" + part
            let last = index == parts.count - 1
            if mkdir(current, last ? mode : 0o755) != 0 && errno != EEXIST {
                throw AirlockError(
                    "cannot create \(current): \(String(cString: strerror(errno)))",
                    hint: "choose another state directory with --state-dir DIR or AIRLOCK_STATE_DIR")
            }
        }
        guard isDirectory(path) else { throw AirlockError("\(path) exists and is not a directory") }
    }
}

extension ResourceLimit {
    /// RLIMIT_* numbers (the same on every Linux architecture Airlock supports).
    var resource: Int32 {
        switch self {
        case .cpu: return 0
        case .fsize: return 1
        case .data: return 2
        case .stack: return 3
        case .core: return 4
        case .nproc: return 6
        case .nofile: return 7
        case .memlock: return 8
        case .addressSpace: return 9
        }
    }
}
