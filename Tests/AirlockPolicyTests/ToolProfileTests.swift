import AirlockCore
import Foundation
import Testing

@testable import AirlockPolicy

/// The shipped tool profiles (profiles/tools/*.yaml), read from the checkout.
enum ShippedTools {
    static let directory: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/profiles/tools"
    }()

    static let profiles: [String: ToolProfile] = {
        var out: [String: ToolProfile] = [:]
        for name in ["terraform", "kubectl", "helm", "gh", "aws"] {
            let path = directory + "/\(name).yaml"
            let text = try! String(contentsOfFile: path, encoding: .utf8)
            out[name] = try! ToolProfileParser.parse(text, source: "profiles/tools/\(name).yaml")
        }
        return out
    }()

    static let context = CommandContext(workspace: "/work/app", directory: "/work/app/infra")

    static func classify(_ line: String, context: CommandContext = context) -> CommandRuling {
        let words = line.split(separator: " ").map(String.init)
        return CommandClassifier.classify(Array(words.dropFirst()), profile: profiles[words[0]]!, context: context)
    }
}

/// argv → decision for every rule of every shipped tool profile (the coverage test below
/// fails when a rule has no row), the redirection flags, and unknown subcommands.
@Suite struct ToolProfileTableTests {
    typealias Row = (line: String, decision: Decision)

    static let terraform: [Row] = [
        ("terraform init", .read), ("terraform init -upgrade", .read), ("terraform validate", .read), ("terraform fmt -recursive", .read),
        ("terraform plan -out=tfplan", .read), ("terraform plan -var region=eu-west-1 -out tfplan", .read),
        ("terraform show -json tfplan", .read), ("terraform output -raw url", .read), ("terraform graph", .read),
        ("terraform providers", .read), ("terraform providers lock -platform=linux_amd64", .read),
        ("terraform providers mirror ./mirror", .read), ("terraform providers schema -json", .read),
        ("terraform version", .read), ("terraform get", .read), ("terraform modules", .read), ("terraform metadata functions", .read),
        ("terraform console", .read), ("terraform test", .mutation), ("terraform state frobnicate", .mutation),
        ("terraform state list", .read), ("terraform state show aws_s3_bucket.b", .read), ("terraform state pull", .read),
        ("terraform state identities", .read),
        ("terraform state mv a.b c.d", .mutation), ("terraform state rm aws_instance.web", .mutation),
        ("terraform state push backup.tfstate", .mutation), ("terraform state replace-provider a b", .mutation),
        ("terraform workspace", .mutation), ("terraform workspace list", .read), ("terraform workspace show", .read),
        ("terraform workspace select prod", .read), ("terraform workspace new staging", .mutation),
        ("terraform workspace delete staging", .mutation),
        ("terraform apply", .mutation), ("terraform apply -auto-approve -var-file=prod.tfvars", .mutation), ("terraform apply tfplan", .mutation),
        ("terraform destroy", .mutation), ("terraform destroy -target aws_instance.web", .mutation),
        ("terraform refresh", .mutation), ("terraform import aws_s3_bucket.b my-bucket", .mutation),
        ("terraform taint aws_instance.web", .mutation), ("terraform untaint aws_instance.web", .mutation),
        ("terraform force-unlock 1234", .mutation), ("terraform login", .deny), ("terraform logout app.terraform.io", .deny),
        // Global options, help, usage, unknown.
        ("terraform -chdir=../infra plan", .read), ("terraform -chdir=/work/app/infra apply", .mutation),
        ("terraform apply -help", .read), ("terraform -help", .read), ("terraform", .read), ("terraform -version", .read),
        ("terraform frobnicate", .mutation), ("terraform state", .mutation),
        // Redirections and paths outside the workspace.
        ("terraform init -plugin-dir=/tmp/evil", .deny), ("terraform init -plugin-dir /tmp/evil", .deny),
        ("terraform init -backend-config=creds.hcl", .deny), ("terraform init --backend-config creds.hcl", .deny),
        ("terraform -chdir=/etc plan", .deny), ("terraform -chdir=../../.. apply", .deny),
        ("terraform plan -out=/tmp/x.tfplan", .deny), ("terraform apply -state=../../other.tfstate", .deny),
        ("terraform apply -var-file=/home/me/secrets.tfvars", .deny),
    ]

