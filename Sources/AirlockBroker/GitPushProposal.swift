import AirlockCore
import AirlockPolicy
import AirlockStore
import Glibc

/// A `git push` over HTTPS as a proposal (docs/github.md, "git pushes"): the receive-pack
/// request is read strictly (GitReceivePack) and pinned byte for byte; the commits it would
/// publish are shown by real git on a copy of the repository fetched with the human's
/// credentials (log, diffstat, force pushes); approval replays exactly the pinned request,
/// so the server moves each ref from the old id to the new one the approver saw, or refuses
/// if the ref moved meanwhile.
extension GitHubGateway {
    func proposePush(_ request: BrokerHTTPRequest, host: String, repository: String, ruling: Ruling) throws -> GatewayReply {
        let reading: GitPushReading
        switch GitPushReading.read(body: request.body, host: host, repository: repository, credentials: credentials,
                                   cacheDirectory: cacheDirectory, protected: protected) {
        case .success(let read): reading = read
        case .failure(let refusal): throw Refusal(status: refusal.status, message: "Airlock: \(refusal.message)", api: false)
        }
        let proposal = try store.propose(ProposalDraft(sessionID: sessionID, kind: .api, summary: reading.summary, ruling: ruling,
                                                         payload: ProposalPayload.gitPush(reading.payload).bytes, upstream: "https://\(host)",
                                                         preview: reading.preview))
        log.write("proposal \(proposal.id): \(reading.summary) is pending approval")
        let message = "Airlock: Proposal \(proposal.id) is pending: a human approves it with `airlock approve \(proposal.id)`; `airlock wait \(proposal.id)` waits for the push"
        return .respond(status: 200, headers: [("Content-Type", "application/x-git-receive-pack-result"), ("Cache-Control", "no-cache")],
                        body: GitPushInspection.pendingReport(reading.push, message: message))
    }
}

extension GitHubGateway {
    /// A push's advertisement (`info/refs?service=git-receive-pack`) made from the fetch's
    /// (`git-upload-pack`, protocol v0), which this host's read-only credentials may get: the
    /// same refs and ids, receive-pack's capabilities. The push itself is pinned and proposed,
    /// never sent from here, so what git reads here decides only what it packs.
    func receivePackAdvertisement(host: String, repository: String) throws -> GatewayReply {
        let fetch = GitHubPinnedRequest(host: host, method: "GET", path: repository + "/info/refs", query: "service=git-upload-pack",
                                        headers: [("User-Agent", "git/airlock"), ("Accept", "*/*")], body: [])
        let response = try ExecutionClient.send(outbound(fetch, authorization: credentials.gitAuthorization(host: host, path: repository)),
                                                timeoutSeconds: 60)
        guard response.status == 200, let advertised = GitPushInspection.receivePackAdvertisement(fromUploadPack: response.body) else {
            return .respond(status: response.status == 200 ? 502 : response.status, headers: [("Content-Type", "text/plain; charset=utf-8")],
                            body: response.status == 200 ? Array("Airlock: the repository's advertisement could not be read\n".utf8) : response.body)
        }
        return .respond(status: 200, headers: [("Content-Type", "application/x-git-receive-pack-advertisement"), ("Cache-Control", "no-cache")],
                        body: advertised)
    }
}

/// A push read as a proposal: the receive-pack request strictly (GitReceivePack), pinned
/// byte for byte, and what it would publish shown by real git on a copy of the repository
/// fetched with `credentials` (the host's broker's, or a team gate's own: docs/gate.md,
/// "Kubernetes and GitHub on the gate").
public struct GitPushReading: Sendable {
    public var push: GitReceivePack
    public var payload: GitPushPayload
    public var summary: String
    /// Labels per ref, the git log and diffstat, notes: the approver's view, outside the digest.
    public var preview: JSON

    /// Why a push is not read: the status a client gets, and what it is told.
    public struct Refused: Error {
        public var status: Int
        public var message: String
        init(_ status: Int, _ message: String) {
            self.status = status
            self.message = message
        }
    }

