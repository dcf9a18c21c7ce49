import Foundation
import Testing

/// An agent inside `airlock run` tries to get out, or at the host's secrets. Each attempt is
/// made for real and must fail in the precise way the sandbox promises.
@Suite struct EscapeTests {
    @Test(arguments: Launch.allCases)
    func plantedCredentialsAndStateAreNotThere(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        scene.plantCredentials()
        let out = scene.sh("""
            for f in \(scene.home)/.aws/credentials \(scene.home)/.ssh/id_rsa \(scene.home)/.kube/config \(scene.stateDir)/planted-state; do
              cat "$f" 2>&1; echo "[$?]"
            done
            """)
        #expect(out.status == 0, "\(out)")
        #expect(!out.stdout.contains("PLANTED"), "\(out)")
        #expect(out.stdout.components(separatedBy: "No such file or directory").count == 5, "\(out)")
    }

    /// The classic mistake: the workspace is the home directory itself.
    @Test(arguments: Launch.allCases)
    func homeAsWorkspaceHasCredentialsMasked(launch: Launch) {
        guard launch.available() else { return }
        var scene = Scene(launch)
        scene.plantCredentials()
        scene.workspace = scene.home
        let out = scene.sh("""
            ls -a .aws .ssh .kube; cat .aws/credentials .ssh/id_rsa .kube/config 2>&1
            echo hello > visible && cat visible
            touch .aws/new 2>&1; echo "[$?]"
            """)
        #expect(!out.stdout.contains("PLANTED"), "\(out)")
        #expect(out.stdout.contains(".aws/credentials: No such file or directory"), "\(out)")
        #expect(out.stdout.contains(".ssh/id_rsa: No such file or directory"), "\(out)")
        #expect(out.stdout.contains("hello"), "\(out)")
        #expect(out.stdout.contains("Read-only file system"), "\(out)")
        #expect(out.stderr.contains("masked inside the sandbox"), "\(out)")
        // The real files are untouched.
        #expect(FileManager.default.contents(atPath: scene.home + "/.aws/credentials") != nil)
        #expect(!FileManager.default.fileExists(atPath: scene.home + "/.aws/new"))
    }

    @Test(arguments: Launch.allCases)
    func launcherCredentialVariablesDoNotPass(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let out = scene.sh("env; cat /proc/self/environ | tr '\\0' '\\n'; for e in /proc/[0-9]*/environ; do cat $e 2>/dev/null; done")
        #expect(out.status == 0, "\(out)")
        for secret in ["PLANTED-ENV-SECRET", "AKIDPLANTEDLAUNCHER", "PLANTED-GITHUB-TOKEN", "SSH_AUTH_SOCK"] {
            #expect(!out.stdout.contains(secret), "\(secret) visible: \(out)")
        }
        #expect(out.stdout.contains("HOME=/home/agent"))
        // The only AWS keys inside are the session's dummy ones, worth nothing outside.
        #expect(out.stdout.contains("AWS_ACCESS_KEY_ID=AIRLOCK"))
        #expect(out.stdout.contains("AWS_CONFIG_FILE=/run/airlock/aws/config"))
    }

    /// The launcher's own /proc entry (its environment holds the credentials) is not in the
    /// sandbox's pid namespace; the sandbox's init is not readable either.
    @Test(arguments: Launch.allCases)
    func launcherEnvironIsOutOfReach(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let pidFile = scene.workspace + "/launcher.pid"
        let out = scene.run(["/bin/sh", "-c", """
            while [ ! -s launcher.pid ]; do sleep 0.05; done
            cat /proc/$(cat launcher.pid)/environ 2>&1; echo "[$?]"
            cat /proc/1/environ 2>&1; echo "[$?]"
            ls /proc/1/fd 2>&1; echo "[$?]"
            """], whileRunning: { pid in
                _ = FileManager.default.createFile(atPath: pidFile, contents: Data("\(pid)".utf8))
                chmod(pidFile, 0o644)
            })
        #expect(!out.stdout.contains("PLANTED"), "\(out)")
        #expect(out.stdout.contains("No such file or directory\n[1]"), "\(out)")
        #expect(out.stdout.contains("/proc/1/environ: Permission denied"), "\(out)")
        #expect(out.stdout.contains("/proc/1/fd': Permission denied"), "\(out)")
    }

