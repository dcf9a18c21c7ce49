import Foundation
import Testing

/// The gate, attacked as an agent would (docs/gate.md, "What an approval trusts"): every test
/// here is an attempt to get something done that no human approved, or to read what the
/// agent must not see, end to end with real terraform and moto checking signatures. Each
/// asserts what moto holds afterwards (its whole state) and that no planted secret reached
/// anything the agent can read.
@Suite struct GateBypassTests {
    static let planted = ["PLANTED-AWS-SECRET", "PLANTED-SSH-KEY", "PLANTED-KUBE", "PLANTED-STATE", "PLANTED-ENV-SECRET",
                          "PLANTED-SSM-SECRET", "PLANTED-HOST-FILE", "PLANTED-APPROVER"]

    func setUp() throws -> (Scene, CheckedMoto)? {
        guard Launch.anyAvailable(), PythonTools.available(), Terraform.available() else { return nil }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        scene.plantCredentials()
        return (scene, try CheckedMoto())
    }

    func expectNoSecret(_ text: String, _ moto: CheckedMoto, _ context: String) {
        for secret in Self.planted + [moto.keys["AWS_SECRET_ACCESS_KEY"]!] where text.contains(secret) {
            Issue.record("\(context): the agent could read \(secret.hasPrefix("PLANTED") ? secret : "the broker's real AWS secret")")
        }
    }

    /// The launcher's (and approver's) environment: real keys for moto, terraform's settings.
    func human(_ moto: CheckedMoto, _ extra: [String: String] = [:]) -> [String: String] {
        moto.keys.merging(["AWS_DEFAULT_REGION": "us-east-1"]) { $1 }.merging(Terraform.environment()) { $1 }.merging(extra) { $1 }
    }

    func approve(_ scene: Scene, _ moto: CheckedMoto, _ id: String, _ extra: [String: String] = [:]) -> Outcome {
        runProcess(Stage.airlock, ["approve", id, "--state-dir", scene.stateDir], environment: scene.environment.merging(human(moto, extra)) { $1 },
                   directory: scene.workspace, timeout: 240)
    }

    static let proposeAndWait = """
        terraform apply -auto-approve > apply.out 2> apply.err; echo $? > apply.rc
        grep -o 'Proposal [0-9a-f]*' apply.err | cut -d' ' -f2 > id.txt

        """

    // MARK: 1. What runs is exactly the snapshot that was proposed

    /// Reproduction: a `local-exec` runs `sh ./deploy.sh`; after the proposal the agent
    /// rewrites deploy.sh to create an IAM user. The approved run executes the script as it
    /// was proposed (which creates `approved-user`), never the rewrite.
    @Test func aProvisionerScriptRewrittenAfterTheProposalDoesNotRun() throws {
        guard let (scene, moto) = try setUp() else { return }
        scene.support("sigv4_call.py")
        scene.write(scene.workspace + "/main.tf", """
            resource "terraform_data" "deploy" {
              input = "v1"
              provisioner "local-exec" { command = "sh ./deploy.sh" }
            }

            """)
        scene.write(scene.workspace + "/deploy.sh", "python3 ./sigv4_call.py iam CreateUser UserName=approved-user\n")
        var approval = Outcome(status: -1, stdout: "", stderr: "")
        var shown = approval
        var before: NSObject = [:] as NSDictionary
        let out = scene.run(["/bin/sh", "-c", Self.proposeAndWait + """
            echo 'python3 ./sigv4_call.py iam CreateUser UserName=intruder' > deploy.sh; touch rewritten
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """], options: ["--aws-endpoint", moto.url], timeout: 300, extraEnvironment: human(moto)) { _ in
            guard scene.waitForFile("rewritten") else { return }
            before = moto.state()
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            shown = scene.airlock(["show", id, "--file", "deploy.sh"], hostKeys: moto.keys)
            approval = approve(scene, moto, id)
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))")
        // The human sees the script as it will run, not as the agent has it now.
        #expect(shown.stdout == "python3 ./sigv4_call.py iam CreateUser UserName=approved-user\n", "\(shown)")
        #expect(approval.status == 0, "\(approval)")
        #expect(moto.users() == ["broker", "approved-user"], "\(moto.users())")
        // Nothing else changed in moto.
        let after = moto.state() as? NSDictionary ?? [:]
        let earlier = before as? NSDictionary ?? [:]
        #expect(earlier.count > 0 && after["iam"] != nil)
        for case let service as String in earlier.allKeys where service != "iam" {
            #expect(earlier[service] as? NSObject == after[service] as? NSObject, "\(service) changed")
        }
        #expect(scene.file("wait.rc") == "0\n" && scene.file("wait.txt").contains("approved-user"), "\(scene.file("wait.txt"))")
        expectNoSecret(scene.agentVisibleText(out), moto, "after the approved run")
    }

