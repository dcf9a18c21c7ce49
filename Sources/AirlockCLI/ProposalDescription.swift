import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockStore

/// A proposal's pinned payload in a form a person can check before approving: the
/// operation, its parameters decoded (form fields, JSON, or method/path/query/body).
enum ProposalDescription {
    /// `preview`: the proposal's preview record (ProposalStore.preview(of:)).
    static func text(_ proposal: Proposal, session: Session?, manifest: SnapshotManifest? = nil, preview: JSON? = nil,
                     related: [Proposal] = [], rules: String? = nil) -> String {
        var lines = ["proposal \(proposal.id)  \(proposal.state.rawValue)"]
        lines.append("  summary:   \(proposal.summary)")
        lines.append("  gated:     \(proposal.decision.rawValue): \(proposal.rule)")
        if let session {
            lines.append("  session:   \(session.id), started \(age(session.startedAt)) by \(session.user) in \(session.workspace)")
        }
        lines.append("  created:   \(age(proposal.createdAt))")
        lines.append("  upstream:  \(proposal.upstream) (approval sends it there and nowhere else)")
        lines.append("  digest:    sha256:\(proposal.digest)")
        if let rules { lines.append("  rules:     \(rules)") }
        if let decidedBy = proposal.decidedBy {
            lines.append("  decided:   by \(decidedBy)\(proposal.decisionNote.map { ": \($0)" } ?? "")")
        }
        for (index, other) in related.enumerated() {
            lines.append((index == 0 ? "  RECREATE:  " : "             ")
                         + "with proposal \(other.id) (\(other.summary), \(other.state.rawValue)): together they delete this resource and create it again")
        }
        lines += requestLines(proposal, manifest: manifest, preview: preview)
        if let result = proposal.result {
            lines.append("  result:")
            lines.append(resultText(result))
        }
        return lines.joined(separator: "\n")
    }