    static let kubectl: [Row] = [
        ("kubectl get pods -A", .read), ("kubectl -n kube-system get pods -o yaml", .read), ("kubectl describe pod web-1", .read),
        ("kubectl logs -f web-1 -c app", .read), ("kubectl diff -f deploy.yaml", .read), ("kubectl explain pods.spec", .read),
        ("kubectl api-resources", .read), ("kubectl api-versions", .read), ("kubectl version --client", .read),
        ("kubectl cluster-info", .read), ("kubectl top pods", .read), ("kubectl events", .read),
        ("kubectl wait --for=condition=Ready pod/web-1", .read), ("kubectl completion bash", .read), ("kubectl kustomize overlays/prod", .read),
        ("kubectl auth can-i delete pods", .read), ("kubectl auth whoami", .read), ("kubectl auth reconcile -f rbac.yaml", .mutation),
        ("kubectl auth frobnicate", .mutation),
        ("kubectl config view", .read), ("kubectl config current-context", .read), ("kubectl config get-contexts", .read),
        ("kubectl config get-clusters", .read), ("kubectl config use-context prod", .deny), ("kubectl config set-credentials me --token=x", .deny),
        ("kubectl rollout restart deployment/web", .mutation), ("kubectl rollout status deployment/web", .read),
        ("kubectl rollout history deployment/web", .read), ("kubectl rollout undo deployment/web", .mutation),
        ("kubectl apply -f deploy.yaml", .mutation), ("kubectl apply -f deploy.yaml --dry-run=server", .read),
        ("kubectl apply -f deploy.yaml --dry-run=client", .read), ("kubectl apply -f deploy.yaml --dry-run", .mutation),
        ("kubectl apply view-last-applied deployment/web", .read),
        ("kubectl create -f cm.yaml", .mutation), ("kubectl create token deployer -n prod", .sensitive), ("kubectl create deployment web --image=nginx --dry-run=client -o yaml", .read),
        ("kubectl delete pod web-1", .mutation), ("kubectl delete -f deploy.yaml", .mutation),
        ("kubectl patch deployment web -p {}", .mutation), ("kubectl replace -f deploy.yaml", .mutation),
        ("kubectl scale deployment web --replicas=3", .mutation), ("kubectl autoscale deployment web --max=5", .mutation),
        ("kubectl label pod web-1 tier=front", .mutation), ("kubectl label -f pod.yaml tier=front --local -o yaml", .read),
        ("kubectl annotate pod web-1 a=b", .mutation), ("kubectl set image deployment/web app=nginx:2", .mutation),
        ("kubectl expose deployment web --port=80", .mutation), ("kubectl run debug --image=busybox", .mutation),
        ("kubectl edit deployment web", .deny), ("kubectl drain node-1 --ignore-daemonsets", .mutation),
        ("kubectl cordon node-1", .mutation), ("kubectl uncordon node-1", .mutation), ("kubectl taint nodes node-1 k=v:NoSchedule", .mutation),
        ("kubectl certificate approve csr-1", .mutation),
        ("kubectl exec -it web-1 -- sh", .deny), ("kubectl cp web-1:/etc/passwd ./passwd", .deny),
        ("kubectl port-forward svc/db 5432", .deny), ("kubectl proxy", .deny), ("kubectl attach web-1", .deny),
        ("kubectl debug node/node-1 -it --image=busybox", .deny), ("kubectl plugin list", .deny),
        ("kubectl", .read), ("kubectl get --help", .read), ("kubectl delete -h", .read),
        ("kubectl frobnicate pods", .mutation),
        // Redirections (every one is also checked from the profile below).
        ("kubectl --kubeconfig /tmp/k get pods", .deny), ("kubectl get pods --context=prod", .read),
        ("kubectl -s https://evil:6443 get pods", .deny), ("kubectl get pods --token=abc", .deny),
        ("kubectl delete pod x --as=system:admin", .deny),
        // A value that looks like a flag is still a redirection.
        ("kubectl get pods -n --kubeconfig=/tmp/k", .deny),
        // Files outside the workspace cannot be pinned.
        ("kubectl apply -f /etc/kubernetes/admin.yaml", .deny), ("kubectl apply -f -", .deny),
        ("kubectl apply -f https://example.com/x.yaml", .deny),
    ]

