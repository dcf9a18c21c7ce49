import Foundation
import Testing

/// Every credential file stays outside (docs/design.md, invariant 9; docs/sandbox.md,
/// "Credential files"). The broker's real loaders are driven once (`airlock doctor
/// --credentials --probe`: the AWS chain, the kubeconfig loader with a token file and a client
/// certificate, gh's hosts.yml, `git credential fill` with a store helper, netrc) under strace,
/// with their variables pointing into the workspace, the launcher's home and a profile's read
/// path. Every file they opened there must be one the masks list, and none of them may be
/// readable in the agent's sandbox, in a command's prepare sandbox (terraform plan) or in its
/// apply sandbox (terraform apply after approval).
@Suite struct CredentialFileTests {
    static let markers = ["MARKER-AWS-SECRET", "MARKER-AWS-CONFIG", "MARKER-KUBE-TOKEN", "MARKER-GH-TOKEN", "MARKER-GH-ENTERPRISE",
                          "MARKER-GIT-STORE", "MARKER-NETRC", "MARKER-GITCONFIG", "MARKER-KUBECONFIG", "PRIVATE KEY"]

    /// The loaders' files, spread over the workspace (W), the home (H) and a read path (P).
    static func plant(_ scene: Scene, readPath: String) throws -> [String: String] {
        let w = scene.workspace, h = scene.home, p = readPath
        let tls = scene.root + "/tls"
        let fixtures = runProcess("/usr/bin/python3", [Stage.repoRoot + "/Tests/Support/egress_server.py", "fixtures", tls],
                                  environment: ["PATH": "/usr/bin:/bin"], directory: scene.root, timeout: 60)
        guard fixtures.status == 0 else { throw TestUpstreamError("fixtures: \(fixtures)") }
        scene.write(w + "/aws-credentials", "[default]\naws_access_key_id = AKIDCREDFILEDUMMY\naws_secret_access_key = MARKER-AWS-SECRET\n", mode: 0o600)
        scene.write(p + "/aws-config", "# MARKER-AWS-CONFIG\n[default]\nregion = eu-west-1\n")
        scene.write(w + "/kube-token", "MARKER-KUBE-TOKEN\n", mode: 0o600)
        scene.write(h + "/kube-client.pem", (try? String(contentsOfFile: tls + "/server.pem", encoding: .utf8)) ?? "")
        scene.write(p + "/kube-client.key", (try? String(contentsOfFile: tls + "/server.key", encoding: .utf8)) ?? "", mode: 0o600)
        scene.write(p + "/kubeconfig", """
            # MARKER-KUBECONFIG
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster: {server: "https://127.0.0.1:1"}
            contexts:
            - name: by-token
              context: {cluster: c, user: token-user}
            - name: by-certificate
              context: {cluster: c, user: certificate-user}
            current-context: by-token
            users:
            - name: token-user
              user: {tokenFile: \(w)/kube-token}
            - name: certificate-user
              user: {client-certificate: \(h)/kube-client.pem, client-key: \(p)/kube-client.key}

            """)
        scene.write(w + "/gh-config/hosts.yml", """
            github.com:
                oauth_token: MARKER-GH-TOKEN
                user: person
            gh.test:
                oauth_token: MARKER-GH-ENTERPRISE
                user: person

            """, mode: 0o600)
        scene.write(h + "/gitconfig", "# MARKER-GITCONFIG\n[credential]\n\thelper = store --file=\(p)/git-credentials\n")
        scene.write(p + "/git-credentials", "https://alice:MARKER-GIT-STORE@github.com\n", mode: 0o600)
        scene.write(w + "/netrc", "machine gh.test login bob password MARKER-NETRC\n", mode: 0o600)
        scene.write(w + "/public.txt", "PUBLIC-CONTROL\n")
        return ["AWS_SHARED_CREDENTIALS_FILE": w + "/aws-credentials", "AWS_CONFIG_FILE": p + "/aws-config", "KUBECONFIG": p + "/kubeconfig",
                "GH_CONFIG_DIR": w + "/gh-config", "GH_HOST": "gh.test", "GIT_CONFIG_GLOBAL": h + "/gitconfig", "GIT_CONFIG_NOSYSTEM": "1",
                "NETRC": w + "/netrc", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "GITHUB_TOKEN": "",
                "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": "/nonexistent"]
    }

