import AirlockCore
import AirlockPolicy
import AirlockStore

/// An agent host's intake on a team gate (`airlock run --gate URL`; docs/gate.md, "Team
/// gate"): the session is recorded there, proposals go there (the gate re-reads and classifies
/// them itself), refusals are audited there, and a wait is the gate's long poll over a
/// kept-alive connection. It is only a `ProposalIntake`: deciding, listing others' work,
/// enrolment and the log are the gate's, and a host's token could do none of them.
public final class GateClient: ProposalIntake, @unchecked Sendable {
    let http: GateHTTP
    /// Where this host's broker staged S3 multipart parts (`<state>/blobs`): a completed
    /// upload's parts are sent to the gate before the upload is proposed there.
    let blobDirectory: String?

    public init(url: String, token: String, caFile: String?, blobDirectory: String? = nil) throws(AirlockError) {
        http = try GateHTTP(url: url, token: token, role: .host, caFile: caFile)
        self.blobDirectory = blobDirectory
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

    /// The human who launches sessions on this host presents their own approver token here
    /// (docs/policy.md, "Who may approve"): the gate records whose it is, and that person never
    /// counts as an approver of the session's proposals.
    public var launcherToken: String?

    public func recordSession(_ session: Session) throws(AirlockError) {
        var body: [(String, JSON)] = [
            ("id", .string(session.id)), ("workspace", .string(session.workspace)), ("profiles", .string(session.profiles)),
            ("aws_access_key_id", .string(session.awsAccessKeyID)),
        ]
        if let launcherToken { body.append(("launcher_token", .string(launcherToken))) }
        _ = try http.call("POST", "/v1/sessions", body: .object(body))
    }

    public func propose(_ draft: ProposalDraft, pendingLimit: Int) throws(AirlockError) -> Proposal {
        let payload: ProposalPayload
        do { payload = try ProposalPayload(bytes: draft.payload) } catch {
            throw AirlockError("the payload cannot be read: \(error.description); nothing was proposed", code: .refused)
        }
        // Only the pinned request goes: the gate reads it again and makes its own preview.
        switch payload {
        case .aws, .kubernetes, .github, .gitPush:
            break
        case .s3Multipart(let manifest):
            try sendParts(manifest, sessionID: draft.sessionID)
        case .command:
            throw AirlockError("a command goes to the gate with its snapshot (POST /v1/sessions/ID/commands); nothing was proposed", code: .notYet)
        }
        var body: [(String, JSON)] = [("session_id", .string(draft.sessionID)), ("payload_base64", .string(Base64.encode(draft.payload)))]
        if let asks = draft.hostAsks { body.append(("host_requirement", asks.json)) }
        let answer = try http.call("POST", "/v1/proposals", body: .object(body))
        guard let proposal = GateHTTP.proposal(answer, session: draft.sessionID) else {
            throw AirlockError("the gate's answer is not a proposal")
        }
        return proposal
    }

    /// Each staged part of a completed multipart upload, to the gate's blob store (it keeps
    /// them under the digest it computes itself, which must be the one the manifest pins).
    func sendParts(_ manifest: MultipartManifest, sessionID: String) throws(AirlockError) {
        guard let blobDirectory else { throw AirlockError("the multipart upload's parts are not staged on this host; nothing was proposed") }
        var sent = Set<String>()
        for part in manifest.parts where sent.insert(part.blobSHA256).inserted {
            let bytes = try StagedMultipart.readBlob(directory: blobDirectory, digest: part.blobSHA256)
            let answer = try http.call("POST", "/v1/sessions/\(sessionID)/blobs", rawBody: bytes, timeoutSeconds: 600)
            guard answer["sha256"]?.string == part.blobSHA256 else {
                throw AirlockError("the gate stored part \(part.blobSHA256) under another digest; nothing was proposed")
            }
        }
    }

    public func proposal(id: String) throws(AirlockError) -> Proposal? {
        do {
            return GateHTTP.proposal(try http.call("GET", "/v1/proposals/\(id)"))
        } catch where error.code == .noSuchProposal {
            return nil
        }
    }

    /// The gate's long poll (`GET /v1/proposals/ID/wait`), at most `pollSeconds` a call on a
    /// kept connection, until the proposal is final or `timeout` has passed.
    public func wait(id: String, timeout: Double) throws(AirlockError) -> Proposal? {
        let deadline = Clock.monotonicSeconds() + max(0, timeout)
        while true {
            let left = Int((deadline - Clock.monotonicSeconds()).rounded(.up))
            let answer: JSON
            do {
                answer = try http.call("GET", "/v1/proposals/\(id)/wait?timeout=\(max(0, min(left, Self.pollSeconds)))",
                                       timeoutSeconds: Int64(Self.pollSeconds + 30))
            } catch where error.code == .noSuchProposal {
                return nil
            }
            guard let proposal = GateHTTP.proposal(answer) else { throw AirlockError("the gate's answer is not a proposal") }
            if proposal.state.isFinal || Clock.monotonicSeconds() >= deadline { return proposal }
        }
    }

    static let pollSeconds = 50

    /// Refusals are audited on the gate, under the session.
    public func record(_ call: RecordedCall) throws(AirlockError) {
        switch call {
        case .refusal(let sessionID, let summary, let rule):
            _ = try http.call("POST", "/v1/sessions/\(sessionID)/refusals", body: .object([("summary", .string(summary)), ("rule", .string(rule))]))
        case .executionCall:
            // A host executes nothing on a team gate: approved work runs on the gate.
            throw AirlockError("an agent host of a team gate executes nothing; this call was not sent", code: .forbidden)
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
}