    static let helm: [Row] = [
        ("helm list -A", .read), ("helm ls", .read), ("helm status web", .read), ("helm history web", .read),
        ("helm get values web", .read), ("helm show chart ./chart", .read), ("helm inspect values ./chart", .read),
        ("helm template web ./chart -f values.yaml", .read), ("helm lint ./chart", .read), ("helm search repo nginx", .read),
        ("helm version", .read), ("helm env", .read), ("helm diff upgrade web ./chart", .read), ("helm verify chart.tgz", .read),
        ("helm pull bitnami/nginx", .read), ("helm fetch bitnami/nginx", .read), ("helm create mychart", .read),
        ("helm package ./chart", .read), ("helm dependency update ./chart", .read), ("helm completion zsh", .read),
        ("helm repo add bitnami https://charts.bitnami.com/bitnami", .deny), ("helm repo list", .read),
        ("helm registry login ghcr.io", .deny), ("helm plugin install https://x", .deny),
        ("helm install web ./chart -f values.yaml", .mutation), ("helm install web ./chart --dry-run", .read),
        ("helm upgrade --install web ./chart -n prod", .mutation), ("helm uninstall web", .mutation),
        ("helm delete web", .mutation), ("helm rollback web 3", .mutation), ("helm test web", .mutation),
        ("helm push chart.tgz oci://ghcr.io/x", .mutation),
        ("helm", .read), ("helm install --help", .read), ("helm frobnicate", .mutation),
        ("helm upgrade web ./chart --kube-context prod", .deny), ("helm list --kubeconfig=/tmp/k", .deny),
        ("helm install web ./chart -f /etc/secret-values.yaml", .deny),
    ]

    static let gh: [Row] = [
        ("gh api repos/o/r", .read), ("gh api -X GET repos/o/r/issues", .read), ("gh api --method HEAD repos/o/r", .read),
        ("gh api repos/o/r/issues -f title=x", .mutation), ("gh api -X DELETE repos/o/r", .mutation),
        ("gh api --method=patch repos/o/r -F private=true", .mutation), ("gh api -X GET search/issues -f q=bug", .read),
        ("gh api graphql -f query=x", .mutation), ("gh api repos/o/r/contents/x --input body.json", .mutation),
        ("gh status", .read), ("gh search repos airlock", .read), ("gh browse", .read), ("gh version", .read),
        ("gh completion -s bash", .read),
        ("gh auth login", .deny), ("gh auth token", .deny), ("gh auth status", .read),
        ("gh config set editor vim", .deny), ("gh config get editor", .read), ("gh config list", .read),
        ("gh extension install x/y", .deny), ("gh ext list", .deny), ("gh alias set co 'pr checkout'", .deny),
        ("gh secret set TOKEN", .mutation), ("gh secret list", .read),
        ("gh variable set V", .mutation), ("gh variable list", .read), ("gh variable get V", .read),
        ("gh pr create -t x -b y", .mutation), ("gh pr merge 12 --squash", .mutation), ("gh pr close 12", .mutation),
        ("gh pr list", .read), ("gh pr view 12", .read), ("gh pr diff 12", .read), ("gh pr checks 12", .read),
        ("gh pr status", .read), ("gh pr checkout 12", .read),
        ("gh issue create -t bug", .mutation), ("gh issue list", .read), ("gh issue view 3", .read), ("gh issue status", .read),
        ("gh repo create o/new --private", .mutation), ("gh repo view o/r", .read), ("gh repo list", .read),
        ("gh repo clone o/r", .read), ("gh repo delete o/r --yes", .mutation),
        ("gh release create v1 dist/app.tgz --notes x", .mutation), ("gh release list", .read), ("gh release view v1", .read),
        ("gh release download v1", .read), ("gh release upload v1 dist/app.tgz", .mutation), ("gh release delete v1", .mutation),
        ("gh run rerun 5", .mutation), ("gh run list", .read), ("gh run view 5", .read), ("gh run watch 5", .read),
        ("gh run download 5", .read),
        ("gh workflow run deploy.yml", .mutation), ("gh workflow list", .read), ("gh workflow view deploy.yml", .read),
        ("gh gist create notes.md", .mutation), ("gh gist list", .read), ("gh gist view abc", .read),
        ("gh label create bug", .mutation), ("gh label list", .read), ("gh cache delete --all", .mutation), ("gh cache list", .read),
        ("gh codespace create", .deny), ("gh cs ssh", .deny),
        ("gh ssh-key add key.pub", .mutation), ("gh ssh-key list", .read), ("gh gpg-key add key.asc", .mutation), ("gh gpg-key list", .read),
        ("gh", .read), ("gh pr merge --help", .read), ("gh frobnicate", .mutation),
        ("gh api --hostname evil.example repos/o/r", .deny), ("gh pr list --hostname=evil.example", .deny),
    ]

