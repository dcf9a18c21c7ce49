import AirlockCore
import AirlockPolicy
import Glibc

/// `airlock-bench policy`: what deciding one proposal costs with a 100-policy set
/// (docs/policy.md): the request built from the proposal's facts and the whole set evaluated,
/// as the broker and the gate do for every proposal; median of many rounds, beside the goal.
func measurePolicy() {
    var text = ""
    let services = ["s3", "ec2", "iam", "cloudformation", "sqs", "dynamodb", "lambda", "rds", "kms", "logs"]
    let operations = ["PutObject", "TerminateInstances", "CreateAccessKey", "DeleteStack", "DeleteQueue", "DeleteTable", "DeleteFunction",
                      "DeleteDBInstance", "ScheduleKeyDeletion", "DeleteLogGroup"]
    for index in 0..<100 {
        let service = services[index % services.count], operation = operations[index % operations.count]
        switch index % 5 {
        case 0:
            text += "@id(\"allow-\(index)\") @airlock_allow permit (principal, action == Action::\"aws:\(service):\(operation)\", resource) when { resource.name like \"arn:aws:\(service):::scratch-\(index)-*\" };\n"
        case 1:
            text += "@id(\"two-\(index)\") @approvals(\"2\") @expires(\"1h\") permit (principal, action in Action::\"aws:\(service)\", resource) when { context.labels.contains(\"destructive\") && resource.tags.contains(\"env=prod-\(index)\") };\n"
        case 2:
            text += "@id(\"forbid-\(index)\") forbid (principal, action == Action::\"aws:\(service):\(operation)\", resource) when { resource has account && resource.account == \"1234567890\(index % 10)\(index % 7)\" };\n"
        case 3:
            text += "@id(\"night-\(index)\") forbid (principal, action in Action::\"mutation\", resource) when { context.labels.contains(\"production\") && context.time.hour == \(index % 24) && resource.tags.containsAny([\"team=\(index)\", \"owner=\(index)\"]) };\n"
        default:
            text += "@id(\"big-\(index)\") @approvals(\"3\") permit (principal, action, resource) when { context.preview.bytes > \(index) * 1000000000 || (principal.profile like \"*prod-\(index)*\" && context.risk == \"high\") };\n"
        }
    }
    let rules: AirlockRules
    do { rules = try AirlockRules([.init(label: "bench.cedar", text: text)]) } catch { fail("the bench's policy set is invalid: \(error.message)") }
    let proposals: [ProposalFacts] = [
        ProposalFacts(action: "aws:s3:PutObject", serviceGroups: ["aws:s3", "aws"], group: "mutation",
                      target: .init(kind: "aws", name: "arn:aws:s3:::scratch-0-a/key.txt", service: "s3", region: "us-east-1")),
        ProposalFacts(action: "aws:cloudformation:DeleteStack", serviceGroups: ["aws:cloudformation", "aws"], group: "mutation",
                      target: .init(kind: "aws", name: "arn:aws:cloudformation:us-east-1:123456789012:stack/prod/x", service: "cloudformation",
                                    account: "123456789012", region: "us-east-1", tags: ["env=prod-11", "team=platform"]),
                      labels: ["destructive", "irreversible", "production", "data-loss"], resources: 4, bytes: 32100, previewKnown: true),
        ProposalFacts(action: "aws:iam:CreateAccessKey", serviceGroups: ["aws:iam", "aws"], group: "mutation",
                      target: .init(kind: "aws", name: "bob", service: "iam"), labels: ["permissions"]),
    ]
    let session = SessionFacts(id: "s1", host: "laptop", user: "alice", profiles: ["default", "python"], address: "127.0.0.1",
                               proposals: 12, approved: 5, denied: 1)
    func now() -> Double { Clock.monotonicSeconds() }
    var outcomes: [String] = []
    for facts in proposals {
        let (outcome, response) = rules.decide(facts, session: session, now: 1_796_515_200)
        outcomes.append("\(facts.action) → \(outcome) (\(response.determining.count) determining, \(response.errors.count) errors)")
    }
    var decide: [Double] = [], evaluate: [Double] = []
    let built = proposals.map { AirlockCedar.request($0, session: session, now: 1_796_515_200) }
    var sink = 0
    let rounds = Int(getenv("BENCH_POLICY_ROUNDS").map { String(cString: $0) } ?? "") ?? 2000
    for round in 0..<rounds {
        let facts = proposals[round % proposals.count]
        var start = now()
        for _ in 0..<10 { sink &+= rules.decide(facts, session: session, now: 1_796_515_200).response.determining.count }
        decide.append((now() - start) / 10 * 1e6)
        let (request, entities) = built[round % built.count]
        start = now()
        for _ in 0..<10 { sink &+= rules.authorize(request, entities).determining.count }
        evaluate.append((now() - start) / 10 * 1e6)
    }
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    print("policy: 100 policies (\(rules.policies.filter { $0.effect == .forbid }.count) forbid), 3 proposals, 2000 rounds of 10 decisions")
    for line in outcomes { print("  " + line) }
    let full = median(decide), bare = median(evaluate)
    func micro(_ value: Double) -> String { String(Double(Int(value * 100)) / 100) + " µs" }
    print("  decision (request built from facts + 100 policies evaluated): median \(micro(full))   goal < 20 µs: \(full < 20 ? "met" : "NOT met")")
    print("  evaluation alone (the request built once):                   median \(micro(bare))")
    if sink == 42 { print("") }
}