    public static func read(body: [UInt8], host: String, repository: String, credentials: GitHubCredentials, cacheDirectory: String,
                            protected: [Glob]) -> Result<GitPushReading, Refused> {
        let push: GitReceivePack
        switch GitReceivePack.parse(body) {
        case .success(let parsed): push = parsed
        case .failure(let problem): return .failure(Refused(400, "this push has no single reading (\(problem.description)); nothing was sent or proposed"))
        }
        // What is pinned is what serializes back: the request the approver's view describes.
        guard push.serialized() == body else {
            return .failure(Refused(400, "this push does not read back to the same bytes; nothing was sent or proposed"))
        }
        guard push.capabilities.contains("report-status") || push.capabilities.contains("report-status-v2") else {
            return .failure(Refused(403, "pushes are proposals, and this client did not ask for a status report (report-status) to hear so; nothing was sent"))
        }
        let inspection = GitPushInspection.inspect(push, host: host, repository: repository, credentials: credentials,
                                                   cacheDirectory: cacheDirectory, protected: protected)
        let refs = push.updates.map { $0.ref.hasPrefix("refs/heads/") ? String($0.ref.dropFirst("refs/heads/".count)) : $0.ref }
        let labels = inspection.updates.map(\.label)
        let summary = "git:push \(refs.joined(separator: ", ")) to \(host)\(repository)"
            + (labels.contains { $0.contains("force") } ? " (force)" : "")
        let payload = GitPushPayload(host: host, repository: repository, body: body,
                                     updates: inspection.updates.map { GitPushPayload.Update(ref: $0.ref, old: $0.old, new: $0.new) })
        let preview = JSON.object([("labels", .object(inspection.updates.map { ($0.ref, JSON.string($0.label)) })),
                                   ("log", .string(inspection.log)), ("notes", .array(inspection.notes.map(JSON.string)))])
        return .success(GitPushReading(push: push, payload: payload, summary: summary, preview: preview))
    }
}

/// What the approver is shown of a push, made with real git outside the sandbox.
struct GitPushInspection {
    struct Update {
        var ref: String
        var old: String
        var new: String
        var label: String
    }

    var updates: [Update]
    var log: String
    var notes: [String]

    static let zero = String(repeating: "0", count: 40)

