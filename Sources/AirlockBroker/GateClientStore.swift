import AirlockCore
import AirlockPolicy
import AirlockStore
import NIOSSL

/// An agent host's view of a team gate (`airlock run --gate URL`; docs/gate.md, "Team gate"),
/// as the store its broker proposes to: `propose` sends the pinned request to the gate,
/// `proposal(id:)` reads it back (what `airlock wait` polls), `recordSession` enrols the
/// session. Everything a host may not do (decide, list others' work, read the log) throws:
/// the gate would refuse it anyway, and the host holds no credential that could.
/// HTTP calls to a team gate with one bearer token (docs/gate.md, "Team gate"): an agent
/// host's (`GateClientStore`) or an approver's (`airlock approve --gate`).
public struct GateHTTP: Sendable {
    let scheme: String
    let host: String
    let port: Int
    let basePath: String
    let token: String
    let trust: NIOSSLContext?

    /// `role`: the token must be one; `caFile`: PEM roots that sign the gate's certificate
    /// (a private CA), nil for the system's.
    public init(url: String, token: String, role: GateAccess.Role, caFile: String?) throws(AirlockError) {
        let parsed = try AWSUpstream(parsing: url)
        guard case .endpoint(let scheme, let host, let port, let basePath) = parsed else {
            throw AirlockError("--gate \(url) is not an http(s):// URL")
        }
        guard scheme == "https" || ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) else {
            throw AirlockError("--gate \(url) is plain HTTP to another host: the token would cross the network in clear text",
                               hint: "use https:// (and --gate-ca for a private CA)")
        }
        guard GateToken.claimedRole(token) == role else {
            throw AirlockError(role == .host ? "the gate token file does not hold an agent host's token (airlock_host_…)"
                                             : "the gate token file does not hold an approver's token (airlock_user_…)",
                               hint: role == .host ? "on the gate: airlock gate host add NAME --config gate.yaml"
                                                   : "on the gate: airlock gate user add NAME --config gate.yaml")
        }
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
        self.token = token
        if let caFile {
            do {
                var configuration = TLSConfiguration.makeClientConfiguration()
                configuration.trustRoots = .file(caFile)
                trust = try NIOSSLContext(configuration: configuration)
            } catch {
                throw AirlockError("cannot use \(caFile) as the gate's CA: \(error)")
            }
        } else {
            trust = nil
        }
    }

    /// A token saved in a file (whitespace around it ignored), with what to do when it is not there.
    public static func readToken(_ file: String, role: GateAccess.Role) throws(AirlockError) -> String {
        do {
            return String(try readTextFile(file, limit: 4096).filter { !$0.isWhitespace })
        } catch {
            let command = role == .host ? "host add" : "user add"
            throw AirlockError("cannot read the gate token: \(error.message)",
                               hint: "on the gate: airlock gate \(command) NAME --config gate.yaml, then save the token in \(file) (mode 0600)")
        }
    }

    /// One call; a refusal becomes an AirlockError carrying the gate's code and message.
    public func call(_ method: String, _ path: String, body: JSON? = nil, rawBody: [UInt8]? = nil,
                     timeoutSeconds: Int64 = 120) throws(AirlockError) -> JSON {
        let bytes = rawBody ?? body.map { Array($0.serialized().utf8) } ?? []
        var headers: [(name: String, value: String)] = [
            ("Host", port == (scheme == "https" ? 443 : 80) ? host : "\(host):\(port)"), ("Authorization", "Bearer \(token)"),
            ("Content-Length", String(bytes.count)), ("Accept", "application/json"),
        ]
        if rawBody != nil {
            headers.append(("Content-Type", "application/octet-stream"))
        } else if body != nil {
            headers.append(("Content-Type", "application/json"))
        }
        let response = try ExecutionClient.send(
            OutboundRequest(scheme: scheme, host: host, port: port, method: method, target: basePath + path, headers: headers, body: bytes),
            timeoutSeconds: timeoutSeconds, trust: trust)
        let json = (try? JSON.parseStrict(bytes: response.body)) ?? .null
        guard (200..<300).contains(response.status) else {
            let code = json["error"]?["code"]?.string ?? "AirlockGateError"
            let message = json["error"]?["message"]?.string ?? "HTTP \(response.status)"
            throw AirlockError("the gate refused: \(message)", exitCode: 1, code: code)
        }
        return json
    }

    /// A proposal as the gate shows it (an approver also gets its session, upstream, decider
    /// and payload).
    public static func proposal(_ json: JSON, session: String? = nil) -> Proposal? {
        guard let id = json["id"]?.string, let state = json["state"]?.string.flatMap(ProposalState.init(rawValue:)) else { return nil }
        return Proposal(
            id: id, sessionID: json["session"]?.string ?? session ?? "",
            kind: json["kind"]?.string.flatMap(Proposal.Kind.init(rawValue:)) ?? .api, state: state,
            summary: json["summary"]?.string ?? "", decision: json["decision"]?.string.flatMap(Decision.init(rawValue:)) ?? .mutation,
            rule: json["decision_reason"]?.string ?? "", createdAt: json["created_at"]?.string ?? "",
            updatedAt: json["updated_at"]?.string ?? "", digest: json["digest"]?.string ?? "",
            payload: json["payload_base64"]?.string.flatMap(Base64.decode) ?? [], upstream: json["upstream"]?.string ?? "",
            decidedBy: json["decided_by"]?.string, decisionNote: json["note"]?.string,
            result: json["result"].flatMap(ExecutionResult.init(json:)))
    }
}

