import Foundation
import Testing

/// Tools as the human's shell finds them (docs/tools.md), end to end: homes where the aws CLI
/// comes from pyenv (a whole Python installation under the home, behind pyenv's shim and
/// version file) or pipx, and terraform from tfenv's wrapper or asdf's shim. Inside
/// `airlock run` the tools work (a read runs, a recursive copy is one proposal prepared by
/// the CLI's dry run, terraform prints the pinned version), nothing else of the home is
/// readable, and a version file the agent writes (so that the human's own shell would now
/// run a decoy terraform) changes neither the proposal's plan nor the approved apply: both
/// run the program pinned at session start, as its digest says.
@Suite struct ToolHomeTests {
    struct Manager: Sendable {
        var name: String
        var launch: Launch
        var layOut: @Sendable (HumanHome) -> Void
        /// The human's PATH, in the order their shell has it.
        var path: @Sendable (HumanHome) -> String
        var awsVia: @Sendable (HumanHome) -> (binary: String, via: String)
        var terraformVia: @Sendable (HumanHome) -> (binary: String, via: String)
        /// The shell command with which the agent selects the decoy for the human's shell.
        var selectDecoy: String
        /// Whether the agent selects it only after proposing the apply (else before: then the
        /// plan is prepared with the decoy selected in the snapshot too).
        var decoyAfterProposal: Bool
        var humanTerraform: @Sendable (HumanHome) -> String
    }

