import AirlockCore
import AirlockPolicy

/// One entry of the audit log. `hash` = SHA-256 of the previous hash and this entry's
/// fields, so changing, removing or reordering any entry breaks every hash after it.
public struct AuditEntry: Sendable, Equatable {
    public var seq: Int
    public var at: String
    public var event: String
    public var proposalID: String?
    public var actor: String
    /// A JSON object, as stored.
    public var detail: String
    public var previousHash: String
    public var hash: String

    public init(seq: Int, at: String, event: String, proposalID: String?, actor: String, detail: String,
                previousHash: String, hash: String) {
        self.seq = seq
        self.at = at
        self.event = event
        self.proposalID = proposalID
        self.actor = actor
        self.detail = detail
        self.previousHash = previousHash
        self.hash = hash
    }

    var hashedText: String {
        [String(seq), at, event, proposalID ?? "", actor, detail, previousHash].joined(separator: "\u{1F}")
    }
}

public enum AuditChain {
    public static let genesis = String(repeating: "0", count: 64)

    public static func seal(_ entry: AuditEntry) -> AuditEntry {
        var sealed = entry
        sealed.hash = SigV4.hexSHA256(Array(entry.hashedText.utf8))
        return sealed
    }

    public struct Report: Sendable {
        public var entries: Int
        public var head: String
        public var problems: [String]
        public var intact: Bool { problems.isEmpty }
    }

    /// The chain alone: numbered from 1 without gaps, each entry linked to the one before and
    /// sealed by its hash. Returns the problems and the head hash.
    public static func verifyChain(_ entries: [AuditEntry]) -> (problems: [String], head: String) {
        var problems: [String] = []
        var previous = genesis
        var expectedSeq = 1
        for entry in entries {
            if entry.seq != expectedSeq {
                problems.append("entry \(expectedSeq) is missing (next is \(entry.seq)): entries were deleted")
                expectedSeq = entry.seq
            }
            if entry.previousHash != previous {
                problems.append("entry \(entry.seq) does not follow entry \(entry.seq - 1): the log was edited or reordered")
            }
            if seal(entry).hash != entry.hash {
                problems.append("entry \(entry.seq) (\(entry.event) \(entry.proposalID ?? "")) was altered: its hash does not match")
            }
            previous = entry.hash
            expectedSeq += 1
        }
        return (problems, previous)
    }

    /// The chain must be unbroken, and the store's proposal rows must say what the log says:
    /// same digest, rule and summary as proposed, and the state of the last transition.
    public static func verify(entries: [AuditEntry], proposals: [Proposal]) -> Report {
        struct Replay {
            var state: String
            var digest: String
            var rule: String
            var summary: String
            var decidedBy: String?
        }
        var replayed: [String: Replay] = [:]
        let chain = verifyChain(entries)
        var problems = chain.problems
        let previous = chain.head
        for entry in entries {
            guard let id = entry.proposalID, let detail = try? JSON.parse(entry.detail) else { continue }
            let state = detail["state"]?.string ?? entry.event
            if entry.event == "proposed" {
                replayed[id] = Replay(state: state, digest: detail["digest"]?.string ?? "", rule: detail["rule"]?.string ?? "",
                                      summary: detail["summary"]?.string ?? "")
            } else if replayed[id] == nil {
                problems.append("entry \(entry.seq) changes proposal \(id), which was never proposed")
            } else {
                replayed[id]?.state = state
                if ["approved", "denied", "expired"].contains(state) { replayed[id]?.decidedBy = entry.actor }
            }
        }
        var seen = Set<String>()
        for proposal in proposals {
            seen.insert(proposal.id)
            guard let log = replayed[proposal.id] else {
                problems.append("proposal \(proposal.id) is in the store but not in the audit log")
                continue
            }
            if log.state != proposal.state.rawValue {
                problems.append("proposal \(proposal.id) is \(proposal.state.rawValue) in the store but \(log.state) in the audit log")
            }
            if log.digest != proposal.digest || SigV4.hexSHA256(proposal.payload) != proposal.digest {
                problems.append("proposal \(proposal.id): its payload or digest differs from what was proposed")
            }
            if log.rule != proposal.rule || log.summary != proposal.summary {
                problems.append("proposal \(proposal.id): its rule or summary differs from what was proposed")
            }
            if let decidedBy = log.decidedBy, decidedBy != proposal.decidedBy {
                problems.append("proposal \(proposal.id): decided by \(proposal.decidedBy ?? "nobody") in the store but \(decidedBy) in the audit log")
            }
        }
        for id in replayed.keys where !seen.contains(id) {
            problems.append("proposal \(id) is in the audit log but was removed from the store")
        }
        return Report(entries: entries.count, head: previous, problems: problems)
    }
}
