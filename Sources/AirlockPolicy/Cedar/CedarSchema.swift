import AirlockCore

/// A type in a Cedar schema, and in the validator's reasoning (docs/policy.md): `bool` carries
/// what is known of its value (`true`/`false` singletons let `&&` and `if` skip what cannot run,
/// as the reference's typechecker does).
public indirect enum CedarType: Sendable, Hashable, CustomStringConvertible {
    public enum Truth: Sendable, Hashable { case unknown, alwaysTrue, alwaysFalse }

    case never
    case bool(Truth)
    case long
    case string
    /// One of these entity types (one in strict validation).
    case entity(Set<String>)
    case anyEntity
    /// An action entity of this type (`Action`).
    case action(String)
    /// A set; a nil element is "any set" (only as an expectation).
    case set(CedarType?)
    case record([String: CedarAttributeType], open: Bool)
    case ext(String)

    public static let boolean = CedarType.bool(.unknown)

    public var description: String {
        switch self {
        case .never: return "never"
        case .bool(.alwaysTrue): return "true"
        case .bool(.alwaysFalse): return "false"
        case .bool: return "Bool"
        case .long: return "Long"
        case .string: return "String"
        case .entity(let names): return names.sorted().joined(separator: " | ")
        case .anyEntity: return "entity"
        case .action(let name): return name
        case .set(let element): return "Set<\(element?.description ?? "_")>"
        case .record(let attributes, _):
            return "{" + attributes.keys.sorted().map { "\($0)\(attributes[$0]!.required ? "" : "?"): \(attributes[$0]!.type)" }.joined(separator: ", ") + "}"
        case .ext(let name): return name
        }
    }
}

public struct CedarAttributeType: Sendable, Hashable {
    public var type: CedarType
    public var required: Bool

    public init(_ type: CedarType, required: Bool = true) {
        self.type = type
        self.required = required
    }
}

/// A Cedar schema: the entity types, their attributes and hierarchy, and the actions with what
/// they apply to. Read from (and written as) Cedar's JSON schema format, so a team's own
/// tools (the `cedar` CLI, editors) read the same file.
public struct CedarSchema: Sendable {
    public struct EntityType: Sendable {
        public var name: String
        public var memberOf: [String]
        public var attributes: [String: CedarAttributeType]
    }

    public struct Action: Sendable {
        public var uid: CedarEntityUID
        public var memberOf: [CedarEntityUID]
        /// nil: the action applies to nothing (a group).
        public var principals: [String]?
        public var resources: [String]
        public var context: [String: CedarAttributeType]
    }

    public var entityTypes: [String: EntityType]
    public var actions: [CedarEntityUID: Action]
    /// For each entity type, the types that can be in it (itself included).
    private var typesIn: [String: Set<String>] = [:]
    /// For each action, the actions in it (itself included).
    private var actionsIn: [CedarEntityUID: Set<CedarEntityUID>] = [:]

    public init(entityTypes: [EntityType], actions: [Action]) {
        self.entityTypes = Dictionary(entityTypes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.actions = Dictionary(actions.map { ($0.uid, $0) }, uniquingKeysWith: { a, _ in a })
        for name in self.entityTypes.keys {
            typesIn[name] = Set(self.entityTypes.keys.filter { self.ancestorTypes(of: $0).contains(name) }).union([name])
        }
        for uid in self.actions.keys {
            actionsIn[uid] = Set(self.actions.keys.filter { self.ancestorActions(of: $0).contains(uid) }).union([uid])
        }
    }

    private func ancestorTypes(of name: String) -> Set<String> {
        var seen = Set<String>(), stack = entityTypes[name]?.memberOf ?? []
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            stack.append(contentsOf: entityTypes[next]?.memberOf ?? [])
        }
        return seen
    }

