import Foundation
import Testing

/// The aws CLI's multi-call commands, intercepted like terraform (profiles/tools/aws.yaml):
/// `aws s3 sync` of many files, `cp --recursive`, `rm --recursive`, `mv` and `cloudformation
/// deploy` are one proposal each, previewed by the CLI's own dry run on the workspace snapshot
/// and, approved, run on that snapshot. Before this, a recursive copy of 50 files was 50
/// proposals and `cloudformation deploy` stopped at its first call.
@Suite struct AWSCommandTests {
    func setUp() throws -> (Scene, Moto)? {
        guard Launch.anyAvailable(), PythonTools.available() else { return nil }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        return (scene, try Moto())
    }

    /// The launcher finds the aws CLI on its PATH (the test venv), as a pip install would be.
    func environment() -> [String: String] {
        Moto.keys.merging(["AWS_DEFAULT_REGION": "us-east-1", "PATH": PythonTools.venv + "/bin:/usr/local/bin:/usr/bin:/bin"]) { $1 }
    }

    @Test func multiCallCommandsAreOneProposalEach() throws {
        guard let (scene, moto) = try setUp() else { return }
        _ = moto.aws(["s3", "mb", "s3://site"])
        for index in 0..<40 { scene.write(scene.workspace + "/site/page\(index).html", "<p>page \(index)</p>\n") }
        for index in 0..<5 { scene.write(scene.root + "/old\(index).txt", "old\n"); _ = moto.aws(["s3", "cp", scene.root + "/old\(index).txt", "s3://site/old/\(index).txt"]) }
        scene.write(scene.workspace + "/stack.json", #"{"Resources":{"Q":{"Type":"AWS::SQS::Queue","Properties":{"QueueName":"app-q"}}}}"#)
        var shown = Outcome(status: -1, stdout: "", stderr: "")
        var approvals: [String: Outcome] = [:]
        let out = scene.agent("""
            aws s3 sync ./site s3://site/pages > sync.out 2> sync.err; echo $? > sync.rc
            grep -o 'Proposal [0-9a-f]*' sync.err | cut -d' ' -f2 > sync.id
            aws s3 rm --recursive s3://site/old > rm.out 2> rm.err; echo $? > rm.rc
            grep -o 'Proposal [0-9a-f]*' rm.err | cut -d' ' -f2 > rm.id
            aws cloudformation deploy --stack-name app --template-file stack.json > deploy.out 2> deploy.err; echo $? > deploy.rc
            grep -o 'Proposal [0-9a-f]*' deploy.err | cut -d' ' -f2 > deploy.id
            aws s3 cp --recursive s3://site/old ./downloaded > down.out 2> down.err; echo $? > down.rc
            echo '<p>changed after the proposal</p>' > site/page0.html
            touch proposed
            for step in sync rm deploy; do airlock wait $(cat $step.id) --timeout 200 > $step.wait 2>&1; echo $? > $step.wait.rc; done
            """, moto: moto, hostKeys: environment(), timeout: 400) { _ in
            guard scene.waitForFile("proposed", timeout: 300) else { return }
            let sync = scene.file("sync.id").trimmingCharacters(in: .whitespacesAndNewlines)
            shown = scene.airlock(["show", sync])
            for step in ["sync", "rm", "deploy"] {
                let id = scene.file("\(step).id").trimmingCharacters(in: .whitespacesAndNewlines)
                approvals[step] = runProcess(Stage.airlock, ["approve", id, "--state-dir", scene.stateDir],
                                             environment: scene.environment.merging(environment()) { $1 }, directory: scene.workspace, timeout: 240)
            }
        }
        #expect(out.status == 0, "\(out)")
        // One proposal each, told to the agent (exit 75); nothing changed before approval.
        for step in ["sync", "rm", "deploy"] {
            #expect(scene.file("\(step).rc") == "75\n", "\(step): \(scene.file("\(step).err"))")
        }
        let listed = scene.airlock(["proposals", "--all", "--json"]).stdout
        let count = listed.components(separatedBy: "\"kind\":").count - 1
        #expect(count == 3, "\(count) proposals: \(listed)")
        // The dry run is the preview: every object the sync will upload.
        #expect(shown.stdout.components(separatedBy: "(dryrun) upload:").count - 1 == 40, "\(shown.stdout)")
        #expect(shown.stdout.contains("aws s3 sync in . (40 operations)"), "\(shown.stdout)")
        // A download is a read: it ran at once.
        #expect(scene.file("down.rc") == "0\n" && FileManager.default.fileExists(atPath: scene.workspace + "/downloaded/3.txt"), "\(scene.file("down.err"))")
        // Approved: each ran once, on the snapshot (page0 as it was proposed).
        for (step, approval) in approvals {
            #expect(approval.status == 0, "\(step): \(approval)")
            #expect(scene.file("\(step).wait.rc") == "0\n", "\(step): \(scene.file("\(step).wait"))")
        }
        let uploaded = moto.aws(["s3", "ls", "s3://site/pages/"]).stdout
        #expect(uploaded.split(separator: "\n").count == 40, "\(uploaded)")
        scene.write(scene.root + "/page0.check", "")
        _ = moto.aws(["s3", "cp", "s3://site/pages/page0.html", scene.root + "/page0.check"])
        #expect((try? String(contentsOfFile: scene.root + "/page0.check", encoding: .utf8)) == "<p>page 0</p>\n")
        #expect(!moto.aws(["s3", "ls", "s3://site/old/"]).stdout.contains(".txt"))
        let stacks = moto.aws(["cloudformation", "describe-stacks", "--stack-name", "app", "--query", "Stacks[0].StackStatus", "--output", "text"])
        #expect(stacks.stdout.contains("COMPLETE"), "\(stacks)")
        // The execution's calls are audited under their proposals.
        #expect(scene.airlock(["audit", "verify"]).status == 0)
    }
}

extension AWSCommandTests {
    /// An approved run executes the tool's binary and its virtual environment with real AWS
    /// rights: an aws CLI installed inside the workspace (which the agent writes) could be
    /// changed after the human looked, so such an install is never used to prepare or run.
    @Test func anAWSCLIInsideTheWorkspaceIsNotExecuted() throws {
        guard let (scene, moto) = try setUp() else { return }
        let venv = scene.workspace + "/venv"
        let made = runProcess("/usr/bin/python3", ["-m", "venv", "--without-pip", venv], environment: ["PATH": "/usr/bin:/bin"], directory: scene.root, timeout: 60)
        #expect(made.status == 0, "\(made)")
        scene.write(venv + "/bin/aws", "#!\(venv)/bin/python3\nopen('\(scene.workspace)/ran', 'w').write('ran')\n")
        chmod(venv + "/bin/aws", 0o755)
        scene.write(scene.workspace + "/site/index.html", "<p>hi</p>\n")
        let out = scene.agent("""
            export PATH=\(venv)/bin:$PATH
            aws s3 sync ./site s3://site > sync.out 2> sync.err; echo $? > sync.rc
            """, moto: moto, hostKeys: Moto.keys.merging(["PATH": venv + "/bin:/usr/bin:/bin"]) { $1 })
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("sync.rc") != "0\n" && scene.file("sync.rc") != "75\n", "\(scene.file("sync.err"))")
        #expect(scene.file("sync.err").contains("inside the workspace, where the agent can write"), "\(scene.file("sync.err"))")
        #expect(!FileManager.default.fileExists(atPath: scene.workspace + "/ran"))
        #expect(!scene.airlock(["proposals", "--all", "--json"]).stdout.contains("\"kind\":"))
    }
}