    /// The aws CLI: single calls run (the broker gates each); multi-call commands that write
    /// to S3 or deploy a stack are one proposal.
    static let aws: [Row] = [
        ("aws s3 ls", .read), ("aws s3 ls s3://b --recursive", .read), ("aws sts get-caller-identity", .read),
        ("aws ec2 terminate-instances --instance-ids i-1", .read), ("aws s3 mb s3://new", .read),
        ("aws s3 sync ./site s3://b/site", .mutation), ("aws s3 sync s3://b/site ./site", .read),
        ("aws s3 sync ./site s3://b --delete --exclude *.tmp", .mutation), ("aws s3 sync s3://a s3://b", .mutation),
        ("aws s3 cp --recursive ./dist s3://b/dist", .mutation), ("aws s3 cp ./one.txt s3://b/one.txt", .read),
        ("aws s3 cp --recursive s3://b/dist ./dist", .read), ("aws s3 cp s3://b/k ./k", .read),
        ("aws s3 mv ./a.txt s3://b/a.txt", .mutation), ("aws s3 mv s3://b/a.txt s3://b/c.txt", .mutation),
        ("aws s3 mv s3://b/a.txt ./a.txt", .mutation),
        ("aws s3 rm --recursive s3://b/old", .mutation), ("aws s3 rm s3://b/one", .read),
        ("aws s3 rb s3://b --force", .mutation),
        ("aws cloudformation deploy --stack-name prod --template-file stack.yaml", .mutation),
        ("aws cloudformation package --template-file stack.yaml --s3-bucket b", .mutation),
        ("aws cloudformation describe-stacks", .read), ("aws configure", .deny), ("aws configure set region x", .deny),
        ("aws sso login", .deny), ("aws login", .deny), ("aws", .read), ("aws s3 sync --help", .read),
        ("aws --profile prod s3 ls", .deny), ("aws s3 sync . s3://b --endpoint-url https://elsewhere", .deny),
        ("aws --region eu-west-1 s3 sync . s3://b", .mutation),
    ]

    static let all: [Row] = terraform + kubectl + helm + gh + aws

    @Test(arguments: all.map { [$0.line, $0.decision.rawValue] })
    func decides(_ row: [String]) {
        let ruling = ShippedTools.classify(row[0])
        #expect(ruling.decision.rawValue == row[1], "\(row[0]) → \(ruling.decision) (\(ruling.rule): \(ruling.reason))")
    }

