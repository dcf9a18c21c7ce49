import AirlockCore

/// Airlock's Cedar schema and requests (docs/policy.md): principal = the session, action = the
/// operation, resource = the target, context = risk labels, preview facts, time and the
/// session's counts. Pure: facts in, a Cedar request and its entities out.
public enum AirlockCedar {
    /// The action groups every operation is in: what it does (`mutation`, `sensitive-read`)
    /// and where (`aws`, `aws:s3`, `kubernetes`, `github`, `command`, `command:terraform`).
    public static let kindGroups = ["mutation", "sensitive-read"]
    public static let providerGroups = ["aws", "kubernetes", "github", "command"]

    /// Actions every schema declares, so a policy that names only groups still has a request
    /// environment to be checked in (and examples in docs/policy.md validate).
    public static let wellKnownActions: [(id: String, group: String)] = [
        ("aws:s3:PutObject", "mutation"), ("aws:s3:DeleteObject", "mutation"), ("aws:s3:GetObject", "sensitive-read"),
        ("aws:iam:CreateAccessKey", "mutation"), ("aws:cloudformation:DeleteStack", "mutation"),
        ("aws:ec2:TerminateInstances", "mutation"), ("aws:secretsmanager:GetSecretValue", "sensitive-read"),
        ("kubernetes:create", "mutation"), ("kubernetes:update", "mutation"), ("kubernetes:patch", "mutation"),
        ("kubernetes:delete", "mutation"), ("kubernetes:deletecollection", "mutation"), ("kubernetes:get", "sensitive-read"),
        ("kubernetes:list", "sensitive-read"), ("kubernetes:watch", "sensitive-read"),
        ("github:push", "mutation"), ("github:post", "mutation"), ("github:put", "mutation"), ("github:patch", "mutation"),
        ("github:delete", "mutation"), ("github:get", "sensitive-read"),
        ("command:terraform:apply", "mutation"), ("command:terraform:destroy", "mutation"), ("command:kubectl:apply", "mutation"),
        ("command:helm:upgrade", "mutation"), ("command:helm:install", "mutation"),
    ]

    static func entityAttribute(_ name: String) -> CedarAttributeType { CedarAttributeType(.entity([name])) }
    static let stringSet = CedarType.set(.string)

    public static let sessionAttributes: [String: CedarAttributeType] = [
        "host": entityAttribute("Host"), "user": entityAttribute("Human"), "profile": CedarAttributeType(.string),
        "labels": CedarAttributeType(stringSet), "address": CedarAttributeType(.ext("ipaddr"), required: false),
    ]

    public static let targetAttributes: [String: CedarAttributeType] = [
        "kind": CedarAttributeType(.string), "name": CedarAttributeType(.string), "tags": CedarAttributeType(stringSet),
        "service": CedarAttributeType(.string, required: false), "account": CedarAttributeType(.string, required: false),
        "region": CedarAttributeType(.string, required: false), "namespace": CedarAttributeType(.string, required: false),
        "repository": CedarAttributeType(.string, required: false), "ref": CedarAttributeType(.string, required: false),
    ]

    public static let contextAttributes: [String: CedarAttributeType] = [
        "labels": CedarAttributeType(stringSet), "risk": CedarAttributeType(.string),
        "preview": CedarAttributeType(.record(["resources": CedarAttributeType(.long), "bytes": CedarAttributeType(.long),
                                               "known": CedarAttributeType(.boolean)], open: false)),
        "time": CedarAttributeType(.record(["epoch": CedarAttributeType(.long), "hour": CedarAttributeType(.long),
                                            "weekday": CedarAttributeType(.long)], open: false)),
        "session": CedarAttributeType(.record(["proposals": CedarAttributeType(.long), "approved": CedarAttributeType(.long),
                                               "denied": CedarAttributeType(.long)], open: false)),
        "cost": CedarAttributeType(.ext("decimal"), required: false),
    ]

    /// Whether `id` names an action Airlock can ask about, and which group it is in; nil when
    /// it is not one (a typo is a validation error, not a rule that never matches).
    public typealias ActionLookup = @Sendable (String) -> String?

