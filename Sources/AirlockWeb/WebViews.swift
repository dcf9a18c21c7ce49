import AirlockCore
import Foundation
import AirlockExecution
import AirlockPolicy
import AirlockStore

/// What each page shows, as mustache contexts (values only; WebTemplates escapes them).
/// Blocking: every function here reads the store.
enum WebViews {
    /// The live queue holds at most this many rows (the rest are counted).
    static let queueRows = 200

    static func user(_ session: WebSession) -> [String: Any] {
        ["name": session.name, "role": session.role.rawValue, "csrf": session.csrf]
    }

    /// The proposals waiting for a decision or running now, oldest first.
    static func queueTable(_ backend: any WebBackend) throws(AirlockError) -> String {
        backend.expireOverdue()
        let active = try backend.store.proposals(states: [.pending, .approved, .executing], session: nil)
            .sorted { $0.createdAt < $1.createdAt }
        var rows: [[String: Any]] = []
        for proposal in active.prefix(queueRows) {
            var row: [String: Any] = ["id": proposal.id, "summary": proposal.summary, "state": proposal.state.rawValue,
                                      "session": proposal.sessionID, "created": shortTime(proposal.createdAt)]
            if proposal.state == .pending, let status = try? Approval.status(of: proposal.id, in: backend.store, place: backend.place) {
                let needed = max(1, status.requirement.approvals)
                row["approvals"] = "\(needed - status.more) of \(needed)"
            } else {
                row["approvals"] = ""
            }
            let labels = (try? backend.store.previewRecord(proposal.id))?["labels"]?.array?.compactMap { $0["label"]?.string } ?? []
            row["labels"] = labels
            rows.append(row)
        }
        var context: [String: Any] = ["rows": rows, "generation": String(backend.changes.generation)]
        if active.count > queueRows { context["more"] = active.count - queueRows }
        return WebTemplates.render("queueTable", context)
    }

    static func queue(_ backend: any WebBackend, _ session: WebSession) throws(AirlockError) -> String {
        let frozen = try backend.store.control(GateControl.freeze)
        var context: [String: Any] = ["table": try queueTable(backend), "csrf": session.csrf]
        if let frozen { context["frozen"] = ["reason": frozen.reason ?? ""] }
        if session.role == .admin, backend.place == .gate {
            context["admin"] = true
            context["freezeAction"] = frozen == nil ? "freeze" : "thaw"
            context["freezeLabel"] = frozen == nil ? "Freeze: no execution starts anywhere" : "Thaw"
        }
        return WebTemplates.render("queue", context)
    }

    static func proposal(_ backend: any WebBackend, _ session: WebSession, _ proposal: Proposal, flash: String?,
                         error: String? = nil) throws(AirlockError) -> String {
        var context: [String: Any] = ["id": proposal.id, "summary": proposal.summary, "state": proposal.state.rawValue,
                                      "digest": proposal.digest, "csrf": session.csrf, "session": proposal.sessionID,
                                      "rule": proposal.rule, "created": shortTime(proposal.createdAt)]
        if let flash { context["flash"] = flash }
        if let error { context["error"] = error }
        if let decidedBy = proposal.decidedBy { context["decidedBy"] = decidedBy }
        if let note = proposal.decisionNote, !note.isEmpty { context["note"] = note }
        if let session = try backend.store.session(id: proposal.sessionID) {
            context["host"] = session.user
            context["workspace"] = session.workspace
            if let launcher = session.launcher { context["launcher"] = launcher }
        }
        // What the rules ask and who has approved so far (docs/policy.md).
        let status = try Approval.status(of: proposal.id, in: backend.store, place: backend.place)
        let needed = max(1, status.requirement.approvals)
        var rules = status.requirement.summary
        if proposal.state == .pending {
            rules += "; \(needed - status.more) of \(needed) approved, \(status.more) more needed"
            if let proposed = Clock.epochMilliseconds(parsing: proposal.createdAt), status.requirement.expiresAfter.isFinite {
                let ends = proposed + Int64(status.requirement.expiresAfter * 1000)
                context["expires"] = shortTime(Clock.format(seconds: Int(ends / 1000), milliseconds: Int(ends % 1000)))
            }
        }
        context["rules"] = rules
        context["approvers"] = status.counted
        // One person counts once: who has approved is not asked again.
        let approvedAlready = status.counted.contains(backend.actor(session))
        context["canDecide"] = proposal.state == .pending && session.role.mayDecide && !approvedAlready
        if proposal.state == .pending && approvedAlready {
            context["waiting"] = "You approved this; it waits for \(status.more) more distinct approver\(status.more == 1 ? "" : "s")."
        }
        // The preview: risk labels, a plan or diff, and the whole record.
        let preview = try backend.store.preview(of: proposal)
        context["previewDigest"] = previewDigest(preview)
        if let preview {
            let labels = preview["labels"]?.array?.map { ["label": $0["label"]?.string ?? "", "reason": $0["reason"]?.string ?? ""] } ?? []
            context["labels"] = labels
            context["hasLabels"] = !labels.isEmpty
            for key in ["plan", "diff", "output"] {
                if let text = preview[key]?.string { context["plan"] = text; break }
            }
            context["previewText"] = preview.pretty()
        }
        let request = request(proposal.payload)
        context["request"] = request.text
        if !request.decoded.isEmpty { context["decoded"] = request.decoded }
        if let result = proposal.result {
            var text = result.httpStatus.map { "HTTP \($0)\n" } ?? ""
            if let code = result.exitCode { text += "exit \(code)\n" }
            if let error = result.error { text += error + "\n" }
            text += String(decoding: result.output.prefix(64 << 10), as: UTF8.self)
            context["result"] = text
        }
        // The change set: a burst of like uploads decided together (docs/previews.md).
        if proposal.state == .pending, proposal.kind == .api {
            let pending = try backend.store.proposals(states: [.pending], session: proposal.sessionID)
            if let group = ProposalGroups.groups(ProposalGroups.candidates(pending)).first(where: { $0.members.contains { $0.id == proposal.id } }) {
                context["group"] = "\(group.id): \(group.key), \(group.members.count) changes"
            }
        }
        context["trail"] = try backend.store.auditEntries().filter { $0.proposalID == proposal.id }.map(entry)
        return WebTemplates.render("proposal", context)
    }