    /// Every rule of every shipped profile is exercised by at least one row.
    @Test func everyRuleHasARow() {
        for (tool, profile) in ShippedTools.profiles {
            let matched = Set(Self.all.filter { $0.line.hasPrefix(tool + " ") || $0.line == tool }
                .map { ShippedTools.classify($0.line).words.joined(separator: " ") })
            for rule in profile.rules {
                let words = rule.command.joined(separator: " ")
                #expect(matched.contains(words), "\(tool) \(words) has no row in ToolProfileTableTests")
            }
        }
    }

    /// Every redirection flag of every profile, before and after the subcommand, with its
    /// value separate and joined: refused.
    @Test func everyRedirectionFlagIsRefused() {
        for (tool, profile) in ShippedTools.profiles {
            let subcommand = profile.rules.first { $0.kind == .read }!.command
            // A flag the shipped profile allows (kubectl's --context) is not a redirection there.
            for flag in profile.redirectFlags.sorted() where !profile.allowFlags.contains(flag) {
                for argv in [[flag, "x"] + subcommand, subcommand + [flag, "x"], subcommand + ["\(flag)=x"]] {
                    let ruling = CommandClassifier.classify(argv, profile: profile, context: ShippedTools.context)
                    #expect(ruling.decision == .deny, "\(tool) \(argv.joined(separator: " ")) → \(ruling.decision)")
                    #expect(ruling.reason.contains("allow_flags"), "\(ruling.reason)")
                }
            }
        }
    }

    @Test(arguments: ["terraform", "kubectl", "helm", "gh"])
    func unknownSubcommandsAreMutations(_ tool: String) {
        for line in ["\(tool) zzz-unknown", "\(tool) zzz-unknown --flag value", "\(tool) -- apply"] {
            let ruling = ShippedTools.classify(line)
            #expect(ruling.decision == .mutation, "\(line) → \(ruling.decision)")
        }
    }
}

/// What the classifier extracts besides the decision: the prepare step, pinned files, the
/// working directory, the ambiguity rule.
@Suite struct CommandClassifierTests {
    @Test func terraformApplyIsPreparedAsAPlan() {
        let apply = ShippedTools.classify("terraform apply -auto-approve -var-file=prod.tfvars")
        #expect(apply.prepare == .terraformPlan)
        #expect(apply.pinnedPaths == ["/work/app/infra/prod.tfvars"])
        #expect(ShippedTools.classify("terraform destroy").prepare == .terraformPlanDestroy)
        #expect(ShippedTools.classify("terraform import a b").prepare == ToolRule.Prepare.none)
    }

    @Test func chdirMovesTheWorkingDirectory() {
        #expect(ShippedTools.classify("terraform -chdir=../envs/prod apply").workingDirectory == "/work/app/envs/prod")
        #expect(ShippedTools.classify("terraform apply").workingDirectory == "/work/app/infra")
    }

    @Test func kubectlFilesArePinned() {
        let ruling = ShippedTools.classify("kubectl apply -f deploy.yaml --filename=../base/svc.yaml -k overlays/prod")
        #expect(ruling.decision == .mutation)
        #expect(ruling.pinnedPaths == ["/work/app/infra/deploy.yaml", "/work/app/base/svc.yaml", "/work/app/infra/overlays/prod"])
    }

    @Test func helmPinsItsLocalChartAndValues() {
        let ruling = ShippedTools.classify("helm upgrade --install web ./chart -f values/prod.yaml")
        #expect(ruling.pinnedPaths.contains("/work/app/infra/chart"))
        #expect(ruling.pinnedPaths.contains("/work/app/infra/values/prod.yaml"))
    }

    /// An unknown flag before the subcommand could swallow the next word: the two readings
    /// reach different rules, so it is a change.
    @Test func ambiguousUnknownFlagIsAMutation() {
        let ruling = ShippedTools.classify("kubectl --zzz get delete pod x")
        #expect(ruling.decision == .mutation)
        #expect(ruling.rule.contains("ambiguous flag --zzz"), "\(ruling.rule)")
        // When both readings agree it is decided as usual.
        #expect(ShippedTools.classify("kubectl get pods --zzz wide").decision == .read)
    }

