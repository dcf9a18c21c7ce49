import Foundation
import Testing

/// Real terraform (and kubectl) inside `airlock run`: reads run at once, a change becomes one
/// proposal with its plan, approval applies exactly that plan.
enum Terraform {
    static let binary = ["/usr/local/bin/terraform", "/usr/bin/terraform"].first { FileManager.default.isExecutableFile(atPath: $0) }
    /// The AWS provider, available offline in a filesystem mirror on this machine.
    static let mirror = "/opt/tf-plugins"
    static var hasAWSProvider: Bool { FileManager.default.fileExists(atPath: mirror + "/registry.terraform.io/hashicorp/aws") }

    static func available() -> Bool {
        if binary != nil { return true }
        let message = "terraform is not installed (looked in /usr/local/bin, /usr/bin): the command gate tests need it"
        Issue.record(Comment(rawValue: message))
        return false
    }

    /// A CLI configuration installing hashicorp providers from the offline mirror only.
    static let mirrorConfig = """
        provider_installation {
          filesystem_mirror {
            path    = "\(mirror)"
            include = ["registry.terraform.io/hashicorp/*"]
          }
          direct { exclude = ["registry.terraform.io/hashicorp/*"] }
        }

        """

    static let dataConfig = """
        resource "terraform_data" "release" {
          input = "v1"
        }
        output "release" { value = terraform_data.release.output }

        """

    /// The launcher's environment for terraform: no update checks, and (when given) a CLI
    /// configuration that installs providers from the offline mirror.
    static func environment(cliConfig: String? = nil) -> [String: String] {
        var variables = ["CHECKPOINT_DISABLE": "1"]
        variables["TF_CLI_CONFIG_FILE"] = cliConfig ?? "/nonexistent"
        return variables
    }
}

extension Scene {
    func state(_ name: String = "terraform.tfstate") -> String { file(name) }

    /// `terraform apply` inside the sandbox; then the agent waits for the decision.
    func terraformAgent(_ script: String, options: [String] = [], environment: [String: String] = Terraform.environment(),
                        whileRunning: ((Int32) -> Void)? = nil) -> Outcome {
        run(["/bin/sh", "-c", script], options: options, timeout: 300, extraEnvironment: environment, whileRunning: whileRunning)
    }

    func waitForFile(_ name: String, timeout: Double = 120) -> Bool {
        BrokerProcess.waitForFile(workspace + "/" + name, timeout: timeout)
    }
}

@Suite struct CommandGateTests {
    static let applyScript = """
        terraform init -no-color > init.txt 2>&1; echo $? > init.rc
        terraform validate -no-color > validate.txt 2>&1; echo $? > validate.rc
        terraform plan -no-color > plan.txt 2>&1; echo $? > plan.rc
        terraform apply -auto-approve > apply.out 2> apply.err; echo $? > apply.rc
        grep -o 'Proposal [0-9a-f]*' apply.err | cut -d' ' -f2 > id.txt; touch proposed
        airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
        """

    func setUp(_ launch: Launch? = nil) -> Scene? {
        if let launch {
            guard launch.available(), Terraform.available() else { return nil }
        } else {
            guard Launch.anyAvailable(), Terraform.available() else { return nil }
        }
        let scene = Scene(launch ?? (getuid() == 0 ? .root : .unprivileged))
        scene.write(scene.workspace + "/main.tf", Terraform.dataConfig)
        return scene
    }