    @Test(arguments: Launch.allCases)
    func processInspectionIsRefused(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let host = String(getpid())
        #expect(scene.attempt("ptrace-attach", host).stdout == "ptrace-attach: EPERM (1)\n")
        #expect(scene.attempt("ptrace-attach", "1").stdout == "ptrace-attach: EPERM (1)\n")
        #expect(scene.attempt("ptrace-traceme").stdout == "ptrace-traceme: EPERM (1)\n")
        #expect(scene.attempt("process_vm_readv", host).stdout == "process_vm_readv: EPERM (1)\n")
        #expect(scene.attempt("process_vm_writev", "1").stdout == "process_vm_writev: EPERM (1)\n")
        #expect(scene.attempt("pidfd_getfd").stdout == "pidfd_getfd: EPERM (1)\n")
        // The host's processes are not even visible.
        #expect(scene.attempt("kill", host).stdout == "kill: ESRCH (3)\n")
    }

    @Test(arguments: Launch.allCases)
    func terminalInjectionIsRefused(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        #expect(scene.attempt("tiocsti").stdout == "tiocsti: EPERM (1)\n")
        // Upper bits set: the kernel still reads TIOCSTI; the filter must too.
        #expect(scene.attempt("tiocsti-high-bits").stdout == "tiocsti-high-bits: EPERM (1)\n")
    }

    @Test(arguments: Launch.allCases)
    func networkIsLoopbackOnly(launch: Launch) throws {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let listener = try TCPListener()
        defer { listener.close() }
        #expect(scene.attempt("connect", "127.0.0.1", String(listener.port)).stdout == "connect: ECONNREFUSED (111)\n")
        #expect(scene.attempt("connect", "1.1.1.1", "443").stdout == "connect: ENETUNREACH (101)\n")
        #expect(scene.attempt("raw-socket").stdout == "raw-socket: EPERM (1)\n")
        #expect(scene.attempt("packet-socket").stdout == "packet-socket: EPERM (1)\n")
        #expect(scene.attempt("vsock-socket").stdout == "vsock-socket: EPERM (1)\n")
        let links = scene.sh("ls /sys/class/net 2>/dev/null || cat /proc/net/dev")
        #expect(links.stdout.contains("lo"))
        #expect(!links.stdout.contains("eth"), "\(links)")
        #expect(listener.acceptPending() == 0)
    }

    @Test(arguments: Launch.allCases)
    func namespacesCannotBeCreatedOrJoined(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        #expect(scene.attempt("unshare-user").stdout == "unshare-user: EPERM (1)\n")
        #expect(scene.attempt("unshare-mount").stdout == "unshare-mount: EPERM (1)\n")
        #expect(scene.attempt("unshare-net").stdout == "unshare-net: EPERM (1)\n")
        #expect(scene.attempt("clone-newuser").stdout == "clone-newuser: EPERM (1)\n")
        // clone3 hides its flags in memory the filter cannot read: it is answered ENOSYS (so
        // libc falls back to clone, where the flags are checked). No namespace is created.
        #expect(scene.attempt("clone3-newuser").stdout == "clone3-newuser: ENOSYS (38)\n")
        #expect(scene.attempt("setns", "/proc/self/ns/net").stdout == "setns: EPERM (1)\n")
    }

    @Test(arguments: Launch.allCases)
    func mountsAreRefused(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        for name in ["mount", "umount2", "open_tree", "move_mount", "fsopen", "fsmount", "fspick", "mount_setattr",
                     "pivot_root", "chroot"] {
            #expect(scene.attempt(name).stdout == "\(name): EPERM (1)\n")
        }
    }

    @Test(arguments: Launch.allCases)
    func kernelAttackSurfaceIsRefused(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        for name in ["keyctl", "add_key", "request_key", "bpf", "io_uring_setup", "perf_event_open", "userfaultfd",
                     "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
                     "swapon", "acct", "syslog", "open_by_handle_at", "name_to_handle_at", "personality"] {
            #expect(scene.attempt(name).stdout == "\(name): EPERM (1)\n")
        }
    }

    /// The 32-bit entry point and the x32 ABI would bypass an x86_64 filter: the process dies.
    @Test(arguments: Launch.allCases)
    func otherArchitecturesAreKilled(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let int80 = scene.attempt("int80")
        #expect(int80.status == 128 + SIGSYS, "\(int80)")
        #expect(int80.stdout.isEmpty)
        #expect(scene.attempt("x32").status == 128 + SIGSYS)
    }