    @Test func doubleDashEndsFlags() {
        #expect(ShippedTools.classify("kubectl -- get").decision == .read)
        #expect(ShippedTools.classify("kubectl get -- --kubeconfig").decision == .deny)  // still refused: tools differ on --
    }

    @Test func absurdArgumentsAreRefused() {
        let profile = ShippedTools.profiles["kubectl"]!
        let many = CommandClassifier.classify(Array(repeating: "get", count: 5000), profile: profile, context: ShippedTools.context)
        #expect(many.decision == .deny)
        let nul = CommandClassifier.classify(["get", "po\0ds"], profile: profile, context: ShippedTools.context)
        #expect(nul.decision == .deny)
    }

    @Test func pathsResolveLexically() {
        #expect(PathResolution.absolute("../x/./y", from: "/a/b") == "/a/x/y")
        #expect(PathResolution.absolute("/../../etc", from: "/a") == "/etc")
        #expect(PathResolution.isInside("/work/app/x", "/work/app"))
        #expect(!PathResolution.isInside("/work/application", "/work/app"))
        #expect(PathResolution.isInside("/work/app", "/work/app/"))
    }
}

@Suite struct ToolProfileParserTests {
    @Test(arguments: [
        ("tool: x\n", "needs `rules:`"),
        ("rules: []\n", "needs `tool: NAME`"),
        ("tool: x\nrules:\n  - {command: get}\n", "needs `decision:`"),
        ("tool: x\nrules:\n  - {decision: read}\n", "needs `command:`"),
        ("tool: x\nrules:\n  - {command: get, decision: maybe}\n", "is not one of read, mutation, deny, sensitive, by-method"),
        ("tool: x\nrules:\n  - {command: get, decision: read}\n  - {command: get, decision: mutation}\n", "appears twice"),
        ("tool: x\nrules:\n  - {command: get, decision: read, prepare: terraform-plan}\n", "only mutations are prepared"),
        ("tool: x\nrules:\n  - {command: api, decision: by-method}\n", "by-method needs method_flags"),
        ("tool: x\nvalue_flags: [-n]\nboolean_flags: [-n]\nrules: []\n", "in both value_flags and boolean_flags"),
        ("tool: x\nallow_flags: [--context]\nrules: []\n", "not one of the redirect_flags"),
        ("tool: x\nvalue_flags: [n]\nrules: []\n", "is not a flag"),
        ("tool: x\nrules: []\nsurprise: 1\n", "unknown key 'surprise'"),
        ("tool: ../x\nrules: []\n", "is not a command name"),
        ("tool: x\ndefault: sensitive\nrules: []\n", "is not read, mutation or deny"),
        ("tool: x\nsnapshot_exclude: [../up]\nrules: []\n", "must be a name pattern or a relative path"),
        ("tool: x\nsnapshot_exclude: [/abs]\nrules: []\n", "must be a name pattern or a relative path"),
        ("tool: x\nexecution_outputs: [a/../b]\nrules: []\n", "must be a relative file path"),
        ("tool: x\nexecution_outputs: [\"*.tfstate\"]\nrules: []\n", "must be a relative file path"),
        ("tool: x\nexecution_cli_config: helm\nrules: []\n", "only `terraform` is known"),
        ("tool: x\nrules:\n  - {command: --get, decision: read}\n", "give the subcommand words"),
    ])
    func refuses(_ text: String, _ words: String) {
        do {
            _ = try ToolProfileParser.parse(text, source: "t.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.contains(words), "\(error)")
        }
    }

    @Test func allowFlagsLetARedirectionThrough() throws {
        var profile = ShippedTools.profiles["kubectl"]!
        profile.allowFlags = ["--context"]
        let ruling = CommandClassifier.classify(["get", "pods", "--context", "dev"], profile: profile, context: ShippedTools.context)
        #expect(ruling.decision == .read)
    }
}

/// What a proposal runs: the setup and plan steps, the preview and the apply step, and what
/// each may write.
@Suite struct CommandStepsTests {
    static func steps(_ line: String, localState: Bool = true) -> CommandSteps {
        let words = line.split(separator: " ").map(String.init)
        let ruling = ShippedTools.classify(line)
        return CommandSteps.make(ruling, arguments: Array(words.dropFirst()), artifact: "/run/airlock/artifact", localState: localState)
    }