    static func inspect(_ push: GitReceivePack, host: String, repository: String, credentials: GitHubCredentials,
                        cacheDirectory: String, protected: [Glob]) -> GitPushInspection {
        var notes: [String] = []
        let labels = push.labels(protected: protected)
        var updates = zip(push.updates, labels).map { Update(ref: $0.ref, old: $0.old, new: $0.new, label: $1.label) }
        guard let git = GitHubCredentials.executable("git", environment: credentials.environment) else {
            return GitPushInspection(updates: updates, log: "", notes: ["git is not installed where the broker runs: the commits cannot be shown"])
        }
        let directory = cacheDirectory + "/" + SigV4.hexSHA256(Array("\(host)\(repository)".utf8)).prefix(24) + ".git"
        // A clean environment: the human's git configuration (insteadOf, hooks) has no say here.
        var environment = ["PATH": credentials.environment["PATH"] ?? "/usr/bin:/bin", "HOME": cacheDirectory, "GIT_CONFIG_NOSYSTEM": "1",
                           "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"]
        if let file = credentials.environment["SSL_CERT_FILE"] { environment["GIT_SSL_CAINFO"] = file }
        func run(_ arguments: [String], stdin: [UInt8] = [], extra: [String: String] = [:]) -> ChildProcess.Output? {
            try? ChildProcess.run([git] + arguments, environment: environment.merging(extra) { $1 }, stdin: stdin, outputLimit: 256 << 10)
        }
        if access(directory + "/HEAD", F_OK) != 0 {
            _ = try? ensureDirectory(cacheDirectory)
            guard run(["init", "--bare", "-q", directory])?.status == 0 else {
                return GitPushInspection(updates: updates, log: "", notes: ["could not make a repository to show the commits in"])
            }
        }
        var fetch = ["-C", directory]
        // The credential goes in git's environment (GIT_CONFIG_COUNT), never its argv, which
        // every local user can read in /proc.
        var secret: [String: String] = [:]
        if let authorization = credentials.gitAuthorization(host: host, path: repository) {
            secret = ["GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": "Authorization: \(authorization)"]
        }
        let address = credentials.connectHost(host)
        if address != host { fetch += ["-c", "http.curloptResolve=\(host):443:\(address)"] }
        fetch += ["fetch", "-q", "--no-tags", "--prune", "https://\(host)\(repository)", "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        if let fetched = run(fetch, extra: secret), fetched.status != 0 {
            notes.append("could not fetch \(host)\(repository) to compare with (\(fetched.stderr.prefix(200)))")
        }
        if !push.pack.isEmpty, let indexed = run(["-C", directory, "index-pack", "--stdin", "--fix-thin"], stdin: push.pack), indexed.status != 0 {
            notes.append("git could not read the pushed pack: \(indexed.stderr.prefix(200))")
        }
        var log: [String] = []
        for index in updates.indices {
            let update = updates[index]
            guard update.new != zero, update.new.count == update.old.count || update.old.allSatisfy({ $0 == "0" }) else {
                log.append("\(update.ref): deleted (was \(update.old.prefix(12)))")
                continue
            }
            let range = update.old.allSatisfy { $0 == "0" } ? [update.new, "--not", "--all"] : ["\(update.old)..\(update.new)"]
            if !update.old.allSatisfy({ $0 == "0" }) {
                switch run(["-C", directory, "merge-base", "--is-ancestor", update.old, update.new])?.status {
                case 0?: break
                case 1?:
                    updates[index].label += ", force push (\(update.old.prefix(12)) is not an ancestor of \(update.new.prefix(12)): commits are dropped)"
                    if let dropped = run(["-C", directory, "log", "--no-color", "--format=  dropped: %h %s", "--max-count=50", "\(update.new)..\(update.old)"]),
                       dropped.status == 0, !dropped.stdout.isEmpty {
                        log.append("\(update.ref) loses these commits:\n" + dropped.stdout)
                    }
                default: updates[index].label += ", cannot tell whether this is a force push (\(update.old.prefix(12)) is not known here)"
                }
            }
            log.append("\(update.ref): \(update.old.prefix(12)) → \(update.new.prefix(12)) (\(updates[index].label))")
            if let shown = run(["-C", directory, "log", "--no-color", "--stat", "--format=commit %H%nAuthor: %an <%ae>%n%n    %s%n", "--max-count=50"] + range),
               shown.status == 0 {
                log.append(shown.stdout)
            } else {
                log.append("  (the commits cannot be shown)")
            }
            if !update.old.allSatisfy({ $0 == "0" }), let stat = run(["-C", directory, "diff", "--no-color", "--stat", update.old, update.new]),
               stat.status == 0, !stat.stdout.isEmpty {
                log.append("diffstat \(update.old.prefix(12))..\(update.new.prefix(12)):\n" + stat.stdout)
            }
        }
        return GitPushInspection(updates: updates, log: String(log.joined(separator: "\n").prefix(64 << 10)), notes: notes)
    }

    /// What a receive-pack advertisement says capabilities the gate's replay can keep: a
    /// status report (the approval's result), deletions, atomic updates, quiet, side band.
    static let receivePackCapabilities = "report-status report-status-v2 delete-refs side-band-64k quiet atomic ofs-delta object-format=sha1 agent=git/airlock"

