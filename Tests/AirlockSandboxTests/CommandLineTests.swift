import Foundation
import Testing

/// `airlock doctor`, `airlock profile check`, and how `airlock run` refuses bad input.
@Suite struct CommandLineTests {
    func airlock(_ arguments: [String], scene: Scene) -> Outcome {
        runProcess(Stage.airlock, arguments, environment: scene.environment, directory: scene.workspace)
    }

    @Test func doctorReportsThisKernel() throws {
        guard Launch.anyAvailable() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let out = airlock(["doctor", "--json", "--state-dir", scene.stateDir], scene: scene)
        #expect(out.status == 0, "\(out)")
        let document = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
        let checks = try #require(document?["checks"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: checks.map { ($0["name"] as! String, $0["status"] as! String) })
        #expect(byName["user namespaces"] == "ok")
        #expect(byName["seccomp"] == "ok")
        #expect(byName["sandbox"] == "ok")
        #expect(byName["landlock"] != nil && byName["cgroup limits"] != nil)
        // A real run: a page fetched through the proxy, a host refused, no DNS, no way around.
        #expect(byName["egress proxy"] == "ok", "\(checks)")
        #expect(byName["DNS-free path"] == "ok", "\(checks)")
        let text = airlock(["doctor", "--state-dir", scene.stateDir], scene: scene)
        #expect(text.stdout.contains("ok    sandbox: started /bin/true"), "\(text)")
    }

    @Test func defaultProfileChecksClean() {
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let out = airlock(["profile", "check", Stage.directory + "/profiles/default.yaml"], scene: scene)
        #expect(out.status == 0, "\(out)")
        #expect(out.stdout.contains("valid"))
        #expect(out.stdout.contains("loosenings: none"), "\(out)")
        #expect(out.stdout.contains("rlimits:    core 0, fsize 8GiB, nproc 1024"), "\(out)")
    }

    @Test func looseningsAreFlaggedAndJSONIsOneDocument() throws {
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let file = scene.root + "/loose.yaml"
        scene.write(file, "extends: default\nfilesystem:\n  readwrite: [/srv]\nenvironment:\n  pass: [EDITOR]\nrlimits:\n  nproc: unlimited\n")
        let out = airlock(["profile", "check", "--json", file], scene: scene)
        #expect(out.status == 0, "\(out)")
        let document = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
        let profile = try #require((document?["profiles"] as? [[String: Any]])?.first)
        let loosenings = (profile["loosenings"] as? [[String: String]])?.map { $0["what"] ?? "" } ?? []
        #expect(loosenings.count == 3, "\(loosenings)")
        #expect(loosenings.contains { $0.contains("/srv is writable") })
        #expect((profile["profiles"] as? [String]) == ["default", "loose"])
    }

    @Test func hostileProfilesAreRefusedWithTheLine() {
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let cases: [(String, String)] = [
            ("description: x\nenvironment:\n  pass: [AWS_SECRET_ACCESS_KEY]\n", "hostile.yaml:3: environment.pass: 'AWS_SECRET_ACCESS_KEY' looks like a credential"),
            ("filesystem:\n  readonly: [/etc]\n  writable: [/]\n", "hostile.yaml:3: unknown key 'writable' in filesystem"),
            ("rlimits: {nproc: &n 5, nofile: *n}\n", "hostile.yaml:1: YAML anchors are not allowed"),
        ]
        for (text, message) in cases {
            let file = scene.root + "/hostile.yaml"
            scene.write(file, text)
            let out = airlock(["profile", "check", file], scene: scene)
            #expect(out.status == 1, "\(out)")
            #expect(out.stderr.contains(message), "\(out)")
        }
    }

    @Test(arguments: Launch.allCases)
    func profilesCannotMountCredentials(launch: Launch) {
        guard launch.available() else { return }
        let scene = Scene(launch)
        scene.plantCredentials()
        let file = scene.root + "/grab.yaml"
        scene.write(file, "filesystem:\n  readonly: [~/.aws]\n")
        let checked = airlock(["profile", "check", file], scene: scene)
        #expect(checked.status == 1)
        #expect(checked.stderr.contains("refusing to mount"), "\(checked)")
        let run = scene.run(["cat", scene.home + "/.aws/credentials"], options: ["--profile", file])
        #expect(run.status == 125, "\(run)")
        #expect(run.stderr.contains("holds credentials"), "\(run)")
        #expect(!run.stdout.contains("PLANTED"))
    }

    @Test func badRunInvocations() {
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        var root = scene
        root.workspace = "/"
        let slash = root.run(["true"])
        #expect(slash.status == 125)
        #expect(slash.stderr.contains("refusing to mount / as workspace"), "\(slash)")
        let missing = scene.run(["true"], options: ["--profile", "no-such-profile"])
        #expect(missing.status == 125)
        #expect(missing.stderr.contains("no profile named 'no-such-profile'"), "\(missing)")
        let noWorkspace = runProcess(Stage.airlock, ["run", "--workspace", "/nonexistent-\(uniqueMarker())", "--", "true"],
                                     environment: scene.environment, directory: scene.workspace)
        #expect(noWorkspace.status == 125)
        #expect(noWorkspace.stderr.contains("is not a directory"))
        let help = runProcess(Stage.airlock, ["run", "--help"], environment: scene.environment, directory: scene.workspace)
        #expect(help.status == 0)
        #expect(help.stdout.contains("Exit status"))
    }
}
