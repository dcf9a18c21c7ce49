import AirlockBroker
import AirlockCore
import AirlockExecution
import AirlockPolicy
import AirlockStore
import Glibc
import Logging
import Metrics
import Synchronization

/// The team gate's calls (docs/gate.md, "Team gate"), independent of HTTP: who is calling,
/// whether their role may, and what the store does. Blocking (the store's drivers are);
/// the server runs each call off its event loops.
///
/// What an agent host sends is evidence, never authority: the gate re-reads the pinned
/// request, classifies it with its own catalog, and sends approved calls to its own
/// upstream with its own credentials. A host's token can do nothing but propose and wait.
public final class GateService: Sendable {
    public let store: any ProposalStore
    public let config: GateConfig
    /// Staged parts, command artifacts and outputs, where every replica reads them
    /// (docs/gate.md, "Shared state").
    public let blobs: any BlobStore
    /// The gate's Kubernetes clusters and GitHub credentials, when gate.yaml maps any
    /// (docs/gate.md, "Kubernetes and GitHub on the gate"): nil, such changes are refused.
    public let kubernetes: KubernetesSetup?
    public let github: GitHubCredentials?
    /// Open waits per agent host on this replica (`limits.waits_per_host`).
    let waits = Mutex<[String: Int]>([:])
    let catalog: AWSCatalogFiles
    let credentials: HostCredentials
    /// What AWS effect previews and drift re-checks read with (`aws.preview_profile`), the
    /// execution credentials when unset (GateSetup).
    let previewCredentials: HostCredentials?
    let previewCache = AWSPreviewCache()
    /// This replica's claim on each execution it runs (docs/gate.md, "Replicas").
    public let lease: ExecutionLease
    public let logger: Logger
    /// Signs the audit chain's head at every decision (docs/gate.md, "Signed audit checkpoints").
    public let signer: AuditSigner?
    /// Which proposals changed: every replica's with PostgreSQL (LISTEN/NOTIFY), this
    /// process's otherwise. Waits sleep on it instead of reading the store.
    public let changes: ProposalChanges
    /// The last head this process signed (seq, hash).
    let lastSigned = Mutex<(seq: Int, hash: String)?>(nil)
    /// How this gate prepares and runs command proposals; nil: it does not.
    public let commands: CommandSetup?
    /// Command preparations running now (each is terraform init and plan in a sandbox, and
    /// holds one of the server's blocking threads for its length).
    let preparing = Mutex(0)
    /// At most this many at once on one replica; more are refused with 429 (retry later).
    /// Refusals one session's broker may have audited on the gate per minute (per replica).
    public static let refusalsPerMinute = 120
    let refusalWindows = Mutex<[String: (start: Double, count: Int)]>([:])

    public static let preparationLimit = 4
    /// The gate's own rules (gate.yaml `policy`, docs/policy.md): the only ones that allow a
    /// change without a human or lower the number of approvers.
    public let rules: AirlockRules

    /// Command proposals on the gate (docs/gate.md, "Command proposals on the gate").
    public struct CommandSetup: Sendable {
        /// The environment tools run with (HOME, PATH, TF_CLI_CONFIG_FILE…), with
        /// AIRLOCK_GATE_SECRET_FILES naming the gate's own secrets, which every execution
        /// sandbox masks.
        public var environment: [String: String]
        /// The `airlock` binary that starts execution sandboxes.
        public var launcher: String

        public init(environment: [String: String], launcher: String) {
            self.environment = environment
            self.launcher = launcher
        }
    }

    public init(store: any ProposalStore, config: GateConfig, catalog: AWSCatalogFiles, blobs: any BlobStore, credentials: HostCredentials,
                signer: AuditSigner? = nil, commands: CommandSetup? = nil, kubernetes: KubernetesSetup? = nil, github: GitHubCredentials? = nil,
                previewCredentials: HostCredentials? = nil, rules: AirlockRules = AirlockRules(), logger: Logger = Logger(label: "airlock.gate")) {
        self.previewCredentials = previewCredentials
        self.rules = rules
        self.blobs = blobs
        self.kubernetes = kubernetes
        self.github = github
        self.signer = signer
        self.commands = commands
        self.changes = store.changes ?? ProposalChanges()
        self.store = store
        self.config = config
        self.catalog = catalog
        self.credentials = credentials
        // The owner is unique to this process even when replicas share a name (one gate.yaml
        // copied, pid 1 in containers): a lease must never be another live replica's.
        self.lease = ExecutionLease(owner: (config.replica ?? Self.defaultReplicaName()) + "/" + RandomID.make(6), seconds: config.leaseSeconds)
        self.logger = logger
    }