    /// Regular files under `roots` that a traced process opened successfully.
    static func opened(_ trace: String, under roots: [String]) -> Set<String> {
        var found = Set<String>()
        for line in trace.split(separator: "\n") {
            guard let match = line.firstMatch(of: /open(?:at)?\((?:AT_FDCWD, )?"([^"]+)"/) else { continue }
            let path = String(match.1)
            var info = stat()
            guard roots.contains(where: { path.hasPrefix($0 + "/") }), stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            found.insert(path)
        }
        return found
    }

    @Test func everyFileALoaderOpensIsMaskedInEverySandbox() throws {
        guard Launch.anyAvailable(), Terraform.available() else { return }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/strace") else {
            Issue.record("strace is not installed (apt-get install strace; scripts/test does): the credential file test records what the loaders open with it")
            return
        }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let readPath = scene.root + "/readonly"
        let variables = try Self.plant(scene, readPath: readPath)
        let environment = scene.environment.merging(variables) { $1 }

        // The real loaders, once each, traced: what they open.
        let trace = scene.root + "/probe.trace"
        let probe = runProcess("/usr/bin/strace", ["-f", "-qq", "-e", "trace=open,openat", "-e", "status=successful", "-o", trace,
                                                   Stage.airlock, "doctor", "--credentials", "--probe", "--json"],
                               environment: environment, directory: scene.workspace, timeout: 120)
        #expect(probe.status == 0, "\(probe)")
        let report = (try? JSONSerialization.jsonObject(with: Data(probe.stdout.utf8))) as? [String: Any] ?? [:]
        let outcomes = (report["probe"] as? [[String: Any]]) ?? []
        #expect(outcomes.count >= 7 && outcomes.allSatisfy { $0["ok"] as? Bool == true }, "every loader found its credential: \(outcomes)")
        let listed = Set(((report["files"] as? [[String: Any]]) ?? []).compactMap { $0["path"] as? String })
        let opened = Self.opened((try? String(contentsOfFile: trace, encoding: .utf8)) ?? "", under: [scene.workspace, scene.home, readPath])
        let expected: Set<String> = [scene.workspace + "/aws-credentials", readPath + "/aws-config", readPath + "/kubeconfig",
                                     scene.workspace + "/kube-token", scene.home + "/kube-client.pem", readPath + "/kube-client.key",
                                     scene.workspace + "/gh-config/hosts.yml", scene.home + "/gitconfig", readPath + "/git-credentials",
                                     scene.workspace + "/netrc"]
        #expect(opened.isSuperset(of: expected), "the loaders did not open \(expected.subtracting(opened)) (trace: \(trace))")
        #expect(opened.isSubset(of: listed), "opened but not masked: \(opened.subtracting(listed))")

