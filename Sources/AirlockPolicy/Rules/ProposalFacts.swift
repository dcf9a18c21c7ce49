import AirlockCore

/// What Airlock's rules decide a proposal by (docs/policy.md, "The request"): the operation as
/// a Cedar action id, the target with its attributes, and the preview's facts and risk labels.
/// Computed from the pinned payload and the preview record only: nothing the agent says about
/// itself besides the request it made. Pure.
public struct ProposalFacts: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        /// aws, kubernetes, github or command.
        public var kind: String
        /// An ARN, `namespace/resource/name`, `owner/repo:ref`, a workspace path.
        public var name: String
        public var service: String?
        public var account: String?
        public var region: String?
        public var namespace: String?
        public var repository: String?
        public var ref: String?
        /// `key=value`, from the resources the preview read.
        public var tags: [String]

        public init(kind: String, name: String, service: String? = nil, account: String? = nil, region: String? = nil,
                    namespace: String? = nil, repository: String? = nil, ref: String? = nil, tags: [String] = []) {
            self.kind = kind
            self.name = name
            self.service = service
            self.account = account
            self.region = region
            self.namespace = namespace
            self.repository = repository
            self.ref = ref
            self.tags = tags
        }
    }

    /// `aws:s3:PutObject`, `kubernetes:delete`, `github:push`, `command:terraform:apply`.
    public var action: String
    /// The groups it is in, most specific first: `aws:s3`, then `aws`.
    public var serviceGroups: [String]
    /// `mutation` or `sensitive-read`: what the classifier ruled.
    public var group: String
    /// The kind group the catalog puts the operation in, when it differs from the ruling (a
    /// sensitive write such as iam:CreateAccessKey is in both), so a rule on either matches.
    public var otherGroups: [String] = []
    public var target: Target
    /// Risk labels (docs/previews.md): destructive, irreversible, production, data-loss, …
    public var labels: [String]
    /// Resources the preview found, and the bytes they hold; `known` is false when nothing
    /// was previewed.
    public var resources: Int
    public var bytes: Int
    public var previewKnown: Bool

    public init(action: String, serviceGroups: [String], group: String, target: Target, labels: [String] = [],
                resources: Int = 0, bytes: Int = 0, previewKnown: Bool = false) {
        self.action = action
        self.serviceGroups = serviceGroups
        self.group = group
        self.target = target
        self.labels = labels
        self.resources = resources
        self.bytes = bytes
        self.previewKnown = previewKnown
    }

    /// high when a label says something is lost or opened (destructive, irreversible,
    /// data-loss, permissions, public-exposure), medium for production or cost alone, else low.
    public var risk: String {
        let high: Set<String> = ["destructive", "irreversible", "data-loss", "permissions", "public-exposure"]
        if labels.contains(where: high.contains) { return "high" }
        return labels.isEmpty ? "low" : "medium"
    }

    /// The facts of a proposal from its pinned payload, its decision and its preview record.
    public static func of(payload: ProposalPayload, decision: Decision, preview: JSON?) -> ProposalFacts {
        let group = decision == .sensitive ? "sensitive-read" : "mutation"
        var facts: ProposalFacts
        switch payload {
        case .aws(let pinned):
            facts = aws(pinned, group: group)
        case .s3Multipart(let manifest):
            facts = aws(manifest.complete, group: group)
            facts.action = "aws:s3:PutObject"
            facts.target.name = "arn:aws:s3:::\(manifest.bucket)/\(manifest.key)"
        case .kubernetes(let pinned):
            let request: KubernetesRequest?
            if case .resource(let read) = KubernetesRequest.read(method: pinned.method, path: pinned.path, query: pinned.query) { request = read } else { request = nil }
            let verb = request?.verb.rawValue ?? pinned.method.lowercased()
            // The subresource is part of what is done (`pods/exec`, `serviceaccounts/token`).
            let resource = request.map { $0.qualifiedResource + ($0.group.isEmpty ? "" : "." + $0.group) } ?? ""
            // A namespace's own name is its namespace: `forbid … resource.namespace == "prod"`
            // covers deleting the namespace itself.
            let namespace = request?.namespace ?? (request?.resource == "namespaces" && request?.group == "" ? request?.name : nil)
            let name = [namespace ?? "", resource, request?.name ?? ""].joined(separator: "/")
            facts = ProposalFacts(action: "kubernetes:\(verb)", serviceGroups: ["kubernetes"], group: group,
                                  target: Target(kind: "kubernetes", name: name, service: resource.isEmpty ? nil : resource,
                                                 namespace: namespace))
        case .github(let pinned):
            let parts = pinned.path.split(separator: "/").map(String.init)
            let repository = parts.count >= 3 && parts[0] == "repos" ? repository(parts[1] + "/" + parts[2]) : nil
            facts = ProposalFacts(action: "github:\(pinned.method.lowercased())", serviceGroups: ["github"], group: group,
                                  target: Target(kind: "github", name: pinned.path, service: pinned.host, repository: repository))
        case .gitPush(let push):
            let ref = push.updates.first?.ref
            let repository = repository(push.repository)
            facts = ProposalFacts(action: "github:push", serviceGroups: ["github"], group: group,
                                  target: Target(kind: "github", name: repository + (ref.map { ":" + $0 } ?? ""), service: push.host,
                                                 repository: repository, ref: ref))
        case .command(let command):
            // The first word that is not a flag; `terraform apply -destroy` is a destroy.
            var subcommand = command.command.dropFirst().first { !$0.hasPrefix("-") } ?? ""
            if subcommand == "apply", command.command.contains("-destroy") || command.apply.contains("-destroy") { subcommand = "destroy" }
            let tool = CommandFacts.name(command.tool)
            facts = ProposalFacts(action: "command:\(tool):\(CommandFacts.name(subcommand))", serviceGroups: ["command:\(tool)", "command"],
                                  group: group, target: Target(kind: "command", name: command.workspace + (command.directory.isEmpty ? "" : "/" + command.directory),
                                                               service: tool))
        }
        if let preview {
            let resources = (preview["resources"]?.array ?? []).compactMap(PreviewResource.init(json:))
            facts.labels = (preview["labels"]?.array ?? []).compactMap { $0["label"]?.string }
            facts.resources = resources.count
            facts.bytes = resources.compactMap(\.bytes).reduce(0, +)
            facts.previewKnown = preview["type"]?.string != nil && !(preview["notes"]?.stringArray ?? []).contains { $0.hasPrefix("no preview") }
            var tags: [String] = []
            for resource in resources {
                for tag in resource.tags where !tags.contains("\(tag.key)=\(tag.value)") { tags.append("\(tag.key)=\(tag.value)") }
            }
            facts.target.tags = tags
            if facts.target.kind == "aws", let arn = resources.map(\.id).first(where: { $0.hasPrefix("arn:") }) {
                if !facts.target.name.hasPrefix("arn:") { facts.target.name = arn }
                if facts.target.account == nil { facts.target.account = ARNParts.account(arn) }
            }
        }
        return facts
    }

    /// The facts of each part a proposal's rules must each allow (docs/policy.md): one per ref
    /// a push updates, one per resource a preview found when it found several (the agent
    /// orders refs and resources; a rule must not see only the first).
    public static func parts(of payload: ProposalPayload, decision: Decision, preview: JSON?) -> [ProposalFacts] {
        let whole = of(payload: payload, decision: decision, preview: preview)
        if case .gitPush(let push) = payload, push.updates.count > 1 {
            return push.updates.map { update in
                var part = whole
                part.target.ref = update.ref
                part.target.name = (part.target.repository ?? push.repository) + ":" + update.ref
                return part
            }
        }
        let resources = (preview?["resources"]?.array ?? []).compactMap(PreviewResource.init(json:))
        guard whole.target.kind == "aws", resources.count > 1 else { return [whole] }
        return resources.map { resource in
            var part = whole
            part.target.tags = resource.tags.map { "\($0.key)=\($0.value)" }
            if resource.id.hasPrefix("arn:") {
                part.target.name = resource.id
                part.target.account = ARNParts.account(resource.id) ?? whole.target.account
            }
            return part
        }
    }

    /// `/owner/repo.git`, `Owner/Repo` → `owner/repo` (GitHub matches repositories without
    /// regard to case).
    static func repository(_ path: String) -> String {
        var name = path.hasPrefix("/") ? String(path.dropFirst()) : path
        if name.hasSuffix(".git") { name = String(name.dropLast(4)) }
        return name.lowercased()
    }

    static func aws(_ pinned: PinnedRequest, group: String) -> ProposalFacts {
        let operation = pinned.operation ?? pinned.method
        var name = ""
        if pinned.service == "s3" {
            // Path-style (the broker pins S3 requests path-style): /bucket/key.
            let path = pinned.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? pinned.path
            name = "arn:aws:s3:::" + PercentEncoding.decode(String(path.dropFirst()))
        }
        return ProposalFacts(action: "aws:\(pinned.service):\(operation)", serviceGroups: ["aws:\(pinned.service)", "aws"], group: group,
                             target: Target(kind: "aws", name: name, service: pinned.service, region: pinned.region.isEmpty ? nil : pinned.region))
    }
}