    private func ancestorActions(of uid: CedarEntityUID) -> Set<CedarEntityUID> {
        var seen = Set<CedarEntityUID>(), stack = actions[uid]?.memberOf ?? []
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            stack.append(contentsOf: actions[next]?.memberOf ?? [])
        }
        return seen
    }

    /// The entity types that can be `in` an entity of type `name` (itself included).
    public func types(in name: String) -> Set<String> { typesIn[name] ?? [] }

    /// The actions in any of `groups` (themselves included); nil when one is not declared.
    public func actions(in groups: [CedarEntityUID]) -> Set<CedarEntityUID>? {
        var out = Set<CedarEntityUID>()
        for group in groups {
            guard let members = actionsIn[group] else { return nil }
            out.formUnion(members)
        }
        return out
    }

    /// The action entities with their groups as parents, for the entity store of a request
    /// (the reference adds them from the schema the same way).
    public var actionEntities: [CedarEntity] {
        actions.values.map { CedarEntity($0.uid, parents: $0.memberOf) }
    }

    // MARK: Cedar's JSON schema format

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public init(json: CedarJSON) throws(Failure) {
        guard case .object(let namespaces) = json else { throw Failure(message: "a schema is a JSON object of namespaces") }
        var types: [EntityType] = [], actions: [Action] = []
        for (namespace, body) in namespaces {
            let prefix = namespace.isEmpty ? "" : namespace + "::"
            var common: [String: CedarJSON] = [:]
            if case .object(let pairs)? = body["commonTypes"] { for (name, value) in pairs { common[name] = value } }
            func qualify(_ name: String) -> String { name.contains("::") ? name : prefix + name }
            func type(_ json: CedarJSON, depth: Int = 0) throws(Failure) -> CedarType {
                guard depth < 32, let kind = json["type"]?.string else { throw Failure(message: "a type without \"type\"") }
                switch kind {
                case "String": return .string
                case "Long": return .long
                case "Boolean", "Bool": return .boolean
                case "Set":
                    guard let element = json["element"] else { throw Failure(message: "a Set without \"element\"") }
                    return .set(try type(element, depth: depth + 1))
                case "Record":
                    var attributes: [String: CedarAttributeType] = [:]
                    if case .object(let pairs)? = json["attributes"] {
                        for (name, value) in pairs {
                            let required: Bool
                            if case .bool(let flag)? = value["required"] { required = flag } else { required = true }
                            attributes[name] = CedarAttributeType(try type(value, depth: depth + 1), required: required)
                        }
                    }
                    var open = false
                    if case .bool(let flag)? = json["additionalAttributes"] { open = flag }
                    return .record(attributes, open: open)
                case "Entity":
                    guard let name = json["name"]?.string else { throw Failure(message: "an Entity type without \"name\"") }
                    return .entity([qualify(name)])
                case "Extension":
                    guard let name = json["name"]?.string else { throw Failure(message: "an Extension type without \"name\"") }
                    return .ext(name)
                case "EntityOrCommon":
                    guard let name = json["name"]?.string else { throw Failure(message: "an EntityOrCommon type without \"name\"") }
                    return try named(name, depth: depth)
                default:
                    return try named(kind, depth: depth)
                }
            }
            func named(_ name: String, depth: Int) throws(Failure) -> CedarType {
                if let definition = common[name] { return try type(definition, depth: depth + 1) }
                switch name {
                case "String": return .string
                case "Long": return .long
                case "Bool", "Boolean": return .boolean
                case "ipaddr", "decimal": return .ext(name)
                default: return .entity([qualify(name)])
                }
            }
            if case .object(let pairs)? = body["entityTypes"] {
                for (name, definition) in pairs {
                    var attributes: [String: CedarAttributeType] = [:]
                    if let shape = definition["shape"], case .record(let fields, _) = try type(shape) { attributes = fields }
                    let memberOf = (definition["memberOfTypes"]?.array ?? []).compactMap(\.string).map(qualify)
                    types.append(EntityType(name: prefix + name, memberOf: memberOf, attributes: attributes))
                }
            }
            if case .object(let pairs)? = body["actions"] {
                for (id, definition) in pairs {
                    var memberOf: [CedarEntityUID] = []
                    for parent in definition["memberOf"]?.array ?? [] {
                        guard let parentID = parent["id"]?.string else { throw Failure(message: "a memberOf entry without \"id\"") }
                        memberOf.append(CedarEntityUID(parent["type"]?.string.map(qualify) ?? prefix + "Action", parentID))
                    }
                    var principals: [String]?, resources: [String] = [], context: [String: CedarAttributeType] = [:]
                    if let applies = definition["appliesTo"] {
                        principals = (applies["principalTypes"]?.array ?? []).compactMap(\.string).map(qualify)
                        resources = (applies["resourceTypes"]?.array ?? []).compactMap(\.string).map(qualify)
                        if let contextType = applies["context"], case .record(let fields, _) = try type(contextType) { context = fields }
                    }
                    actions.append(Action(uid: CedarEntityUID(prefix + "Action", id), memberOf: memberOf, principals: principals,
                                          resources: resources, context: context))
                }
            }
        }
        self.init(entityTypes: types, actions: actions)
    }
}

