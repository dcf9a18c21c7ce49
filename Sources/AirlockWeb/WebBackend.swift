import AirlockCore
import AirlockExecution
import AirlockGate
import AirlockPolicy
import AirlockStore

/// What the page reads and decides with: the team gate's service, or the human's own store
/// for `airlock ui` (docs/web.md). Both decide through the one approve path (Approval):
/// the page adds no way to run anything.
public protocol WebBackend: Sendable {
    var store: any ProposalStore { get }
    var signIns: any WebSignInStore { get }
    var changes: ProposalChanges { get }
    var place: ApprovalTally.Place { get }
    /// "team gate" or "local".
    var placeName: String { get }
    /// Whether `name` is a person who may sign in: enrolled (or new, for an identity
    /// provider's or a proxy's people) and not revoked.
    func personActive(_ name: String) throws(AirlockError) -> Bool
    /// Whether any person (revoked ones too) is enrolled under this name, ignoring case:
    /// `Alice` is not a new person where `alice` is one.
    func personKnown(_ name: String) throws(AirlockError) -> Bool
    /// Enrols a person the identity provider or proxy vouches for the first time (as an
    /// approver identity without a usable token: `airlock gate user revoke` ends them too).
    /// A revoked name is refused: revoking a person is for good.
    func admitPerson(_ name: String, by actor: String) throws(AirlockError)
    func approve(_ session: WebSession, _ id: String, note: String?) throws(AirlockError) -> Proposal
    func deny(_ session: WebSession, _ id: String, note: String?) throws(AirlockError) -> Proposal
    func setFrozen(_ session: WebSession, _ frozen: Bool, reason: String?) throws(AirlockError)
    /// Before reading: what is overdue expires (locally nothing else does it).
    func expireOverdue()
    /// Who a signed-in person is in the audit log (their counted approvals are theirs).
    func actor(_ session: WebSession) -> String
}

/// The team gate: people are its approver identities; decisions go through GateService.
public struct GateWebBackend: WebBackend {
    public let service: GateService
    public let signIns: any WebSignInStore

    public init(service: GateService) throws(AirlockError) {
        guard let signIns = service.store as? any WebSignInStore else {
            throw AirlockError("this store keeps no web sign-ins", hint: "the gate's page needs its SQLite or PostgreSQL store")
        }
        self.service = service
        self.signIns = signIns
    }

    public var store: any ProposalStore { service.store }
    public var changes: ProposalChanges { service.changes }
    public var place: ApprovalTally.Place { .gate }
    public var placeName: String { "team gate" }

    func identity(_ session: WebSession) -> GateIdentity {
        GateIdentity(name: session.name, role: .approver, tokenHash: "", createdAt: "")
    }

    public func personActive(_ name: String) throws(AirlockError) -> Bool {
        try service.store.identities().contains { $0.name == name && $0.role == .approver && $0.revokedAt == nil }
    }

    public func personKnown(_ name: String) throws(AirlockError) -> Bool {
        try service.store.identities().contains { $0.role == .approver && $0.name.lowercased() == name.lowercased() }
    }

    public func admitPerson(_ name: String, by actor: String) throws(AirlockError) {
        if let known = try service.store.identities().first(where: { $0.name == name && $0.role == .approver }) {
            guard known.revokedAt == nil else {
                throw AirlockError("user:\(name) was revoked on this gate (\(known.revokedAt ?? "")); nobody signs in under that name again",
                                   code: .unauthenticated)
            }
            return
        }
        // A token nobody holds: the hash of 256 random bits nobody was shown.
        let unusable = GateToken.hash(GateToken.make(.approver))
        do {
            try service.store.addIdentity(GateIdentity(name: name, role: .approver, tokenHash: unusable, createdAt: Clock.now()), by: actor)
        } catch {
            // Another replica admitted them at the same moment.
            guard try personActive(name) else { throw error }
        }
    }

    public func approve(_ session: WebSession, _ id: String, note: String?) throws(AirlockError) -> Proposal {
        try service.approve(identity(session), id, note: note)
    }

    public func deny(_ session: WebSession, _ id: String, note: String?) throws(AirlockError) -> Proposal {
        try service.deny(identity(session), id, note: note)
    }

    public func setFrozen(_ session: WebSession, _ frozen: Bool, reason: String?) throws(AirlockError) {
        _ = try service.setFrozen(identity(session), frozen, reason: reason)
    }

    public func expireOverdue() {}

    public func actor(_ session: WebSession) -> String { session.actor }
}

/// `airlock ui`: the human's own store; the one person is the Unix user running it, who
/// decides as `airlock approve` would (LocalApproval executes here, with their credentials).
public struct LocalWebBackend: WebBackend {
    public let local: SQLiteProposalStore
    public let signIns: any WebSignInStore = MemorySignIns()
    public let changes = ProposalChanges()
    public let user: String
    public let awsProfile: String?
    public let environment: [String: String]

    public init(store: SQLiteProposalStore, user: String, awsProfile: String?, environment: [String: String]) {
        local = store
        self.user = user
        self.awsProfile = awsProfile
        self.environment = environment
    }

    public var store: any ProposalStore { local }
    public var place: ApprovalTally.Place { .local }
    public var placeName: String { "local" }

    public func personActive(_ name: String) throws(AirlockError) -> Bool { name == user }

    public func personKnown(_ name: String) throws(AirlockError) -> Bool { name.lowercased() == user.lowercased() }

    public func admitPerson(_ name: String, by actor: String) throws(AirlockError) {
        guard name == user else { throw AirlockError("only \(user) signs in to this store's page", code: .unauthenticated) }
    }

    public func approve(_ session: WebSession, _ id: String, note: String?) throws(AirlockError) -> Proposal {
        try LocalApproval.approve(id, by: Actor.currentUser(), reason: note, awsProfile: awsProfile, store: local, environment: environment)
    }

    public func deny(_ session: WebSession, _ id: String, note: String?) throws(AirlockError) -> Proposal {
        let denied = try local.apply(.deny, to: id, actor: Actor.currentUser(), note: note)
        changes.bump(id)
        return denied
    }

    public func setFrozen(_ session: WebSession, _ frozen: Bool, reason: String?) throws(AirlockError) {
        throw AirlockError("freezing is the team gate's (locally, stop the session: airlock proposals / deny)", code: .refused)
    }

    public func expireOverdue() { _ = try? local.expireOverdue() }

    public func actor(_ session: WebSession) -> String { Actor.currentUser() }
}
