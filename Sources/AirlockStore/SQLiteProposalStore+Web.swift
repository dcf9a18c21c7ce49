import AirlockCore
import AirlockPolicy

/// Web sessions, one-time login links and bound subjects in SQLite (a gate on SQLite;
/// docs/web.md). Each change commits with its audit entry, where it has one.
extension SQLiteProposalStore: WebSignInStore {
    public func addWebSession(hash: String, _ session: WebSession) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                // Ended sessions go as new ones come: the table holds live sessions only.
                try db.prepare("DELETE FROM web_sessions WHERE expires_ms < ?").run([.integer(Clock.epochMilliseconds())])
                try db.prepare("INSERT INTO web_sessions VALUES (?,?,?,?,?,?)").run([
                    .text(hash), .text(session.name), .text(session.role.rawValue), .text(session.source), .text(session.csrf),
                    .integer(session.expiresAt),
                ])
            }
        }
    }

    public func webSession(hash: String, now: Int64) throws(AirlockError) -> WebSession? {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT * FROM web_sessions WHERE hash = ? AND expires_ms > ?").rows([.text(hash), .integer(now)]).first.flatMap { row in
                guard let name = row.text("name"), let role = row.text("role").flatMap(GateWebConfig.Role.init(rawValue:)),
                      let source = row.text("source"), let csrf = row.text("csrf"), let expires = row.integer("expires_ms") else { return nil }
                return WebSession(name: name, role: role, source: source, csrf: csrf, expiresAt: expires)
            }
        }
    }

    public func removeWebSession(hash: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in try db.prepare("DELETE FROM web_sessions WHERE hash = ?").run([.text(hash)]) }
    }

    public func addLoginLink(hash: String, name: String, expiresAt: Int64, by actor: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                try db.prepare("INSERT INTO login_links VALUES (?,?,?,NULL)").run([.text(hash), .text(name), .integer(expiresAt)])
                try appendAudit(event: "login-link-issued", proposalID: nil, actor: actor, detail: WebSignInRecords.linkDetail(name: name, expiresAt: expiresAt))
            }
        }
    }

    public func loginLinkName(hash: String, now: Int64) throws(AirlockError) -> String? {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT name FROM login_links WHERE hash = ? AND used_ms IS NULL AND expires_ms > ?")
                .rows([.text(hash), .integer(now)]).first?.text("name")
        }
    }

    public func consumeLoginLink(hash: String, now: Int64) throws(AirlockError) -> String? {
        try locked { () throws(AirlockError) in
            // BEGIN IMMEDIATE: the write lock first, so two processes cannot both read it unused.
            try db.transaction { () throws(AirlockError) -> String? in
                guard let name = try db.prepare("SELECT name FROM login_links WHERE hash = ? AND used_ms IS NULL AND expires_ms > ?")
                    .rows([.text(hash), .integer(now)]).first?.text("name") else { return nil }
                try db.prepare("UPDATE login_links SET used_ms = ? WHERE hash = ?").run([.integer(now), .text(hash)])
                try appendAudit(event: "login-link-used", proposalID: nil, actor: "user:" + name, detail: .object([("name", .string(name))]))
                return name
            }
        }
    }

    public func boundName(kind: String, subject: String) throws(AirlockError) -> String? {
        try locked { () throws(AirlockError) in
            try db.prepare("SELECT name FROM identity_subjects WHERE kind = ? AND subject = ?").rows([.text(kind), .text(subject)]).first?.text("name")
        }
    }

    public func bindSubject(kind: String, subject: String, name: String, by actor: String) throws(AirlockError) {
        try locked { () throws(AirlockError) in
            try db.transaction { () throws(AirlockError) in
                if let bound = try db.prepare("SELECT subject FROM identity_subjects WHERE kind = ? AND name = ?").rows([.text(kind), .text(name)]).first?.text("subject") {
                    guard bound == subject else { throw WebSignInRecords.nameTaken(name, kind: kind) }
                    return
                }
                try db.prepare("INSERT INTO identity_subjects VALUES (?,?,?,?)").run([.text(kind), .text(subject), .text(name), .text(Clock.now())])
                try appendAudit(event: "identity-bound", proposalID: nil, actor: actor, detail: WebSignInRecords.bindDetail(kind: kind, subject: subject, name: name))
            }
        }
    }
}
