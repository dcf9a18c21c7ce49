/// An entity: its attributes and the entities it is directly in.
public struct CedarEntity: Sendable {
    public var uid: CedarEntityUID
    public var attributes: [String: CedarValue]
    public var parents: [CedarEntityUID]

    public init(_ uid: CedarEntityUID, attributes: [String: CedarValue] = [:], parents: [CedarEntityUID] = []) {
        self.uid = uid
        self.attributes = attributes
        self.parents = parents
    }
}

/// The entities a request is decided against, with each one's ancestors (the transitive
/// closure of `parents`, through the entities the store holds) computed once.
public struct CedarEntities: Sendable {
    public private(set) var entities: [CedarEntityUID: CedarEntity] = [:]
    private var ancestorSets: [CedarEntityUID: Set<CedarEntityUID>] = [:]

    public init(_ list: [CedarEntity] = []) {
        for entity in list { entities[entity.uid] = entity }
        for uid in entities.keys { ancestorSets[uid] = closure(of: uid) }
    }

    private func closure(of uid: CedarEntityUID) -> Set<CedarEntityUID> {
        var seen = Set<CedarEntityUID>()
        var stack = entities[uid]?.parents ?? []
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            stack.append(contentsOf: entities[next]?.parents ?? [])
        }
        return seen
    }

    public subscript(uid: CedarEntityUID) -> CedarEntity? { entities[uid] }

    /// Whether `uid` is `other` or one of its descendants.
    public func isIn(_ uid: CedarEntityUID, _ other: CedarEntityUID) -> Bool {
        uid == other || (ancestorSets[uid]?.contains(other) ?? false)
    }

    public func ancestors(of uid: CedarEntityUID) -> Set<CedarEntityUID> { ancestorSets[uid] ?? [] }
}

/// One authorization question.
public struct CedarRequest: Sendable {
    public var principal: CedarEntityUID
    public var action: CedarEntityUID
    public var resource: CedarEntityUID
    public var context: [String: CedarValue]

    public init(principal: CedarEntityUID, action: CedarEntityUID, resource: CedarEntityUID, context: [String: CedarValue] = [:]) {
        self.principal = principal
        self.action = action
        self.resource = resource
        self.context = context
    }
}
