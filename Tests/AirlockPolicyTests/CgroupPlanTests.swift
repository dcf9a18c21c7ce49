import Testing

@testable import AirlockPolicy

/// Where a sandbox's limits go, for the host kinds Airlock meets.
@Suite struct CgroupPlanTests {
    static let limits = SandboxLimits(memory: 512 << 20, cpus: 1.5, pids: 256)

    @Test func delegatedCgroupV2GetsOneChildWithEveryController() {
        var host = CgroupHost()
        host.unifiedMount = "/sys/fs/cgroup"
        host.unifiedPath = "/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope"
        host.unifiedAvailable = ["cpu", "memory", "pids", "io"]
        host.unifiedEnabled = ["memory"]
        host.unifiedWritable = true
        let plan = CgroupPlan.make(Self.limits, host: host, name: "airlock-s1")
        #expect(plan.unenforced.isEmpty)
        #expect(plan.groups.count == 1)
        let group = plan.groups[0]
        #expect(group.directory == "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope/airlock-s1")
        #expect(group.files.map(\.name) == ["memory.max", "memory.swap.max", "cpu.max", "pids.max"])
        #expect(group.files.map(\.value) == ["536870912", "0", "150000 100000", "256"])
        #expect(group.enableInParent == ["cpu", "pids"])
        #expect(group.oomEvents?.hasSuffix("/airlock-s1/memory.events") == true)
    }

    /// This machine image: v1 memory, pids and cpu hierarchies, a v2 mount with no controllers.
    @Test func hybridHostAsRootUsesTheV1Hierarchies() {
        var host = CgroupHost()
        host.unifiedMount = "/sys/fs/cgroup/unified"
        host.unifiedPath = "/"
        host.unifiedWritable = true
        host.legacy = ["memory": ("/sys/fs/cgroup/memory", "/process_api/abc", true), "pids": ("/sys/fs/cgroup/pids", "/", true),
                       "cpu": ("/sys/fs/cgroup/cpu", "/", true)]
        let plan = CgroupPlan.make(Self.limits, host: host, name: "airlock-s2")
        #expect(plan.unenforced.isEmpty)
        #expect(plan.groups.map(\.directory) == ["/sys/fs/cgroup/memory/process_api/abc/airlock-s2", "/sys/fs/cgroup/cpu/airlock-s2",
                                                 "/sys/fs/cgroup/pids/airlock-s2"])
        #expect(plan.groups[0].files.map(\.name) == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes?"])
        #expect(plan.groups[1].files.map(\.value) == ["100000", "150000"])
        #expect(plan.groups[0].oomEvents == "/sys/fs/cgroup/memory/process_api/abc/airlock-s2/memory.oom_control")
    }

    @Test func anUnprivilegedUserWithoutDelegationIsToldWhy() {
        var host = CgroupHost()
        host.unifiedMount = "/sys/fs/cgroup"
        host.unifiedPath = "/user.slice"
        host.unifiedAvailable = ["memory", "pids", "cpu"]
        host.unifiedWritable = false
        host.legacy = ["memory": ("/sys/fs/cgroup/memory", "/", false)]
        let plan = CgroupPlan.make(Self.limits, host: host, name: "airlock-s3")
        #expect(plan.groups.isEmpty)
        #expect(plan.unenforced.map(\.kind) == [.memory, .cpu, .pids])
        #expect(plan.unenforced[0].why.contains("not writable by this user"))
        #expect(plan.unenforced[1].why.contains("Delegate=yes"))
        #expect(CgroupPlan.make(SandboxLimits(), host: host, name: "x") == CgroupPlan(groups: [], unenforced: []))
    }

    @Test func oomCountersAreRead() {
        #expect(CgroupPlan.oomKills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n") == 2)
        #expect(CgroupPlan.oomKills("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n") == 1)
        #expect(CgroupPlan.oomKills("") == 0)
    }

    @Test func profilesReadLimitsAndHomeFiles() throws {
        let profile = try ProfileParser.parse("""
            limits: {memory: 8GiB, cpus: 2, pids: 4096}
            home_files:
              .codex/config.toml: |
                # keep me
                sandbox_mode = "danger-full-access"
            """, name: "p", source: "p.yaml")
        #expect(profile.limits == SandboxLimits(memory: 8 << 30, cpus: 2, pids: 4096))
        #expect(profile.homeFiles[".codex/config.toml"] == "# keep me\nsandbox_mode = \"danger-full-access\"\n")
        for (text, words) in [("limits: {memory: 1KiB}\n", "at least 16MiB"), ("limits: {cpus: lots}\n", "number of CPUs"),
                              ("limits: {pids: 2}\n", "at least 8"), ("limits: {disk: 1}\n", "unknown key"),
                              ("home_files: {../escape: x}\n", "relative to the home")] {
            #expect(throws: ProfileError.self, "\(text)") { try ProfileParser.parse(text, name: "p", source: "p.yaml") }
            do { _ = try ProfileParser.parse(text, name: "p", source: "p.yaml") } catch { #expect(error.description.contains(words), "\(error)") }
        }
        let stack = ProfileStack([try ProfileParser.parse("limits: {memory: 1GiB, pids: 100}\n", name: "a", source: "a"),
                                  try ProfileParser.parse("limits: {pids: 200}\n", name: "b", source: "b")])
        #expect(stack.limits == SandboxLimits(memory: 1 << 30, pids: 200))
    }

    /// Login shells: Airlock's /etc/profile sources the host's and puts Airlock's PATH and
    /// variables back.
    @Test func loginShellProfileRestoresPathAndVariables() {
        var layout = SandboxLayout()
        layout.setEnvironment(["PATH": "/run/airlock/bin:/usr/bin", "HTTPS_PROXY": "http://127.0.0.1:3128", "TERM": "xterm",
                               "QUOTED": "it's"])
        layout.addLoginShellProfile(hostHasEtcProfile: true)
        guard case .file(_, let contents, _)? = layout.mounts.first(where: { $0.target == "/run/airlock/etc/profile" }) else {
            Issue.record("no profile file")
            return
        }
        #expect(contents.contains("if [ -r /run/airlock/etc/profile.host ]; then . /run/airlock/etc/profile.host; fi"))
        #expect(contents.contains("PATH='/run/airlock/bin:/usr/bin'${PATH:+:$PATH}; export PATH"))
        #expect(contents.contains("export HTTPS_PROXY='http://127.0.0.1:3128'"))
        #expect(contents.contains("export QUOTED='it'\\''s'"))
        #expect(!contents.contains("TERM"))
        #expect(layout.mounts.contains(.mask(target: "/etc/profile", cover: "/run/airlock/etc/profile")))
        #expect(layout.mounts.contains(.bind(source: "/etc/profile", target: "/run/airlock/etc/profile.host", writable: false, directory: false, role: .system)))
    }
}
