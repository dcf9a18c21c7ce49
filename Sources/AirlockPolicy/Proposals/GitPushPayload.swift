import AirlockCore

/// A `git push` as a proposal pins it (docs/github.md, "git over HTTPS"): the host and
/// repository it was made for, the receive-pack request byte for byte, and the ref updates it
/// carries (read from those bytes). What the approver is shown of it (labels, git log, notes)
/// is its preview, a record of its own (ProposalPreview), not part of what is pinned.
public struct GitPushPayload: Sendable, Equatable {
    public struct Update: Sendable, Equatable {
        public var ref: String
        public var old: String
        public var new: String
        public init(ref: String, old: String, new: String) {
            self.ref = ref
            self.old = old
            self.new = new
        }
    }

    public var host: String
    public var repository: String
    public var body: [UInt8]
    public var updates: [Update]

    public init(host: String, repository: String, body: [UInt8], updates: [Update]) {
        self.host = host
        self.repository = repository
        self.body = body
        self.updates = updates
    }

    public var json: JSON {
        .object([
            ("type", .string("git-push")), ("host", .string(host)), ("repository", .string(repository)),
            ("body_base64", .string(Base64.encode(body))),
            ("updates", .array(updates.map { .object([("ref", .string($0.ref)), ("old", .string($0.old)), ("new", .string($0.new))]) })),
        ])
    }

    /// Also reads the form of releases before previews were records (each update's `label`,
    /// and `log` and `notes` beside them: ProposalPayload.legacyPreview).
    public init?(json: JSON) {
        guard json["type"]?.string == "git-push", let host = json["host"]?.string, let repository = json["repository"]?.string,
              let text = json["body_base64"]?.string, let body = Base64.decode(text), case .array(let items)? = json["updates"] else { return nil }
        var updates: [Update] = []
        for item in items {
            guard let ref = item["ref"]?.string, let old = item["old"]?.string, let new = item["new"]?.string else { return nil }
            updates.append(Update(ref: ref, old: old, new: new))
        }
        self.init(host: host, repository: repository, body: body, updates: updates)
    }
}
