import AirlockCore

/// request → (service, operation) → read | sensitive | mutation | deny, with the rule that
/// decided. Pure. Order (docs/aws-catalog.md): deny, sensitive (when its condition holds), read
/// override, IAM access level (List/Read only → read), everything else mutation. Unknown means
/// mutation; an ambiguous request gets its most privileged candidate's decision.
public struct AWSClassifier: Sendable {
    public let overrides: AWSOverrides

    public init(overrides: AWSOverrides) {
        self.overrides = overrides
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
        let key = "\(service.name):\(operation.name)"
        if let entry = overrides.deny[key] ?? overrides.deny["\(service.name):*"] {
            return Ruling(.deny, "denied (overrides.yaml, \(entry.operation)): \(entry.reason)")
        }
        for entry in overrides.sensitive[key] ?? [] {
            guard let condition = entry.when else {
                return Ruling(.sensitive, "sensitive (overrides.yaml, \(key)): \(entry.reason)")
            }
            if Self.holds(condition, request: request, bindings: bindings) {
                return Ruling(.sensitive, "sensitive (overrides.yaml, \(key) with \(condition.member)=\(condition.equals)): \(entry.reason)")
            }
        }
        if let entry = overrides.read[key] {
            return Ruling(.read, "read (overrides.yaml, \(key)): \(entry.reason)")
        }
        let actions = operation.iamActions.joined(separator: ", ")
        guard !operation.access.isEmpty else {
            return Ruling(.mutation, "no IAM access level known for \(key): unknown means mutation")
        }
        let levels = operation.access.joined(separator: ", ")
        if operation.access.allSatisfy({ $0 == "List" || $0 == "Read" }) {
            return Ruling(.read, "IAM access level \(levels) (\(actions))")
        }
        return Ruling(.mutation, "IAM access level \(levels) (\(actions))")
    }

    /// Whether a `when` condition holds for this request. A body that cannot be read counts as
    /// holding (the safe side); an absent member does not.
    static func holds(_ condition: AWSOverrides.Condition, request: AWSRequest, bindings: [String: String]) -> Bool {
        let parts = condition.location.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return true }
        let (place, name) = (parts[0], parts[1])
        let value: String?
        switch place {
        case "body":
            guard let json = try? JSON.parse(bytes: request.body) else { return true }
            switch json[name] {
            case .bool(let flag)?: value = flag ? "true" : "false"
            case .string(let text)?: value = text
            case .number(let number)?: value = String(number)
            default: value = nil
            }
        case "query": value = request.queryItems.first { $0.key == name }?.value
        case "form": value = request.formParameters.first { $0.key == name }?.value
        case "header": value = request.header(name)
        case "uri": value = bindings[name].map { PercentEncoding.decode($0) }
        default: return true
        }
        return value?.lowercased() == condition.equals.lowercased()
    }
}