    /// The audit log, newest first, filtered by proposal, actor and event (each a substring).
    static func audit(_ backend: any WebBackend, proposal: String, actor: String, event: String) throws(AirlockError) -> String {
        let all = try backend.store.auditEntries()
        let matching = all.filter {
            (proposal.isEmpty || ($0.proposalID ?? "").contains(proposal)) && (actor.isEmpty || $0.actor.contains(actor))
                && (event.isEmpty || $0.event.contains(event))
        }
        let shown = matching.suffix(500).reversed().map(entry)
        var context: [String: Any] = ["proposal": proposal, "actor": actor, "event": event, "entries": Array(shown),
                                      "shown": shown.count, "matching": matching.count]
        if let head = all.last { context["head"] = ["seq": head.seq, "hash": String(head.hash.prefix(16))] }
        return WebTemplates.render("audit", context)
    }

    /// What the decision form carries of the preview it showed: its SHA-256, or "none".
    static func previewDigest(_ preview: JSON?) -> String {
        preview.map { SigV4.hexSHA256(Array($0.serialized().utf8)) } ?? "none"
    }

    static func entry(_ entry: AuditEntry) -> [String: Any] {
        var row: [String: Any] = ["seq": entry.seq, "at": shortTime(entry.at), "event": entry.event, "actor": entry.actor,
                                  "detail": entry.detail.count > 600 ? String(entry.detail.prefix(600)) + "…" : entry.detail]
        if let id = entry.proposalID { row["proposalID"] = id }
        return row
    }

    /// "2026-12-06T22:31:05.123Z" → "2026-12-06 22:31:05Z".
    static func shortTime(_ text: String) -> String {
        guard text.count >= 19 else { return text }
        return text.prefix(10) + " " + text.dropFirst(11).prefix(8) + "Z"
    }

    /// The pinned request as it will be sent: an HTTP request's line, headers and body
    /// (bodies decoded from base64 when they are text), with every other field of the payload
    /// (which cluster context, which signing name) on the first lines; anything else as
    /// indented JSON. And, apart (`decoded`), what a person reads more easily: form parameters
    /// and a percent-encoded path decoded, each on one line (a newline in a value is shown
    /// as an escape, so a value cannot forge a line of its own).
    static func request(_ payload: [UInt8]) -> (text: String, decoded: String) {
        guard let json = try? JSON.parseStrict(bytes: payload), case .object(let fields) = json else {
            return (String(decoding: payload.prefix(256 << 10), as: UTF8.self), "")
        }
        func text(_ base64: String?) -> String {
            guard let base64, let bytes = Base64.decode(base64) else { return "" }
            if let decoded = String(validating: bytes, as: UTF8.self) { return decoded.count > 256 << 10 ? String(decoded.prefix(256 << 10)) + "\n…" : decoded }
            return "(\(bytes.count) bytes, not text)"
        }
        guard let method = json["method"]?.string, let path = json["path"]?.string else {
            // Other payloads (commands, pushes, multipart uploads): every field, base64 decoded.
            return (JSON.object(fields.map { key, value in
                key.hasSuffix("_base64") ? (String(key.dropLast(7)), JSON.string(text(value.string))) : (key, value)
            }).pretty(), "")
        }
        var out = ""
        let shown: Set<String> = ["method", "path", "query", "headers", "body_base64"]
        for (key, value) in fields where !shown.contains(key) {
            out += "# \(key): " + HTMLText.oneLine(value.string ?? value.serialized()) + "\n"
        }
        let query = json["query"]?.string ?? ""
        out += "\(method) \(path)\(query.isEmpty ? "" : "?" + query)\n"
        for header in json["headers"]?.array ?? [] {
            if let pair = header.array, pair.count == 2 { out += "\(pair[0].string ?? ""): \(HTMLText.oneLine(pair[1].string ?? ""))\n" }
            else if let name = header["name"]?.string { out += "\(name): \(HTMLText.oneLine(header["value"]?.string ?? ""))\n" }
        }
        let body = text(json["body_base64"]?.string)
        if !body.isEmpty { out += "\n" + body }
        var decoded = ""
        if path.contains("%") { decoded += "path: \(HTMLText.oneLine(PercentEncoding.decode(path)))\n" }
        let form = (json["headers"]?.array ?? []).contains { ($0.array?.last?.string ?? "").lowercased().hasPrefix("application/x-www-form-urlencoded") }
        if form, !body.isEmpty {
            for pair in body.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                decoded += "\(HTMLText.oneLine(PercentEncoding.decode(String(parts[0]), plusIsSpace: true))) = "
                    + "\(parts.count > 1 ? HTMLText.oneLine(PercentEncoding.decode(String(parts[1]), plusIsSpace: true)) : "")\n"
            }
        }
        return (out, decoded)
    }
}
