import AirlockCore
import Testing

@testable import AirlockPolicy

/// Rules as tables (docs/policy.md): a policy set, a proposal's facts, who approves in which
/// order → allowed, needs N more, denied, expired, or an approval refused. Pure: the same
/// functions the one approve path asks.
@Suite struct RuleTableTests {
    static let policy = """
        @id("scratch-uploads")
        @airlock_allow
        permit (principal, action == Action::"aws:s3:PutObject", resource)
        when { resource.name like "arn:aws:s3:::scratch-*" };

        @id("prod-destructive")
        @approvals("2")
        @expires("1h")
        permit (principal, action in Action::"mutation", resource)
        when { context.labels.contains("destructive") && resource.tags.contains("env=prod") };

        @id("no-access-keys")
        forbid (principal, action == Action::"aws:iam:CreateAccessKey", resource);

        @id("night-freeze")
        forbid (principal, action in Action::"aws:cloudformation", resource)
        when { context.time.hour < 6 };
        """

    enum End: Equatable, CustomStringConvertible {
        case allowed(String), approved, needsMore(Int), denied([String]), expired, refused(String)
        var description: String {
            switch self {
            case .allowed(let p): return "allowed by \(p)"
            case .approved: return "approved"
            case .needsMore(let n): return "needs \(n) more"
            case .denied(let p): return "denied by \(p)"
            case .expired: return "expired"
            case .refused(let why): return "refused: \(why)"
            }
        }
    }