    @Test(arguments: Launch.allCases)
    func applyBecomesOneProposalWithItsPlanAndRunsOnceApproved(_ launch: Launch) throws {
        guard let scene = setUp(launch) else { return }
        var shown = Outcome(status: -1, stdout: "", stderr: "")
        var approval = shown
        var stateWhilePending = "(not looked at)"
        let out = scene.terraformAgent(Self.applyScript) { _ in
            guard scene.waitForFile("proposed") else { return }
            stateWhilePending = scene.state()
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            shown = scene.airlock(["show", id])
            approval = scene.airlock(["approve", id, "--reason", "release v1"])
        }
        #expect(out.status == 0, "\(out)")
        // Reads need no approval.
        for step in ["init", "validate", "plan"] {
            #expect(scene.file("\(step).rc") == "0\n", "\(step): \(scene.file("\(step).txt"))")
        }
        #expect(scene.file("plan.txt").contains("terraform_data.release will be created"))
        // The change: exit 75, one proposal naming how a human approves it.
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))")
        #expect(scene.file("apply.err").contains("airlock approve"), "\(scene.file("apply.err"))")
        #expect(!stateWhilePending.contains("terraform_data"), "applied before approval: \(stateWhilePending)")
        // The human sees the plan in full.
        #expect(shown.status == 0, "\(shown)")
        #expect(shown.stdout.contains("# terraform_data.release will be created"), "\(shown.stdout)")
        #expect(shown.stdout.contains("Plan: 1 to add, 0 to change, 0 to destroy."), "\(shown.stdout)")
        // …and the snapshot the run will read, file by file.
        #expect(shown.stdout.contains("snapshot:  ") && shown.stdout.contains("    main.tf  "), "\(shown.stdout)")
        // Approved: applied from the plan; the agent's wait prints terraform's output.
        #expect(approval.status == 0, "\(approval)")
        #expect(approval.stdout.contains("Apply complete! Resources: 1 added"), "\(approval)")
        #expect(scene.state().contains("\"terraform_data\""), "\(scene.state())")
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        #expect(scene.file("wait.txt").contains("Apply complete! Resources: 1 added"), "\(scene.file("wait.txt"))")
        // One proposal, of kind command; approving again runs nothing.
        let listed = scene.airlock(["proposals", "--all", "--json"])
        #expect(listed.stdout.contains(#""kind":"command""#), "\(listed)")
        let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
        let again = scene.airlock(["approve", id])
        #expect(again.status != 0 && again.stderr.contains("already approved"), "\(again)")
        #expect(scene.airlock(["audit", "verify"]).status == 0)
    }

    @Test func denyLeavesTheStateUntouched() throws {
        guard let scene = setUp() else { return }
        var denial = Outcome(status: -1, stdout: "", stderr: "")
        let out = scene.terraformAgent(Self.applyScript) { _ in
            guard scene.waitForFile("proposed") else { return }
            denial = scene.airlock(["deny", scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines), "--reason", "not today"])
        }
        #expect(out.status == 0, "\(out)")
        #expect(denial.status == 0, "\(denial)")
        #expect(!scene.state().contains("terraform_data"), "\(scene.state())")
        #expect(scene.file("wait.rc") == "1\n")
        #expect(scene.file("wait.txt").contains("denied") && scene.file("wait.txt").contains("not today"), "\(scene.file("wait.txt"))")
    }

    /// Between proposal and approval the agent can edit the live workspace all it likes: the
    /// approved run reads the snapshot, so it applies what was planned (v1) and leaves the
    /// edits alone. Whoever changes the proposal's own artifact (the plan or the snapshot, in
    /// the state directory) makes the execution refuse, and nothing is applied.
    @Test(arguments: ["edit main.tf", "add extra.tf", "write a state file", "tamper with the plan", "tamper with the snapshot"])
    func changesAfterTheProposal(_ change: String) throws {
        guard let scene = setUp() else { return }
        var approval = Outcome(status: -1, stdout: "", stderr: "")
        let out = scene.terraformAgent(Self.applyScript) { _ in
            guard scene.waitForFile("proposed") else { return }
            let artifacts = scene.stateDir + "/artifacts"
            let key = (try? FileManager.default.contentsOfDirectory(atPath: artifacts))?.first ?? "?"
            switch change {
            case "edit main.tf":
                scene.write(scene.workspace + "/main.tf", Terraform.dataConfig.replacingOccurrences(of: "v1", with: "v2"))
            case "add extra.tf":
                scene.write(scene.workspace + "/extra.tf", "resource \"terraform_data\" \"sneaky\" {}\n")
            case "write a state file":
                scene.write(scene.workspace + "/terraform.tfstate", "{\"agent\": \"wrote this\"}\n")
            case "tamper with the plan":
                let plan = artifacts + "/" + key + "/plan/plan.tfplan"
                var bytes = FileManager.default.contents(atPath: plan) ?? Data()
                if !bytes.isEmpty { bytes[bytes.count / 2] ^= 0xFF }
                _ = FileManager.default.createFile(atPath: plan, contents: bytes)
            default:
                _ = FileManager.default.createFile(atPath: artifacts + "/" + key + "/snapshot/main.tf",
                                               contents: Data(Terraform.dataConfig.replacingOccurrences(of: "v1", with: "v3").utf8))
            }
            approval = scene.airlock(["approve", scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)])
        }
        #expect(out.status == 0, "\(out)")
        if change.hasPrefix("tamper") {
            #expect(approval.status == 1, "\(approval)")
            #expect(approval.stdout.contains("changed since the proposal") && approval.stdout.contains("nothing was applied"), "\(approval)")
            #expect(approval.stdout.contains(change == "tamper with the plan" ? "plan.tfplan" : "main.tf"), "\(approval)")
            #expect(!scene.state().contains("terraform_data"), "applied anyway: \(scene.state())")
            #expect(scene.file("wait.rc") == "1\n", "\(scene.file("wait.txt"))")
        } else if change == "write a state file" {
            // The new state is not dropped, and the workspace's own is not overwritten: the
            // result says where the new one is.
            #expect(approval.status == 0, "\(approval)")
            #expect(scene.state() == "{\"agent\": \"wrote this\"}\n", "\(scene.state())")
            #expect(approval.stdout.contains("terraform.tfstate in the workspace changed since the proposal, so it was left alone"), "\(approval)")
            let saved = approval.stdout.components(separatedBy: "the new one is kept at ").dropFirst().first?.split(separator: ";").first.map(String.init) ?? ""
            #expect(((try? String(contentsOfFile: saved, encoding: .utf8)) ?? "").contains("terraform_data"), "\(saved)")
        } else {
            #expect(approval.status == 0, "\(approval)")
            #expect(approval.stdout.contains("Resources: 1 added"), "\(approval)")
            #expect(scene.state().contains("\"input\"") && scene.state().contains("\"v1\""), "\(scene.state())")
            #expect(!scene.state().contains("v2") && !scene.state().contains("sneaky"), "\(scene.state())")
            #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        }
    }

    /// Nothing to change: no proposal, and the agent hears so.
    @Test func aPlanWithoutChangesIsNotProposed() throws {
        guard let scene = setUp() else { return }
        scene.write(scene.workspace + "/main.tf", "locals { unused = 1 }\n")
        let out = scene.terraformAgent("terraform apply -auto-approve > apply.out 2> apply.err; echo $? > apply.rc")
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("apply.rc") == "0\n", "\(scene.file("apply.err"))")
        #expect(scene.file("apply.err").contains("no changes; nothing to approve"), "\(scene.file("apply.err"))")
        let listed = scene.airlock(["proposals", "--all", "--json"])
        #expect(!listed.stdout.contains("\"kind\""), "\(listed)")
        let artifacts = (try? FileManager.default.contentsOfDirectory(atPath: scene.stateDir + "/artifacts")) ?? []
        #expect(artifacts.isEmpty, "left behind: \(artifacts)")
    }

    /// The shim is also at the tool's usual path, and a refused subcommand exits 77.
    @Test func theUsualPathLeadsToTheShimAndRefusalsExit77() throws {
        guard let scene = setUp() else { return }
        let binary = try #require(Terraform.binary)
        let out = scene.terraformAgent("""
            \(binary) version > version.txt; echo $? > version.rc
            \(binary) apply -auto-approve > apply.out 2> apply.err; echo $? > apply.rc
            terraform login > login.out 2> login.err; echo $? > login.rc
            terraform init -plugin-dir=/tmp/evil > plugin.out 2> plugin.err; echo $? > plugin.rc
            """)
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("version.rc") == "0\n" && scene.file("version.txt").contains("Terraform v"), "\(scene.file("version.txt"))")
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))")
        #expect(scene.file("login.rc") == "77\n" && scene.file("login.err").contains("belong to the host"), "\(scene.file("login.err"))")
        #expect(scene.file("plugin.rc") == "77\n" && scene.file("plugin.err").contains("-plugin-dir"), "\(scene.file("plugin.err"))")
    }

    /// An AWS resource against moto: the plan is made through the broker (reads pass), the
    /// approved apply's calls go through, and while it runs the agent's own AWS change is
    /// still a proposal.
    @Test func approvedExecutionAdmitsOnlyItsOwnMutations() throws {
        guard let scene = setUp(), PythonTools.available() else { return }
        guard require(Terraform.hasAWSProvider, "the AWS provider is not in \(Terraform.mirror) (an offline copy this machine image provides): the terraform-on-moto test needs it") else { return }
        let moto = try Moto()
        scene.write(scene.root + "/mirror.tfrc", Terraform.mirrorConfig)
        try FileManager.default.copyItem(atPath: scene.root + "/mirror.tfrc", toPath: scene.workspace + "/.mirror.tfrc")
        scene.write(scene.workspace + "/main.tf", """
            terraform {
              required_providers {
                aws = { source = "hashicorp/aws" }
              }
            }
            provider "aws" { region = "us-east-1" }
            resource "aws_iam_user" "deployer" { name = "deployer" }
            # Holds the execution open long enough for the agent to try something of its own.
            resource "terraform_data" "pause" {
              depends_on = [aws_iam_user.deployer]
              provisioner "local-exec" { command = "sleep 8" }
            }

            """)
        let profile = scene.root + "/terraform-agent.yaml"
        scene.write(profile, "filesystem:\n  readonly: [\(PythonTools.venv)]\nenvironment:\n  set: {TF_CLI_CONFIG_FILE: \(scene.workspace)/.mirror.tfrc}\n")
        var approval = Outcome(status: -1, stdout: "", stderr: "")
        let out = scene.run(["/bin/sh", "-c", """
            export PATH=\(PythonTools.venv)/bin:$PATH
            terraform init -no-color > init.txt 2>&1; echo $? > init.rc
            terraform apply -auto-approve > apply.out 2> apply.err; echo $? > apply.rc
            grep -o 'Proposal [0-9a-f]*' apply.err | cut -d' ' -f2 > id.txt; touch proposed
            for i in $(seq 600); do aws iam get-user --user-name deployer > /dev/null 2>&1 && break; sleep 0.2; done
            aws iam create-user --user-name sneaky > sneaky.out 2> sneaky.err; echo $? > sneaky.rc
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """], options: ["--profile", profile, "--aws-endpoint", moto.url], timeout: 300,
            extraEnvironment: Moto.keys.merging(["AWS_DEFAULT_REGION": "us-east-1"]) { $1 }
                .merging(Terraform.environment(cliConfig: scene.root + "/mirror.tfrc")) { $1 }) { _ in
            guard scene.waitForFile("proposed") else { return }
            #expect(!moto.aws(["iam", "list-users"]).stdout.contains("deployer"), "created before approval")
            // The plan, and the command its provisioner will run, are what the human reviews.
            let shown = scene.airlock(["show", scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)])
            #expect(shown.stdout.contains("# aws_iam_user.deployer will be created"), "\(shown)")
            #expect(shown.stdout.contains("terraform_data.pause: local-exec: sleep 8"), "\(shown)")
            // The providers the plan was made with, from the mirror the human's configuration names.
            #expect(shown.stdout.contains("provider:  registry.terraform.io/hashicorp/aws"), "\(shown)")
            approval = runProcess(Stage.airlock, ["approve", scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines),
                                                  "--state-dir", scene.stateDir],
                                  environment: scene.environment.merging(Moto.keys) { $1 }
                                    .merging(Terraform.environment(cliConfig: scene.root + "/mirror.tfrc")) { $1 },
                                  directory: scene.workspace, timeout: 240)
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("init.rc") == "0\n", "\(scene.file("init.txt"))")
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))")
        #expect(approval.status == 0, "\(approval)")
        let users = moto.aws(["iam", "list-users"]).stdout
        #expect(users.contains("deployer"), "\(users)")
        // The agent's own change during the execution: a proposal, not executed.
        #expect(scene.file("sneaky.rc") != "0\n" && scene.file("sneaky.err").contains("AirlockProposalPending"), "\(scene.file("sneaky.err"))")
        #expect(!users.contains("sneaky"), "\(users)")
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        // The execution's call is audited under the proposal.
        let audit = scene.airlock(["audit", "verify"])
        #expect(audit.status == 0, "\(audit)")
    }
}