    @Test func terraformApplyPlansThenAppliesThePlan() {
        let steps = Self.steps("terraform apply -auto-approve -var-file=prod.tfvars -target aws_s3_bucket.b")
        #expect(steps.setup == [CommandStep(["init", "-input=false", "-no-color"], writes: [.snapshot, .dataDirectory])])
        #expect(steps.plan == CommandStep(["plan", "-input=false", "-no-color", "-lock=false", "-out=/run/airlock/artifact/plan/plan.tfplan",
                                           "-var-file=prod.tfvars", "-target=aws_s3_bucket.b"], writes: [.plan]))
        // The show steps write nothing; only the apply writes, and only the outputs.
        #expect(steps.preview == CommandStep(["show", "-no-color", "/run/airlock/artifact/plan/plan.tfplan"]))
        #expect(steps.planJSON == CommandStep(["show", "-json", "/run/airlock/artifact/plan/plan.tfplan"]))
        #expect(steps.apply == CommandStep(["apply", "-input=false", "-no-color", "-lock=false", "/run/airlock/artifact/plan/plan.tfplan"],
                                           writes: [.outputs]))
        #expect(steps.refusal == nil)
    }

    @Test func aRemoteBackendKeepsItsLocking() {
        let steps = Self.steps("terraform apply -lock-timeout=30s", localState: false)
        #expect(steps.plan?.arguments == ["plan", "-input=false", "-no-color", "-out=/run/airlock/artifact/plan/plan.tfplan", "-lock-timeout=30s"])
        #expect(steps.apply.arguments == ["apply", "-input=false", "-no-color", "/run/airlock/artifact/plan/plan.tfplan"])
        // The agent's -lock=false is never passed on.
        #expect(Self.steps("terraform apply -lock=false", localState: false).plan?.arguments.contains("-lock=false") == false)
    }

    @Test func terraformDestroyPlansADestroy() {
        let steps = Self.steps("terraform -chdir=envs/prod destroy")
        #expect(steps.plan?.arguments == ["-chdir=envs/prod", "plan", "-input=false", "-no-color", "-lock=false",
                                          "-out=/run/airlock/artifact/plan/plan.tfplan", "-destroy"])
        #expect(steps.setup.first?.arguments.first == "-chdir=envs/prod")
        #expect(steps.apply.arguments.first == "-chdir=envs/prod")
    }

    @Test func aSavedPlanIsInitializedAndApplied() {
        let steps = Self.steps("terraform apply tfplan")
        #expect(steps.plan == nil)
        #expect(steps.setup.count == 1)
        #expect(steps.savedPlan == "/work/app/infra/tfplan")
        #expect(steps.apply.arguments == ["apply", "-input=false", "-no-color", "-lock=false", "/run/airlock/artifact/plan/plan.tfplan"])
    }

    /// Legacy state flags would write beside the read-only snapshot.
    @Test(arguments: ["terraform apply -state=other.tfstate", "terraform destroy -state-out=x", "terraform apply -backup=b"])
    func legacyStateFlagsAreRefused(_ line: String) {
        #expect(Self.steps(line).refusal?.contains("not supported for a gated change") == true)
    }

    @Test func kubectlApplyRunsAsGivenOnTheSnapshotWithADiffAsItsPreview() {
        let steps = Self.steps("kubectl apply -f deploy.yaml --filename=../base/svc.yaml -n prod --wait --server-side")
        #expect(steps.apply.arguments == ["apply", "-f", "deploy.yaml", "--filename=../base/svc.yaml", "-n", "prod", "--wait", "--server-side"])
        #expect(steps.setup.isEmpty && steps.plan == nil)
        // kubectl diff of the same files and scope; --wait is apply's alone; exit 1 is "differences".
        #expect(steps.preview?.arguments == ["diff", "-f=deploy.yaml", "--filename=../base/svc.yaml", "-n=prod", "--server-side"], "\(String(describing: steps.preview))")
        #expect(steps.preview?.successStatuses == [0, 1])
        #expect(Self.steps("kubectl create -f deploy.yaml").preview == nil, "create has no diff preview: the command is shown")
    }

    @Test func commandsWithoutFilesRunAsGiven() {
        #expect(Self.steps("terraform state rm aws_instance.web").apply.arguments == ["state", "rm", "aws_instance.web"])
        #expect(Self.steps("gh pr merge 12 --squash").apply.arguments == ["pr", "merge", "12", "--squash"])
    }
}

