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

    static func groups(_ store: any ProposalStore) throws(AirlockError) -> [ProposalGroups.Group] {
        ProposalGroups.groups(ProposalGroups.candidates(try store.proposals(states: [.pending], session: nil)))
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

    static func json(_ group: ProposalGroups.Group) -> JSON { group.json }

    /// A gate's group (GET /v1/groups/G), shown like a local one.
    static func text(gate json: JSON) -> String {
        guard let group = ProposalGroups.Group(json: json) else { return json.pretty() }
        let digest = json["members_digest"]?.string ?? ""
        return text(group).replacingOccurrences(of: group.digest, with: digest)
    }

    /// The members `digest` covers, or why none: the decision is refused and nothing changes.
    static func covered(_ id: String, digest: String?, _ store: any ProposalStore) throws(AirlockError) -> [ProposalGroups.Candidate] {
        guard let digest else {
            throw AirlockError("a group decision names the members it covers", hint: "airlock show \(id) prints them and the --members digest", code: .usage)
        }
        return try ProposalGroups.decided(try find(id, store), digest: digest)
    }
}