    struct Row: CustomTestStringConvertible, Sendable {
        var name: String
        var action: String
        var target = "arn:aws:s3:::data/x"
        var labels: [String] = []
        var tags: [String] = []
        var place: ApprovalTally.Place = .local
        var launcher = "alice"
        var approvers: [String] = []
        /// Seconds after the proposal when the approvals come.
        var after: Double = 10
        var hour: Int64 = 12
        var end: End
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "an upload to a scratch bucket runs without a human", action: "aws:s3:PutObject", target: "arn:aws:s3:::scratch-7/a.txt",
            end: .allowed("scratch-uploads")),
        Row(name: "an upload elsewhere asks one approver; the launcher approves locally", action: "aws:s3:PutObject",
            approvers: ["alice"], end: .approved),
        Row(name: "an upload elsewhere, nobody yet", action: "aws:s3:PutObject", end: .needsMore(1)),
        Row(name: "destructive in env=prod needs two: one counted", action: "aws:cloudformation:DeleteStack",
            target: "arn:aws:cloudformation:us-east-1:123456789012:stack/prod/1", labels: ["destructive", "production"], tags: ["env=prod"],
            approvers: ["alice"], end: .needsMore(1)),
        Row(name: "destructive in env=prod: two distinct people", action: "aws:cloudformation:DeleteStack", labels: ["destructive"],
            tags: ["env=prod"], approvers: ["alice", "bob"], end: .approved),
        Row(name: "destructive in env=prod: one person twice counts once", action: "aws:cloudformation:DeleteStack", labels: ["destructive"],
            tags: ["env=prod"], approvers: ["alice", "alice"], end: .refused("already approved")),
        Row(name: "destructive without env=prod asks one", action: "aws:cloudformation:DeleteStack", labels: ["destructive"],
            tags: ["env=dev"], approvers: ["bob"], end: .approved),
        Row(name: "env=prod but not destructive asks one", action: "aws:s3:PutObject", labels: ["production"], tags: ["env=prod"],
            approvers: ["bob"], end: .approved),
        Row(name: "an access key is forbidden, whoever would approve", action: "aws:iam:CreateAccessKey", approvers: ["alice", "bob"],
            end: .denied(["no-access-keys"])),
        Row(name: "forbid wins over a matching allow", action: "aws:cloudformation:DeleteStack", labels: ["destructive"], tags: ["env=prod"],
            hour: 3, end: .denied(["night-freeze"])),
        Row(name: "on a gate the launcher's approval never counts", action: "aws:s3:PutObject", place: .gate, launcher: "user:carol",
            approvers: ["user:carol"], end: .refused("launched the session")),
        Row(name: "on a gate another approver's does", action: "aws:s3:PutObject", place: .gate, launcher: "user:carol",
            approvers: ["user:alice"], end: .approved),
        Row(name: "on a gate two are needed and the launcher is not one of them", action: "aws:cloudformation:DeleteStack",
            labels: ["destructive"], tags: ["env=prod"], place: .gate, launcher: "user:carol", approvers: ["user:alice", "user:carol"],
            end: .refused("launched the session")),
        Row(name: "on a gate two distinct approvers besides the launcher", action: "aws:cloudformation:DeleteStack",
            labels: ["destructive"], tags: ["env=prod"], place: .gate, launcher: "user:carol", approvers: ["user:alice", "user:bob"],
            end: .approved),
        Row(name: "locally the launcher counts as one of two", action: "aws:cloudformation:DeleteStack", labels: ["destructive"],
            tags: ["env=prod"], launcher: "alice", approvers: ["alice", "ops"], end: .approved),
        Row(name: "past @expires(1h): expired, nothing counted", action: "aws:cloudformation:DeleteStack", labels: ["destructive"],
            tags: ["env=prod"], approvers: ["alice"], after: 3601, end: .expired),
        Row(name: "no policy matched: one approver within a day, expired after it", action: "aws:sqs:CreateQueue", approvers: ["bob"],
            after: 86_401, end: .expired),
        Row(name: "within a day, fine", action: "aws:sqs:CreateQueue", approvers: ["bob"], after: 86_000, end: .approved),
    ]

    static func run(_ row: Row) throws -> End {
        let rules = try AirlockRules([AirlockRules.Source(label: "policy.cedar", text: policy)])
        let facts = ProposalFacts(action: row.action, serviceGroups: AirlockCedar.serviceGroups(of: row.action), group: "mutation",
                                  target: .init(kind: "aws", name: row.target, tags: row.tags), labels: row.labels)
        // 2026-12-06 at the row's hour, UTC.
        let now: Int64 = 1_796_515_200 + row.hour * 3600
        let session = SessionFacts(id: "s1", host: "laptop", user: row.launcher)
        let outcome = rules.decide(facts, session: session, now: now).outcome
        if case .deny(let policies) = outcome { return .denied(policies) }
        let requirement = try #require(outcome.requirement)
        if let policy = requirement.allowedBy { return .allowed(policy) }
        var counted: [String] = []
        for approver in row.approvers {
            switch ApprovalTally.verdict(requirement: requirement, approver: approver, counted: counted, launcher: row.launcher,
                                         place: row.place, proposedAt: 0, now: row.after) {
            case .approved: return .approved
            case .needsMore: counted.append(approver)
            case .refused(let why): return .refused(why)
            case .expired: return .expired
            }
        }
        let valid = Set(counted.filter { row.place == .local || $0 != row.launcher }).count
        return .needsMore(max(1, requirement.approvals) - valid)
    }

    @Test(arguments: rows) func eachRowEndsAsWritten(_ row: Row) throws {
        let end = try Self.run(row)
        switch (end, row.end) {
        case let (.refused(why), .refused(fragment)): #expect(why.contains(fragment), "\(why)")
        default: #expect(end == row.end, "\(row.name): \(end)")
        }
    }

    @Test func annotationsAreCheckedWhenLoaded() throws {
        let bad: [(String, String)] = [
            ("@approvals(\"0\") permit (principal, action, resource);", "from 1 to 10"),
            ("@approvals(\"11\") permit (principal, action, resource);", "from 1 to 10"),
            ("@approvals(\"two\") permit (principal, action, resource);", "whole number"),
            ("@expires(\"30s\") permit (principal, action, resource);", "from 1m to 30d"),
            ("@expires(\"1y\") permit (principal, action, resource);", "duration"),
            ("@airlock_allow forbid (principal, action, resource);", "belong on a permit"),
            ("@airlock_allow @approvals(\"2\") permit (principal, action, resource);", "no meaning"),
            ("@id(\"x\") permit (principal, action, resource); @id(\"x\") forbid (principal, action, resource);", "two policies are named x"),
        ]
        for (text, fragment) in bad {
            #expect(throws: AirlockError.self, "\(text)") { try AirlockRules([.init(label: "p.cedar", text: text)]) }
            do { _ = try AirlockRules([.init(label: "p.cedar", text: text)]) } catch {
                #expect(error.message.contains(fragment), "\(text): \(error.message)")
            }
        }
        #expect(RuleAnnotations.duration("1h30m") == 5400 && RuleAnnotations.duration("2d") == 172_800 && RuleAnnotations.duration("h") == nil)
    }

    @Test func aPolicyThatDoesNotFitTheSchemaIsRefusedWhole() throws {
        let rows: [(String, String)] = [
            ("permit (principal, action == Action::\"aws:s3:PutObjet\", resource);", "did you mean `aws:s3:PutObject`"),
            ("permit (principal, action, resource) when { resource.account == \"1\" };", "resource.account may be missing"),
            ("permit (principal, action, resource) when { context.lables.contains(\"x\") };", "context has no attribute `lables`"),
            ("permit (principal, action, resource) when { resource.tags.contains(3) };", "set of String"),
            ("permit (principal is Sesion, action, resource);", "unrecognized entity type `Sesion`"),
            ("permit (principal, action, resource) when { context.risk like \"h*\" ", "line 1, column"),
        ]
        // As with the catalog: AWS operations it lists are known, others are not.
        let catalog: AirlockCedar.ActionLookup = { id in
            id.hasPrefix("aws:") ? AirlockCedar.wellKnownActions.first { $0.id == id }?.group : AirlockCedar.shapeLookup(id)
        }
        for (text, fragment) in rows {
            do {
                _ = try AirlockRules([.init(label: "p.cedar", text: text)], lookup: catalog)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.message.contains(fragment), "\(text): \(error.message)")
            }
        }
        // What docs/policy.md shows validates.
        _ = try AirlockRules([.init(label: "policy.cedar", text: Self.policy)])
    }

    /// A host's own policy can only tighten what a gate's decides (docs/policy.md, "Who may
    /// loosen").
    @Test func aHostsPolicyOnlyTightens() {
        let day = RuleAnnotations.defaultExpiry
        let gateAllows = RuleOutcome.allow(policy: "scratch")
        let gateAsksTwo = RuleOutcome.ask(approvals: 2, expiresAfter: 3600, policies: ["prod"])
        // A host allow sends nothing: the gate's outcome stands.
        #expect(HostRequirement(.allow(policy: "mine")) == nil)
        #expect(gateAsksTwo.tightened(by: HostRequirement(.allow(policy: "mine"))) == gateAsksTwo)
        // A host asking one (the default) sends nothing either.
        #expect(HostRequirement(.ask(approvals: 1, expiresAfter: day, policies: ["mine"])) == nil)
        // A host asking three raises the gate's two; asking for less never lowers it.
        let three = HostRequirement(.ask(approvals: 3, expiresAfter: day, policies: ["mine"]))
        #expect(gateAsksTwo.tightened(by: three) == .ask(approvals: 3, expiresAfter: 3600, policies: ["prod", "host:mine"]))
        #expect(gateAsksTwo.tightened(by: HostRequirement(approvals: 1, expiresAfter: nil, policies: [])) == gateAsksTwo)
        // A host's ask turns a gate's allow into an ask; a shorter deadline shortens.
        #expect(gateAllows.tightened(by: three) == .ask(approvals: 3, expiresAfter: day, policies: ["scratch", "host:mine"]))
        let soon = HostRequirement(.ask(approvals: 1, expiresAfter: 600, policies: ["mine"]))
        #expect(gateAsksTwo.tightened(by: soon) == .ask(approvals: 2, expiresAfter: 600, policies: ["prod", "host:mine"]))
        // A gate's deny stays a deny.
        #expect(RuleOutcome.deny(policies: ["x"]).tightened(by: three) == .deny(policies: ["x"]))
        // What a host sends is bounded on the gate.
        #expect(HostRequirement(json: .object([("approvals", .number(0))])) == nil)
        #expect(HostRequirement(json: .object([("approvals", .number(11))])) == nil)
        #expect(HostRequirement(json: .object([("expires_after_seconds", .number(5))])) == nil)
        #expect(HostRequirement(json: three!.json) == three)
    }

    /// The facts a payload gives rules: action ids, targets, and an agent's argv cannot forge
    /// another action's id.
    @Test func factsFromPayloads() throws {
        let put = PinnedRequest(json: .object([
            ("type", .string("aws-request")), ("service", .string("s3")), ("signing_name", .string("s3")), ("region", .string("eu-west-1")),
            ("operation", .string("PutObject")), ("method", .string("PUT")), ("path", .string("/scratch-1/dir/a%20b.txt")), ("query", .string("")),
            ("headers", .array([])), ("body_base64", .string("")),
        ]))!
        let facts = ProposalFacts.of(payload: .aws(put), decision: .mutation, preview: nil)
        #expect(facts.action == "aws:s3:PutObject" && facts.target.name == "arn:aws:s3:::scratch-1/dir/a b.txt" && facts.target.region == "eu-west-1")
        #expect(facts.serviceGroups == ["aws:s3", "aws"] && facts.group == "mutation" && !facts.previewKnown)
        let preview: JSON = .object([("type", .string("aws-effect")), ("labels", .array([.object([("label", .string("destructive"))])])),
                                     ("resources", .array([.object([("type", .string("AWS::CloudFormation::Stack")), ("id", .string("arn:aws:cloudformation:us-east-1:123456789012:stack/prod/x")),
                                                                    ("tags", .object([("env", .string("prod"))])), ("bytes", .number(100))])])),
                                     ("notes", .array([]))])
        let stack = ProposalFacts.of(payload: .aws(put), decision: .mutation, preview: preview)
        #expect(stack.labels == ["destructive"] && stack.target.account == "123456789012" && stack.bytes == 100 && stack.previewKnown, "\(stack)")
        #expect(CommandFacts.name("apply:x\"") == "apply_x_" && CommandFacts.name("") == "_")
        #expect(AirlockCedar.serviceGroups(of: "command:terraform:apply") == ["command:terraform", "command"])
    }

    /// Found by review (each a way around a plausible policy), kept as rows.
    @Test func whatAReviewFoundAroundThePolicies() throws {
        let rules = try AirlockRules([.init(label: "p.cedar", text: """
            @id("agent-branches") @airlock_allow
            permit (principal, action == Action::"github:push", resource) when { resource has ref && resource.ref like "refs/heads/agent-*" };
            @id("no-main") forbid (principal, action == Action::"github:push", resource) when { resource has ref && resource.ref == "refs/heads/main" };
            @id("dev-only") @airlock_allow
            permit (principal, action == Action::"aws:ec2:TerminateInstances", resource) when { resource.tags.contains("env=dev") };
            @id("no-sensitive-writes") forbid (principal, action in Action::"mutation", resource) when { context.labels.contains("permissions") };
            @id("big") @approvals("3") permit (principal, action, resource) when { context.preview.bytes * 4611686018427387904 > 1 };
            @id("scratch") @airlock_allow permit (principal, action == Action::"aws:s3:PutObject", resource) when { resource.name like "arn:aws:s3:::scratch-*" };
            """)], lookup: { id in id == "aws:iam:CreateAccessKey" ? "mutation" : AirlockCedar.shapeLookup(id) })
        let session = SessionFacts(id: "s", host: "h", user: "u")
        // A push of an agent branch and main: each ref is decided; main is forbidden whatever
        // the order the agent wrote them in.
        let push = ProposalPayload.gitPush(GitPushPayload(host: "github.com", repository: "/Acme/App.git", body: [], updates: [
            .init(ref: "refs/heads/agent-x", old: String(repeating: "0", count: 40), new: String(repeating: "1", count: 40)),
            .init(ref: "refs/heads/main", old: String(repeating: "2", count: 40), new: String(repeating: "3", count: 40)),
        ]))
        let parts = ProposalFacts.parts(of: push, decision: .mutation, preview: nil)
        #expect(parts.map(\.target.ref) == ["refs/heads/agent-x", "refs/heads/main"] && parts.allSatisfy { $0.target.repository == "acme/app" })
        #expect(rules.decide(parts: parts, session: session, now: 0) == .deny(policies: ["no-main"]))
        #expect(rules.decide(parts: Array(parts.prefix(1)), session: session, now: 0) == .allow(policy: "agent-branches"))
        // Terminating a dev and a prod instance: each resource is decided; not allowed.
        let terminate = PinnedRequest(json: .object([
            ("type", .string("aws-request")), ("service", .string("ec2")), ("signing_name", .string("ec2")), ("region", .string("us-east-1")),
            ("operation", .string("TerminateInstances")), ("method", .string("POST")), ("path", .string("/")), ("query", .string("")),
            ("headers", .array([])), ("body_base64", .string("")),
        ]))!
        func instance(_ id: String, _ env: String) -> JSON {
            .object([("type", .string("AWS::EC2::Instance")), ("id", .string("arn:aws:ec2:us-east-1:123456789012:instance/\(id)")),
                     ("tags", .object([("env", .string(env))]))])
        }
        let two: JSON = .object([("type", .string("aws-effect")), ("labels", .array([])), ("resources", .array([instance("i-1", "dev"), instance("i-2", "prod")])), ("notes", .array([]))])
        let both = rules.decide(parts: ProposalFacts.parts(of: .aws(terminate), decision: .mutation, preview: two), session: session, now: 0)
        #expect(both == .ask(approvals: 1, expiresAfter: RuleAnnotations.defaultExpiry, policies: []), "\(both)")
        let devOnly: JSON = .object([("type", .string("aws-effect")), ("labels", .array([])), ("resources", .array([instance("i-1", "dev"), instance("i-3", "dev")])), ("notes", .array([]))])
        #expect(rules.decide(parts: ProposalFacts.parts(of: .aws(terminate), decision: .mutation, preview: devOnly), session: session, now: 0) == .allow(policy: "dev-only"))
        // A sensitive write (ruled sensitive by the classifier) is in `mutation` too.
        var key = ProposalFacts(action: "aws:iam:CreateAccessKey", serviceGroups: ["aws:iam", "aws"], group: "sensitive-read",
                                target: .init(kind: "aws", name: "bob"), labels: ["permissions"])
        #expect(rules.decide(key, session: session, now: 0).outcome == .deny(policies: ["no-sensitive-writes"]))
        // A policy that errors (an overflow) never leaves an allow standing: the scratch upload
        // with bytes that overflow `big`'s arithmetic asks, with big's 3 approvers.
        var upload = ProposalFacts(action: "aws:s3:PutObject", serviceGroups: ["aws:s3", "aws"], group: "mutation",
                                   target: .init(kind: "aws", name: "arn:aws:s3:::scratch-1/k"), bytes: 4)
        let (outcome, response) = rules.decide(upload, session: session, now: 0)
        #expect(response.errors.map(\.policy) == ["big"] && outcome == .ask(approvals: 3, expiresAfter: RuleAnnotations.defaultExpiry, policies: ["scratch", "big"]), "\(outcome)")
        upload.bytes = 0
        #expect(rules.decide(upload, session: session, now: 0).outcome == .allow(policy: "scratch"))
        key.labels = []
        // terraform apply -destroy is a destroy.
        let destroy = CommandPayload(tool: "terraform", binary: "/usr/bin/terraform", command: ["terraform", "apply", "-destroy"],
                                     apply: ["terraform", "apply", "-destroy", "plan"], workspace: "/w", directory: "", artifact: "a",
                                     pins: [], reason: "", snapshotFiles: 0, snapshotBytes: 0, snapshotDigest: "", outputs: [])
        #expect(ProposalFacts.of(payload: .command(destroy), decision: .mutation, preview: nil).action == "command:terraform:destroy")
        // Kubernetes: deleting a namespace is in that namespace; a subresource is named.
        func kube(_ method: String, _ path: String) -> ProposalFacts {
            ProposalFacts.of(payload: .kubernetes(KubernetesPinnedRequest(context: "c", server: "https://k", method: method, path: path, query: "",
                                                                         headers: [], body: [])), decision: .mutation, preview: nil)
        }
        let namespace = kube("DELETE", "/api/v1/namespaces/prod")
        #expect(namespace.action == "kubernetes:delete" && namespace.target.namespace == "prod", "\(namespace)")
        let exec = kube("POST", "/api/v1/namespaces/prod/pods/web/exec")
        #expect(exec.target.service == "pods/exec" && exec.target.namespace == "prod", "\(exec)")
        #expect(RuleOutcome.combined([.allow(policy: "a"), .allow(policy: "b")]) == .allow(policy: "a+b"))
        #expect(RuleOutcome.combined([.allow(policy: "a"), .deny(policies: ["x"]), .ask(approvals: 2, expiresAfter: 60, policies: ["y"])]) == .deny(policies: ["x"]))
    }
}
