import Foundation
import Testing

/// What an agent must still be able to do inside the sandbox.
@Suite struct WorkingAgentTests {
    @Test(arguments: Launch.allCases)
    func buildsAndRunsACProgram(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        scene.write(scene.workspace + "/hello.c", "#include <stdio.h>\nint main(void) { printf(\"hello %d\\n\", 6 * 7); return 0; }\n")
        let out = scene.sh("cc -O1 -o hello hello.c && ./hello")
        #expect(out.status == 0, "\(out)")
        #expect(out.stdout == "hello 42\n", "\(out)")
        #expect(FileManager.default.fileExists(atPath: scene.workspace + "/hello"))
    }

    @Test(arguments: Launch.allCases)
    func usesGit(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        scene.write(scene.workspace + "/README", "hi\n")
        let out = scene.sh("""
            git init -q -b main . && git -c user.name=agent -c user.email=agent@example.com commit -qm first --allow-empty \
              && git add README && git -c user.name=agent -c user.email=agent@example.com commit -qm readme && git log --oneline | wc -l
            """)
        #expect(out.status == 0, "\(out)")
        #expect(out.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "2", "\(out)")
    }

    @Test(arguments: Launch.allCases)
    func homePersistsAcrossRuns(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let token = uniqueMarker()
        let first = scene.sh("echo \(token) > ~/.agent-login && ls -ld ~ | cut -c1-10")
        #expect(first.status == 0, "\(first)")
        #expect(first.stdout == "drwx------\n", "\(first)")
        let second = scene.sh("cat ~/.agent-login; echo $HOME; whoami")
        #expect(second.stdout == "\(token)\n/home/agent\nagent\n", "\(second)")
        // It lives in the state directory, per profile.
        #expect(FileManager.default.fileExists(atPath: scene.stateDir + "/homes/default/.agent-login"))
    }

    @Test(arguments: Launch.allCases)
    func seesOnlyItsOwnProcesses(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let out = scene.sh("ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; echo $$; cat /proc/1/comm 2>&1; hostname")
        let lines = out.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(out)")
        let pids = lines[0].split(separator: " ").compactMap { Int($0) }
        #expect(pids.first == 1 && pids.allSatisfy { $0 < 10 }, "\(out)")
        #expect(lines[1] == "2", "the agent is pid 2 under a tiny init: \(out)")
        #expect(lines[3] == "airlock")
    }

    @Test(arguments: Launch.allCases)
    func exitCodesComeThrough(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        #expect(scene.sh("exit 0").status == 0)
        #expect(scene.sh("exit 42").status == 42)
        #expect(scene.sh("kill -TERM $$").status == 128 + SIGTERM)
        #expect(scene.sh("kill -KILL $$").status == 128 + SIGKILL)
        let missing = scene.run(["no-such-command-\(uniqueMarker())"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("command not found in the sandbox"), "\(missing)")
    }

    /// SIGTERM and SIGINT sent to `airlock run` reach the agent, which can clean up.
    @Test(arguments: Launch.allCases, [SIGTERM, SIGINT, SIGHUP])
    func signalsReachTheAgent(launch: Launch, signal: Int32) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        let ready = scene.workspace + "/ready"
        let out = scene.run(["/bin/bash", "-c", """
            trap 'echo "caught $1"; exit 7' \(signal == SIGTERM ? "TERM" : signal == SIGINT ? "INT" : "HUP")
            touch ready
            while :; do sleep 0.05; done
            """], whileRunning: { pid in
                for _ in 0..<1000 where !FileManager.default.fileExists(atPath: ready) { usleep(10_000) }
                kill(pid, signal)
            })
        #expect(out.status == 7, "\(out)")
        #expect(out.stdout.contains("caught"), "\(out)")
    }

    /// An interactive shell on a terminal: the agent gets a terminal of its own (in the
    /// sandbox's devpts), sees its size, and Ctrl-C interrupts it, not Airlock.
    @Test(arguments: Launch.allCases)
    func interactiveShellOnATerminal(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        var command = "stty cols 100 rows 30; \(Stage.airlock) run --workspace \(scene.workspace) --state-dir \(scene.stateDir) -- /bin/bash --norc -i"
        if launch == .unprivileged && getuid() == 0 {
            command = "setpriv --reuid=\(launch.uid) --regid=\(launch.gid) --clear-groups -- sh -c '\(command)'"
        }
        let input = """
            tty; stty size
            sleep 30
            \u{03}echo "after interrupt $((6*7))"
            exit 3

            """
        // `script` gives airlock a real terminal; keystrokes are fed slowly, like a person.
        let out = runProcess("/usr/bin/python3", ["-c", """
            import os, pty, sys, time, select
            pid, fd = pty.fork()
            if pid == 0:
                os.execvp("sh", ["sh", "-c", sys.argv[1]])
            data = b""
            for line in sys.argv[2].split("\\n"):
                time.sleep(0.8)
                os.write(fd, (line + "\\n").encode() if not line.startswith("\\x03") else b"\\x03")
                if line.startswith("\\x03"):
                    time.sleep(0.5); os.write(fd, (line[1:] + "\\n").encode())
            end = time.time() + 20
            while time.time() < end:
                r, _, _ = select.select([fd], [], [], 0.5)
                if r:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        break
                    if not chunk: break
                    data += chunk
            _, status = os.waitpid(pid, 0)
            sys.stdout.write(data.decode(errors="replace"))
            sys.exit(os.waitstatus_to_exitcode(status))
            """, command, input], environment: scene.environment, directory: scene.workspace, timeout: 60)
        #expect(out.stdout.contains("/dev/pts/0"), "\(out)")
        #expect(out.stdout.contains("30 100"), "\(out)")
        #expect(out.stdout.contains("after interrupt 42"), "\(out)")
        #expect(out.status == 3, "\(out)")
    }
}