    static func requestLines(_ proposal: Proposal, manifest: SnapshotManifest?, preview: JSON?) -> [String] {
        let payload: ProposalPayload
        do { payload = try ProposalPayload(bytes: proposal.payload) } catch {
            return ["  request:   (a payload this Airlock cannot read: \(error.description))",
                    "    " + String(decoding: proposal.payload.prefix(2000), as: UTF8.self)]
        }
        switch payload {
        case .aws(let pinned):
            return effectLines(preview)
                + ["  request:   \(pinned.method) \(pinned.path)\(pinned.query.isEmpty ? "" : "?" + pinned.query)  (\(pinned.service), \(pinned.region))"]
                + parameterLines(pinned).map { "    " + $0 }
        case .command(let command):
            return commandLines(command, manifest: manifest, preview: preview)
        case .kubernetes(let pinned):
            return kubernetesLines(pinned, preview: preview)
        case .github(let pinned):
            var lines = ["  request:   \(pinned.method) https://\(pinned.host)\(pinned.path)\(pinned.query.isEmpty ? "" : "?" + pinned.query)"]
            for header in pinned.headers { lines.append("    \(header.name): \(header.value)") }
            if !pinned.body.isEmpty {
                lines.append("    body (\(pinned.body.count) bytes):")
                // A GraphQL request shows its document as written, then its variables.
                let parsed = try? JSON.parse(bytes: pinned.body)
                if let query = parsed?["query"]?.string {
                    lines += query.split(separator: "\n", omittingEmptySubsequences: false).map { "      " + $0 }
                    if let variables = parsed?["variables"], variables != .null { lines.append("      variables: " + variables.serialized()) }
                } else {
                    let text = parsed.map { $0.pretty() } ?? String(decoding: pinned.body.prefix(16384), as: UTF8.self)
                    lines += text.split(separator: "\n", omittingEmptySubsequences: false).map { "      " + $0 }
                }
            }
            return lines
        case .gitPush(let push):
            var lines = ["  request:   git push to https://\(push.host)\(push.repository) (the pinned receive-pack request, replayed as is)"]
            for update in push.updates {
                lines.append("    \(update.ref): \(update.old) → \(update.new)")
                if let label = preview?["labels"]?[update.ref]?.string { lines.append("      \(label)") }
            }
            for note in preview?["notes"]?.stringArray ?? [] { lines.append("  note:      \(note)") }
            lines.append("  commits:   (git log and diffstat of what the push publishes)")
            lines += (preview?["log"]?.string ?? "").split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }
            return lines
        case .s3Multipart(let upload):
            var lines = ["  request:   multipart upload to s3://\(upload.bucket)/\(upload.key) (\(upload.size) bytes)"]
            for part in upload.parts {
                lines.append("    part \(part.number): \(part.size) bytes, sha256:\(part.blobSHA256)")
            }
            for header in upload.create.headers where header.name.lowercased().hasPrefix("x-amz-") || header.name.lowercased() == "content-type" {
                lines.append("    \(header.name): \(header.value)")
            }
            return lines
        }
    }

    /// A Kubernetes request: what approval sends, its body in full, and the server's own dry
    /// run of it as a diff against the live object.
    /// The session's other AWS proposals that, with this one, delete a resource and create it
    /// again (ChangeSets, docs/previews.md).
    static func related(_ proposal: Proposal, among sessionProposals: [Proposal]) -> [Proposal] {
        func member(_ candidate: Proposal) -> ChangeSets.Member? {
            guard candidate.kind == .api, case .aws(let pinned)? = try? ProposalPayload(bytes: candidate.payload), let operation = pinned.operation else { return nil }
            return ChangeSets.Member(id: candidate.id, service: pinned.service, operation: operation,
                                     parameters: AWSPreviews.parameters(pinned, wire: nil))
        }
        guard let mine = member(proposal) else { return [] }
        let members = sessionProposals.compactMap(member)
        let ids = Set(ChangeSets.recreates(mine, among: members).map(\.id))
        return sessionProposals.filter { ids.contains($0.id) }
    }

    /// An AWS proposal's effect preview (docs/previews.md): the risk labels first, in words,
    /// then each resource the change touches and what it holds, then the preview's notes.
    static func effectLines(_ preview: JSON?) -> [String] {
        guard let preview, preview["type"]?.string == "aws-effect" else { return [] }
        var lines: [String] = []
        for (index, change) in (preview["drift"]?.stringArray ?? []).enumerated() {
            lines.append((index == 0 ? "  DRIFT:     changed since the preview an approval was refused on: " : "             ") + change)
        }
        let labels = preview["labels"]?.array ?? []
        if labels.isEmpty {
            lines.append("  risk:      none of the labels applies")
        } else {
            for (index, risk) in labels.enumerated() {
                lines.append((index == 0 ? "  risk:      " : "             ") + "\(risk["label"]?.string ?? "?"): \(risk["reason"]?.string ?? "")")
            }
        }
        let resources = (preview["resources"]?.array ?? []).compactMap(PreviewResource.init(json:))
        if !resources.isEmpty { lines.append("  effect:    \(resources.count) resource\(resources.count == 1 ? "" : "s") (read with your credentials when proposed)") }
        for resource in resources {
            var line = "    \(resource.type)  \(resource.name.map { "\($0)  " } ?? "")\(resource.name == resource.id ? "" : resource.id)"
            var holds: [String] = []
            if let objects = resource.objects { holds.append("\(objects) object\(objects == 1 ? "" : "s")") }
            if let bytes = resource.bytes, bytes > 0 || resource.objects != nil { holds.append(ByteSize.human(bytes)) }
            if let messages = resource.messages { holds.append("~\(messages) message\(messages == 1 ? "" : "s")") }
            if let items = resource.items { holds.append("~\(items) item\(items == 1 ? "" : "s")") }
            if !holds.isEmpty { line += "  holds " + holds.joined(separator: ", ") }
            if resource.retained { line += "  (kept)" }
            if resource.versioned { line += "  (versioned)" }
            lines.append(line)
            let details = resource.details.map { "\($0.key) \($0.value)" } + (resource.tags.isEmpty ? [] : ["tags " + resource.tags.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")])
            if !details.isEmpty { lines.append("      " + details.joined(separator: "; ")) }
        }
        for note in preview["notes"]?.stringArray ?? [] { lines.append("  preview:   \(note)") }
        if let diff = preview["diff"]?.string {
            lines.append("  preview:   the document against the current one:")
            lines += diff.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }
        }
        return lines
    }

    static func kubernetesLines(_ pinned: KubernetesPinnedRequest, preview: JSON?) -> [String] {
        var lines = ["  request:   \(pinned.method) \(pinned.path)\(pinned.query.isEmpty ? "" : "?" + pinned.query)  (context \(pinned.context), \(pinned.server))"]
        for header in pinned.headers { lines.append("    \(header.name): \(header.value)") }
        if !pinned.body.isEmpty {
            lines.append("    body (\(pinned.body.count) bytes):")
            let text = (try? JSON.parse(bytes: pinned.body)).map { $0.pretty() } ?? String(decoding: pinned.body.prefix(16384), as: UTF8.self)
            lines += text.split(separator: "\n", omittingEmptySubsequences: false).map { "      " + $0 }
        }
        guard let preview else { return lines }
        for (index, change) in (preview["drift"]?.stringArray ?? []).enumerated() {
            lines.append((index == 0 ? "  DRIFT:     changed since the preview an approval was refused on: " : "             ") + change)
        }
        if let note = preview["note"]?.string { lines.append("  preview:   \(note)") }
        if let status = preview["dry_run_status"]?.int {
            lines.append("  preview:   the API server's dry run of this request (dryRun=All): HTTP \(status)")
        }
        if let answer = preview["dry_run_answer"]?.string {
            lines += answer.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }
        }
        if let diff = preview["diff"]?.string {
            lines.append(diff.isEmpty ? "    (no change to the live object)" : "    diff, live object → after approval:")
            lines += diff.split(separator: "\n", omittingEmptySubsequences: true).map { "    " + $0 }
        }
        return lines
    }

    /// A command proposal: what the agent ran, what approval runs, the snapshot it runs on,
    /// the providers, and the preview (terraform's plan) in full.
    static func commandLines(_ payload: CommandPayload, manifest: SnapshotManifest? = nil, preview: JSON?) -> [String] {
        let tool = payload.tool
        var lines = ["  command:   \(payload.command.joined(separator: " "))   (in \(payload.directory))"]
        lines.append("  runs:      \(tool) \(payload.apply.joined(separator: " "))   (in an execution sandbox on the snapshot, \(payload.binary))")
        lines.append("  snapshot:  \(payload.snapshotFiles) files, \(ByteSize.human(payload.snapshotBytes)), sha256:\(payload.snapshotDigest)")
        lines.append("             of \(payload.workspace) when proposed; the approved run reads only this copy (any change to it refuses the run)")
        if let plan = payload.pins["plan"] {
            lines.append("  plan:      sha256:\(plan)")
        }
        for provider in payload.providers ?? [] {
            let hash = provider.hashes.first { $0.hasPrefix("h1:") } ?? provider.hashes.first ?? "no hash"
            lines.append("  provider:  \(provider.address) \(provider.version) (\(hash))")
        }
        for output in payload.outputs {
            lines.append("  writes:    \(output.path) (kept with the result; copied into the workspace if unchanged there)")
        }
        for note in payload.notes { lines.append("  note:      \(note)") }
        if let text = preview?["preview"]?.string {
            lines.append(tool == "terraform" ? "  preview:   (\(tool) show of the pinned plan)"
                : tool == "kubectl" ? "  preview:   (kubectl diff of the snapshot's files: the API server's dry run against the live objects)"
                : "  preview:   (what \(tool) said it would do, dry run on the snapshot)")
            lines += text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }
        } else {
            lines.append("  preview:   the command above, on the snapshot")
        }
        if case .object(let files)? = preview?["files"] {
            for (name, text) in files {
                lines.append("  file \(name):")
                lines += (text.string ?? "").split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }
            }
        }
        if let manifest {
            let listed = manifest.entries.filter { if case .directory = $0.kind { return false } else { return true } }
            lines.append("  snapshot files: (`airlock show ID --file PATH` prints one)")
            for entry in listed.prefix(200) {
                switch entry.kind {
                case .file(let size, _, let executable): lines.append("    \(entry.path)  \(ByteSize.human(size))\(executable ? ", executable" : "")")
                case .symlink(let target): lines.append("    \(entry.path) -> \(target)  (symlink, not followed)")
                case .directory: break
                }
            }
            if listed.count > 200 { lines.append("    … \(listed.count - 200) more (--json lists all)") }
        }
        return lines
    }

    /// Form fields one per line; JSON bodies pretty-printed; other bodies as text if short.
    static func parameterLines(_ pinned: PinnedRequest) -> [String] {
        var lines: [String] = []
        let contentType = pinned.header("content-type")?.lowercased() ?? ""
        for item in AWSRequest.parseForm(pinned.query) { lines.append("\(item.key) = \(item.value ?? "")") }
        if let target = pinned.header("x-amz-target") { lines.append("X-Amz-Target: \(target)") }
        for header in pinned.headers where header.name.lowercased().hasPrefix("x-amz-")
            && !["x-amz-target", "x-amz-content-sha256", "x-amz-user-agent"].contains(header.name.lowercased()) {
            lines.append("\(header.name): \(header.value)")
        }
        guard !pinned.body.isEmpty else { return lines }
        if contentType.hasPrefix("application/x-www-form-urlencoded") {
            for item in AWSRequest.parseForm(String(decoding: pinned.body, as: UTF8.self)) where item.key != "Version" {
                lines.append("\(item.key) = \(item.value ?? "")")
            }
        } else if let json = try? JSON.parse(bytes: pinned.body) {
            lines += pretty(json).split(separator: "\n").map(String.init)
        } else if pinned.body.count <= 4096, let text = String(validatingUTF8: pinned.body) {
            lines += text.split(separator: "\n").map(String.init)
        } else {
            lines.append("body: \(pinned.body.count) bytes, sha256:\(SigV4.hexSHA256(pinned.body))")
        }
        return lines
    }

    static func json(_ proposal: Proposal) -> JSON {
        guard let payload = try? JSON.parse(bytes: proposal.payload) else { return .null }
        guard let pinned = PinnedRequest(json: payload) else { return payload }
        // (An AWS request, decoded; other kinds as pinned.)
        var fields: [(String, JSON)] = [
            ("service", .string(pinned.service)), ("operation", pinned.operation.map(JSON.string) ?? .null),
            ("region", .string(pinned.region)), ("method", .string(pinned.method)), ("path", .string(pinned.path)),
            ("query", .string(pinned.query)), ("parameters", .array(parameterLines(pinned).map(JSON.string))),
            ("body_bytes", .number(Double(pinned.body.count))),
        ]
        if let json = try? JSON.parse(bytes: pinned.body) { fields.append(("body", json)) }
        return .object(fields)
    }

    static func resultText(_ result: ExecutionResult) -> String {
        var lines: [String] = []
        if let status = result.httpStatus { lines.append("  HTTP \(status)") }
        if let code = result.exitCode { lines.append("  exit \(code)") }
        if let error = result.error { lines.append("  error: \(error)") }
        for output in result.outputs {
            lines.append("  wrote \(output.path) (\(ByteSize.human(output.size)), sha256:\(output.sha256)): \(output.copiedToWorkspace ? "copied into the workspace; also" : "NOT copied into the workspace;") kept at \(output.savedAt)")
        }
        if !result.output.isEmpty {
            let text = String(decoding: result.output.prefix(16_384), as: UTF8.self)
            lines += text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }
            if result.output.count > 16_384 || result.truncated { lines.append("  … (\(result.output.count) bytes; --json prints all)") }
        }
        return lines.joined(separator: "\n")
    }

    /// JSON indented two spaces, keys in their order.
    static func pretty(_ json: JSON, indent: String = "") -> String {
        let inner = indent + "  "
        switch json {
        case .array(let items) where !items.isEmpty:
            return "[\n" + items.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let pairs) where !pairs.isEmpty:
            return "{\n" + pairs.map { inner + JSON.quote($0.0) + ": " + pretty($0.1, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        default:
            return json.serialized()
        }
    }
}

extension String {
    init?(validatingUTF8 bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        self = text
    }
}