        // The agent's sandbox, then a command's prepare and apply sandboxes (terraform's file()).
        let paths = opened.sorted()
        var config = "resource \"terraform_data\" \"probe\" { input = \"v1\" }\noutput \"control\" { value = file(\"\(scene.workspace)/public.txt\") }\n"
        for (index, path) in paths.enumerated() {
            config += "output \"file\(index)\" { value = fileexists(\"\(path)\") ? file(\"\(path)\") : \"absent\" }\n"
        }
        scene.write(scene.workspace + "/main.tf", config)
        let profile = scene.egressProfile("filesystem:\n  readonly: [\(readPath)]\n", name: "read-path.yaml")
        var shown = Outcome(status: -1, stdout: "", stderr: "")
        var approval = shown
        let out = scene.run(["/bin/sh", "-c", """
            for f in \(paths.joined(separator: " ")); do echo "== $f"; cat "$f"; done > seen.txt 2>&1
            cat public.txt >> seen.txt
            terraform init -no-color > init.txt 2>&1
            terraform apply -auto-approve -no-color > apply.out 2> apply.err; echo $? > apply.rc
            grep -o 'Proposal [0-9a-f]*' apply.err | cut -d' ' -f2 > id.txt; touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1
            """], options: ["--profile", profile], timeout: 300, extraEnvironment: variables) { _ in
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            shown = runProcess(Stage.airlock, ["show", id, "--state-dir", scene.stateDir], environment: environment, directory: scene.workspace)
            approval = runProcess(Stage.airlock, ["approve", id, "--state-dir", scene.stateDir], environment: environment,
                                  directory: scene.workspace, timeout: 200)
        }
        #expect(out.status == 0, "\(out)")
        let seen = scene.file("seen.txt")
        #expect(seen.contains("PUBLIC-CONTROL"), "\(seen)")
        #expect(scene.file("apply.rc") != "0\n" && scene.file("apply.err").contains("Proposal "), "\(scene.file("apply.err")) \(scene.file("init.txt"))")
        // The prepare sandbox's plan (shown to the human) and the apply sandbox's output both
        // read the control file: the files were looked for where they are.
        #expect(shown.stdout.contains("PUBLIC-CONTROL"), "\(shown)")
        #expect(approval.status == 0 && approval.stdout.contains("PUBLIC-CONTROL"), "\(approval)")
        for marker in Self.markers {
            #expect(!seen.contains(marker), "\(marker) is readable in the agent's sandbox: \(seen)")
            #expect(!shown.stdout.contains(marker), "\(marker) is readable in the prepare sandbox: \(shown.stdout)")
            #expect(!approval.stdout.contains(marker) && !scene.file("wait.txt").contains(marker),
                    "\(marker) is readable in the apply sandbox: \(approval.stdout)")
        }
    }

    /// The broker runs `git credential fill` for git's requests. Run from the workspace (the
    /// launcher's directory), git would read a `.git/config` the agent wrote and run the helper
    /// it names outside the sandbox; a GIT_CONFIG_GLOBAL inside the workspace, created by the
    /// agent after start, would do the same. Neither may run.
    @Test func theAgentCannotChooseAHelperTheBrokerRuns() throws {
        guard Launch.anyAvailable() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let marker = "/tmp/airlock-escape-" + uniqueMarker()
        defer { unlink(marker + "-local"); unlink(marker + "-global") }
        let profile = scene.egressProfile("network:\n  allow: [github.com]\n")
        // github.com pinned to a closed port: the decision (and the credential lookup) happens
        // before the connection fails.
        let human = ["AIRLOCK_EGRESS_RESOLVE": "github.com=127.0.0.1", "GIT_CONFIG_NOSYSTEM": "1", "GITHUB_TOKEN": ""]
        // 1: the repository's own configuration, in the launcher's directory.
        let local = scene.run(["/bin/sh", "-c", """
            export GIT_CONFIG_NOSYSTEM=1  # this machine's /etc/gitconfig sends github.com to a local mirror
            git init -q . && git config credential.helper '!f() { touch \(marker)-local; echo password=x; }; f'
            git ls-remote https://github.com/acme/app.git > ls.out 2>&1; echo $? > ls.rc
            """], options: ["--profile", profile], timeout: 120, extraEnvironment: human)
        #expect(local.status == 0, "\(local)")
        // The request reached the gateway (and failed to connect upstream), so a lookup was due.
        #expect(scene.file("ls.rc") != "0\n" && scene.latestSessionLog.contains("github github.com GET /acme/app.git/info/refs"),
                "\(scene.file("ls.out")) \(scene.latestSessionLog)")
        // 2: the human's GIT_CONFIG_GLOBAL points into the workspace; the agent writes it.
        let global = scene.run(["/bin/sh", "-c", """
            export GIT_CONFIG_NOSYSTEM=1
            rm -rf .git
            printf '[credential]\\n\\thelper = "!f() { touch \(marker)-global; echo password=x; }; f"\\n' > .gitconfig-human
            git ls-remote https://github.com/acme/app.git > ls2.out 2>&1; echo $? > ls2.rc
            """], options: ["--profile", profile], timeout: 120,
            extraEnvironment: human.merging(["GIT_CONFIG_GLOBAL": scene.workspace + "/.gitconfig-human"]) { $1 })
        #expect(global.status == 0, "\(global)")
        #expect(scene.file(".gitconfig-human").contains("helper"), "the agent could not write the file: \(scene.file("ls2.out"))")
        #expect(scene.latestSessionLog.contains("github github.com GET /acme/app.git/info/refs"), "\(scene.latestSessionLog)")
        #expect(access(marker + "-local", F_OK) != 0, "the broker ran a helper from the workspace's .git/config outside the sandbox")
        #expect(access(marker + "-global", F_OK) != 0, "the broker ran a helper from a configuration the agent created")
    }
}