    static let pyenvAndTfenv = Manager(
        name: "pyenv and tfenv", launch: getuid() == 0 ? .root : .unprivileged,
        layOut: { $0.layOutPyenv(); $0.layOutTfenv() },
        path: { "\($0.tfenvRoot)/bin:\($0.pyenvRoot)/shims:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
        awsVia: { ($0.pyenvPrefix + "/bin/aws", "pyenv " + HumanHome.python.version) },
        terraformVia: { ($0.tfenvRoot + "/versions/\(HumanHome.terraformVersion)/terraform", "tfenv " + HumanHome.terraformVersion) },
        selectDecoy: "echo 1.0.0 > .terraform-version", decoyAfterProposal: false, humanTerraform: { $0.tfenvRoot + "/bin/terraform" })

    static let pipxAndAsdf = Manager(
        name: "pipx and asdf", launch: .unprivileged,
        layOut: { $0.layOutPipx(); $0.layOutAsdf() },
        path: { "\($0.home)/.local/bin:\($0.asdfData)/shims:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
        awsVia: { ($0.pipxVenv + "/bin/aws", "pipx") },
        terraformVia: { ($0.asdfData + "/installs/terraform/\(HumanHome.terraformVersion)/bin/terraform", "asdf terraform " + HumanHome.terraformVersion) },
        selectDecoy: "echo 'terraform 1.0.0' > .tool-versions", decoyAfterProposal: true, humanTerraform: { $0.asdfData + "/shims/terraform" })

    @Test(arguments: ["pyenv and tfenv", "pipx and asdf"])
    func toolsRunAsTheShellFindsThemAndStayPinned(_ which: String) throws {
        let manager = which == Self.pyenvAndTfenv.name ? Self.pyenvAndTfenv : Self.pipxAndAsdf
        guard manager.launch.available(), PythonTools.available(), Terraform.available() else { return }
        let scene = Scene(manager.launch)
        defer { scene.remove() }
        let human = HumanHome(scene: scene)
        manager.layOut(human)
        human.plantCanaries()
        scene.chownTree()
        let moto = try Moto()
        _ = moto.aws(["s3", "mb", "s3://uploads"])
        for index in 0..<5 { scene.write(scene.workspace + "/site/page\(index).html", "<p>\(index)</p>\n") }
        scene.write(scene.workspace + "/main.tf", Terraform.dataConfig)
        let path = manager.path(human)
        let humanEnvironment = Moto.keys.merging(["AWS_DEFAULT_REGION": "us-east-1", "PATH": path]) { $1 }.merging(Terraform.environment()) { $1 }

        // The fixture is a working home: from the human's shell the shims run the tools.
        let hostAWS = runProcess("/bin/sh", ["-c", "aws --version"], environment: scene.environment.merging(humanEnvironment) { $1 },
                                 directory: scene.workspace, timeout: 60)
        #expect(hostAWS.stdout.contains("aws-cli/") || hostAWS.stderr.contains("aws-cli/"), "\(hostAWS)")

        let canaries = human.canaryPaths.map { "'\($0)'" }.joined(separator: " ")
        let decoy = "\(manager.selectDecoy)\nterraform version > tf-version-after.txt 2>&1"
        var approvals: [Outcome] = []
        var shown: [String] = []
        let out = scene.run(["/bin/sh", "-c", """
            aws --version > aws-version.txt 2>&1
            aws s3 ls > ls.out 2> ls.err; echo $? > ls.rc
            aws s3 cp --recursive site s3://uploads/site > cp.out 2> cp.err; echo $? > cp.rc
            grep -o 'Proposal [0-9a-f]*' cp.err | cut -d' ' -f2 > cp.id
            terraform version > tf-version.txt 2>&1
            for f in \(canaries); do cat "$f"; done > canaries.txt 2>&1
            \(manager.decoyAfterProposal ? "" : decoy)
            terraform init -no-color > init.txt 2>&1
            terraform apply -auto-approve -no-color > apply.out 2> apply.err; echo $? > apply.rc
            grep -o 'Proposal [0-9a-f]*' apply.err | cut -d' ' -f2 > tf.id
            \(manager.decoyAfterProposal ? decoy : "")
            touch proposed
            airlock wait $(cat cp.id) --timeout 200 > cp.wait 2>&1; echo $? > cp.wait.rc
            airlock wait $(cat tf.id) --timeout 200 > tf.wait 2>&1; echo $? > tf.wait.rc
            """], options: ["--aws-endpoint", moto.url], timeout: 420, extraEnvironment: humanEnvironment) { _ in
            guard scene.waitForFile("proposed", timeout: 300) else { return }
            for name in ["cp.id", "tf.id"] {
                let id = scene.file(name).trimmingCharacters(in: .whitespacesAndNewlines)
                guard !id.isEmpty else { continue }
                shown.append(scene.airlock(["show", id, "--json"], hostKeys: humanEnvironment).stdout)
                // The approver's shell is the human's: its PATH and, in the workspace, the
                // version file the agent wrote, which now selects the decoy.
                approvals.append(scene.airlock(["approve", id, "--reason", "fine"], hostKeys: humanEnvironment, timeout: 240))
            }
        }
        #expect(out.status == 0, "\(manager.name): \(out)")
        let version = HumanHome.terraformVersion

        // The tools work inside.
        #expect(scene.file("aws-version.txt").contains("aws-cli/"), "\(scene.file("aws-version.txt"))")
        #expect(scene.file("ls.rc") == "0\n" && scene.file("ls.out").contains("uploads"), "\(scene.file("ls.err"))")
        #expect(scene.file("tf-version.txt").contains("Terraform v\(version)"), "\(scene.file("tf-version.txt"))")
        #expect(scene.file("tf-version-after.txt").contains("Terraform v\(version)") && !scene.file("tf-version-after.txt").contains("decoy"),
                "\(scene.file("tf-version-after.txt"))")
        // One proposal per command, each prepared in its sandbox by the pinned program.
        #expect(scene.file("cp.rc") == "75\n", "\(scene.file("cp.err"))")
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))\n\(scene.file("init.txt"))")
        let listed = scene.airlock(["proposals", "--all", "--json"]).stdout
        #expect(listed.components(separatedBy: "\"kind\":").count - 1 == 2, "\(listed)")
        let copyShown = shown.first ?? ""
        #expect(copyShown.components(separatedBy: "(dryrun) upload:").count - 1 == 5, "\(copyShown)")
        let (awsBinary, awsVia) = manager.awsVia(human)
        let (terraformBinary, terraformVia) = manager.terraformVia(human)
        #expect(copyShown.contains(awsBinary), "the copy's proposal pins \(awsBinary): \(copyShown.prefix(3000))")
        #expect(shown.dropFirst().first?.contains(terraformBinary) == true, "the apply's proposal pins \(terraformBinary)")
        // Nothing of the home outside the tools' own trees.
        let leaked = HumanHome.canaries.filter { scene.file("canaries.txt").contains($0) }
        #expect(leaked.isEmpty, "\(manager.name): readable inside: \(leaked)")

