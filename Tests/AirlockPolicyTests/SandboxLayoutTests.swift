import AirlockCore
import Testing

@testable import AirlockPolicy

@Suite struct SandboxLayoutTests {
    func facts(workspace: String = "/home/dev/project", home: String = "/home/dev", uid: UInt32 = 1001,
               environment: [String: String] = [:]) -> HostFacts {
        var facts = HostFacts(
            uid: uid, gid: uid, home: home, workspace: workspace, cwd: workspace,
            stateDir: home + "/.local/state/airlock", agentHome: home + "/.local/state/airlock/homes/default",
            environment: environment, sessionID: "0123456789abcdef")
        facts.systemEntries = ["/usr": .directory, "/etc": .directory, "/bin": .symlink("usr/bin"), "/opt": .directory]
        facts.userHomes = ["/root", "/home/dev", "/home/other"]
        // Pretend every credential path exists (the launcher only masks existing ones).
        for home in ["/root", "/home/dev", "/home/other"] { facts.existing.formUnion(CredentialRules.paths(home: home)) }
        facts.existing.formUnion([facts.stateDir, "/srv/creds/aws", "/srv/k1", "/srv/k2", "/home/dev/dotfiles/aws"])
        // What the credential loaders would read with this environment (no file exists to name more).
        facts.credentialSources = CredentialSources.find(environment: environment, home: home, cwd: workspace) { _ in nil }
        return facts
    }

    func masked(_ layout: SandboxLayout) -> [String] {
        layout.mounts.compactMap {
            if case let .mask(target, cover) = $0, cover == SandboxLayout.emptyFile { return target }
            return nil
        }
    }

    func binds(_ layout: SandboxLayout) -> [(source: String, target: String, writable: Bool)] {
        layout.mounts.compactMap {
            if case let .bind(source, target, writable, _, _) = $0 { return (source, target, writable) }
            return nil
        }
    }

    /// An execution sandbox: the snapshot at the workspace's path, read-only and not
    /// writable for Landlock; a fresh tmpfs home instead of any persistent home.
    @Test func executionSandboxesGetTheSnapshotReadOnlyAndAFreshHome() throws {
        var host = facts()
        host.workspaceSource = "/home/dev/.local/state/airlock/artifacts/k1/snapshot"
        host.workspaceReadOnly = true
        host.freshHome = true
        let layout = try SandboxLayout.make(profiles: ProfileStack([]), host: host)
        let b = binds(layout)
        #expect(b.contains { $0 == ("/home/dev/.local/state/airlock/artifacts/k1/snapshot", "/home/dev/project", false) })
        #expect(!b.contains { $0.source == "/home/dev/project" || $0.target == SandboxLayout.agentHomePath })
        #expect(layout.mounts.contains { if case .tmpfs(SandboxLayout.agentHomePath, _, _) = $0 { return true } else { return false } })
        #expect(!layout.writable.contains("/home/dev/project"))
        #expect(layout.writable.contains(SandboxLayout.agentHomePath))
    }

