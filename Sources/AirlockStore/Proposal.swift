import AirlockCore
import AirlockPolicy

/// A change waiting behind the gate (docs/design.md §5): what exactly would run (the payload, pinned
/// by its SHA-256 digest), why it is gated, and what became of it.
public struct Proposal: Sendable, Equatable {
    public enum Kind: String, Sendable { case api, command }

    public var id: String
    public var sessionID: String
    public var kind: Kind
    public var state: ProposalState
    /// One line: "ec2:TerminateInstances", "s3:PutObject (multipart, 3 parts)".
    public var summary: String
    public var decision: Decision
    /// The rule that gated it.
    public var rule: String
    public var createdAt: String
    public var updatedAt: String
    /// SHA-256 (hex) of `payload`: what runs is what was approved (docs/design.md §2.4).
    public var digest: String
    public var payload: [UInt8]
    /// Where its session sends approved changes; execution goes there and nowhere else.
    public var upstream: String
    public var decidedBy: String?
    public var decisionNote: String?
    public var result: ExecutionResult?

    public var needsDecision: Bool { state == .pending }

    public init(id: String, sessionID: String, kind: Kind, state: ProposalState, summary: String, decision: Decision,
                rule: String, createdAt: String, updatedAt: String, digest: String, payload: [UInt8], upstream: String,
                decidedBy: String? = nil, decisionNote: String? = nil, result: ExecutionResult? = nil) {
        self.id = id
        self.sessionID = sessionID
        self.kind = kind
        self.state = state
        self.summary = summary
        self.decision = decision
        self.rule = rule
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.digest = digest
        self.payload = payload
        self.upstream = upstream
        self.decidedBy = decidedBy
        self.decisionNote = decisionNote
        self.result = result
    }
}

/// What an execution returned, stored for the agent (`airlock wait`) and the human.
public struct ExecutionResult: Sendable, Equatable {
    public var httpStatus: Int?
    public var exitCode: Int?
    public var contentType: String?
    /// The output, cut at `ExecutionResult.outputLimit` bytes.
    public var output: [UInt8]
    public var truncated: Bool
    public var error: String?
    /// The upstream's response headers an SDK reads its answer from (S3's ETag and version id
    /// are headers, not body): replayed when a policy ran the call without a human, so the
    /// agent's SDK reads AWS's answer. Only `ExecutionResult.replayedHeaders`.
    public var headers: [String: String] = [:]
    /// Files a command's execution wrote (terraform's new state), kept in the proposal's
    /// artifact and, when safe, copied into the workspace (docs/commands.md).
    public var outputs: [Output] = []

    public struct Output: Sendable, Equatable {
        public var path: String
        public var sha256: String
        public var size: Int
        public var savedAt: String
        public var copiedToWorkspace: Bool

        public init(path: String, sha256: String, size: Int, savedAt: String, copiedToWorkspace: Bool) {
            self.path = path
            self.sha256 = sha256
            self.size = size
            self.savedAt = savedAt
            self.copiedToWorkspace = copiedToWorkspace
        }
    }

    /// Response headers worth keeping for the agent: what SDKs read an answer from, never a
    /// cookie or anything that names the execution's credentials.
    public static func replayedHeaders(_ headers: [(name: String, value: String)]) -> [String: String] {
        var kept: [String: String] = [:]
        for header in headers {
            let name = header.name.lowercased()
            if ["etag", "x-amz-version-id", "location", "last-modified", "x-amz-delete-marker", "x-amz-expiration"].contains(name)
                || name.hasPrefix("x-amz-server-side-encryption") || name.hasPrefix("x-amz-checksum-") {
                kept[name] = String(header.value.prefix(1024))
            }
        }
        return kept
    }

    /// Stored output is capped (documented in docs/gate.md).
    public static let outputLimit = 1 << 20

    public init(httpStatus: Int? = nil, exitCode: Int? = nil, contentType: String? = nil, output: [UInt8],
                error: String? = nil) {
        self.httpStatus = httpStatus
        self.exitCode = exitCode
        self.contentType = contentType
        self.truncated = output.count > Self.outputLimit
        self.output = Array(output.prefix(Self.outputLimit))
        self.error = error
    }