    /// A local module outside the directory terraform runs in (`../modules/m`), its script
    /// rewritten and a resource added to it after the proposal: the run uses the snapshot's.
    @Test func aLocalModuleOutsideTheToolDirectoryIsPinnedToo() throws {
        guard let (scene, moto) = try setUp() else { return }
        scene.support("sigv4_call.py")
        scene.write(scene.workspace + "/infra/main.tf", "module \"m\" { source = \"../modules/m\" }\n")
        scene.write(scene.workspace + "/modules/m/main.tf", """
            resource "terraform_data" "run" {
              provisioner "local-exec" { command = "sh ${path.module}/run.sh" }
            }

            """)
        scene.write(scene.workspace + "/modules/m/run.sh", "python3 \(scene.workspace)/sigv4_call.py iam CreateUser UserName=module-user\n")
        var approval = Outcome(status: -1, stdout: "", stderr: "")
        let out = scene.run(["/bin/sh", "-c", "cd infra && " + Self.proposeAndWait + """
            echo 'python3 \(scene.workspace)/sigv4_call.py iam CreateUser UserName=intruder' > ../modules/m/run.sh
            printf 'resource "terraform_data" "more" {\\n  provisioner "local-exec" { command = "sh ${path.module}/run.sh" }\\n}\\n' > ../modules/m/more.tf
            touch ../rewritten
            airlock wait $(cat id.txt) --timeout 200 > ../wait.txt 2>&1; echo $? > ../wait.rc
            """], options: ["--aws-endpoint", moto.url], timeout: 300, extraEnvironment: human(moto)) { _ in
            guard scene.waitForFile("rewritten") else { return }
            approval = approve(scene, moto, scene.file("infra/id.txt").trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(out.status == 0, "\(out)")
        #expect(approval.status == 0 && approval.stdout.contains("Resources: 1 added"), "\(approval)")
        #expect(moto.users() == ["broker", "module-user"], "\(moto.users())")
        #expect(scene.file("wait.rc") == "0\n", "\(scene.file("wait.txt"))")
        expectNoSecret(scene.agentVisibleText(out), moto, "module")
    }

    // MARK: 2. Execution sandboxes trust nothing the agent can write

    /// Providers the agent planted, in every place terraform would look by itself: a
    /// `dev_overrides` in its home's .terraformrc, the implied mirrors (`~/.terraform.d/plugins`,
    /// the workspace's `terraform.d/plugins`), its own `.terraform` data directory; and a
    /// `dev_overrides` in the human's configuration too. None of them runs: the plan and the
    /// approved apply use the human's mirror, and the human sees which provider.
    @Test func providersTheAgentPlantedNeverRun() throws {
        guard let (scene, moto) = try setUp() else { return }
        guard require(Terraform.hasAWSProvider, "the AWS provider is not in \(Terraform.mirror): this machine image provides it") else { return }
        scene.support("sigv4_call.py")
        let evil = { (user: String) in "#!/bin/sh\npython3 \(scene.workspace)/sigv4_call.py iam CreateUser UserName=\(user)\nexit 1\n" }
        let plugin = "registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64/terraform-provider-aws_v5.100.0_x5"
        scene.write(scene.workspace + "/terraform.d/plugins/" + plugin, evil("evil-workspace-mirror"), mode: 0o755)
        scene.write(scene.workspace + "/.terraform/providers/" + plugin, evil("evil-data-dir"), mode: 0o755)
        scene.write(scene.root + "/mirror.tfrc", """
            provider_installation {
              dev_overrides { "hashicorp/aws" = "\(scene.workspace)/evil-human" }
              filesystem_mirror {
                path    = "\(Terraform.mirror)"
                include = ["registry.terraform.io/hashicorp/*"]
              }
              direct { exclude = ["registry.terraform.io/hashicorp/*"] }
            }

            """)
        scene.write(scene.workspace + "/evil-human/terraform-provider-aws", evil("evil-human-override"), mode: 0o755)
        scene.write(scene.workspace + "/main.tf", """
            terraform {
              required_providers {
                aws = { source = "hashicorp/aws" }
              }
            }
            provider "aws" {
              region = "us-east-1"
              skip_credentials_validation = true
              skip_requesting_account_id  = true
            }
            resource "aws_iam_user" "deployer" { name = "deployer" }

            """)
        let tf = ["TF_CLI_CONFIG_FILE": scene.root + "/mirror.tfrc"]
        var approval = Outcome(status: -1, stdout: "", stderr: "")
        var shown = approval
        let out = scene.run(["/bin/sh", "-c", """
            mkdir -p ~/evil ~/.terraform.d/plugins/$(dirname \(plugin))
            printf '#!/bin/sh\\npython3 \(scene.workspace)/sigv4_call.py iam CreateUser UserName=evil-home-override\\n' > ~/evil/terraform-provider-aws
            cp ~/evil/terraform-provider-aws ~/.terraform.d/plugins/\(plugin)
            chmod +x ~/evil/terraform-provider-aws ~/.terraform.d/plugins/\(plugin)
            printf 'provider_installation {\\n  dev_overrides { "hashicorp/aws" = "/home/agent/evil" }\\n  direct {}\\n}\\n' > ~/.terraformrc

            """ + Self.proposeAndWait + """
            touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """], options: ["--aws-endpoint", moto.url], timeout: 400, extraEnvironment: human(moto, tf)) { _ in
            guard scene.waitForFile("proposed") else { return }
            let id = scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines)
            shown = scene.airlock(["show", id], hostKeys: moto.keys)
            approval = approve(scene, moto, id, tf)
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err"))")
        #expect(shown.stdout.contains("provider:  registry.terraform.io/hashicorp/aws 5.100.0"), "\(shown)")
        #expect(shown.stdout.contains("left out of your terraform CLI configuration: provider_installation.dev_overrides"), "\(shown)")
        #expect(approval.status == 0, "\(approval)")
        #expect(moto.users() == ["broker", "deployer"], "an agent-planted provider ran: \(moto.users())")
        expectNoSecret(scene.agentVisibleText(out), moto, "providers")
    }

    /// What else an approved run reads at run time: its environment, home, PATH and network.
    /// The approver's variables (their AWS secret, a planted token) never reach it, the home is
    /// empty although the agent's is not, PATH has system directories only, and the network
    /// reaches neither the hosts the agent's profile allows nor anything else the tool does
    /// not need. The provisioner's findings come back to the agent, so they must hold nothing.
    @Test func theApprovedRunSeesNoSecretNoAgentHomeAndNoAgentNetwork() throws {
        guard let (scene, moto) = try setUp() else { return }
        let server = try RecordingHTTPServer(directory: scene.root, address: "127.0.0.5")
        let port = server.port
        scene.write(scene.workspace + "/main.tf", """
            resource "terraform_data" "probe" {
              provisioner "local-exec" { command = "sh ./probe.sh" }
            }

            """)
        scene.write(scene.workspace + "/probe.sh", """
            echo "--- env"; env | grep -v '^AWS_ENDPOINT_URL_'
            echo "--- init env"; tr '\\0' '\\n' < /proc/1/environ | grep -v '^AWS_ENDPOINT_URL_' 
            echo "--- home"; ls -A "$HOME" | wc -l
            echo "--- path $PATH"
            echo "--- files"; cat ~/.aws/credentials /root/.aws/credentials \(scene.home)/.aws/credentials \(scene.stateDir)/planted-state 2>&1
            echo "--- network"; curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://allowed.test:\(port)/ ; echo
            echo "--- snapshot"; touch ./written 2>&1 | head -1

            """)
        let profile = scene.egressProfile("network:\n  allow: [allowed.test:\(port)]\n  allow_addresses: [127.0.0.5/32]\nenvironment:\n  path: [~/bin]\n")
        let approver = ["APPROVER_NOTE": "PLANTED-APPROVER", "GITHUB_TOKEN": "PLANTED-APPROVER", "TF_VAR_password": "PLANTED-APPROVER",
                        "AIRLOCK_EGRESS_RESOLVE": "allowed.test=127.0.0.5"]
        var approval = Outcome(status: -1, stdout: "", stderr: "")
        let out = scene.run(["/bin/sh", "-c", """
            mkdir -p ~/bin && echo agent-home > ~/notes
            curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://allowed.test:\(port)/ > agent-network.txt

            """ + Self.proposeAndWait + """
            touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """], options: ["--profile", profile, "--aws-endpoint", moto.url], timeout: 300,
            extraEnvironment: human(moto, ["AIRLOCK_EGRESS_RESOLVE": "allowed.test=127.0.0.5"])) { _ in
            guard scene.waitForFile("proposed") else { return }
            approval = approve(scene, moto, scene.file("id.txt").trimmingCharacters(in: .whitespacesAndNewlines), approver)
        }
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("apply.rc") == "75\n", "\(scene.file("apply.err")) \(out)")
        #expect(approval.status == 0, "\(approval)")
        // terraform prefixes each line of the provisioner's output, `airlock wait` indents it.
        let findings = scene.file("wait.txt").replacingOccurrences(of: "terraform_data.probe (local-exec): ", with: "")
            .split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasPrefix("  ") ? String($0.dropFirst(2)) : String($0) }
            .joined(separator: "\n")
        #expect(findings.contains("--- home") && findings.contains("--- network"), "\(findings)")
        // The agent itself reaches its allowed host; the approved run does not.
        #expect(scene.file("agent-network.txt") == "200", "\(scene.file("agent-network.txt"))")
        #expect(server.requests.count == 1, "\(server.requests)")
        #expect(findings.contains("--- network\n403"), "\(findings)")
        // A fresh, empty home; system directories only on PATH; the snapshot read-only.
        #expect(findings.contains("--- home\n0\n"), "\(findings)")
        #expect(findings.contains("--- path /run/airlock/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"), "\(findings)")
        #expect(findings.contains("Read-only file system"), "\(findings)")
        expectNoSecret(findings, moto, "the approved run's environment")
        expectNoSecret(scene.agentVisibleText(out), moto, "the workspace")
    }

    // MARK: 3. One reading of every request, or a refusal

    /// Requests the agent writes and signs itself with its dummy keys, each one that moto
    /// reads differently from a first-wins reader (shown by sending the same bytes to moto
    /// directly): refused, or gated, and moto's state unchanged.
    @Test func requestsWithTwoReadingsAreRefused() throws {
        guard let (scene, moto) = try setUp() else { return }
        _ = moto.aws(["ssm", "put-parameter", "--name", "prod-db", "--type", "SecureString", "--value", "PLANTED-SSM-SECRET"])
        let queueURL = (moto.json(["sqs", "create-queue", "--queue-name", "prod-q"]) as? [String: Any])?["QueueUrl"] as? String ?? "?"
        // Encoded as SigV4 does (unreserved characters kept), so both sides sign the same query.
        let queue = queueURL.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")) ?? "?"
        let ssm = [["Content-Type", "application/x-amz-json-1.1"], ["X-Amz-Target", "AmazonSSM.GetParameter"]]
        let attacks: [(name: String, spec: [String: Any])] = [
            ("duplicate WithDecryption", ["method": "POST", "path": "/", "service": "ssm", "headers": ssm,
                                          "body": #"{"Name":"prod-db","WithDecryption":false,"WithDecryption":true}"#]),
            ("WithDecryption 1", ["method": "POST", "path": "/", "service": "ssm", "headers": ssm, "body": #"{"Name":"prod-db","WithDecryption":1}"#]),
            ("WithDecryption \"false\"", ["method": "POST", "path": "/", "service": "ssm", "headers": ssm, "body": #"{"Name":"prod-db","WithDecryption":"false"}"#]),
            ("target with a query Action", ["method": "POST", "path": "/?Action=DeleteQueue&QueueUrl=" + queue, "service": "sqs",
                                            "headers": [["Content-Type", "application/x-amz-json-1.0"], ["X-Amz-Target", "AmazonSQS.ListQueues"]], "body": "{}"]),
            ("target with a form body", ["method": "POST", "path": "/", "service": "sqs",
                                         "headers": [["Content-Type", "application/x-www-form-urlencoded"], ["X-Amz-Target", "AmazonSQS.ListQueues"]],
                                         "body": "Action=DeleteQueue&QueueUrl=" + queue]),
            ("Action twice", ["method": "POST", "path": "/", "service": "iam", "headers": [["Content-Type", "application/x-www-form-urlencoded"]],
                              "body": "Action=ListUsers&Action=CreateUser&UserName=dup&Version=2010-05-08"]),
            ("two targets", ["method": "POST", "path": "/", "service": "ssm", "headers": ssm + [["X-Amz-Target", "AmazonSSM.DeleteParameter"]],
                             "body": #"{"Name":"prod-db"}"#]),
            ("a region that is a host name", ["method": "POST", "path": "/", "service": "iam", "region": "us-east-1.attacker.example",
                                             "headers": [["Content-Type", "application/x-www-form-urlencoded"]], "body": "Action=ListUsers&Version=2010-05-08"]),
        ]
        // moto's own reading of the first, second and fourth, sent to it directly: it decrypts
        // and it acts on the query's Action (so a broker that read the other way would leak).
        let proof = try moto.raw([attacks[0].spec, attacks[1].spec].map { $0.merging(["url": moto.url]) { $1 } })
        #expect(proof.allSatisfy { $0.status == 200 && $0.body.contains("PLANTED-SSM-SECRET") }, "\(proof)")
        let before = moto.state()
        let specs = attacks.map { $0.spec.merging(["url": "http://127.0.0.1:8181", "path": "/svc/\($0.spec["service"]!)" + ($0.spec["path"] as! String)]) { $1 } }
        let input = String(decoding: try JSONSerialization.data(withJSONObject: specs), as: UTF8.self)
        scene.write(scene.workspace + "/attacks.json", input)
        scene.support("raw_aws.py")
        let out = scene.agent("python3 raw_aws.py < attacks.json > results.json", moto: moto.moto, hostKeys: moto.keys)
        #expect(out.status == 0, "\(out)")
        let results = (try? JSONSerialization.jsonObject(with: Data(scene.file("results.json").utf8))) as? [[String: Any]] ?? []
        try #require(results.count == attacks.count, "\(out)")
        for (attack, result) in zip(attacks, results) {
            let status = result["status"] as? Int ?? 0
            let body = result["body"] as? String ?? ""
            if attack.name.hasPrefix("WithDecryption") {
                // One reading that decrypts: a proposal, nothing returned.
                #expect(status == 403 && body.contains("AirlockProposalPending"), "\(attack.name): \(status) \(body)")
            } else {
                #expect(status == 400 && body.contains("AirlockAmbiguousRequest"), "\(attack.name): \(status) \(body)")
            }
        }
        #expect(moto.state() == before, "moto's state changed")
        #expect(moto.users() == ["broker"])
        expectNoSecret(scene.agentVisibleText(out), moto, "one reading")
        #expect(scene.airlock(["audit", "verify"], hostKeys: moto.keys).status == 0)
    }

    // MARK: 4. Files are read beneath the workspace only

    /// Symlinks the agent points at host files: a -var-file that is a symlink, a module
    /// directory that is one. The proposal is refused or cannot read them; the host file's
    /// content is nowhere in the state directory or the agent's view.
    @Test func symlinkedFilesAreNeverFollowed() throws {
        guard let (scene, moto) = try setUp() else { return }
        scene.write(scene.root + "/host/secret.tfvars", "password = \"PLANTED-HOST-FILE\"\n", mode: 0o644)
        scene.write(scene.root + "/host/module/main.tf", "output \"leak\" { value = \"PLANTED-HOST-FILE\" }\n", mode: 0o644)
        scene.write(scene.workspace + "/main.tf", "variable \"password\" { default = \"x\" }\nresource \"terraform_data\" \"a\" { input = var.password }\n")
        scene.write(scene.workspace + "/withmodule/main.tf", "module \"m\" { source = \"./m\" }\nresource \"terraform_data\" \"b\" {}\n")
        symlink(scene.root + "/host/secret.tfvars", scene.workspace + "/link.tfvars")
        symlink(scene.root + "/host/module", scene.workspace + "/withmodule/m")
        scene.chownTree()
        let before = moto.state()
        let out = scene.run(["/bin/sh", "-c", """
            terraform apply -auto-approve -var-file=link.tfvars > file.out 2> file.err; echo $? > file.rc
            cd withmodule && terraform apply -auto-approve > ../dir.out 2> ../dir.err; echo $? > ../dir.rc
            """], options: ["--aws-endpoint", moto.url], timeout: 300, extraEnvironment: human(moto))
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("file.rc") != "75\n" && scene.file("file.err").contains("not a regular file of the workspace snapshot"), "\(scene.file("file.err"))")
        #expect(scene.file("dir.rc") != "75\n" && scene.file("dir.rc") != "0\n", "\(scene.file("dir.err"))")
        #expect(scene.latestProposalID == nil, "something was proposed")
        let stateDump = runProcess("/bin/grep", ["-r", "-l", "PLANTED-HOST-FILE", scene.stateDir], environment: [:], directory: "/", timeout: 60)
        #expect(stateDump.stdout.isEmpty, "the host file was copied: \(stateDump.stdout)")
        #expect(moto.state() == before)
        expectNoSecret(scene.agentVisibleText(out), moto, "symlinks")
    }

    /// While proposals are snapshotted, the agent swaps a directory for a symlink to a host
    /// directory and back, as fast as it can. No snapshot ever holds the host's file.
    @Test func aDirectorySwappedForASymlinkMidCopyLeaksNothing() throws {
        guard let (scene, moto) = try setUp() else { return }
        scene.write(scene.root + "/host/dir/leak.txt", "PLANTED-HOST-FILE\n", mode: 0o644)
        scene.write(scene.workspace + "/main.tf", "resource \"terraform_data\" \"a\" { input = \"v1\" }\n")
        for index in 0..<50 { scene.write(scene.workspace + "/data/file\(index).txt", String(repeating: "x", count: 4096)) }
        let out = scene.run(["/bin/sh", "-c", """
            ( while [ ! -e stop ]; do mv data data.real; ln -s \(scene.root)/host/dir data; rm data; mv data.real data; done ) &
            for i in 1 2 3 4 5; do terraform apply -auto-approve > apply$i.out 2> apply$i.err; echo $? >> rcs; done
            touch stop; wait
            """], options: ["--aws-endpoint", moto.url], timeout: 400, extraEnvironment: human(moto))
        #expect(out.status == 0, "\(out)")
        let codes = scene.file("rcs").split(separator: "\n")
        #expect(codes.count == 5, "\(codes)")
        // Some attempts are proposed, others refused because the tree changed under the copy;
        // none holds the host's file.
        let stateDump = runProcess("/bin/grep", ["-r", "-l", "PLANTED-HOST-FILE", scene.stateDir], environment: [:], directory: "/", timeout: 60)
        #expect(stateDump.stdout.isEmpty, "the host file was copied: \(stateDump.stdout)")
        expectNoSecret(scene.agentVisibleText(out), moto, "swap race")
    }

    // MARK: 5. Bounds

    /// An agent in a loop cannot bury the human's queue: past 200 pending proposals of its
    /// session, a change is refused with a clear error (and nothing happens in moto).
    @Test func pendingProposalsPerSessionAreBounded() throws {
        guard let (scene, moto) = try setUp() else { return }
        scene.write(scene.workspace + "/flood.py", """
            import boto3, botocore.exceptions, json
            s3 = boto3.client("s3", config=boto3.session.Config(retries={"max_attempts": 1}))
            codes = {}
            for i in range(205):
                try:
                    s3.create_bucket(Bucket="flood-%d" % i)
                    codes["ok"] = codes.get("ok", 0) + 1
                except botocore.exceptions.ClientError as e:
                    code = e.response["Error"]["Code"]
                    codes[code] = codes.get(code, 0) + 1
                    if code == "AirlockProposalLimit": codes["message"] = e.response["Error"]["Message"]
            print(json.dumps(codes))
            """)
        let before = moto.state()
        let out = scene.agent("python3 flood.py > flood.json", moto: moto.moto, hostKeys: moto.keys, timeout: 300)
        #expect(out.status == 0, "\(out)")
        let codes = (try? JSONSerialization.jsonObject(with: Data(scene.file("flood.json").utf8))) as? [String: Any] ?? [:]
        #expect(codes["AirlockProposalPending"] as? Int == 200, "\(codes)")
        #expect(codes["AirlockProposalLimit"] as? Int == 5, "\(codes)")
        #expect((codes["message"] as? String)?.contains("200 proposals waiting for a decision") == true, "\(codes)")
        #expect(moto.state() == before)
    }

    /// Preparations and waits are bounded per session: of eight `terraform apply` started at
    /// once, at most four are prepared together (the rest are told to wait), and a flood of
    /// `wait` connections is refused past its limits while AWS reads still pass.
    @Test func preparationsAndWaitsAreBounded() throws {
        guard let (scene, moto) = try setUp() else { return }
        scene.write(scene.workspace + "/main.tf", "resource \"terraform_data\" \"a\" { input = \"v1\" }\n")
        scene.write(scene.workspace + "/flood.py", """
            import json, socket, sys, threading, time
            proposal = sys.argv[1]
            answers = []
            def wait():
                s = socket.socket(socket.AF_UNIX)
                s.connect("/run/airlock/agent.sock")
                s.sendall((json.dumps({"op": "wait", "id": proposal, "timeout": 60}) + "\\n").encode())
                data = b""
                while not data.endswith(b"\\n"):
                    chunk = s.recv(65536)
                    if not chunk: break
                    data += chunk
                answers.append(data.decode())
            threads = [threading.Thread(target=wait) for _ in range(80)]
            for t in threads: t.start()
            time.sleep(3)
            open("flooding", "w").close()
            for t in threads: t.join()
            print(json.dumps(answers))
            """)
        var readDuringFlood = Outcome(status: -1, stdout: "", stderr: "")
        var denial = readDuringFlood
        let out = scene.run(["/bin/sh", "-c", """
            export PATH=\(PythonTools.venv)/bin:$PATH
            for i in 1 2 3 4 5 6 7 8; do (terraform apply -auto-approve > apply$i.out 2> apply$i.err; echo $? > apply$i.rc) & done; wait
            id=$(grep -ho 'Proposal [0-9a-f]*' apply*.err | head -1 | cut -d' ' -f2)
            python3 flood.py $id > waits.json &
            while [ ! -e flooding ]; do sleep 0.1; done
            aws sts get-caller-identity > read.txt 2>&1; echo $? > read.rc; touch read
            wait
            """], options: ["--profile", PythonTools.profile(in: scene), "--aws-endpoint", moto.url], timeout: 400,
            extraEnvironment: human(moto)) { _ in
            guard scene.waitForFile("read", timeout: 300) else { return }
            readDuringFlood = Outcome(status: 0, stdout: scene.file("read.txt"), stderr: scene.file("read.rc"))
            if let id = scene.latestProposalID { denial = scene.airlock(["deny", id, "--reason", "flood"], hostKeys: moto.keys) }
            for pending in (scene.airlock(["proposals", "--json"], hostKeys: moto.keys).stdout.components(separatedBy: "\"id\":\"").dropFirst()) {
                _ = scene.airlock(["deny", String(pending.prefix(8))], hostKeys: moto.keys)
            }
        }
        #expect(out.status == 0, "\(out)")
        let codes = (1...8).map { scene.file("apply\($0).rc") }
        let proposed = codes.filter { $0 == "75\n" }.count
        let refused = (1...8).filter { scene.file("apply\($0).err").contains("being prepared already") }.count
        #expect(proposed >= 1 && proposed <= 4 + (8 - proposed - refused), "\(codes)")
        #expect(refused >= 1, "no preparation was refused: \(codes)")
        #expect(denial.status == 0, "\(denial)")
        // The read passed while 80 waits were open.
        #expect(readDuringFlood.stderr == "0\n" && readDuringFlood.stdout.contains("Arn"), "\(readDuringFlood)")
        let answers = (try? JSONSerialization.jsonObject(with: Data(scene.file("waits.json").utf8))) as? [String] ?? []
        #expect(answers.count == 80, "\(answers.count)")
        let tooManyWaits = answers.filter { $0.contains("waits of this session are open already") }.count
        let tooManyConnections = answers.filter { $0.contains("connections to the agent API are open already") }.count
        let decided = answers.filter { $0.contains("\"state\":\"denied\"") }.count
        #expect(decided == 32, "\(decided) waits saw the decision")
        #expect(tooManyWaits + tooManyConnections == 48, "waits \(tooManyWaits), connections \(tooManyConnections)")
        #expect(moto.users() == ["broker"])
    }

    /// Multipart uploads are staged on the host until approved: a session's staging has a
    /// quota (AIRLOCK_STAGING_QUOTA), past which parts are refused, nothing is stored.
    @Test func multipartStagingHasAQuota() throws {
        guard let (scene, moto) = try setUp() else { return }
        _ = moto.aws(["s3", "mb", "s3://uploads"])
        let big = [UInt8](repeating: 0x61, count: 30 << 20)
        _ = FileManager.default.createFile(atPath: scene.workspace + "/big.bin", contents: Data(big))
        scene.chownTree()
        let before = moto.state()
        let out = scene.agent("aws s3 cp big.bin s3://uploads/big.bin > cp.out 2> cp.err; echo $? > cp.rc", moto: moto.moto,
                              hostKeys: moto.keys.merging(["AIRLOCK_STAGING_QUOTA": "20MiB"]) { $1 }, timeout: 300)
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("cp.rc") != "0\n" && scene.file("cp.err").contains("AirlockQuotaExceeded"), "\(scene.file("cp.err"))")
        #expect(scene.latestProposalID == nil)
        let blobs = (try? FileManager.default.contentsOfDirectory(atPath: scene.stateDir + "/blobs")) ?? []
        let staged = blobs.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: scene.stateDir + "/blobs/" + $1)[.size] as? Int) ?? 0) }
        #expect(staged <= 20 << 20, "\(staged) bytes staged")
        #expect(moto.state() == before)
    }
}
