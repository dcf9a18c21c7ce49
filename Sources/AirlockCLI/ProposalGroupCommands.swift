import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockStore

/// Groups of pending proposals on the local store (docs/previews.md, "Groups"): found by
/// `ProposalGroups` over the pending AWS API proposals, shown as one table, decided with one
/// decision that names the digest of the members shown.
enum ProposalGroupCommands {
    /// Group ids are `g` and 8 hex digits; proposal ids are hex only.
    static func isGroupID(_ id: String) -> Bool {
        id.count == 9 && id.hasPrefix("g") && id.dropFirst().allSatisfy(\.isHexDigit)
    }

    static func candidates(_ proposals: [Proposal]) -> [ProposalGroups.Candidate] {
        proposals.compactMap { proposal in
            guard proposal.state == .pending, proposal.kind == .api, case .aws(let pinned)? = try? ProposalPayload(bytes: proposal.payload),
                  let created = Clock.epochMilliseconds(parsing: proposal.createdAt) else { return nil }
            var key = "\(pinned.service):\(pinned.operation ?? pinned.method)"
            if pinned.service == "s3", let bucket = pinned.path.dropFirst().split(separator: "/").first { key += " in " + bucket }
            return ProposalGroups.Candidate(id: proposal.id, session: proposal.sessionID, createdAtMilliseconds: created, key: key,
                                            digest: proposal.digest, bytes: pinned.body.count, target: pinned.path)
        }
    }

    static func groups(_ store: any ProposalStore) throws(AirlockError) -> [ProposalGroups.Group] {
        ProposalGroups.groups(candidates(try store.proposals(states: [.pending], session: nil)))
    }

    static func find(_ id: String, _ store: any ProposalStore) throws(AirlockError) -> ProposalGroups.Group {
        guard let group = try groups(store).first(where: { $0.id == id }) else {
            throw AirlockError("no group \(id) of pending proposals", hint: "`airlock proposals` lists the groups there are now", code: .refused)
        }
        return group
    }

    static func summary(_ group: ProposalGroups.Group) -> String {
        "\(group.members.count) × \(group.key), \(ByteSize.human(group.bytes)); first \(group.members.first?.target ?? ""), last \(group.members.last?.target ?? "")"
    }

    static func text(_ group: ProposalGroups.Group) -> String {
        var lines = ["group \(group.id)  pending  \(group.members.count) proposals of one session: \(group.key)",
                     "  count:     \(group.members.count)",
                     "  bytes:     \(ByteSize.human(group.bytes)) in all",
                     "  first:     \(group.members.first?.target ?? "")",
                     "  last:      \(group.members.last?.target ?? "")",
                     "  members:   sha256:\(group.digest)"]
        for member in group.members { lines.append("    \(member.id)  \(ByteSize.human(member.bytes).padded(10))  \(member.target)") }
        lines.append("  decide all of these at once (exactly these; any that arrive later are not covered):")
        lines.append("    airlock approve \(group.id) --members \(group.digest)")
        lines.append("    airlock deny \(group.id) --members \(group.digest) --reason '…'")
        return lines.joined(separator: "\n")
    }

    static func json(_ group: ProposalGroups.Group) -> JSON {
        .object([("group", .string(group.id)), ("key", .string(group.key)), ("count", .number(Double(group.members.count))),
                 ("bytes", .number(Double(group.bytes))), ("first", .string(group.members.first?.target ?? "")),
                 ("last", .string(group.members.last?.target ?? "")), ("members_digest", .string(group.digest)),
                 ("members", .array(group.members.map { .object([("id", .string($0.id)), ("target", .string($0.target)),
                                                                 ("bytes", .number(Double($0.bytes)))]) }))])
    }

    /// The members `digest` covers, or why none: the decision is refused and nothing changes.
    static func covered(_ id: String, digest: String?, _ store: any ProposalStore) throws(AirlockError) -> [ProposalGroups.Candidate] {
        guard let digest else {
            throw AirlockError("a group decision names the members it covers", hint: "airlock show \(id) prints them and the --members digest", code: .usage)
        }
        let group = try find(id, store)
        guard let members = ProposalGroups.covered(by: digest.hasPrefix("sha256:") ? String(digest.dropFirst(7)) : digest, in: group) else {
            throw AirlockError("group \(id) is not the set of members that digest names (one was decided on its own since); nothing was decided",
                               hint: "airlock show \(id) shows it now", code: .conflict)
        }
        return members
    }
}
