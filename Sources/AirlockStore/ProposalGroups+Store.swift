import AirlockCore
import AirlockPolicy

extension ProposalGroups {
    /// Operations whose members a table (count, bytes, each key) shows fully: an upload of
    /// an object says what it does by its key and size. Anything else (a `TerminateInstances`,
    /// a `PutRolePolicy`, whose path is `/` and whose effect is in parameters and a preview) is
    /// decided one by one: a group must never approve what the approver could not see.
    public static let groupable: Set<String> = ["s3:PutObject"]

    /// The pending AWS API proposals among `proposals` that may form groups (docs/previews.md,
    /// "Groups"): uploads with no ACL or grant header; the key is the operation and bucket.
    public static func candidates(_ proposals: [Proposal]) -> [Candidate] {
        proposals.compactMap { proposal in
            guard proposal.state == .pending, proposal.kind == .api, case .aws(let pinned)? = try? ProposalPayload(bytes: proposal.payload),
                  groupable.contains("\(pinned.service):\(pinned.operation ?? "")"),
                  !pinned.headers.contains(where: { $0.name.lowercased() == "x-amz-acl" || $0.name.lowercased().hasPrefix("x-amz-grant-") }),
                  let created = Clock.epochMilliseconds(parsing: proposal.createdAt) else { return nil }
            var key = "\(pinned.service):\(pinned.operation ?? pinned.method)"
            if pinned.service == "s3", let bucket = pinned.path.dropFirst().split(separator: "/").first { key += " in " + bucket }
            return Candidate(id: proposal.id, session: proposal.sessionID, createdAtMilliseconds: created, key: key,
                             digest: proposal.digest, bytes: pinned.body.count, target: pinned.path)
        }
    }
}

extension ProposalGroups.Group {
    public var json: JSON {
        .object([("group", .string(id)), ("key", .string(key)), ("count", .number(Double(members.count))),
                 ("bytes", .number(Double(bytes))), ("first", .string(members.first?.target ?? "")),
                 ("last", .string(members.last?.target ?? "")), ("members_digest", .string(digest)),
                 ("members", .array(members.map { .object([("id", .string($0.id)), ("target", .string($0.target)),
                                                          ("bytes", .number(Double($0.bytes)))]) }))])
    }

    public init?(json: JSON) {
        guard let id = json["group"]?.string, let key = json["key"]?.string, let members = json["members"]?.array else { return nil }
        self.init(id: id, key: key, members: members.compactMap { member in
            guard let memberID = member["id"]?.string else { return nil }
            return ProposalGroups.Candidate(id: memberID, session: "", createdAtMilliseconds: 0, key: key, digest: "",
                                            bytes: member["bytes"]?.int ?? 0, target: member["target"]?.string ?? "")
        })
    }
}