extension CedarSchema {
    /// The schema in Cedar's JSON schema format (empty namespace): what `airlock policy schema
    /// --json` prints for the `cedar` CLI and editors.
    public var json: JSON {
        func render(_ type: CedarType) -> JSON {
            switch type {
            case .never, .anyEntity: return .object([("type", .string("Entity")), ("name", .string("Host"))])
            case .bool: return .object([("type", .string("Boolean"))])
            case .long: return .object([("type", .string("Long"))])
            case .string: return .object([("type", .string("String"))])
            case .entity(let names): return .object([("type", .string("Entity")), ("name", .string(names.sorted().first ?? ""))])
            case .action(let name): return .object([("type", .string("Entity")), ("name", .string(name))])
            case .set(let element): return .object([("type", .string("Set")), ("element", element.map(render) ?? .object([("type", .string("String"))]))])
            case .record(let attributes, let open):
                var fields: [(String, JSON)] = [("type", .string("Record")), ("attributes", self.attributes(attributes, render))]
                if open { fields.append(("additionalAttributes", .bool(true))) }
                return .object(fields)
            case .ext(let name): return .object([("type", .string("Extension")), ("name", .string(name))])
            }
        }
        let entities: [(String, JSON)] = entityTypes.keys.sorted().map { name in
            let entity = entityTypes[name]!
            var fields: [(String, JSON)] = []
            if !entity.memberOf.isEmpty { fields.append(("memberOfTypes", .array(entity.memberOf.map(JSON.string)))) }
            if !entity.attributes.isEmpty { fields.append(("shape", .object([("type", .string("Record")), ("attributes", attributes(entity.attributes, render))]))) }
            return (name, .object(fields))
        }
        let actionList: [(String, JSON)] = actions.keys.sorted().map { uid in
            let action = actions[uid]!
            var fields: [(String, JSON)] = []
            if !action.memberOf.isEmpty { fields.append(("memberOf", .array(action.memberOf.map { .object([("id", .string($0.id))]) }))) }
            if let principals = action.principals {
                fields.append(("appliesTo", .object([
                    ("principalTypes", .array(principals.map(JSON.string))), ("resourceTypes", .array(action.resources.map(JSON.string))),
                    ("context", .object([("type", .string("Record")), ("attributes", attributes(action.context, render))])),
                ])))
            }
            return (uid.id, .object(fields))
        }
        return .object([("", .object([("entityTypes", .object(entities)), ("actions", .object(actionList))]))])
    }

    func attributes(_ attributes: [String: CedarAttributeType], _ render: (CedarType) -> JSON) -> JSON {
        .object(attributes.keys.sorted().map { key in
            let attribute = attributes[key]!
            guard case .object(var fields) = render(attribute.type) else { return (key, .null) }
            if !attribute.required { fields.append(("required", .bool(false))) }
            return (key, .object(fields))
        })
    }
}
