import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockStore
import Glibc
import Synchronization

/// The rules a session's proposals are decided by (docs/policy.md): read once at session start
/// from the human's own file, outside the sandbox (the sandbox never mounts it), and asked
/// about each proposal before it is stored. Locally they are the only rules; with `--gate`
/// they can only add forbids and raise approvals (the gate's policy decides the rest).
public final class SessionRules: Sendable {
    public let rules: AirlockRules
    public let session: SessionFacts
    /// What this session proposed so far, for `context.session`.
    let counts = Mutex<(proposals: Int, approved: Int, denied: Int)>((0, 0, 0))

    public init(rules: AirlockRules, session: SessionFacts) {
        self.rules = rules
        self.session = session
    }

    /// `~/.config/airlock/policy.cedar`.
    public static func defaultPath(home: String) -> String { home + "/.config/airlock/policy.cedar" }

    /// The policy `--policy FILE` names (it must exist), else the default file when there is
    /// one, else no policy (every mutation asks one approver). Refused whole when it does not
    /// parse or validate.
    public static func load(explicit: String?, home: String, catalog: AWSCatalogFiles?) throws(AirlockError) -> AirlockRules {
        let path = explicit ?? defaultPath(home: home)
        guard explicit != nil || access(path, F_OK) == 0 else { return AirlockRules() }
        let text: String
        do { text = try readTextFile(path, limit: 1 << 20) } catch {
            throw AirlockError("cannot read the policy \(path): \(error.message)",
                               hint: explicit != nil ? "check --policy" : "check its permissions, or remove it to decide every change by hand")
        }
        return try AirlockRules([AirlockRules.Source(label: path, text: text)], lookup: lookup(catalog))
    }

    /// Which action ids a policy may name: AWS operations from the catalog, the rest by shape.
    public static func lookup(_ catalog: AWSCatalogFiles?) -> AirlockCedar.ActionLookup {
        guard let catalog else { return AirlockCedar.shapeLookup }
        return { id in
            let parts = id.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, parts[0] == "aws" else { return AirlockCedar.shapeLookup(id) }
            guard let service = (try? catalog.service(parts[1])) ?? nil,
                  let operation = service.operations.first(where: { $0.name == parts[2] }) else { return nil }
            let writes = operation.access.contains { $0 != "Read" && $0 != "List" }
            return writes || operation.access.isEmpty ? "mutation" : "sensitive-read"
        }
    }

    /// The outcome for a draft, and the facts it was decided by.
    public func decide(_ draft: ProposalDraft, now: Int64 = Clock.epochMilliseconds() / 1000) -> (outcome: RuleOutcome, facts: ProposalFacts?) {
        guard let payload = try? ProposalPayload(bytes: draft.payload) else { return (.defaultAsk, nil) }
        let parts = ProposalFacts.parts(of: payload, decision: draft.ruling.decision, preview: draft.preview)
        var session = self.session
        (session.proposals, session.approved, session.denied) = counts.withLock { $0 }
        return (rules.decide(parts: parts, session: session, now: now), parts.first)
    }

    func note(_ outcome: RuleOutcome) {
        counts.withLock { counts in
            counts.proposals += 1
            switch outcome {
            case .deny: counts.denied += 1
            case .allow: counts.approved += 1
            case .ask: break
            }
        }
    }

    /// The refusal an agent gets for a forbidden change: which policy, and that nothing was
    /// proposed.
    public static func forbidden(_ summary: String, _ policies: [String]) -> AirlockError {
        AirlockError("\(summary) is forbidden by policy \(policies.joined(separator: ", ")); no proposal was made",
                     hint: "the human's policy (docs/policy.md) denies this change outright: do it another way, or ask them", code: .denied)
    }
}