public final class GateClientStore: ProposalStore, @unchecked Sendable {
    let http: GateHTTP
    /// Where this host's broker staged S3 multipart parts (`<state>/blobs`): a completed
    /// upload's parts are sent to the gate before the upload is proposed there.
    public var blobDirectory: String?

    public init(url: String, token: String, caFile: String?) throws(AirlockError) {
        http = try GateHTTP(url: url, token: token, role: .host, caFile: caFile)
    }

    /// Asks the gate who this token is: a launch fails here, before the agent starts, when the
    /// gate is unreachable, its certificate unverified, or the token unknown or revoked.
    public func checkEnrollment() throws(AirlockError) -> String {
        let answer = try http.call("GET", "/v1/whoami", timeoutSeconds: 20)
        guard answer["role"]?.string == GateAccess.Role.host.rawValue, let name = answer["name"]?.string else {
            throw AirlockError("the gate does not know this token as an agent host's")
        }
        return name
    }

    static func notHere(_ what: String) -> AirlockError {
        AirlockError("\(what) happens on the team gate, by an approver, not on an agent host", exitCode: 1, code: "AirlockForbidden")
    }

    public func recordSession(_ session: Session) throws(AirlockError) {
        _ = try http.call("POST", "/v1/sessions", body: .object([
            ("id", .string(session.id)), ("workspace", .string(session.workspace)), ("profiles", .string(session.profiles)),
            ("aws_access_key_id", .string(session.awsAccessKeyID)),
        ]))
    }

    public func session(id: String) throws(AirlockError) -> Session? { nil }

    public func propose(_ draft: ProposalDraft, pendingLimit: Int) throws(AirlockError) -> Proposal {
        let type = (try? JSON.parseStrict(bytes: draft.payload))?["type"]?.string
        guard draft.kind == .api, type == "aws-request" || type == "s3-multipart" else {
            throw AirlockError("this change cannot be proposed to a team gate; nothing was proposed", exitCode: 1, code: "AirlockNotYet")
        }
        if type == "s3-multipart" { try sendParts(draft) }
        let answer = try http.call("POST", "/v1/proposals", body: .object([
            ("session_id", .string(draft.sessionID)), ("payload_base64", .string(Base64.encode(draft.payload))),
        ]))
        guard let proposal = GateHTTP.proposal(answer, session: draft.sessionID) else {
            throw AirlockError("the gate's answer is not a proposal")
        }
        return proposal
    }

    /// Each staged part of a completed multipart upload, to the gate's blob store (it keeps
    /// them under the digest it computes itself, which must be the one the manifest pins).
    func sendParts(_ draft: ProposalDraft) throws(AirlockError) {
        guard let blobDirectory, let manifest = try? JSON.parseStrict(bytes: draft.payload), let parts = manifest["parts"]?.array else {
            throw AirlockError("the multipart upload's parts are not staged on this host; nothing was proposed")
        }
        var sent = Set<String>()
        for part in parts {
            guard let digest = part["blob_sha256"]?.string else { throw AirlockError("a part of the upload has no digest") }
            guard sent.insert(digest).inserted else { continue }
            let bytes = try StagedMultipart.readBlob(directory: blobDirectory, digest: digest)
            let answer = try http.call("POST", "/v1/sessions/\(draft.sessionID)/blobs", rawBody: bytes, timeoutSeconds: 600)
            guard answer["sha256"]?.string == digest else {
                throw AirlockError("the gate stored part \(digest) under another digest; nothing was proposed")
            }
        }
    }