/// A stand-in Kubernetes API server (Tests/Support/kube_standin.py): no real API server can
/// run here, so this one answers kubectl's discovery and ConfigMap requests over TLS and
/// records each request. kubectl itself is real.
final class KubeStandIn: @unchecked Sendable {
    let process: Process
    let port: Int
    let log: String
    let kubeconfig: String
    let caData: String

    /// `environment`: the stand-in's options (KUBE_STANDIN_SEED, KUBE_STANDIN_REQUIRE_TOKEN_FOR_READS, KUBE_STANDIN_BIND).
    init(directory: String, environment: [String: String] = [:]) throws {
        let fixtures = runProcess("/usr/bin/python3", [Stage.repoRoot + "/Tests/Support/egress_server.py", "fixtures", directory + "/tls"],
                                  environment: ["PATH": "/usr/bin:/bin"], directory: directory, timeout: 60)
        guard fixtures.status == 0 else { throw TestUpstreamError("fixtures: \(fixtures)") }
        log = directory + "/kube-requests.jsonl"
        (process, port) = try launchListeningHelper("kube_standin.py", [log, directory + "/tls/server.pem", directory + "/tls/server.key"],
                                                    environment: ["PATH": "/usr/bin:/bin"].merging(environment) { $1 })
        caData = (FileManager.default.contents(atPath: directory + "/tls/ca.pem") ?? Data()).base64EncodedString()
        kubeconfig = directory + "/kubeconfig"
        _ = FileManager.default.createFile(atPath: kubeconfig, contents: Data(Self.config(port: port, caData: caData, token: "host-secret-token").utf8))
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    static func config(port: Int, caData: String, token: String) -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: standin
          cluster:
            server: https://kube.test:\(port)
            certificate-authority-data: \(caData)
        contexts:
        - name: standin
          context: {cluster: standin, user: person}
        current-context: standin
        users:
        - name: person
          user: {token: \(token)}

        """
    }

    /// The requests it received: method, path, authorization, body.
    var requests: [[String: String]] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
    }
}

@Suite struct KubectlGateTests {
    @Test func createIsProposedWithItsFilePinnedAndAppliedWithTheHumansCredentials() throws {
        guard Launch.anyAvailable() else { return }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl") || FileManager.default.isExecutableFile(atPath: "/usr/local/bin/kubectl") else {
            let message = "kubectl is not installed: the kubectl gate test needs it"
            Issue.record(Comment(rawValue: message))
            return
        }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let kube = try KubeStandIn(directory: scene.root)
        scene.write(scene.workspace + "/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  mode: blue\n")
        let profile = scene.egressProfile("network:\n  allow: [kube.test:\(kube.port)]\n  allow_addresses: [127.0.0.1/32]\n")
        var shown = Outcome(status: -1, stdout: "", stderr: "")
        var approval = shown
        var requestsBeforeApproval: [[String: String]] = []
        var applyShown = shown
        let out = scene.run(["/bin/sh", "-c", """
            cat "$KUBECONFIG" > kubeconfig.seen; env > env.seen
            kubectl get configmaps > get.out 2> get.err; echo $? > get.rc
            kubectl create -f cm.yaml --validate=false > create.out 2> create.err; echo $? > create.rc
            kubectl apply -f cm.yaml > apply.out 2> apply.err; echo $? > apply.rc
            grep -o 'Proposal [0-9a-f]*' apply.err | cut -d' ' -f2 > apply-id.txt
            kubectl exec -it web-0 -- sh > exec.out 2> exec.err; echo $? > exec.rc
            kubectl --kubeconfig=/tmp/other get pods > redirect.out 2> redirect.err; echo $? > redirect.rc
            grep -o 'Proposal [0-9a-f]*' create.err | cut -d' ' -f2 > id.txt; touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """], options: ["--profile", profile], timeout: 240,
            extraEnvironment: ["KUBECONFIG": kube.kubeconfig, "AIRLOCK_EGRESS_RESOLVE": "kube.test=127.0.0.1"]) { _ in
            guard scene.waitForFile("proposed") else { return }
            requestsBeforeApproval = kube.requests
            // Edited after the proposal: the approved run still creates what was proposed.
            scene.write(scene.workspace + "/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  mode: red\n")
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            shown = scene.airlock(["show", id])
            applyShown = scene.airlock(["show", scene.file("apply-id.txt").trimmingCharacters(in: .whitespacesAndNewlines)])
            applyShown = scene.airlock(["show", scene.file("apply-id.txt").trimmingCharacters(in: .whitespacesAndNewlines)])
            approval = runProcess(Stage.airlock, ["approve", id, "--state-dir", scene.stateDir],
                                  environment: scene.environment.merging(["KUBECONFIG": kube.kubeconfig,
                                                                          "AIRLOCK_EGRESS_RESOLVE": "kube.test=127.0.0.1"]) { $1 },
                                  directory: scene.workspace, timeout: 120)
        }
        #expect(out.status == 0, "\(out)")
        // A read ran at once, in the sandbox, through the broker's Kubernetes endpoint, which
        // added the human's token; the sandbox never held it (docs/kubernetes.md).
        #expect(scene.file("get.rc") == "0\n", "\(scene.file("get.err"))")
        #expect(requestsBeforeApproval.contains { $0["method"] == "GET" && $0["path"]?.hasPrefix("/api/v1/namespaces/default/configmaps") == true })
        #expect(requestsBeforeApproval.allSatisfy { $0["authorization"] == "Bearer host-secret-token" }, "\(requestsBeforeApproval)")
        #expect(!scene.file("kubeconfig.seen").isEmpty && !scene.file("kubeconfig.seen").contains("host-secret-token")
                && !scene.file("env.seen").contains("host-secret-token"), "\(scene.file("kubeconfig.seen"))")
        #expect(!requestsBeforeApproval.contains { $0["method"] == "POST" && !($0["path"] ?? "").contains("dryRun=All") }, "created before approval")
        // The change waited; exec and a redirected kubeconfig were refused.
        #expect(scene.file("create.rc") == "75\n", "\(scene.file("create.err"))")
        #expect(scene.file("exec.rc") == "77\n" && scene.file("exec.err").contains("outside the gate"), "\(scene.file("exec.err"))")
        #expect(scene.file("redirect.rc") == "77\n" && scene.file("redirect.err").contains("--kubeconfig"), "\(scene.file("redirect.err"))")
        // kubectl apply: the preview is kubectl diff (a server-side dry run against the live
        // objects), made on the snapshot; nothing was applied by it.
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))")
        #expect(applyShown.stdout.contains("kubectl diff of the snapshot") && applyShown.stdout.contains("+  mode: blue"), "\(applyShown)")
        #expect(requestsBeforeApproval.contains { $0["method"] == "PATCH" || ($0["method"] == "POST" && ($0["path"] ?? "").contains("dryRun=All")) }
                || requestsBeforeApproval.contains { ($0["path"] ?? "").contains("dryRun=All") }, "\(requestsBeforeApproval)")
        #expect(!requestsBeforeApproval.contains { ($0["method"] == "POST" || $0["method"] == "PATCH") && !($0["path"] ?? "").contains("dryRun=All") },
                "a change reached the server before approval")
        // The human saw the pinned file; approval created exactly it, with their token.
        #expect(shown.stdout.contains("mode: blue") && !shown.stdout.contains("mode: red"), "\(shown)")
        #expect(approval.status == 0, "\(approval)")
        let posts = kube.requests.filter { $0["method"] == "POST" && !($0["path"] ?? "").contains("dryRun=All") }
        #expect(posts.count == 1, "\(posts)")
        #expect(posts.first?["authorization"] == "Bearer host-secret-token")
        #expect(posts.first?["body"]?.contains("\"mode\":\"blue\"") == true, "\(posts)")
        #expect(scene.file("wait.rc") == "0\n" && scene.file("wait.txt").contains("configmap/app-config created"), "\(scene.file("wait.txt"))")
        // The execution sandboxes (the diff preview, the approved create) reached the cluster
        // through the broker's Kubernetes endpoint (their session logs show the approved create
        // decided there), not with a copy of the kubeconfig.
        let logs = (try? FileManager.default.contentsOfDirectory(atPath: scene.stateDir + "/sessions"))?
            .compactMap { try? String(contentsOfFile: scene.stateDir + "/sessions/" + $0, encoding: .utf8) }.joined() ?? ""
        #expect(logs.contains("kubernetes POST /api/v1/namespaces/default/configmaps?fieldManager=kubectl-create"), "\(logs.suffix(3000))")
    }
}

/// A stand-in GitHub Enterprise API (Tests/Support/github_standin.py; the real GitHub is not
/// reachable from here) on 127.0.0.3:443 (another test has 127.0.0.2): gh talks to
/// https://HOST/api/v3/, port 443 only, so this test runs as root. gh itself is real.
@Suite struct GitHubCLIGateTests {
    @Test func apiPostIsProposedAndRunsWithTheHumansToken() throws {
        guard Launch.root.available() else { return }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gh") else {
            let message = "gh is not installed (apt-get install gh; scripts/test does): the gh gate test needs it"
            Issue.record(Comment(rawValue: message))
            return
        }
        let scene = Scene(.root)
        let fixtures = runProcess("/usr/bin/python3", [Stage.repoRoot + "/Tests/Support/egress_server.py", "fixtures", scene.root + "/tls"],
                                  environment: ["PATH": "/usr/bin:/bin"], directory: scene.root, timeout: 60)
        try #require(fixtures.status == 0, "\(fixtures)")
        let log = scene.root + "/github-requests.jsonl"
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = [Stage.repoRoot + "/Tests/Support/github_standin.py", log, scene.root + "/tls/server.pem",
                            scene.root + "/tls/server.key", "127.0.0.3:443"]
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        guard !output.fileHandleForReading.availableData.isEmpty else {
            Issue.record("cannot stand in for a GitHub host on 127.0.0.3:443")
            return
        }
        func requests() -> [[String: String]] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
            }
        }
        try FileManager.default.copyItem(atPath: scene.root + "/tls/ca.pem", toPath: scene.workspace + "/ca.pem")
        scene.chownTree()
        let profile = scene.egressProfile("network:\n  allow: [gh.test]\n  allow_addresses: [127.0.0.3/32]\n")
        let human = ["GH_HOST": "gh.test", "GH_ENTERPRISE_TOKEN": "host-github-token", "SSL_CERT_FILE": scene.root + "/tls/ca.pem",
                     "AIRLOCK_EGRESS_RESOLVE": "gh.test=127.0.0.3"]
        var approval = Outcome(status: -1, stdout: "", stderr: "")
        var beforeApproval: [[String: String]] = []
        let out = scene.run(["/bin/sh", "-c", """
            env > env.seen
            gh api repos/o/r > get.out 2> get.err; echo $? > get.rc
            gh api -X POST repos/o/r/issues -f title=hello > post.out 2> post.err; echo $? > post.rc
            gh auth token > token.out 2> token.err; echo $? > token.rc
            gh api --hostname evil.example repos/o/r > host.out 2> host.err; echo $? > host.rc
            grep -o 'Proposal [0-9a-f]*' post.err | cut -d' ' -f2 > id.txt; touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """], options: ["--profile", profile], timeout: 240, extraEnvironment: human) { _ in
            guard scene.waitForFile("proposed") else { return }
            beforeApproval = requests()
            approval = runProcess(Stage.airlock, ["approve", scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines),
                                                  "--state-dir", scene.stateDir],
                                  environment: scene.environment.merging(human) { $1 }, directory: scene.workspace, timeout: 120)
        }
        #expect(out.status == 0, "\(out)")
        // The read ran in the sandbox; the broker's GitHub gateway (gh.test is the human's
        // GH_HOST) swapped the session's token for the human's, which the sandbox never held.
        #expect(scene.file("get.rc") == "0\n" && scene.file("get.out").contains("\"full_name\""), "\(scene.file("get.err"))")
        #expect(!beforeApproval.isEmpty && beforeApproval.allSatisfy { $0["authorization"] == "token host-github-token" }, "\(beforeApproval)")
        #expect(scene.file("env.seen").contains("GH_HOST=gh.test") && !scene.file("env.seen").contains("host-github-token"))
        #expect(!beforeApproval.contains { $0["method"] == "POST" }, "posted before approval")
        #expect(scene.file("post.rc") == "75\n", "\(scene.file("post.err"))")
        #expect(scene.file("token.rc") == "77\n", "\(scene.file("token.err"))")
        #expect(scene.file("host.rc") == "77\n" && scene.file("host.err").contains("--hostname"), "\(scene.file("host.err"))")
        // Approved: sent once, with the human's token; the agent's wait shows GitHub's answer.
        #expect(approval.status == 0, "\(approval)")
        let posts = requests().filter { $0["method"] == "POST" }
        #expect(posts.count == 1 && posts.first?["authorization"] == "token host-github-token", "\(posts)")
        #expect(posts.first?["body"] == #"{"title":"hello"}"#, "\(posts)")
        #expect(scene.file("wait.rc") == "0\n" && scene.file("wait.txt").contains("\"number\""), "\(scene.file("wait.txt"))")
        // The approved gh ran with the session's token; the GitHub gateway added the human's.
        let logs = (try? FileManager.default.contentsOfDirectory(atPath: scene.stateDir + "/sessions"))?
            .compactMap { try? String(contentsOfFile: scene.stateDir + "/sessions/" + $0, encoding: .utf8) }.joined() ?? ""
        #expect(logs.contains("github github:POST /repos/o/r/issues: sent as part of approved proposal"), "\(logs.suffix(3000))")
    }
}
