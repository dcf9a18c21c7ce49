import AirlockCore

/// What a proposal pins, by kind (docs/design.md §5, docs/architecture.md "Proposals"): one
/// case per kind, read from and written to the payload's bytes, over which the digest is
/// taken. A new kind is one case here and one runner in the executor; every switch over kinds
/// is exhaustive. Pure.
public enum ProposalPayload: Sendable, Equatable {
    case aws(PinnedRequest)
    case s3Multipart(MultipartManifest)
    case kubernetes(KubernetesPinnedRequest)
    case github(GitHubPinnedRequest)
    case gitPush(GitPushPayload)
    case command(CommandPayload)

    /// The payload's `type`, as written in its bytes and shown by `--json`.
    public var type: String {
        switch self {
        case .aws: return "aws-request"
        case .s3Multipart: return "s3-multipart"
        case .kubernetes: return "kubernetes-request"
        case .github: return "github-request"
        case .gitPush: return "git-push"
        case .command: return "command"
        }
    }

    public static let types = ["aws-request", "s3-multipart", "kubernetes-request", "github-request", "git-push", "command"]

    public var json: JSON {
        switch self {
        case .aws(let pinned): return pinned.json
        case .s3Multipart(let manifest): return manifest.json
        case .kubernetes(let pinned): return pinned.json
        case .github(let pinned): return pinned.json
        case .gitPush(let push): return push.json
        case .command(let command): return command.json
        }
    }

    /// The pinned bytes (the digest is their SHA-256).
    public var bytes: [UInt8] { Array(json.serialized().utf8) }

    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Reads pinned bytes: one JSON object with one reading, of a known type, with every field
    /// that type needs. Payloads stored by earlier releases (a preview inside them) read too;
    /// their preview is `legacyPreview`.
    public init(bytes: [UInt8]) throws(Problem) {
        let json: JSON
        do { json = try JSON.parseStrict(bytes: bytes) } catch {
            throw Problem("the payload is not one JSON object with one reading (\(error))")
        }
        guard case .object = json, let type = json["type"]?.string else { throw Problem("the payload names no type") }
        let parsed: ProposalPayload?
        switch type {
        case "aws-request": parsed = PinnedRequest(json: json).map(ProposalPayload.aws)
        case "s3-multipart": parsed = MultipartManifest(json: json).map(ProposalPayload.s3Multipart)
        case "kubernetes-request": parsed = KubernetesPinnedRequest(json: json).map(ProposalPayload.kubernetes)
        case "github-request": parsed = GitHubPinnedRequest(json: json).map(ProposalPayload.github)
        case "git-push": parsed = GitPushPayload(json: json).map(ProposalPayload.gitPush)
        case "command": parsed = CommandPayload(json: json).map(ProposalPayload.command)
        default:
            throw Problem("the payload's type \(type.prefix(40)) is none this Airlock knows (\(Self.types.joined(separator: ", ")))")
        }
        guard let parsed else { throw Problem("the \(type) payload lacks a field it needs or has one of the wrong kind") }
        if let problem = parsed.requestProblem { throw Problem(problem) }
        self = parsed
    }

    /// Why a pinned request could not be sent as it reads (docs/gate.md, "Intake"): its path
    /// is not origin-form (an absolute URL, `//host`, a space, a `?` or `#` would make another
    /// request line than the one shown), or it pins a hop-by-hop or forwarding header (`Host`,
    /// `X-Forwarded-*`, `Forwarded`…), which the upstream would read as where the request came
    /// from or went. Nil when every request is one to send.
    public var requestProblem: String? {
        let requests: [(path: String, headers: [(name: String, value: String)], signature: Bool)]
        switch self {
        case .aws(let pinned): requests = [(pinned.path, pinned.headers, true)]
        case .s3Multipart(let manifest):
            requests = ([manifest.create, manifest.complete] + manifest.parts.map(\.request)).map { ($0.path, $0.headers, true) }
        case .kubernetes(let pinned): requests = [(pinned.path, pinned.headers, false)]
        case .github(let pinned): requests = [(pinned.path, pinned.headers, false)]
        case .gitPush, .command: requests = []
        }
        for request in requests {
            guard PinnedRequest.isOriginForm(request.path) else {
                return "a pinned request's path must be origin-form (one '/' then the path, no scheme, host, space, '?' or '#'): \(request.path.prefix(80)) is not"
            }
            for header in request.headers {
                let name = header.name.lowercased()
                if PinnedRequest.isNeverPinned(name) || (request.signature && PinnedRequest.dropped.contains(name)) {
                    return "a pinned request must not carry the \(header.name.prefix(60)) header (hop-by-hop, forwarding and signature headers are the gate's to write)"
                }
            }
        }
        return nil
    }

    /// The preview an earlier release wrote inside the payload (a Kubernetes dry run, a
    /// push's log and labels, a plan's text and files), as a preview record holds it now.
    public static func legacyPreview(_ bytes: [UInt8]) -> JSON? {
        guard let json = try? JSON.parse(bytes: bytes) else { return nil }
        switch json["type"]?.string {
        case "kubernetes-request"?:
            return json["preview"]
        case "git-push"?:
            guard json["log"] != nil || json["notes"] != nil else { return nil }
            let labels = (json["updates"]?.array ?? []).compactMap { update -> (String, JSON)? in
                guard let ref = update["ref"]?.string, let label = update["label"]?.string else { return nil }
                return (ref, .string(label))
            }
            return .object([("labels", .object(labels)), ("log", json["log"] ?? .string("")), ("notes", json["notes"] ?? .array([]))])
        case "command"?:
            guard json["preview"] != nil || json["files"] != nil else { return nil }
            var fields: [(String, JSON)] = []
            if let text = json["preview"] { fields.append(("preview", text)) }
            if let files = json["files"] { fields.append(("files", files)) }
            return .object(fields)
        default:
            return nil
        }
    }
}