    public var succeeded: Bool {
        if let status = httpStatus { return (200..<300).contains(status) }
        if let code = exitCode { return code == 0 }
        return false
    }

    public var json: JSON {
        var fields: [(String, JSON)] = []
        if let httpStatus { fields.append(("http_status", .number(Double(httpStatus)))) }
        if let exitCode { fields.append(("exit_code", .number(Double(exitCode)))) }
        if let contentType { fields.append(("content_type", .string(contentType))) }
        fields.append(("output", .string(String(decoding: output, as: UTF8.self))))
        if truncated { fields.append(("truncated", .bool(true))) }
        if let error { fields.append(("error", .string(error))) }
        if !headers.isEmpty { fields.append(("headers", .object(headers.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))) }
        if !outputs.isEmpty {
            fields.append(("outputs", .array(outputs.map {
                .object([("path", .string($0.path)), ("sha256", .string($0.sha256)), ("size", .number(Double($0.size))),
                         ("saved_at", .string($0.savedAt)), ("copied_to_workspace", .bool($0.copiedToWorkspace))])
            })))
        }
        return .object(fields)
    }

    public init?(json: JSON) {
        guard let output = json["output"]?.string else { return nil }
        httpStatus = json["http_status"]?.int
        exitCode = json["exit_code"]?.int
        contentType = json["content_type"]?.string
        self.output = Array(output.utf8)
        truncated = json["truncated"]?.bool ?? false
        error = json["error"]?.string
        headers = Self.replayedHeaders((json["headers"]?.objectPairs ?? []).compactMap { name, value in value.string.map { (name, $0) } })
        outputs = (json["outputs"]?.array ?? []).compactMap { item in
            guard let path = item["path"]?.string, let sha = item["sha256"]?.string, let size = item["size"]?.int,
                  let saved = item["saved_at"]?.string else { return nil }
            return Output(path: path, sha256: sha, size: size, savedAt: saved, copiedToWorkspace: item["copied_to_workspace"]?.bool ?? false)
        }
    }
}

/// A proposal about to be stored.
public struct ProposalDraft: Sendable {
    public var sessionID: String
    public var kind: Proposal.Kind
    public var summary: String
    public var ruling: Ruling
    public var payload: [UInt8]
    public var upstream: String
    /// What the approver is shown of it (a dry run's diff, a push's log, a plan's text): a
    /// record beside the proposal, outside its digest, stored with it (ProposalPreview).
    public var preview: JSON?
    /// What the rules ask of it (docs/policy.md): approvers, deadline, deciding policies.
    /// Recorded in its `proposed` audit entry; nil is one approver and no deadline of its own.
    public var requirement: PolicyRequirement?
    /// With a team gate: what the agent host's own policy asks beyond the gate's (it can only
    /// tighten; the gate decides the rest).
    public var hostAsks: HostRequirement?

    public init(sessionID: String, kind: Proposal.Kind, summary: String, ruling: Ruling, payload: [UInt8], upstream: String,
                preview: JSON? = nil, requirement: PolicyRequirement? = nil) {
        self.sessionID = sessionID
        self.kind = kind
        self.summary = summary
        self.ruling = ruling
        self.payload = payload
        self.upstream = upstream
        self.preview = preview
        self.requirement = requirement
    }
}

/// One `airlock run`: its dummy key identifies it to the broker.
public struct Session: Sendable, Equatable {
    public var id: String
    public var startedAt: String
    public var user: String
    public var workspace: String
    public var profiles: String
    public var awsUpstream: String
    public var awsAccessKeyID: String
    /// The human who launched it, as the deciding side knows them: locally their Unix user;
    /// on a team gate the approver whose token `airlock run --gate` presented (never a name the
    /// host claims). On a gate that human never counts as an approver of its proposals.
    public var launcher: String?

    public init(id: String, startedAt: String, user: String, workspace: String, profiles: String,
                awsUpstream: String, awsAccessKeyID: String, launcher: String? = nil) {
        self.id = id
        self.startedAt = startedAt
        self.user = user
        self.workspace = workspace
        self.profiles = profiles
        self.awsUpstream = awsUpstream
        self.awsAccessKeyID = awsAccessKeyID
        self.launcher = launcher
    }
}
