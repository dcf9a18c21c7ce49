import AirlockCore

/// request → (service, operation) → read | sensitive | mutation | deny, with the rule that
/// decided. Pure. Order (docs/aws-catalog.md): deny, sensitive (when its condition holds), read
/// override, IAM access level (List/Read only → read), everything else mutation. Unknown means
/// mutation; an ambiguous request gets its most privileged candidate's decision.
public struct AWSClassifier: Sendable {
    public let overrides: AWSOverrides
    /// What the overrides say of one "service:Operation", found with one lookup a request
    /// (four lookups and a key built per request were a sixth of a classification), the
    /// unconditional rulings' texts made here once.
    struct Verdict: Sendable {
        var deny: Ruling?
        var sensitive: [AWSOverrides.Entry] = []
        var read: Ruling?
    }
    let verdicts: [String: Verdict]
    /// Service name → the ruling of its `service:*` deny.
    let deniedServices: [String: Ruling]

    public init(overrides: AWSOverrides) {
        self.overrides = overrides
        var verdicts: [String: Verdict] = [:]
        var deniedServices: [String: Ruling] = [:]
        for (key, entry) in overrides.deny {
            let ruling = Ruling(.deny, "denied (overrides.yaml, \(entry.operation)): \(entry.reason)")
            if key.hasSuffix(":*") { deniedServices[String(key.dropLast(2))] = ruling } else { verdicts[key, default: Verdict()].deny = ruling }
        }
        for (key, entries) in overrides.sensitive { verdicts[key, default: Verdict()].sensitive = entries }
        for (key, entry) in overrides.read { verdicts[key, default: Verdict()].read = Ruling(.read, "read (overrides.yaml, \(key)): \(entry.reason)") }
        self.verdicts = verdicts
        self.deniedServices = deniedServices
    }

    public struct Classification: Sendable {
        public var service: String
        /// The operation when known exactly; for an ambiguous request the deciding candidate.
        public var operation: String?
        public var ruling: Ruling
        public var resolution: AWSResolution
    }

    public func classify(_ request: AWSRequest, service: AWSService, servicePath: String) -> Classification {
        let resolution = AWSOperationResolver.resolve(request, service: service, servicePath: servicePath)
        switch resolution {
        case .exact(let operation, let bindings):
            let ruling = decide(service: service, operation: operation, request: request, bindings: bindings)
            return Classification(service: service.name, operation: operation.name, ruling: ruling, resolution: resolution)
        case .ambiguous(let candidates):
            let rulings = candidates.map { ($0, decide(service: service, operation: $0, request: request, bindings: [:])) }
            let top = rulings.max { $0.1.decision < $1.1.decision }!
            let names = candidates.map(\.name).joined(separator: " or ")
            let ruling = Ruling(top.1.decision, "ambiguous request (\(names)); the most privileged decides: \(top.1.rule)")
            return Classification(service: service.name, operation: top.0.name, ruling: ruling, resolution: resolution)
        case .unknown(let why):
            return Classification(service: service.name, operation: nil,
                                  ruling: Ruling(.mutation, "unknown operation (\(why)): unknown means mutation"),
                                  resolution: resolution)
        }
    }

    public func decide(service: AWSService, operation: AWSOperation, request: AWSRequest, bindings: [String: String]) -> Ruling {
        let key = operation.key  // "service:Operation", made when the catalog was read
        let verdict = verdicts[key]
        if let ruling = verdict?.deny ?? (deniedServices.isEmpty ? nil : deniedServices[service.name]) { return ruling }
        for entry in verdict?.sensitive ?? [] {
            guard let condition = entry.when else {
                return Ruling(.sensitive, "sensitive (overrides.yaml, \(key)): \(entry.reason)")
            }
            if Self.holds(condition, request: request, bindings: bindings) {
                return Ruling(.sensitive, "sensitive (overrides.yaml, \(key) with \(condition.member) set): \(entry.reason)")
            }
        }
        if let ruling = verdict?.read { return ruling }
        // No override names it: its IAM access level decides (the ruling made with the catalog).
        return operation.iamRuling
    }

    /// The query parameters a request of `service` is decided by: those that route it and
    /// those a `when` condition reads. Each may appear only once.
    public func decidingQueryKeys(for service: AWSService) -> Set<String> {
        var keys = service.routingQueryKeys
        for (operation, entries) in overrides.sensitive where operation.hasPrefix(service.name + ":") {
            for condition in entries.compactMap(\.when) {
                let parts = condition.location.split(separator: ":", maxSplits: 1)
                if parts.count == 2, parts[0] == "query" { keys.insert(String(parts[1])) }
            }
        }
        return keys
    }

    /// Whether a `when` condition holds, failing closed (docs/aws-catalog.md): the member
    /// counts as set when it is present with any value but a literal `false` (`1`, `"yes"`,
    /// `"False"` and a bare `?flag` all count), its name compared case-insensitively (some
    /// parsers match it so). A body that cannot be read counts as set; an absent member not.
    static func holds(_ condition: AWSOverrides.Condition, request: AWSRequest, bindings: [String: String]) -> Bool {
        let parts = condition.location.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return true }
        let (place, name) = (parts[0], parts[1].lowercased())
        switch place {
        case "body":
            guard let json = try? JSON.parseStrict(bytes: request.body), let pairs = json.objectPairs else { return true }
            return pairs.contains { $0.0.lowercased() == name && $0.1 != .bool(false) }
        case "query":
            return request.queryItems.contains { $0.key.lowercased() == name && $0.value != "false" }
        case "form":
            return request.formParameters.contains { $0.key.lowercased() == name && $0.value != "false" }
        case "header":
            return request.headers.contains { $0.name.lowercased() == name && $0.value.trimmingSpaces() != "false" }
        case "uri":
            return bindings.contains { $0.key.lowercased() == name && PercentEncoding.decode($0.value) != "false" }
        default:
            return true
        }
    }
}