    @Test func defaultLayout() throws {
        let layout = try SandboxLayout.make(profiles: ProfileStack([]), host: facts())
        let b = binds(layout)
        #expect(b.contains { $0 == ("/usr", "/usr", false) })
        #expect(b.contains { $0 == ("/etc", "/etc", false) })
        #expect(b.contains { $0 == ("/home/dev/project", "/home/dev/project", true) })
        #expect(b.contains { $0 == ("/home/dev/.local/state/airlock/homes/default", "/home/agent", true) })
        #expect(layout.mounts.contains(.symlink(target: "/bin", pointsTo: "usr/bin")))
        #expect(layout.mounts.contains(.proc(target: "/proc")))
        #expect(layout.mounts.contains(.devpts(target: "/dev/pts")))
        #expect(layout.mounts.contains(.remountReadOnly(target: "/dev")))
        // Nothing writable but the workspace, home and temporary directories.
        #expect(Set(b.filter(\.writable).map(\.target)).subtracting(["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"])
                == ["/home/dev/project", "/home/agent"])
        #expect(layout.writable == ["/tmp", "/var/tmp", "/dev/shm", "/home/agent", "/home/dev/project"])
        #expect(layout.cwd == "/home/dev/project")
        #expect(masked(layout).isEmpty)
        #expect(layout.warnings.isEmpty)
        // The agent's own user database covers the host's.
        #expect(layout.mounts.contains(.mask(target: "/etc/passwd", cover: "/run/airlock/etc/passwd")))
    }

    @Test func workspaceThatIsHomeHasCredentialsMasked() throws {
        let layout = try SandboxLayout.make(profiles: ProfileStack([]), host: facts(workspace: "/home/dev"))
        let hidden = masked(layout)
        for path in [".aws", ".ssh", ".kube", ".config/gh", ".docker", ".netrc", ".git-credentials", ".gnupg"] {
            #expect(hidden.contains("/home/dev/" + path), "\(path) not masked")
        }
        #expect(hidden.contains("/home/dev/.local/state/airlock"))  // the state directory
        #expect(layout.warnings.contains { $0.contains("/home/dev/.aws") })
        // Masks come after the binds they cover.
        let workspaceIndex = layout.mounts.firstIndex { $0.target == "/home/dev" }!
        let maskIndex = layout.mounts.firstIndex { $0 == .mask(target: "/home/dev/.aws", cover: SandboxLayout.emptyFile) }!
        #expect(workspaceIndex < maskIndex)
    }

    @Test func workspaceContainingOtherHomesMasksTheirCredentials() throws {
        var host = facts(workspace: "/home")
        host.home = "/root"
        let layout = try SandboxLayout.make(profiles: ProfileStack([]), host: host)
        #expect(masked(layout).contains("/home/other/.ssh"))
        #expect(masked(layout).contains("/home/dev/.aws"))
    }

    @Test func onlyExistingCredentialPathsAreMasked() throws {
        var host = facts(workspace: "/home/dev")
        host.existing = ["/home/dev/.aws"]
        let layout = try SandboxLayout.make(profiles: ProfileStack([]), host: host)
        #expect(masked(layout) == ["/home/dev/.aws"])
        #expect(layout.warnings.count == 1)
    }

    @Test func credentialSymlinkTargetsAreMaskedToo() throws {
        var host = facts(workspace: "/home/dev")
        host.resolved["/home/dev/.aws"] = "/home/dev/dotfiles/aws"
        let layout = try SandboxLayout.make(profiles: ProfileStack([]), host: host)
        #expect(masked(layout).contains("/home/dev/dotfiles/aws"))
    }

    @Test func filesNamedByCredentialVariablesAreMasked() throws {
        let host = facts(workspace: "/srv", environment: ["AWS_SHARED_CREDENTIALS_FILE": "/srv/creds/aws", "KUBECONFIG": "/srv/k1:/srv/k2"])
        let layout = try SandboxLayout.make(profiles: ProfileStack([]), host: host)
        #expect(Set(masked(layout)).isSuperset(of: ["/srv/creds/aws", "/srv/k1", "/srv/k2"]))
    }

    @Test(arguments: [
        ("/", "whole host"),
        ("/home/dev/.aws", "holds credentials"),
        ("/home/dev/.ssh/keys", "holds credentials"),
        ("/home/dev/.local/state/airlock", "holds credentials"),
        ("/home/dev/.local/state/airlock/homes/default", "holds credentials"),
        ("/home/other/.kube", "holds credentials"),
        ("/proc/self", "belongs to the sandbox"),
        ("/home/agent", "belongs to the sandbox"),
    ])
    func refusedWorkspaces(workspace: String, words: String) {
        do {
            _ = try SandboxLayout.make(profiles: ProfileStack([]), host: facts(workspace: workspace))
            Issue.record("workspace \(workspace) accepted")
        } catch {
            #expect(error.message.contains(words), "\(error)")
            #expect(error.hint != nil)
        }
    }

    @Test(arguments: ["~/.aws", "~/.ssh/id_rsa", "~/.config/gh", "~/.local/state/airlock", "/"])
    func profilesCannotMountCredentials(path: String) throws {
        var profile = Profile(name: "hostile", source: "hostile.yaml")
        profile.filesystem.readOnly = [path]
        var host = facts()
        let lexical = HostPath.normalize(HostPath.expandingTilde(path, home: host.home))
        host.resolved[lexical] = lexical
        #expect(throws: AirlockError.self) {
            try SandboxLayout.make(profiles: ProfileStack([profile]), host: host)
        }
    }

    @Test func profileSymlinkIntoCredentialsIsRefused() throws {
        var profile = Profile(name: "sneaky", source: "sneaky.yaml")
        profile.filesystem.readOnly = ["/srv/innocent"]
        var host = facts()
        host.resolved["/srv/innocent"] = "/home/dev/.ssh"
        #expect(throws: AirlockError.self) {
            try SandboxLayout.make(profiles: ProfileStack([profile]), host: host)
        }
    }

    @Test func profilePathsAreMountedAndMissingOnesSkipped() throws {
        var profile = Profile(name: "tools", source: "tools.yaml")
        profile.filesystem.readOnly = ["~/.cargo", "/srv/missing"]
        profile.filesystem.readWrite = ["/srv/cache"]
        var host = facts()
        host.resolved["/home/dev/.cargo"] = "/home/dev/.cargo"
        host.resolved["/srv/cache"] = "/srv/cache"
        let layout = try SandboxLayout.make(profiles: ProfileStack([profile]), host: host)
        #expect(binds(layout).contains { $0 == ("/home/dev/.cargo", "/home/dev/.cargo", false) })
        #expect(binds(layout).contains { $0 == ("/srv/cache", "/srv/cache", true) })
        #expect(layout.writable.contains("/srv/cache"))
        #expect(layout.warnings.contains { $0.contains("/srv/missing") })
    }

    @Test func readableHostSecretsAreMasked() throws {
        var host = facts()
        host.readableSecrets = ["/etc/ssl/private", "/etc/ssh/ssh_host_ed25519_key"]
        let layout = try SandboxLayout.make(profiles: ProfileStack([]), host: host)
        #expect(masked(layout) == ["/etc/ssl/private", "/etc/ssh/ssh_host_ed25519_key"])
    }

    @Test func environmentIsClearedAndAirlocksOwnSet() throws {
        let host = facts(environment: ["TERM": "xterm", "AWS_SECRET_ACCESS_KEY": "s", "HOME": "/home/dev", "PATH": "/x"])
        let layout = try SandboxLayout.make(profiles: ProfileStack([]), host: host)
        let env = Dictionary(uniqueKeysWithValues: layout.environment.map { ($0.name, $0.value) })
        #expect(env["TERM"] == "xterm")
        #expect(env["AWS_SECRET_ACCESS_KEY"] == nil)
        #expect(env["HOME"] == "/home/agent")
        #expect(env["USER"] == "agent")
        #expect(env["PATH"]?.hasPrefix("/run/airlock/bin:") == true)
        #expect(env["AIRLOCK_SESSION"] == "0123456789abcdef")
    }

    @Test func rlimitsAboveTheLaunchersHardLimitAreLowered() throws {
        var profile = Profile(name: "big", source: "big.yaml")
        profile.rlimits = [.nofile: .limited(1 << 20), .nproc: .limited(50)]
        var host = facts()
        host.hardLimits = [.nofile: 4096, .nproc: nil]
        let layout = try SandboxLayout.make(profiles: ProfileStack([profile]), host: host)
        let limits = Dictionary(uniqueKeysWithValues: layout.rlimits.map { ($0.limit, $0.value) })
        #expect(limits[.nofile] == .limited(4096))
        #expect(limits[.nproc] == .limited(50))
        #expect(limits[.core] == .limited(0))
        #expect(layout.warnings.contains { $0.contains("nofile") })
    }

    @Test func cwdInsideWorkspaceIsKept() throws {
        var host = facts()
        host.cwd = "/home/dev/project/src"
        #expect(try SandboxLayout.make(profiles: ProfileStack([]), host: host).cwd == "/home/dev/project/src")
        host.cwd = "/elsewhere"
        #expect(try SandboxLayout.make(profiles: ProfileStack([]), host: host).cwd == "/home/dev/project")
    }
}