    /// The upload-pack advertisement (v0) as receive-pack's: its service line, each ref line
    /// (peeled tags left out, as receive-pack lists none), the first with receive-pack's
    /// capabilities; nil when it does not read as one.
    static func receivePackAdvertisement(fromUploadPack bytes: [UInt8]) -> [UInt8]? {
        var lines: [[UInt8]?] = []  // nil: a flush
        var index = 0
        while index < bytes.count {
            guard index + 4 <= bytes.count, let length = Int(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16) else { return nil }
            if length == 0 {
                lines.append(nil)
                index += 4
                continue
            }
            guard length >= 4, index + length <= bytes.count else { return nil }
            var payload = Array(bytes[index + 4..<index + length])
            if payload.last == 0x0A { payload.removeLast() }
            lines.append(payload)
            index += length
        }
        // "# service=git-upload-pack", flush, refs…, flush.
        guard lines.count >= 3, lines[0] == Array("# service=git-upload-pack".utf8), lines[1] == nil, lines.last! == nil else { return nil }
        var out = pkt(Array("# service=git-receive-pack\n".utf8)) + Array("0000".utf8)
        var first = true
        for case let line? in lines.dropFirst(2) {
            let refPart = Array(line.prefix { $0 != 0 })
            let text = String(decoding: refPart, as: UTF8.self)
            let fields = text.split(separator: " ", maxSplits: 1)
            guard fields.count == 2, fields[0].count == 40, fields[0].allSatisfy(\.isHexDigit) else { return nil }
            if fields[1].hasSuffix("^{}") && fields[1] != "capabilities^{}" { continue }
            var payload = refPart
            if first {
                payload += [0] + Array(receivePackCapabilities.utf8)
                first = false
            }
            out += pkt(payload + [0x0A])
        }
        return out + Array("0000".utf8)
    }

    /// A pkt-line: four hex digits of length, then the payload.
    static func pkt(_ payload: [UInt8]) -> [UInt8] {
        let length = String(payload.count + 4, radix: 16)
        return Array((String(repeating: "0", count: 4 - length.count) + length).utf8) + payload
    }

    /// What git hears back for a proposed push: unpacked, each ref rejected with the reason
    /// (`! [remote rejected] main -> main (Airlock: Proposal … is pending …)`), over the side
    /// band when the client asked for one.
    static func pendingReport(_ push: GitReceivePack, message: String) -> [UInt8] {
        var report = pkt(Array("unpack ok\n".utf8))
        for update in push.updates { report += pkt(Array("ng \(update.ref) \(message)\n".utf8)) }
        report += Array("0000".utf8)
        guard push.capabilities.contains("side-band-64k") || push.capabilities.contains("side-band") else { return report }
        let limit = push.capabilities.contains("side-band-64k") ? 65515 : 995
        var out = pkt([2] + Array("\(message)\n".utf8))
        var offset = 0
        while offset < report.count {
            let end = min(report.count, offset + limit)
            out += pkt([1] + Array(report[offset..<end]))
            offset = end
        }
        return out + Array("0000".utf8)
    }

    /// The report-status of a receive-pack result (side band removed): whether every ref
    /// was accepted, and the report as text.
    static func readReport(_ bytes: [UInt8]) -> (accepted: Bool, text: String) {
        func lines(_ bytes: [UInt8]) -> [[UInt8]] {
            var out: [[UInt8]] = []
            var index = 0
            while index + 4 <= bytes.count, let length = Int(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16) {
                if length == 0 { index += 4; continue }
                guard length >= 4, index + length <= bytes.count else { break }
                out.append(Array(bytes[index + 4..<index + length]))
                index += length
            }
            return out
        }
        var report: [UInt8] = []
        var progress = ""
        var banded = false
        for line in lines(bytes) {
            if line.first == 1 { banded = true; report += line.dropFirst() }
            else if line.first == 2 || line.first == 3 { banded = true; progress += String(decoding: line.dropFirst(), as: UTF8.self) }
            else if !banded { report += pkt(line) }
        }
        let statuses = lines(report).map { String(decoding: $0, as: UTF8.self) }
        let accepted = statuses.contains("unpack ok\n") && statuses.contains { $0.hasPrefix("ok ") } && !statuses.contains { $0.hasPrefix("ng ") }
        return (accepted, statuses.joined() + (progress.isEmpty ? "" : "remote: " + progress))
    }
}
