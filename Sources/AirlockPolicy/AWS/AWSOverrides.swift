/// The hand-kept `profiles/aws/overrides.yaml`: sensitive reads, hard denies and read
/// overrides (its IAM mapping sections are the generator's and are not needed here).
public struct AWSOverrides: Sendable {
    public struct Condition: Sendable, Equatable {
        public var member: String
        /// `body:<key>`, `query:<name>`, `header:<name>`, `uri:<label>` or `form:<name>`.
        public var location: String
        public var equals: String
    }

    public struct Entry: Sendable, Equatable {
        public var operation: String
        public var reason: String
        public var when: Condition?
    }

    public private(set) var sensitive: [String: [Entry]] = [:]
    public private(set) var deny: [String: Entry] = [:]
    public private(set) var read: [String: Entry] = [:]

    public init() {}

    public init(yamlText: String, source: String = "overrides.yaml") throws(AWSCatalogError) {
        let root: YAMLNode?
        do { root = try YAML.parse(yamlText) } catch { throw AWSCatalogError("\(source): \(error)") }
        guard let root, case .mapping(let sections) = root.value else {
            throw AWSCatalogError("\(source): expected the sections iam_prefix, iam_mapping, sensitive, deny, read")
        }
        for section in sections {
            switch section.key {
            case "iam_prefix", "iam_mapping": continue  // used by scripts/aws-catalog
            case "sensitive", "deny", "read":
                guard case .sequence(let items) = section.value.value else {
                    if section.value.isNull { continue }
                    throw AWSCatalogError("\(source):\(section.line): \(section.key) must be a list")
                }
                for item in items {
                    let entry = try Self.entry(item, source: source)
                    switch section.key {
                    case "sensitive": sensitive[entry.operation, default: []].append(entry)
                    case "deny": deny[entry.operation] = entry
                    default: read[entry.operation] = entry
                    }
                }
            default:
                throw AWSCatalogError("\(source):\(section.line): unknown section '\(section.key)'")
            }
        }
    }

    static func entry(_ node: YAMLNode, source: String) throws(AWSCatalogError) -> Entry {
        guard case .mapping(let fields) = node.value else {
            throw AWSCatalogError("\(source):\(node.line): an entry must be {operation, reason}")
        }
        func field(_ name: String) -> YAMLNode? { fields.first { $0.key == name }?.value }
        guard let operation = field("operation")?.scalar, operation.contains(":"),
            let reason = field("reason")?.scalar, !reason.isEmpty
        else { throw AWSCatalogError("\(source):\(node.line): an entry needs operation (service:Operation) and reason") }
        var when: Condition?
        if let condition = field("when") {
            guard case .mapping(let parts) = condition.value,
                let member = parts.first(where: { $0.key == "member" })?.value.scalar,
                let location = parts.first(where: { $0.key == "location" })?.value.scalar,
                let equals = parts.first(where: { $0.key == "equals" })?.value.scalar
            else { throw AWSCatalogError("\(source):\(condition.line): when needs member, location and equals") }
            // Conditions are flags that fail closed (set unless literally false), so the
            // only meaningful value is true.
            guard equals == "true" else { throw AWSCatalogError("\(source):\(condition.line): when: equals must be true (a condition holds unless the member is literally false)") }
            when = Condition(member: member, location: location, equals: equals)
        }
        return Entry(operation: operation, reason: reason, when: when)
    }
}