    /// The lookup without AWS's catalog: the well-known actions, Kubernetes verbs, GitHub
    /// methods, any command, and `aws:SERVICE:Operation` shaped ids (mutation).
    public static let shapeLookup: ActionLookup = { id in
        if let known = wellKnownActions.first(where: { $0.id == id }) { return known.group }
        let parts = id.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "aws" where parts.count == 3 && !parts[1].isEmpty && parts[2].first?.isUppercase == true: return "mutation"
        case "command" where parts.count == 3 && !parts[1].isEmpty && !parts[2].isEmpty: return "mutation"
        default: return nil
        }
    }

    /// The groups an action id is in beside its kind group, most specific first.
    public static func serviceGroups(of id: String) -> [String] {
        let parts = id.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "aws" where parts.count >= 2: return ["aws:\(parts[1])", "aws"]
        case "command" where parts.count >= 2: return ["command:\(parts[1])", "command"]
        case let provider? where providerGroups.contains(provider): return [provider]
        default: return []
        }
    }

    /// Whether `id` names a group a policy may use.
    static func isGroup(_ id: String, lookup: ActionLookup) -> Bool {
        if kindGroups.contains(id) || providerGroups.contains(id) { return true }
        let parts = id.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else { return false }
        return parts[0] == "aws" || parts[0] == "command"
    }

    /// The schema a policy set is validated against: the entity types, the groups, the
    /// well-known actions and every action the policies name that `lookup` knows.
    public static func schema(for policies: [CedarPolicy], lookup: ActionLookup = shapeLookup) -> CedarSchema {
        var named = Set<String>()
        for policy in policies {
            switch policy.action {
            case .any: break
            case .equals(let uid), .isInOne(let uid): named.insert(uid.id)
            case .isIn(let list): list.forEach { named.insert($0.id) }
            }
            for condition in policy.conditions {
                CedarValidator.visit(condition.body) { expr in
                    if case .literal(.entity(let uid)) = expr.kind, CedarValidator.isActionType(uid.type) { named.insert(uid.id) }
                }
            }
        }
        var actions: [String: String] = Dictionary(wellKnownActions.map { ($0.id, $0.group) }, uniquingKeysWith: { a, _ in a })
        var groups = Set(kindGroups + providerGroups)
        for id in named {
            if isGroup(id, lookup: lookup) { groups.insert(id) } else if let group = lookup(id) { actions[id] = group }
        }
        for id in actions.keys { groups.formUnion(serviceGroups(of: id)) }
        // A service group a policy names (`action in Action::"aws:lambda"`) without naming one
        // of its operations still gets a request environment to be checked in: a stand-in
        // member no policy can name (its id is not an operation's).
        for group in groups where group.contains(":") && !actions.keys.contains(where: { serviceGroups(of: $0).first == group }) {
            actions[group + ":(any operation)"] = "mutation"
        }
        func uid(_ id: String) -> CedarEntityUID { CedarEntityUID("Action", id) }
        var declared: [CedarSchema.Action] = []
        for group in groups {
            let parents = group.contains(":") ? [uid(String(group.prefix { $0 != ":" }))] : []
            declared.append(CedarSchema.Action(uid: uid(group), memberOf: parents, principals: nil, resources: [], context: [:]))
        }
        for (id, group) in actions {
            declared.append(CedarSchema.Action(uid: uid(id), memberOf: [uid(group)] + serviceGroups(of: id).prefix(1).map(uid),
                                               principals: ["Session"], resources: ["Target"], context: contextAttributes))
        }
        return CedarSchema(entityTypes: [
            .init(name: "Host", memberOf: [], attributes: [:]), .init(name: "Human", memberOf: [], attributes: [:]),
            .init(name: "Account", memberOf: [], attributes: [:]),
            .init(name: "Session", memberOf: ["Host"], attributes: sessionAttributes),
            .init(name: "Target", memberOf: ["Account"], attributes: targetAttributes),
        ], actions: declared)
    }

    /// The request for one proposal, with the entities it is decided against.
    public static func request(_ facts: ProposalFacts, session: SessionFacts, now epochSeconds: Int64) -> (CedarRequest, CedarEntities) {
        let sessionUID = CedarEntityUID("Session", session.id)
        let hostUID = CedarEntityUID("Host", session.host)
        let humanUID = CedarEntityUID("Human", session.user)
        var sessionAttributes: [String: CedarValue] = [
            "host": .entity(hostUID), "user": .entity(humanUID), "profile": .string(session.profiles.joined(separator: ",")),
            "labels": .set(Set(session.labels.map(CedarValue.string))),
        ]
        if let ip = session.ip { sessionAttributes["address"] = .ipaddr(ip) }
        let target = facts.target
        let targetUID = CedarEntityUID("Target", target.name)
        var targetAttributes: [String: CedarValue] = [
            "kind": .string(target.kind), "name": .string(target.name), "tags": .set(Set(target.tags.map(CedarValue.string))),
        ]
        for (key, value) in [("service", target.service), ("account", target.account), ("region", target.region),
                             ("namespace", target.namespace), ("repository", target.repository), ("ref", target.ref)] {
            if let value { targetAttributes[key] = .string(value) }
        }
        // Entities with neither attributes nor parents (the host, the human, the account, the
        // kind groups) are left out of the store: `in` reaches them through their children's
        // parents, and `has` on them is false either way (scripts/bench policy: a fifth of a
        // decision was building them).
        var entities = [
            CedarEntity(sessionUID, attributes: sessionAttributes, parents: [hostUID]),
            CedarEntity(targetUID, attributes: targetAttributes, parents: target.account.map { [CedarEntityUID("Account", $0)] } ?? []),
        ]
        let actionUID = CedarEntityUID("Action", facts.action)
        let groups = facts.serviceGroups
        entities.append(CedarEntity(actionUID, parents: ([facts.group] + facts.otherGroups).map { CedarEntityUID("Action", $0) }
                                    + groups.prefix(1).map { CedarEntityUID("Action", $0) }))
        for (index, group) in groups.enumerated() {
            entities.append(CedarEntity(CedarEntityUID("Action", group), parents: groups.dropFirst(index + 1).prefix(1).map { CedarEntityUID("Action", $0) }))
        }
        let days = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
        let context: [String: CedarValue] = [
            "labels": .set(Set(facts.labels.map(CedarValue.string))),
            "risk": .string(facts.risk),
            "preview": .record(["resources": .long(Int64(facts.resources)), "bytes": .long(Int64(facts.bytes)), "known": .bool(facts.previewKnown)]),
            // UTC: hour 0–23, weekday 1 (Monday) – 7 (Sunday); 1970-01-01 was a Thursday.
            "time": .record(["epoch": .long(epochSeconds), "hour": .long((epochSeconds - days * 86_400) / 3600),
                             "weekday": .long((days + 3) % 7 + 1 + ((days + 3) % 7 < 0 ? 7 : 0))]),
            "session": .record(["proposals": .long(Int64(session.proposals)), "approved": .long(Int64(session.approved)),
                                "denied": .long(Int64(session.denied))]),
        ]
        return (CedarRequest(principal: sessionUID, action: actionUID, resource: targetUID, context: context), CedarEntities(entities))
    }
}
