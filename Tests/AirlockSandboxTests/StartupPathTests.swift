import Foundation
import Testing

/// What start-up skips must not change what the sandbox is: the sandbox alone (`--no-broker`)
/// reaches nothing, and a tool profile the launcher did not parse again (its text is in the
/// cache) is still what the broker decides by, while an edited one is parsed (and refused)
/// again.
@Suite struct StartupPathTests {
    @Test func theSandboxAloneReachesNothing() {
        guard Launch.anyAvailable() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let out = scene.run(["/bin/sh", "-c", """
            env | grep -ci -e proxy -e '^AWS_' -e SSL_CERT_FILE; \
            ls /run/airlock/bin /run/airlock/tools /run/airlock/aws 2>&1 | grep -c 'No such file'; \
            python3 -c 'import socket
            for port in (3128, 8181):
                try: socket.create_connection(("127.0.0.1", port), timeout=2); print("reached", port)
                except OSError as e: print("refused", port)
            try: socket.create_connection(("192.0.2.1", 80), timeout=2); print("reached outside")
            except OSError as e: print("unreachable", e.errno)'
            """], options: ["--no-broker"])
        #expect(out.status == 0, "\(out)")
        let lines = out.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "0", "variables pointing outside: \(out.stdout)")
        #expect(lines.dropFirst().first == "3", "Airlock's run directory has broker parts: \(out.stdout)")
        #expect(out.stdout.contains("refused 3128") && out.stdout.contains("refused 8181") && out.stdout.contains("unreachable"),
                "\(out.stdout)")
        let profile = scene.root + "/allowing.yaml"
        scene.write(profile, "extends: default\nnetwork:\n  allow: [pypi.org]\n")
        let warned = scene.run(["true"], options: ["--no-broker", "--profile", profile])
        #expect(warned.status == 0 && warned.stderr.contains("network.allow (pypi.org) is not reachable without the broker"), "\(warned)")
        let refused = scene.run(["true"], options: ["--no-broker", "--aws-endpoint", "http://127.0.0.1:1"])
        #expect(refused.status == 125 && refused.stderr.contains("--no-broker runs without the broker"), "\(refused)")
    }

    @Test func aCachedToolProfileDecidesAndAnEditedOneIsReadAgain() throws {
        guard Launch.anyAvailable(),
              require(["/usr/local/bin/kubectl", "/usr/bin/kubectl"].contains { FileManager.default.isExecutableFile(atPath: $0) },
                      "kubectl is not installed: install it (it is not in Debian's archive) to run the tool-profile cache test")
        else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let override = scene.root + "/profiles"
        let shipped = try String(contentsOfFile: Stage.directory + "/profiles/tools/kubectl.yaml", encoding: .utf8)
        scene.write(override + "/tools/kubectl.yaml", shipped)
        let paths = ["AIRLOCK_PROFILE_PATH": override + ":" + Stage.directory + "/profiles"]
        let script = """
            kubectl exec web-0 -- sh > exec.out 2> exec.err; echo $? > exec.rc
            kubectl delete configmap settings > delete.out 2> delete.err; echo $? > delete.rc
            """
        // First run: parsed and remembered. Second: from the cache; the broker parses it
        // when the agent's command reaches it, and decides as before.
        for round in 1...2 {
            let out = scene.run(["/bin/sh", "-c", script], extraEnvironment: paths)
            #expect(out.status == 0, "round \(round): \(out)")
            #expect(scene.file("exec.rc") == "77\n", "round \(round): \(scene.file("exec.err"))")
            #expect(scene.file("delete.rc") == "75\n", "round \(round): \(scene.file("delete.err"))")
            #expect(!out.stderr.contains("treated as a change"), "round \(round): \(out.stderr)")
        }
        // Both proposals were decided by the profile's own `delete` rule (a profile that
        // failed to parse in the broker would make it an unknown subcommand).
        let listed = runProcess(Stage.airlock, ["proposals", "--all", "--json", "--state-dir", scene.stateDir],
                                environment: scene.environment, directory: scene.workspace).stdout
        #expect(listed.components(separatedBy: "\"decision_reason\":\"kubectl delete (").count - 1 == 2, "\(listed)")
        let cached = (try? FileManager.default.contentsOfDirectory(atPath: scene.stateDir + "/cache/tool-profiles")) ?? []
        #expect(!cached.isEmpty, "no cache entries")
        // An edit is read again: a broken profile is refused at start, not hidden by the cache.
        scene.write(override + "/tools/kubectl.yaml", shipped + "\nnot_a_key: 1\n")
        let broken = scene.run(["true"], extraEnvironment: paths)
        #expect(broken.status == 125 && broken.stderr.contains("not_a_key"), "\(broken)")
        // And an edit that changes a decision is what the next session decides by.
        scene.write(override + "/tools/kubectl.yaml", shipped.replacingOccurrences(of: "command: exec, decision: deny", with: "command: exec, decision: mutation"))
        let edited = scene.run(["/bin/sh", "-c", script], extraEnvironment: paths)
        #expect(edited.status == 0, "\(edited)")
        #expect(scene.file("exec.rc") == "75\n", "the edited rule was not used: \(scene.file("exec.err"))")
    }
}