        // Approved: each ran once, the pinned program, though the human's shell now runs the decoy.
        #expect(approvals.count == 2 && approvals.allSatisfy { $0.status == 0 }, "\(approvals)")
        #expect(scene.file("cp.wait.rc") == "0\n" && scene.file("tf.wait.rc") == "0\n", "\(scene.file("cp.wait"))\n\(scene.file("tf.wait"))")
        let uploaded = moto.aws(["s3", "ls", "s3://uploads/site/"]).stdout
        #expect(uploaded.split(separator: "\n").count == 5, "\(uploaded)")
        let state = scene.file("terraform.tfstate")
        #expect(state.contains("\"terraform_version\": \"\(version)\"") && state.contains("terraform_data"), "\(state.prefix(2000))")
        #expect(!FileManager.default.fileExists(atPath: scene.workspace + "/DECOY-TERRAFORM-RAN"))
        let humanNow = runProcess(manager.humanTerraform(human), ["version"], environment: scene.environment.merging(humanEnvironment) { $1 },
                                  directory: scene.workspace, timeout: 60)
        #expect(humanNow.stdout.contains("decoy"), "the human's shell in the workspace now selects the decoy: \(humanNow)")
        // The session log and `airlock doctor` say what each tool is and how it was found.
        let logs = scene.allSessionLogs
        #expect(logs.contains("tool aws: \(awsBinary) sha256:"), "\(logs.prefix(2000))")
        // Each execution sandbox (the dry run and the copy, the plan and the apply) logs the
        // program it was given, pinned by the session: never what PATH finds when it starts.
        let runs = { (binary: String) in logs.components(separatedBy: "tool \(binary.split(separator: "/").last!): \(binary) sha256:").count - 1 }
        #expect(runs(awsBinary) >= 3 && runs(terraformBinary) >= 3, "aws \(runs(awsBinary)), terraform \(runs(terraformBinary)):\n\(logs.prefix(4000))")
        let doctor = runProcess(Stage.airlock, ["doctor", "--json"], environment: scene.environment.merging(humanEnvironment) { $1 },
                                directory: scene.workspace, timeout: 120)
        let checks = ((try? JSONSerialization.jsonObject(with: Data(doctor.stdout.utf8)) as? [String: Any])?["checks"] as? [[String: Any]]) ?? []
        let detail = { (name: String) in checks.first { $0["name"] as? String == name }?["detail"] as? String ?? "" }
        #expect(detail("tool aws").hasPrefix(awsBinary) && detail("tool aws").contains(awsVia), "\(detail("tool aws")) \(doctor.stderr)")
        // The agent's version file is in the workspace, which doctor reads as the human's shell would.
        #expect(detail("tool terraform").contains("1.0.0"), "doctor in the workspace sees what the human's shell sees now: \(detail("tool terraform"))")
        _ = terraformVia
    }

    /// A version file in the workspace when the session starts is the human's choice, and is
    /// honored; a tool that cannot run inside is named at launch with what to do, and the
    /// session starts without it.
    @Test func aToolThatCannotRunInsideIsNamedAtLaunch() throws {
        guard Launch.anyAvailable() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        // mise's shims are links to mise itself: refused with the way out.
        scene.write(scene.root + "/opt/mise", "\u{7F}ELF stand-in", mode: 0o755)
        try? FileManager.default.createDirectory(atPath: scene.home + "/.local/share/mise/shims", withIntermediateDirectories: true)
        symlink(scene.root + "/opt/mise", scene.home + "/.local/share/mise/shims/kubectl")
        scene.chownTree()
        let out = scene.run(["/bin/sh", "-c", "command -v kubectl || echo no-kubectl-shim"],
                            extraEnvironment: ["PATH": scene.home + "/.local/share/mise/shims:/usr/local/bin:/usr/bin:/bin"])
        #expect(out.status == 0, "\(out)")
        #expect(out.stderr.contains("kubectl is not available inside") && out.stderr.contains("mise activate"), "\(out.stderr)")
        #expect(!out.stdout.contains("/run/airlock/bin/kubectl"), "\(out.stdout)")
    }
}