    /// `<hostname>-<pid>`: unique among replicas unless two share a host name and pid.
    static func defaultReplicaName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (host.isEmpty ? "gate" : host) + "-\(getpid())"
    }

    // MARK: Who is calling

    /// `Authorization: Bearer <token>` → the enrolled, unrevoked identity whose role may do
    /// `action` (for an agent host, `hostAction` when the call has one: the same route is a
    /// host's wait on its own work and an approver's inspection).
    public func authenticate(_ authorization: String?, for action: GateAccess.Action,
                             hostAction: GateAccess.Action? = nil) throws(AirlockError) -> GateIdentity {
        guard let authorization, authorization.hasPrefix("Bearer ") else {
            throw AirlockError("send Authorization: Bearer <token> (airlock gate host add / user add print one)", code: .unauthenticated)
        }
        let token = String(authorization.dropFirst(7))
        guard let claimed = GateToken.claimedRole(token) else {
            throw AirlockError("that is not an Airlock gate token", code: .unauthenticated)
        }
        let identity: GateIdentity?
        do { identity = try store.identity(tokenHash: GateToken.hash(token)) } catch { throw AirlockError(error.message, code: .storeUnavailable) }
        guard let identity, identity.role == claimed else {
            throw AirlockError("the token is not enrolled on this gate, or it was revoked", code: .unauthenticated)
        }
        let action = identity.role == .host ? hostAction ?? action : action
        guard GateAccess.allows(identity.role, action) else {
            throw AirlockError(identity.role == .host
                ? "\(identity.actor) is an agent host: hosts propose and wait; only an approver's token can \(action.rawValue)"
                : "\(identity.actor) is an approver: proposals come from agent hosts", code: .forbidden)
        }
        return identity
    }

    // MARK: Agent hosts

    /// `{"id", "workspace", "profiles", "aws_access_key_id"}`: a session on this host.
    public func recordSession(_ identity: GateIdentity, _ body: JSON) throws(AirlockError) -> JSON {
        guard let id = body["id"]?.string, (8...64).contains(id.utf8.count),
              id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D }) else {
            throw AirlockError("a session needs an id of 8–64 letters and digits", code: .badRequest)
        }
        // The human who launched it, by the approver token they presented (docs/policy.md,
        // "Who may approve"): a token that is not an enrolled approver's is refused, never
        // taken as a name.
        var launcher: String?
        if let token = body["launcher_token"]?.string {
            let found: GateIdentity?
            do { found = try store.identity(tokenHash: GateToken.hash(token)) } catch { throw AirlockError(error.message, code: .storeUnavailable) }
            guard let found, found.role == .approver, GateToken.claimedRole(token) == .approver else {
                throw AirlockError("launcher_token is not an enrolled approver's token on this gate (or it was revoked); no session was recorded",
                                   hint: "pass your own approver token (airlock run --approver-token-file), or none", code: .unauthenticated)
            }
            launcher = found.actor
        } else if config.requireLauncher {
            throw AirlockError("this gate requires every session to name the human who launches it (require_launcher in gate.yaml); no session was recorded",
                               hint: "the launcher passes their own approver token: airlock run --gate URL --approver-token-file FILE (default ~/.config/airlock/gate-token)",
                               code: .unauthenticated)
        }
        let session = Session(id: id, startedAt: Clock.now(), user: identity.actor, workspace: body["workspace"]?.string ?? "",
                              profiles: body["profiles"]?.string ?? "", awsUpstream: config.awsUpstream,
                              awsAccessKeyID: body["aws_access_key_id"]?.string ?? "", launcher: launcher)
        do { try store.recordSession(session) } catch { throw AirlockError(error.message, code: .sessionExists) }
        return .object([("id", .string(id)), ("host", .string(identity.name))])
    }

    /// `{"session_id", "payload_base64"}`: an API call the host's broker gated. Stored as
    /// the gate reads it, with the gate's upstream.
    public func propose(_ identity: GateIdentity, _ body: JSON) throws(AirlockError) -> JSON {
        guard let sessionID = body["session_id"]?.string else { throw AirlockError("session_id is required", code: .badRequest) }
        try ownSession(identity, sessionID)
        let wanted = "payload_base64 must be a pinned request (JSON, type aws-request, s3-multipart, kubernetes-request, github-request or git-push), at most 16 MiB"
        guard let text = body["payload_base64"]?.string, let bytes = Base64.decode(text), bytes.count <= 16 << 20 else {
            throw AirlockError(wanted, code: .badRequest)
        }
        let payload: ProposalPayload
        do throws(ProposalPayload.Problem) { payload = try ProposalPayload(bytes: bytes) } catch {
            throw AirlockError("\(wanted): \(error.description)", code: .badRequest)
        }
        // What the host's own policy asks beyond the gate's: it can only tighten (RuleOutcome).
        var asked: HostRequirement?
        if let requirement = body["host_requirement"] {
            guard let parsed = HostRequirement(json: requirement) else {
                throw AirlockError("host_requirement must be {approvals: 1–\(RuleAnnotations.maximumApprovals), expires_after_seconds: 60–2592000, policies: [...]}", code: .badRequest)
            }
            asked = parsed
        }
        let pinned: PinnedRequest
        switch payload {
        case .aws(let request): pinned = request
        case .s3Multipart(let manifest): return try proposeMultipart(identity, sessionID: sessionID, manifest, asked: asked)
        case .kubernetes(let request): return try proposeKubernetes(identity, sessionID: sessionID, request, asked: asked)
        case .github(let request): return try proposeGitHub(identity, sessionID: sessionID, request, asked: asked)
        case .gitPush(let push): return try proposeGitPush(identity, sessionID: sessionID, push, asked: asked)
        case .command: throw AirlockError("\(wanted), not \(payload.type) (commands go to POST /v1/sessions/ID/commands)", code: .badRequest)
        }
        let classification = try classify(pinned)
        let summary = "\(pinned.service):\(classification.operation ?? "\(pinned.method) \(pinned.path)")"
        if classification.ruling.decision == .deny {
            do { try store.recordRefusal(sessionID: sessionID, summary: summary, rule: classification.ruling.rule) } catch {
                logger.error("refusal not recorded in the audit log", metadata: ["session": "\(sessionID)", "error": "\(error.message)"])
            }
            throw AirlockError("\(summary) is not allowed: \(classification.ruling.rule). No proposal was made.", code: .denied)
        }
        // The gate's own preview, with its read credentials at its upstream: a host's facts
        // are the host's word and are never read (docs/previews.md). A host at its pending
        // bound is refused before the gate reads anything for it.
        try checkHostPending(identity)
        return try keep(ProposalDraft(sessionID: sessionID, kind: .api, summary: summary, ruling: classification.ruling,
                                       payload: ProposalPayload.aws(pinned).bytes, upstream: config.awsUpstream,
                                       preview: awsPreview(pinned)), host: identity, asked: asked)
    }

    func awsPreview(_ pinned: PinnedRequest) -> JSON? {
        guard let upstream = try? AWSUpstream(parsing: config.awsUpstream) else { return nil }
        return AWSPreviewSource(catalog: catalog, credentials: previewCredentials ?? credentials, upstream: { _ in upstream })
            .preview(pinned, cache: previewCache)
    }

    /// `{"summary", "rule"}`: a request the host's broker refused (its own decision, made
    /// with the profile), audited on the gate under the host's session (docs/design.md
    /// invariant 7). The host's word, bounded; it changes nothing else.
    public func recordRefusal(_ identity: GateIdentity, sessionID: String, _ body: JSON) throws(AirlockError) -> JSON {
        try ownSession(identity, sessionID)
        guard let summary = body["summary"]?.string, let rule = body["rule"]?.string, summary.utf8.count <= 4096, rule.utf8.count <= 4096 else {
            throw AirlockError("a refusal needs a summary and a rule, each at most 4 KiB", code: .badRequest)
        }
        // An agent looping on a refused call must not grow the audit log without bound (every
        // entry takes the chain's lock all replicas share): past the budget, one entry says
        // that more came, and the host is told to wait (its broker logs the rest locally).
        let now = Clock.monotonicSeconds()
        let count = refusalWindows.withLock { windows -> Int in
            if windows.count > 10_000 { windows = windows.filter { now - $0.value.start < 60 } }
            var window = windows[sessionID] ?? (start: now, count: 0)
            if now - window.start >= 60 { window = (start: now, count: 0) }
            window.count += 1
            windows[sessionID] = window
            return window.count
        }
        if count > Self.refusalsPerMinute {
            if count == Self.refusalsPerMinute + 1 {
                try store.recordRefusal(sessionID: sessionID, summary: "more refusals than the gate records in a minute",
                                        rule: "\(identity.name)'s broker reported more than \(Self.refusalsPerMinute) refusals of this session within a minute; the gate records no more of them until the minute is over (the host's session log has them)")
            }
            throw AirlockError("this session's broker reported more than \(Self.refusalsPerMinute) refusals within a minute; the gate records no more until the minute is over",
                               hint: "the agent is looping on a refused call; its session log on the host has every refusal", code: .busy)
        }
        try store.recordRefusal(sessionID: sessionID, summary: summary, rule: "refused by \(identity.name)'s broker: \(rule)")
        return .object([("recorded", .bool(true))])
    }

    /// Starts receiving one part of an S3 multipart upload a host's broker staged, written to
    /// the blob store as it arrives (never whole in memory) and kept under the digest the gate
    /// computes (content-addressed: a host cannot overwrite another part's bytes). Refused
    /// past the host's byte quota for the last 24 hours (`limits.blob_bytes_per_host`).
    public func beginBlob(_ identity: GateIdentity, sessionID: String) throws(AirlockError) -> any BlobWriter {
        try ownSession(identity, sessionID)
        let quota = config.limits.blobBytesPerHost
        let held: Int
        do { held = try blobs.bytesStored(owner: identity.actor, since: Clock.epochMilliseconds() - 86_400_000) } catch {
            throw AirlockError("cannot read the blob store: \(error.message)", code: .storageUnavailable)
        }
        guard held < quota else {
            Counter(label: "airlock_gate_refused_total", dimensions: [("bound", "blob_bytes_per_host")]).increment()
            throw AirlockError("\(identity.name) sent \(ByteSize.human(held)) of parts to the gate within 24 hours, its quota (limits.blob_bytes_per_host: \(ByteSize.human(quota))); nothing was kept",
                               hint: "wait, or raise limits.blob_bytes_per_host in gate.yaml", code: .quotaExceeded)
        }
        do { return try blobs.makeWriter(owner: identity.actor) } catch {
            throw AirlockError("cannot keep the part: \(error.message)", code: .storageUnavailable)
        }
    }

    /// How long a blob no open proposal names is kept after it was last stored: the host
    /// fetches a run's outputs when its wait returns, and a part or an artifact is needed only
    /// while its proposal is open (docs/gate.md, "Shared state").
    public static let blobRetentionMilliseconds: Int64 = 7 * 86_400_000
    let lastSweep = Mutex<Double>(0)

    /// Removes the blobs no pending, approved or executing proposal names and nobody stored for
    /// a week; at most once an hour on this replica (RecoveryService). A proposal whose blob
    /// cannot be listed stops the sweep: nothing is removed on a guess.
    @discardableResult
    public func sweepBlobs(now: Int64 = Clock.epochMilliseconds(), force: Bool = false) -> (count: Int, bytes: Int)? {
        let due = lastSweep.withLock { last -> Bool in
            guard force || Clock.monotonicSeconds() - last >= 3600 || last == 0 else { return false }
            last = Clock.monotonicSeconds()
            return true
        }
        guard due else { return nil }
        do throws(AirlockError) {
            let keep = try ArtifactBlobs.named(by: try store.proposals(states: [.pending, .approved, .executing], session: nil), blobs: blobs)
            let swept = try blobs.sweep(keeping: keep, before: now - Self.blobRetentionMilliseconds)
            if swept.count > 0 {
                logger.notice("blobs swept", metadata: ["count": "\(swept.count)", "bytes": "\(swept.bytes)", "kept_for_open_proposals": "\(keep.count)"])
            }
            return swept
        } catch {
            logger.warning("the blob sweep did not run", metadata: ["error": "\(error.message)"])
            return nil
        }
    }

    /// A part received whole: its digest and size, the host's answer.
    public func finishBlob(_ writer: any BlobWriter) throws(AirlockError) -> JSON {
        let (digest, size) = try writer.finish()
        return .object([("sha256", .string(digest)), ("size", .number(Double(size)))])
    }

    /// Takes one more open wait for `identity` (an agent host) on this replica, or says which
    /// bound it reached. `leaveWait` gives it back.
    public func enterWait(_ identity: GateIdentity) throws(AirlockError) {
        guard identity.role == .host else { return }
        let limit = config.limits.waitsPerHost
        let (taken, total) = waits.withLock { open -> (Bool, Int) in
            let count = open[identity.actor, default: 0]
            guard count < limit else { return (false, open.values.reduce(0, +)) }
            open[identity.actor] = count + 1
            return (true, open.values.reduce(0, +))
        }
        Gauge(label: "airlock_gate_waits_open").record(total)
        guard taken else {
            Counter(label: "airlock_gate_refused_total", dimensions: [("bound", "waits_per_host")]).increment()
            throw AirlockError("\(identity.name) holds \(limit) open waits on this replica already (limits.waits_per_host); this one was not started",
                               hint: "wait on fewer proposals at once, or raise limits.waits_per_host in gate.yaml", code: .busy)
        }
    }

    public func leaveWait(_ identity: GateIdentity) {
        guard identity.role == .host else { return }
        let total = waits.withLock { open -> Int in
            let count = open[identity.actor, default: 1] - 1
            open[identity.actor] = count > 0 ? count : nil
            return open.values.reduce(0, +)
        }
        Gauge(label: "airlock_gate_waits_open").record(total)
    }

    /// A completed S3 multipart upload (`s3-multipart`, docs/gate.md "S3 multipart uploads"):
    /// the gate reads every request itself (create, each part with its bytes from the gate's
    /// blob store, complete), requires the operations and the object to be the ones a
    /// multipart upload has, and writes the summary the approver sees.
    func proposeMultipart(_ identity: GateIdentity, sessionID: String, _ manifest: MultipartManifest, asked: HostRequirement? = nil) throws(AirlockError) -> JSON {
        func bad(_ why: String) -> AirlockError { AirlockError("the multipart upload \(why); nothing was stored", code: .badRequest) }
        let create = manifest.create, complete = manifest.complete, staged = manifest.stagedUploadID, parts = manifest.parts
        guard staged.hasPrefix(StagedMultipart.idPrefix), (1...10_000).contains(parts.count) else {
            throw bad("is incomplete (a staged upload id and 1 to 10000 parts)")
        }
        guard create.service == "s3", complete.service == "s3", complete.path == create.path, complete.region == create.region else {
            throw bad("must create and complete one S3 object")
        }
        func operation(_ request: PinnedRequest) throws(AirlockError) -> AWSClassifier.Classification {
            let classification = try classify(request)
            if classification.ruling.decision == .deny {
                throw AirlockError("\(classification.operation ?? request.path) is not allowed: \(classification.ruling.rule). No proposal was made.", code: .denied)
            }
            return classification
        }
        func uploadID(_ request: PinnedRequest) -> String? {
            AWSRequest.parseForm(request.query).first { $0.key == "uploadId" }?.value
        }
        let created = try operation(create)
        guard created.operation == "CreateMultipartUpload" else { throw bad("does not start with CreateMultipartUpload") }
        guard try operation(complete).operation == "CompleteMultipartUpload", uploadID(complete) == staged else {
            throw bad("does not end with CompleteMultipartUpload of its staged upload")
        }
        var numbers = Set<Int>()
        var total = 0
        for part in parts {
            var request = part.request
            let size = part.size
            // The number the manifest gives and the one the request sends are one number.
            guard request.path == create.path, request.region == create.region, uploadID(request) == staged,
                  let number = AWSRequest.parseForm(request.query).first(where: { $0.key == "partNumber" })?.value.flatMap(Int.init),
                  number == part.number, numbers.insert(number).inserted else {
                throw bad("has a malformed or repeated part")
            }
            // The part's bytes are in the blob store (checked against the digest when they are
            // sent); its request is read here without them (an UploadPart is one by its method,
            // path and query).
            let held: Int?
            do { held = try blobs.blobSize(part.blobSHA256) } catch {
                throw AirlockError("cannot read the blob store: \(error.message)", code: .storageUnavailable)
            }
            guard let held else { throw bad("names part \(number), which was not sent to the gate (POST /v1/sessions/ID/blobs)") }
            guard held == size else { throw bad("says part \(number) is \(size) bytes; the gate holds \(held)") }
            request.body = []
            guard try operation(request).operation == "UploadPart" else { throw bad("has a part that is not UploadPart") }
            total += size
        }
        let (bucket, key) = StagedMultipart.bucketAndKey(create.path)
        let megabytes = Double(total) / 1_000_000
        let summary = "s3:PutObject \(bucket)/\(key) via multipart upload (\(parts.count) parts, \(Int(megabytes.rounded())) MB)"
        return try keep(ProposalDraft(sessionID: sessionID, kind: .api, summary: summary, ruling: created.ruling,
                                       payload: ProposalPayload.s3Multipart(manifest).bytes, upstream: config.awsUpstream), host: identity, asked: asked)
    }

    /// A command an agent host's shim gated, with the workspace snapshot (`SnapshotArchive`).
    /// The host's plan is not trusted or even sent: the gate runs init, plan and the preview
    /// itself, in its own execution sandboxes, from the snapshot; what the approver reads is
    /// the gate's plan, and that plan is what an approval applies. The answer is the shim's.
    public func proposeCommand(_ identity: GateIdentity, sessionID: String, archive: [UInt8]) throws(AirlockError) -> JSON {
        try ownSession(identity, sessionID)
        try checkHostPending(identity)
        guard let commands else {
            throw AirlockError("this gate does not run command proposals (no `airlock` binary beside airlock-gate); nothing was proposed", code: .noCommands)
        }
        guard preparing.withLock({ count -> Bool in
            guard count < Self.preparationLimit else { return false }
            count += 1
            return true
        }) else {
            throw AirlockError("\(Self.preparationLimit) command proposals are being prepared on this gate already; try again in a minute", code: .busy)
        }
        defer { preparing.withLock { $0 -= 1 } }
        let intake = GateCommandIntake(
            stateDir: config.stateDir, environment: commands.environment,
            awsEndpoint: config.awsUpstream == "aws" ? nil : config.awsUpstream, awsProfile: config.awsProfile,
            upstream: config.awsUpstream, launcher: commands.launcher, blobs: blobs)
        let answer: JSON
        do {
            answer = try intake.propose(archive, sessionID: sessionID, store: store, decide: { [self] (draft) throws(AirlockError) -> ProposalDraft in
                var draft = draft
                switch decide(draft, host: identity) {
                case .deny(let policies):
                    do throws(AirlockError) { try store.recordRefusal(sessionID: draft.sessionID, summary: draft.summary, rule: "forbidden by policy \(policies.joined(separator: ", "))") } catch {
                        logger.error("refusal not recorded in the audit log", metadata: ["session": "\(draft.sessionID)", "error": "\(error.message)"])
                    }
                    throw AirlockError("\(draft.summary) is forbidden by policy \(policies.joined(separator: ", ")); no proposal was made", code: .denied)
                case let outcome:
                    draft.requirement = outcome.requirement
                    return draft
                }
            })
        } catch {
            throw AirlockError(error.message, hint: error.hint, code: error.code ?? .refused)
        }
        if let id = answer["proposal"]?["id"]?.string {
            changes.bump(id)
            if (try? store.requirement(of: id))?.allowedBy != nil {
                do { _ = try approveByPolicy(id) } catch {
                    logger.warning("a policy allows it, but the approve path refused", metadata: ["proposal": "\(id)", "error": "\(error.message)"])
                }
            }
            Counter(label: "airlock_gate_proposals_created_total", dimensions: [("kind", Proposal.Kind.command.rawValue)]).increment()
            logger.info("proposed", metadata: ["proposal": "\(id)", "session": "\(sessionID)", "host": "\(identity.name)",
                                               "summary": "\(answer["proposal"]?["summary"]?.string ?? "")"])
        }
        return answer
    }

    /// Output `index` of an executed command proposal (terraform's new state), for the agent
    /// host to copy back into the workspace.
    public func output(_ identity: GateIdentity, _ id: String, index: Int) throws(AirlockError) -> JSON {
        let found = try proposal(identity, id)
        guard let kept = CommandRunner.keptOutput(found, index: index, blobs: blobs) else {
            throw AirlockError("proposal \(id) has no output \(index) kept on this gate", code: .noSuchOutput)
        }
        return kept
    }

    /// Refused when the host has `limits.pending_per_host` pending across its sessions (each
    /// session's own 200 is the store's, checked in its transaction; this one is counted just
    /// before, so replicas taking proposals at the same instant may pass it by a few).
    func checkHostPending(_ identity: GateIdentity) throws(AirlockError) {
        let limit = config.limits.pendingPerHost
        let pending: Int
        do { pending = try store.pendingCount(user: identity.actor) } catch { throw AirlockError(error.message, code: .storeUnavailable) }
        guard pending < limit else {
            Counter(label: "airlock_gate_refused_total", dimensions: [("bound", "pending_per_host")]).increment()
            throw AirlockError("\(identity.name) has \(pending) proposals pending across its sessions, its bound (limits.pending_per_host: \(limit)); nothing was proposed",
                               hint: "an approver decides some first, or raise limits.pending_per_host in gate.yaml", code: .proposalLimit)
        }
    }

    /// Stores a proposal the gate wrote from a host's request; the host's answer.
    func keep(_ draft: ProposalDraft, host identity: GateIdentity, asked: HostRequirement? = nil) throws(AirlockError) -> JSON {
        try checkHostPending(identity)
        // The gate's rules decide (docs/policy.md), tightened by what the host's own asked.
        var draft = draft
        let outcome = decide(draft, host: identity).tightened(by: asked)
        switch outcome {
        case .deny(let policies):
            do { try store.recordRefusal(sessionID: draft.sessionID, summary: draft.summary, rule: "forbidden by policy \(policies.joined(separator: ", "))") } catch {
                logger.error("refusal not recorded in the audit log", metadata: ["session": "\(draft.sessionID)", "error": "\(error.message)"])
            }
            Counter(label: "airlock_gate_refused_total", dimensions: [("bound", "policy")]).increment()
            throw AirlockError("\(draft.summary) is forbidden by policy \(policies.joined(separator: ", ")); no proposal was made",
                               hint: "the gate's policy denies this change outright", code: .denied)
        case .allow, .ask:
            draft.requirement = outcome.requirement
        }
        var proposal = try store.propose(draft)
        Counter(label: "airlock_gate_proposals_created_total", dimensions: [("kind", proposal.kind.rawValue)]).increment()
        logger.info("proposed", metadata: ["proposal": "\(proposal.id)", "session": "\(draft.sessionID)", "host": "\(identity.name)",
                                           "summary": "\(draft.summary)", "requirement": "\(draft.requirement?.summary ?? "")"])
        if case .allow(let policy) = outcome {
            // Executed without a human through the one approve path, audited as policy:ID;
            // refused there (a freeze), it waits for a human.
            do { proposal = try approveByPolicy(proposal.id) } catch {
                logger.warning("a policy allows it, but the approve path refused", metadata: ["proposal": "\(proposal.id)", "policy": "\(policy)", "error": "\(error.message)"])
            }
        }
        guard case .object(var fields) = ProposalJSON.agentView(proposal) else { return .null }
        fields.append(("session", .string(draft.sessionID)))
        return .object(fields)
    }

    /// The gate's own reading of a pinned request: one reading or none, then its catalog.
    func classify(_ pinned: PinnedRequest) throws(AirlockError) -> AWSClassifier.Classification {
        let service: AWSService
        let classifier: AWSClassifier
        let found: AWSService?
        do throws(AirlockError) {
            found = try catalog.service(pinned.service)
            classifier = try catalog.classifier()
        } catch {
            throw AirlockError(error.message, code: .catalog, cause: error)
        }
        guard let found else { throw AirlockError("no AWS service \(pinned.service) in the gate's catalog", code: .unknownService) }
        service = found
        // Where it would be signed and sent comes from the payload too: the region must be a
        // region name (never a host) and the signing name the service's own.
        guard AWSRegion.isValidName(pinned.region) else {
            throw AirlockError("the region \(pinned.region) is not an AWS region name; nothing was stored", code: .ambiguousRequest)
        }
        guard pinned.signingName == service.signingName || (service.name == "s3" && pinned.signingName == "s3express") else {
            throw AirlockError("the request is signed as \(pinned.signingName) but names \(service.name); nothing was stored", code: .scopeMismatch)
        }
        let request = AWSRequest(method: pinned.method, path: pinned.path, query: pinned.query, headers: pinned.headers, body: pinned.body)
        if let ambiguity = request.ambiguity(for: service, servicePath: pinned.path, decidingQueryKeys: classifier.decidingQueryKeys(for: service)) {
            throw AirlockError("\(ambiguity); a request must have exactly one reading, so nothing was stored", code: .ambiguousRequest)
        }
        if let malformation = request.malformation(for: service.wireProtocol) {
            throw AirlockError("malformed request: \(malformation); nothing was stored", code: .malformedRequest)
        }
        return classifier.classify(request, service: service, servicePath: pinned.path)
    }

    func ownSession(_ identity: GateIdentity, _ sessionID: String) throws(AirlockError) {
        let session: Session?
        do { session = try store.session(id: sessionID) } catch { throw AirlockError(error.message, code: .storeUnavailable) }
        guard let session, session.user == identity.actor else {
            throw AirlockError("no session \(sessionID) of \(identity.actor) on this gate (POST /v1/sessions first)", code: .noSuchSession)
        }
    }

    /// What an approver is shown beside the pinned request (ProposalStore.preview(of:)).
    public func preview(_ proposal: Proposal) throws(AirlockError) -> JSON? {
        do { return try store.preview(of: proposal) } catch { throw AirlockError(error.message, code: .storeUnavailable) }
    }

    // MARK: Both

    public func proposal(_ identity: GateIdentity, _ id: String) throws(AirlockError) -> Proposal {
        let found: Proposal?
        do { found = try store.proposal(id: id) } catch { throw AirlockError(error.message, code: .storeUnavailable) }
        guard let found else { throw AirlockError("no proposal \(id)", code: .noSuchProposal) }
        if identity.role == .host {
            // A host sees its own sessions' proposals only; others do not exist for it.
            guard (try? ownSession(identity, found.sessionID)) != nil else { throw AirlockError("no proposal \(id)", code: .noSuchProposal) }
        }
        return found
    }

    // MARK: Approvers

    public func list(_ identity: GateIdentity, states: Set<ProposalState>?) throws(AirlockError) -> JSON {
        do {
            return .object([("proposals", .array(try store.proposals(states: states, session: nil).map(ProposalJSON.humanView)))])
        } catch {
            throw AirlockError(error.message, code: .storeUnavailable)
        }
    }

    /// The gate's rules on a draft, with the session's facts as the gate knows them: its host
    /// is the enrolled host, its human the launcher it recorded.
    func decide(_ draft: ProposalDraft, host identity: GateIdentity) -> RuleOutcome {
        guard !rules.isEmpty, let payload = try? ProposalPayload(bytes: draft.payload) else { return .defaultAsk }
        let parts = ProposalFacts.parts(of: payload, decision: draft.ruling.decision, preview: draft.preview)
        let recorded = (try? store.session(id: draft.sessionID)) ?? nil
        var session = SessionFacts(id: draft.sessionID, host: identity.name, user: recorded?.launcher ?? "unknown",
                                   profiles: (recorded?.profiles ?? "").split(separator: ",").map(String.init))
        // The session's counts only when a policy reads them: they load every proposal of the
        // session (payloads included) for each new one.
        if rules.readsSessionCounts, let mine = try? store.proposals(states: nil, session: draft.sessionID) {
            session.proposals = mine.count
            session.approved = mine.filter { [.approved, .executing, .succeeded, .failed, .unknown].contains($0.state) }.count
            session.denied = mine.filter { $0.state == .denied }.count
        }
        return rules.decide(parts: parts, session: session, now: Clock.epochMilliseconds() / 1000)
    }

    /// Runs a proposal the gate's policy allowed without a human (the one approve path).
    func approveByPolicy(_ id: String) throws(AirlockError) -> Proposal {
        var approval = Approval(store: store, executor: executor())
        approval.deadlines = config.deadlines
        approval.place = .gate
        approval.approved = { [self] _ in changes.bump(id) }
        let started = Clock.monotonicSeconds()
        let outcome = try approval.approveByPolicy(id)
        changes.bump(id)
        recordExecution(outcome, seconds: Clock.monotonicSeconds() - started)
        return outcome
    }

    /// Approves and executes with the gate's credentials, at the gate's upstream, once,
    /// under this replica's lease, through the one approve path (Approval: freeze, revoked
    /// session, row against its audit entry). A freeze set after the approval still stops the
    /// send (checked before each request).
    public func approve(_ identity: GateIdentity, _ id: String, note: String?) throws(AirlockError) -> Proposal {
        _ = try proposal(identity, id)
        var approval = Approval(store: store, executor: executor())
        approval.deadlines = config.deadlines
        approval.place = .gate
        approval.counted = { [self] pending, counted in
            changes.bump(id)
            logger.info("approval counted", metadata: ["proposal": "\(pending.id)", "by": "\(identity.actor)", "counted": "\(counted.joined(separator: ","))"])
        }
        approval.tampered = { [logger] _, mismatch in
            Counter(label: "airlock_gate_audit_tampering_total").increment()
            logger.critical("proposal row does not match its audit entry", metadata: ["proposal": "\(id)", "why": "\(mismatch)"])
        }
        approval.approved = { [self] approved in
            recordDecision(approved, by: identity)
            changes.bump(id)
        }
        let started = Clock.monotonicSeconds()
        do {
            let outcome = try approval.approve(id, by: identity.actor, note: note)
            changes.bump(id)
            recordExecution(outcome, seconds: Clock.monotonicSeconds() - started)
            return outcome
        } catch {
            if error.code == nil { logger.warning("execution not recorded", metadata: ["proposal": "\(id)", "error": "\(error.message)"]) }
            throw error
        }
    }

    /// The one executor, with this gate's runners: its AWS keys (or role), and its command
    /// sandboxes when it runs commands.
    func executor() -> Executor {
        var aws = AWSRunner(catalog: catalog, credentials: credentials, blobs: blobs, assumeRole: config.awsAssumeRole)
        aws.previewCredentials = previewCredentials
        var runners = Runners(aws: aws)
        if let kubernetes {
            let store = self.store
            runners.kubernetes = KubernetesRunner(clusters: kubernetes.clusters, previews: { proposal in (try? store.preview(of: proposal)) ?? nil })
        }
        if let github { runners.github = GitHubRunner(credentials: github) }
        if let commands {
            var command = CommandRunner(store: store, stateDir: config.stateDir, environment: commands.environment, awsProfile: config.awsProfile)
            command.launcher = commands.launcher
            command.onGate = true
            command.blobs = blobs
            if let role = config.awsAssumeRole {
                // The apply runs with the role's keys, its session named for the proposal
                // (docs/gate.md, "Role per execution"); nothing runs if it cannot be assumed.
                let api = AWSRunner(catalog: catalog, credentials: credentials, blobs: blobs)
                let upstream = config.awsUpstream
                command.runCredentials = { (proposal) throws(AirlockError) in
                    try api.assumeRole(role, proposalID: proposal.id, upstream: upstream, seconds: 3600)
                }
            }
            runners.command = command
        }
        var executor = Executor(store: store, lease: lease, runners: runners)
        executor.holdReason = { [self] in frozenReason() }
        return executor
    }

    // MARK: Groups (docs/previews.md, "Groups")

    func currentGroups() throws(AirlockError) -> [ProposalGroups.Group] {
        do {
            return ProposalGroups.groups(ProposalGroups.candidates(try store.proposals(states: [.pending], session: nil)))
        } catch {
            throw AirlockError(error.message, code: .storeUnavailable)
        }
    }

    public func groups(_ identity: GateIdentity) throws(AirlockError) -> JSON {
        .object([("groups", .array(try currentGroups().map(\.json)))])
    }

    public func group(_ identity: GateIdentity, _ id: String) throws(AirlockError) -> ProposalGroups.Group {
        guard let group = try currentGroups().first(where: { $0.id == id }) else {
            throw AirlockError("no group \(id) of pending proposals", code: .notFound)
        }
        return group
    }

    /// Each member the digest covers, approved (through the one approve path, once each) or
    /// denied; a member that fails is reported and the rest go on.
    public func decideGroup(_ identity: GateIdentity, _ id: String, approve: Bool, members digest: String?, note: String?) throws(AirlockError) -> JSON {
        guard let digest else { throw AirlockError("a group decision names the members it covers (\"members\": the digest GET /v1/groups/\(id) shows)", code: .badRequest) }
        let covered = try ProposalGroups.decided(try group(identity, id), digest: digest)
        var results: [JSON] = []
        for member in covered {
            let memberNote = (note.map { "\($0) " } ?? "") + "(group \(id))"
            do throws(AirlockError) {
                let outcome = approve ? try self.approve(identity, member.id, note: memberNote) : try deny(identity, member.id, note: memberNote)
                results.append(ProposalJSON.humanView(outcome))
            } catch {
                results.append(.object([("id", .string(member.id)), ("error", .string(error.message))]))
            }
        }
        return .object([("group", .string(id)), (approve ? "approved" : "denied", .array(results))])
    }

    public func deny(_ identity: GateIdentity, _ id: String, note: String?) throws(AirlockError) -> Proposal {
        _ = try proposal(identity, id)
        let denied = try store.apply(.deny, to: id, actor: identity.actor, note: note)
        changes.bump(id)
        recordDecision(denied, by: identity)
        return denied
    }

    // MARK: Kill switch

    /// Why no execution may start now, if the gate is frozen.
    /// Fails closed: a store that cannot say whether the gate is frozen counts as frozen.
    func frozenReason() -> String? { Approval.frozenReason(store) }

    /// Freezes (or thaws) every execution on every replica: approvals are refused and an
    /// approved call not yet sent is not sent. Executions already sent finish.
    public func setFrozen(_ identity: GateIdentity, _ frozen: Bool, reason: String?) throws(AirlockError) -> JSON {
        do {
            try store.setControl(GateControl.freeze, on: frozen, by: identity.actor, reason: reason)
        } catch {
            throw AirlockError(error.message, code: .storeUnavailable)
        }
        checkpoint()
        logger.notice(frozen ? "frozen" : "thawed", metadata: ["by": "\(identity.actor)", "reason": "\(reason ?? "")"])
        return try controls(identity)
    }

    /// Revokes a session and denies every pending proposal of it, at once.
    public func revokeSession(_ identity: GateIdentity, _ sessionID: String, reason: String?) throws(AirlockError) -> JSON {
        let found: Session?
        do { found = try store.session(id: sessionID) } catch { throw AirlockError(error.message, code: .storeUnavailable) }
        guard found != nil else { throw AirlockError("no session \(sessionID) on this gate", code: .noSuchSession) }
        let denied = try store.revokeSession(sessionID, by: identity.actor, reason: reason)
        denied.forEach(changes.bump)
        checkpoint()
        logger.notice("session revoked", metadata: ["session": "\(sessionID)", "by": "\(identity.actor)", "denied": "\(denied.count)"])
        return .object([("session", .string(sessionID)), ("revoked", .bool(true)), ("denied", .array(denied.map(JSON.string)))])
    }

    /// Revokes an agent host's (or approver's) token.
    public func revokeIdentity(_ identity: GateIdentity, name: String, role: GateAccess.Role) throws(AirlockError) -> JSON {
        do {
            let (revoked, denied) = try store.revokeIdentityAndWork(name: name, role: role, by: identity.actor)
            denied.forEach(changes.bump)
            checkpoint()
            logger.notice("identity revoked", metadata: ["revoked": "\(revoked.actor)", "by": "\(identity.actor)", "denied": "\(denied.count)"])
            return .object([("name", .string(revoked.name)), ("role", .string(revoked.role.rawValue)), ("revoked_at", .string(revoked.revokedAt ?? "")),
                            ("denied", .array(denied.map(JSON.string)))])
        } catch {
            throw AirlockError(error.message, code: .noSuchIdentity)
        }
    }

    public func controls(_ identity: GateIdentity) throws(AirlockError) -> JSON {
        do {
            return .object([("controls", .array(try store.controls().map(\.json)))])
        } catch {
            throw AirlockError(error.message, code: .storeUnavailable)
        }
    }

    // MARK: Recovery

    /// Marks `unknown` every execution whose lease ran out (a replica died mid-call); run
    /// periodically by every replica. Never re-runs anything.
    @discardableResult
    public func recoverExpiredExecutions(now: Int64 = Clock.epochMilliseconds()) -> [String] {
        // Waiting past the deadlines gate.yaml sets: expired (a deny), announced like any
        // decision. Apart from the lease recovery, which a failure here must not hold up.
        do {
            for id in try store.expireOverdue(config.deadlines, now: now) {
                changes.bump(id)
                logger.notice("proposal expired", metadata: ["proposal": "\(id)"])
            }
        } catch {
            logger.warning("expiry could not read the store", metadata: ["error": "\(error.message)"])
        }
        do {
            let marked = try store.recoverInterruptedExecutions()
            for id in marked {
                changes.bump(id)
                Counter(label: "airlock_gate_executions_total", dimensions: [("outcome", ProposalState.unknown.rawValue)]).increment()
                logger.error("execution lost", metadata: ["proposal": "\(id)", "why": "its executor's lease ran out before it recorded a result"])
            }
            return marked
        } catch {
            logger.warning("recovery could not read the store", metadata: ["error": "\(error.message)"])
            return []
        }
    }

    /// At shutdown, after the grace period: this replica's executions still running cannot
    /// record a result any more, so they are `unknown` now rather than when the lease runs out.
    @discardableResult
    public func markOwnExecutionsInterrupted() -> [String] {
        var marked: [String] = []
        for execution in (try? store.executions()) ?? [] where execution.executor == lease.owner {
            do {
                let why = "the gate replica \(lease.owner) shut down before the execution recorded a result"
                try store.apply(.lose, to: execution.id, actor: "airlock", note: why, result: ExecutionResult(output: [], error: why))
                marked.append(execution.id)
                logger.error("execution lost", metadata: ["proposal": "\(execution.id)", "why": "shutdown"])
            } catch {
                continue
            }
        }
        return marked
    }

    // MARK: Metrics and logs

    /// Signs the chain's current head. A failure is logged, never hidden: the decision is
    /// already durable and the next checkpoint covers it.
    ///
    /// Never blind: the gate signs a head only if the chain still leads to it from the last
    /// head this process signed (or, the first time, from the genesis or the newest stored
    /// checkpoint its key verifies). A chain rewritten in the database between two decisions
    /// is not signed over; the refusal is logged and counted.
    func checkpoint() {
        guard let signer else { return }
        do throws(AirlockError) {
            guard try store.auditHead() != nil else { return }
            let known = lastSigned.withLock { $0 }
            let anchor: (seq: Int, hash: String)?
            if let known { anchor = known } else { anchor = try startingAnchor(signer) }
            let entries = try store.auditEntries(fromSeq: anchor?.seq ?? 1)
            var previous = anchor?.hash ?? AuditChain.genesis
            var expected = anchor.map { $0.seq + 1 } ?? 1
            for entry in entries.drop(while: { anchor != nil && $0.seq == anchor!.seq && $0.hash == anchor!.hash }) {
                guard entry.seq == expected, entry.previousHash == previous, AuditChain.seal(entry).hash == entry.hash else {
                    Counter(label: "airlock_gate_audit_tampering_total").increment()
                    logger.critical("audit chain changed under the gate: not signing", metadata: [
                        "entry": "\(entry.seq)", "last_signed": "\(anchor?.seq ?? 0)"])
                    return
                }
                previous = entry.hash
                expected += 1
            }
            if let anchor, !entries.contains(where: { $0.seq == anchor.seq && $0.hash == anchor.hash }) {
                Counter(label: "airlock_gate_audit_tampering_total").increment()
                logger.critical("audit chain changed under the gate: the last signed entry is gone or different", metadata: ["last_signed": "\(anchor.seq)"])
                return
            }
            try store.addCheckpoint(signer.sign(seq: expected - 1, headHash: previous))
            lastSigned.withLock { $0 = (expected - 1, previous) }
        } catch {
            logger.error("audit checkpoint not stored", metadata: ["error": "\(error.message)"])
        }
    }

    /// The newest stored checkpoint this key signed and the chain still holds, if any.
    func startingAnchor(_ signer: AuditSigner) throws(AirlockError) -> (seq: Int, hash: String)? {
        try store.checkpoints().last { AuditSigner.isSigned($0, publicKey: signer.publicKey) }.map { ($0.seq, $0.headHash) }
    }

    /// The log with its checkpoints and the public key, for `airlock audit verify --gate`.
    public func auditExport(_ identity: GateIdentity) throws(AirlockError) -> JSON {
        do {
            return AuditExport.json(entries: try store.auditEntries(), checkpoints: try store.checkpoints(), publicKey: signer?.publicKey)
        } catch {
            throw AirlockError(error.message, code: .storeUnavailable)
        }
    }

    func recordDecision(_ proposal: Proposal, by identity: GateIdentity) {
        checkpoint()
        if let created = Clock.epochMilliseconds(parsing: proposal.createdAt) {
            let waited = max(0, Clock.epochMilliseconds() - created)
            Metrics.Timer(label: "airlock_gate_decision_seconds", dimensions: [("decision", proposal.state == .denied ? "deny" : "approve")])
                .recordMilliseconds(waited)
        }
        logger.notice(proposal.state == .denied ? "denied" : "approved",
                      metadata: ["proposal": "\(proposal.id)", "by": "\(identity.actor)", "summary": "\(proposal.summary)"])
    }

    func recordExecution(_ proposal: Proposal, seconds: Double) {
        checkpoint()
        Counter(label: "airlock_gate_executions_total", dimensions: [("outcome", proposal.state.rawValue)]).increment()
        let upstreamError: String?
        if proposal.state == .unknown {
            upstreamError = "uncertain"
        } else if let error = proposal.result?.error, error.hasPrefix("not sent: cannot reach") {
            upstreamError = "unreachable"
        } else if let status = proposal.result?.httpStatus, status >= 500 {
            upstreamError = "status_5xx"
        } else {
            upstreamError = nil
        }
        if let upstreamError { Counter(label: "airlock_gate_upstream_errors_total", dimensions: [("kind", upstreamError)]).increment() }
        logger.notice("executed", metadata: ["proposal": "\(proposal.id)", "outcome": "\(proposal.state.rawValue)",
                                            "http_status": "\(proposal.result?.httpStatus.map(String.init) ?? "")",
                                            "ms": "\(Int(seconds * 1000))", "replica": "\(lease.owner)"])
    }
}