enum ARNParts {
    /// `arn:aws:SERVICE:REGION:ACCOUNT:…` → ACCOUNT (12 digits), else nil.
    static func account(_ text: String) -> String? {
        let parts = text.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn", parts[4].count == 12, parts[4].allSatisfy(\.isNumber) else { return nil }
        return String(parts[4])
    }
}

enum CommandFacts {
    /// A tool or subcommand as an action id part: letters, digits, `-`, `_`, `.`; anything
    /// else becomes `_` (an agent's argv cannot forge `:` into another action's id).
    static func name(_ text: String) -> String {
        let cleaned = String(text.prefix(64).map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "_" })
        return cleaned.isEmpty ? "_" : cleaned
    }
}

/// The session a proposal came from, as rules see it (docs/policy.md): where it runs, who
/// launched it, with which profiles, and what it did so far.
public struct SessionFacts: Sendable, Equatable {
    public var id: String
    /// The agent host (the machine's name locally; the enrolled host's name on a gate).
    public var host: String
    /// The human who launched it (the Unix user locally; their gate identity on a gate).
    public var user: String
    public var profiles: [String]
    public var labels: [String]
    /// The agent host's address, when known (the gate sees its peer).
    public var address: String? { didSet { ip = address.flatMap(CedarIP.parse) } }
    /// `address` parsed once per session, not once per decision.
    var ip: CedarIP?
    public var proposals: Int
    public var approved: Int
    public var denied: Int

    public init(id: String, host: String, user: String, profiles: [String] = [], labels: [String] = [], address: String? = nil,
                proposals: Int = 0, approved: Int = 0, denied: Int = 0) {
        self.id = id
        self.host = host
        self.user = user
        self.profiles = profiles
        self.labels = labels
        self.address = address
        self.ip = address.flatMap(CedarIP.parse)
        self.proposals = proposals
        self.approved = approved
        self.denied = denied
    }
}
