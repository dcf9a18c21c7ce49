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

/// The entities a request is decided against. Ancestors (the transitive closure of
/// `parents`, through the entities the store holds) are followed when asked, with an early
/// exit: computing every entity's closure up front cost more than a decision's evaluation
/// (scripts/bench policy).
public struct CedarEntities: Sendable {
    public private(set) var entities: [CedarEntityUID: CedarEntity] = [:]

    public init(_ list: [CedarEntity] = []) {
        entities.reserveCapacity(list.count)
        for entity in list { entities[entity.uid] = entity }
    }

    public subscript(uid: CedarEntityUID) -> CedarEntity? { entities[uid] }

    /// Whether `uid` is `other` or one of its descendants.
    public func isIn(_ uid: CedarEntityUID, _ other: CedarEntityUID) -> Bool {
        if uid == other { return true }
        guard let start = entities[uid]?.parents, !start.isEmpty else { return false }
        var stack = start
        var seen = Set<CedarEntityUID>()
        while let next = stack.popLast() {
            if next == other { return true }
            guard seen.insert(next).inserted else { continue }
            stack.append(contentsOf: entities[next]?.parents ?? [])
        }
        return false
    }

    public func ancestors(of uid: CedarEntityUID) -> Set<CedarEntityUID> {
        var seen = Set<CedarEntityUID>()
        var stack = entities[uid]?.parents ?? []
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            stack.append(contentsOf: entities[next]?.parents ?? [])
        }
        return seen
    }
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