@Suite struct TerraformPlanFactsTests {
    @Test func provisionersAreFoundInModulesToo() throws {
        let plan = try JSON.parse("""
            {"configuration": {"root_module": {
              "resources": [
                {"address": "terraform_data.pause", "provisioners": [
                  {"type": "local-exec", "expressions": {"command": {"constant_value": "touch executing; sleep 6"}}}]},
                {"address": "aws_iam_user.deployer"}],
              "module_calls": {"net": {"module": {"resources": [
                {"address": "null_resource.x", "provisioners": [
                  {"type": "remote-exec", "expressions": {"inline": {"constant_value": ["a", "b"]}}},
                  {"type": "local-exec", "expressions": {"command": {"references": ["var.cmd"]}}}]}]}}}}}}
            """)
        let found = TerraformPlanFacts.provisioners(plan)
        #expect(found == [
            .init(address: "terraform_data.pause", type: "local-exec", command: "touch executing; sleep 6"),
            .init(address: "module.net.null_resource.x", type: "remote-exec", command: "a; b"),
            .init(address: "module.net.null_resource.x", type: "local-exec", command: "(computed from var.cmd)"),
        ])
        #expect(TerraformPlanFacts.describe(found).contains("terraform_data.pause: local-exec: touch executing; sleep 6"))
        #expect(TerraformPlanFacts.provisioners(try JSON.parse("{}")).isEmpty)
        #expect(TerraformPlanFacts.describe([]).isEmpty)
    }
}

/// The aws CLI's multi-call commands: the dry run is the preview, the command the approved run.
@Suite struct AWSCommandStepsTests {
    @Test func syncIsPreviewedByItsDryRun() {
        let steps = CommandStepsTests.steps("aws s3 sync ./site s3://b/site --delete")
        #expect(steps.preview == CommandStep(["s3", "sync", "./site", "s3://b/site", "--delete", "--dryrun"]))
        #expect(steps.apply == CommandStep(["s3", "sync", "./site", "s3://b/site", "--delete"], writes: [.outputs]))
        #expect(steps.refusal == nil && steps.setup.isEmpty && steps.plan == nil)
    }

    @Test func movingOutOfS3IntoTheWorkspaceIsRefused() {
        #expect(CommandStepsTests.steps("aws s3 mv s3://b/a.txt ./a.txt").refusal?.contains("read-only copy of the workspace") == true)
        #expect(CommandStepsTests.steps("aws s3 mv ./a.txt s3://b/a.txt").refusal == nil)
    }

    @Test func deployPinsItsTemplate() {
        let ruling = ShippedTools.classify("aws cloudformation deploy --stack-name prod --template-file stack.yaml")
        #expect(ruling.pinnedPaths == ["/work/app/infra/stack.yaml"])
        #expect(CommandStepsTests.steps("aws cloudformation deploy --stack-name prod --template-file stack.yaml").preview == nil)
    }
}