    @Test(arguments: Launch.allCases)
    func nothingOutsideTheWorkspaceIsWritable(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let marker = uniqueMarker()
        let out = scene.sh("""
            for p in /usr/\(marker) /etc/\(marker) /\(marker) /opt/\(marker) /run/airlock/\(marker) /dev/\(marker) /proc/sys/kernel/hostname; do
              (echo x > "$p") 2>&1; echo "[$?]"
            done
            cat /etc/shadow 2>&1; echo "[$?]"
            echo ok > /tmp/t && echo ok > /home/agent/t && echo ok > ./t && echo writable
            """)
        #expect(out.stdout.contains("writable"), "\(out)")
        #expect(out.stdout.components(separatedBy: "Read-only file system").count - 1 == 6, "\(out)")
        #expect(out.stdout.contains("/proc/sys/kernel/hostname: Permission denied") || out.stdout.contains("hostname: Read-only"), "\(out)")
        #expect(out.stdout.contains("/etc/shadow: Permission denied"), "\(out)")
        for dir in ["/usr", "/etc", "/", "/opt"] {
            #expect(!FileManager.default.fileExists(atPath: dir + "/" + marker))
        }
    }

    /// The agent is never host root: its uid maps to an unprivileged host uid, and a file it
    /// creates in the workspace belongs on the host to the workspace's owner.
    @Test(arguments: Launch.allCases)
    func agentIsNotHostRoot(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let out = scene.sh("id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; touch made-inside")
        let fields = out.stdout.split(whereSeparator: { $0 == "\n" || $0 == " " || $0 == "\t" }).map(String.init)
        #expect(fields.prefix(4) == ["1000", "1000", String(launch.agentHostUID), "1"], "\(out)")
        #expect(out.stdout.contains("CapEff:\t0000000000000000"))
        #expect(out.stdout.contains("NoNewPrivs:\t1"))
        var st = stat()
        #expect(stat(scene.workspace + "/made-inside", &st) == 0)
        #expect(st.st_uid == launch.uid, "file owned by \(st.st_uid)")
    }

    /// A fork bomb hits the process limit, and everything it made dies with the session.
    @Test(arguments: Launch.allCases)
    func forkBombIsContained(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let bomb = uniqueMarker()
        let started = Date()
        // The waiting is done by a bash builtin (read -t on a fifo): once the bomb has used up
        // the process limit, the agent itself cannot fork either.
        let script = "mkfifo /tmp/wait && exec 3<>/tmp/wait; \(bomb)() { \(bomb) | \(bomb) & }; \(bomb); read -t 3 -u 3; echo survived"
        let out = scene.run(["/bin/bash", "-c", script], timeout: 60)
        #expect(out.status == 0, "\(out)")
        #expect(out.stdout.contains("survived"))
        #expect(out.stderr.contains("Resource temporarily unavailable"), "\(out.stderr.prefix(500))")
        #expect(Date().timeIntervalSince(started) < 30)
        usleep(200_000)
        #expect(hostProcesses(containing: bomb).isEmpty)
    }

    @Test(arguments: Launch.allCases)
    func backgroundProcessesDieWithTheSession(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let seconds = "\(Int.random(in: 1000...9999)).\(Int.random(in: 100...999))"
        let out = scene.sh("sleep \(seconds) & setsid sleep \(seconds) & nohup sleep \(seconds) >/dev/null 2>&1 & echo started")
        #expect(out.status == 0 && out.stdout.contains("started"), "\(out)")
        usleep(200_000)
        #expect(hostProcesses(containing: "sleep \(seconds)").isEmpty)
    }

    /// Killing the launcher (even with SIGKILL) takes the whole sandbox with it.
    @Test(arguments: Launch.allCases)
    func killedLauncherTakesTheSandboxWithIt(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let seconds = "\(Int.random(in: 1000...9999)).\(Int.random(in: 100...999))"
        let out = scene.run(["/bin/sh", "-c", "touch started; sleep \(seconds)"], whileRunning: { pid in
            for _ in 0..<500 where !FileManager.default.fileExists(atPath: scene.workspace + "/started") { usleep(10_000) }
            kill(pid, SIGKILL)
        })
        #expect(out.status == 128 + SIGKILL)
        usleep(300_000)
        #expect(hostProcesses(containing: "sleep \(seconds)").isEmpty)
    }
}

/// A listener on the host's loopback, to prove the sandbox's loopback is another one.
final class TCPListener: @unchecked Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) } }
        self.port = UInt16(bigEndian: addr.sin_port)
        var flags = fcntl(fd, F_GETFL)
        flags |= O_NONBLOCK
        _ = fcntl(fd, F_SETFL, flags)
    }

    /// Connections that reached this listener (and are now closed).
    func acceptPending() -> Int {
        var count = 0
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return count }
            count += 1
            Glibc.close(client)
        }
    }

    func close() { Glibc.close(fd) }
}