    /// A command the host's shim gated, with the workspace snapshot (`SnapshotArchive`):
    /// the gate prepares the proposal itself (init, plan, preview), which can take minutes.
    /// The answer is the shim's (`CommandProposer.propose`).
    public func proposeCommand(sessionID: String, archive: [UInt8]) throws(AirlockError) -> JSON {
        try http.call("POST", "/v1/sessions/\(sessionID)/commands", rawBody: archive, timeoutSeconds: 1800)
    }

    /// Output `index` of an executed command proposal (terraform's new state), with the
    /// digest the snapshot's copy had.
    public func output(_ id: String, index: Int) throws(AirlockError) -> JSON {
        try http.call("GET", "/v1/proposals/\(id)/outputs/\(index)")
    }

    public func proposal(id: String) throws(AirlockError) -> Proposal? {
        do {
            return GateHTTP.proposal(try http.call("GET", "/v1/proposals/\(id)"))
        } catch where error.code == "AirlockNoSuchProposal" {
            return nil
        }
    }

    public func proposals(states: Set<ProposalState>?, session: String?) throws(AirlockError) -> [Proposal] {
        throw Self.notHere("listing proposals")
    }

    public func previewRecord(_ id: String) throws(AirlockError) -> JSON? { nil }
    public func setPreview(_ preview: JSON, of id: String) throws(AirlockError) { throw Self.notHere("previewing") }

    public func apply(_ event: ProposalEvent, to id: String, actor: String, note: String?, result: ExecutionResult?,
                      executor: String?, leaseUntil: Int64?) throws(AirlockError) -> Proposal {
        throw Self.notHere("deciding or executing a proposal")
    }

    public func renewLease(_ id: String, owner: String, until: Int64) throws(AirlockError) { throw Self.notHere("executing") }
    public func sessionIDs(user: String) throws(AirlockError) -> [String] { throw Self.notHere("listing sessions") }
    public func loseLapsedExecution(_ id: String, before now: Int64, note: String) throws(AirlockError) -> Bool { throw Self.notHere("executing") }
    public func executions() throws(AirlockError) -> [Execution] { [] }
    /// Refusals are the broker's own decisions: its session log has them.
    public func recordRefusal(sessionID: String, summary: String, rule: String) throws(AirlockError) {}
    public func recordExecutionCall(proposalID: String, sessionID: String, summary: String, rule: String) throws(AirlockError) {
        throw Self.notHere("executing")
    }
    public func addIdentity(_ identity: GateIdentity, by actor: String) throws(AirlockError) { throw Self.notHere("enrolling") }
    public func identity(tokenHash: String) throws(AirlockError) -> GateIdentity? { nil }
    public func identities() throws(AirlockError) -> [GateIdentity] { [] }
    public func revokeIdentity(name: String, role: GateAccess.Role, by actor: String) throws(AirlockError) -> GateIdentity {
        throw Self.notHere("revoking")
    }
    public func setControl(_ name: String, on: Bool, by actor: String, reason: String?) throws(AirlockError) {
        throw Self.notHere("the kill switch")
    }
    public func controls() throws(AirlockError) -> [GateControl] { [] }
    public func auditHead() throws(AirlockError) -> (seq: Int, hash: String)? { nil }
    public func addCheckpoint(_ checkpoint: AuditCheckpoint) throws(AirlockError) { throw Self.notHere("signing the audit log") }
    public func checkpoints() throws(AirlockError) -> [AuditCheckpoint] { [] }
    public func proposalCounts() throws(AirlockError) -> [ProposalCount] { throw Self.notHere("counting proposals") }
    public func auditEntries() throws(AirlockError) -> [AuditEntry] { [] }
    public func allProposalRows() throws(AirlockError) -> [Proposal] { [] }

}
