import AirlockCore

/// Bursts of one operation decided with one decision (docs/previews.md, "Groups"): fifty
/// `s3:PutObject` proposals from an agent's own `aws s3 cp --recursive` (through an aws CLI the
/// shim does not see) are one group with a table, not fifty prompts. A group decision covers
/// exactly the members the approver was shown: it names the digest of that member set, and
/// since members only ever join at the end (in the order they were proposed), the shown set is
/// the prefix with that digest; later arrivals are not covered. Each member stays its own
/// pinned proposal, executed exactly once through the one approve path. Pure.
public enum ProposalGroups {
    public struct Candidate: Sendable, Equatable {
        public var id: String
        public var session: String
        public var createdAtMilliseconds: Int64
        /// `service:Operation`, with S3's bucket: what makes proposals one burst.
        public var key: String
        public var digest: String
        public var bytes: Int
        public var target: String

        public init(id: String, session: String, createdAtMilliseconds: Int64, key: String, digest: String, bytes: Int, target: String) {
            self.id = id
            self.session = session
            self.createdAtMilliseconds = createdAtMilliseconds
            self.key = key
            self.digest = digest
            self.bytes = bytes
            self.target = target
        }
    }

    public struct Group: Sendable, Equatable {
        public var id: String
        public var key: String
        public var members: [Candidate]

        public init(id: String, key: String, members: [Candidate]) {
            self.id = id
            self.key = key
            self.members = members
        }
        public var bytes: Int { members.reduce(0) { $0 + $1.bytes } }
        public var digest: String { ProposalGroups.digest(members) }
    }

    /// Proposals of one key in one session, each within `window` of the one before, at least
    /// `minimum` of them, oldest first.
    public static func groups(_ candidates: [Candidate], window: Int64 = 120_000, minimum: Int = 3) -> [Group] {
        var bySession: [String: [Candidate]] = [:]
        for candidate in candidates { bySession[candidate.session + "\n" + candidate.key, default: []].append(candidate) }
        var groups: [Group] = []
        for (_, list) in bySession {
            let ordered = list.sorted { ($0.createdAtMilliseconds, $0.id) < ($1.createdAtMilliseconds, $1.id) }
            var run: [Candidate] = []
            func close() {
                if run.count >= minimum, let first = run.first {
                    let id = "g" + String(SigV4.hexSHA256(Array("airlock-group\n\(first.session)\n\(first.key)\n\(first.id)".utf8)).prefix(8))
                    groups.append(Group(id: id, key: first.key, members: run))
                }
                run = []
            }
            for candidate in ordered {
                if let last = run.last, candidate.createdAtMilliseconds - last.createdAtMilliseconds > window { close() }
                run.append(candidate)
            }
            close()
        }
        return groups.sorted { ($0.members.first?.createdAtMilliseconds ?? 0, $0.id) < ($1.members.first?.createdAtMilliseconds ?? 0, $1.id) }
    }

    /// The digest a group decision names: every member's id and proposal digest, in order.
    public static func digest(_ members: [Candidate]) -> String {
        SigV4.hexSHA256(Array(members.map { "\($0.id):\($0.digest)\n" }.joined().utf8))
    }

    /// The members a decision naming `digest` covers: the prefix of the group with that
    /// digest, nil when none has it (a member was decided on its own, or the digest is not
    /// one this group ever had).
    public static func covered(by digest: String, in group: Group) -> [Candidate]? {
        guard !group.members.isEmpty else { return nil }
        for count in (1...group.members.count).reversed() where Self.digest(Array(group.members.prefix(count))) == digest {
            return Array(group.members.prefix(count))
        }
        return nil
    }

    /// The members a decision naming `digest` (with or without `sha256:`) covers, or the
    /// refusal that decides nothing.
    public static func decided(_ group: Group, digest: String) throws(AirlockError) -> [Candidate] {
        guard let members = covered(by: digest.hasPrefix("sha256:") ? String(digest.dropFirst(7)) : digest, in: group) else {
            throw AirlockError("group \(group.id) is not the set of members that digest names (one was decided on its own since); nothing was decided",
                               hint: "airlock show \(group.id) shows it now", code: .conflict)
        }
        return members
    }
}
