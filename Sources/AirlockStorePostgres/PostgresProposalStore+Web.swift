import AirlockCore
import AirlockPolicy
import AirlockStore
import PostgresNIO

/// Web sessions, one-time login links and bound subjects on PostgreSQL (migration 11;
/// docs/web.md): every replica signs in the same people.
extension PostgresProposalStore: WebSignInStore {
    public func addWebSession(hash: String, _ session: WebSession) throws(AirlockError) {
        // No audit entry, so not under the chain's lock: sign-ins never wait on proposals.
        try locked { () throws(AirlockError) in
            // Ended sessions go as new ones come: the table holds live sessions only.
            try run("DELETE FROM web_sessions WHERE expires_ms < $1", [.integer(Clock.epochMilliseconds())])
            try run("INSERT INTO web_sessions VALUES ($1,$2,$3,$4,$5,$6)", [
                .text(hash), .text(session.name), .text(session.role.rawValue), .text(session.source), .text(session.csrf),
                .integer(session.expiresAt),
            ])
        }
    }

    public func webSession(hash: String, now: Int64) throws(AirlockError) -> WebSession? {
        try locked { () throws(AirlockError) in
            guard let row = try run("SELECT * FROM web_sessions WHERE hash = $1 AND expires_ms > $2", [.text(hash), .integer(now)]).rows.first else {
                return nil
            }
            let r = row.makeRandomAccess()
            guard let role = GateWebConfig.Role(rawValue: try text(r, "role")) else { return nil }
            return WebSession(name: try text(r, "name"), role: role, source: try text(r, "source"), csrf: try text(r, "csrf"),
                              expiresAt: try decode(r, "expires_ms", Int64.self))
        }
    }

    public func removeWebSession(hash: String) throws(AirlockError) {
        _ = try locked { () throws(AirlockError) in try run("DELETE FROM web_sessions WHERE hash = $1", [.text(hash)]) }
    }

    public func addLoginLink(hash: String, name: String, expiresAt: Int64, by actor: String) throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            try run("INSERT INTO login_links VALUES ($1,$2,$3,NULL)", [.text(hash), .text(name), .integer(expiresAt)])
            try appendAudit(event: "login-link-issued", proposalID: nil, actor: actor, detail: WebSignInRecords.linkDetail(name: name, expiresAt: expiresAt))
        }
    }

    public func loginLinkName(hash: String, now: Int64) throws(AirlockError) -> String? {
        try locked { () throws(AirlockError) in
            try run("SELECT name FROM login_links WHERE hash = $1 AND used_ms IS NULL AND expires_ms > $2", [.text(hash), .integer(now)])
                .rows.first.flatMap { try? $0.decode(String.self) }
        }
    }

    public func consumeLoginLink(hash: String, now: Int64) throws(AirlockError) -> String? {
        // A made-up token is answered without the chain's lock (anyone may post one).
        guard try loginLinkName(hash: hash, now: now) != nil else { return nil }
        return try transaction { () throws(AirlockError) -> String? in
            // One UPDATE … RETURNING: of two replicas racing for one link, one row changes.
            guard let name = try run("UPDATE login_links SET used_ms = $1 WHERE hash = $2 AND used_ms IS NULL AND expires_ms > $1 RETURNING name",
                                     [.integer(now), .text(hash)]).rows.first.flatMap({ try? $0.decode(String.self) }) else { return nil }
            try appendAudit(event: "login-link-used", proposalID: nil, actor: "user:" + name, detail: .object([("name", .string(name))]))
            return name
        }
    }

    public func boundName(kind: String, subject: String) throws(AirlockError) -> String? {
        try locked { () throws(AirlockError) in
            try run("SELECT name FROM identity_subjects WHERE kind = $1 AND subject = $2", [.text(kind), .text(subject)])
                .rows.first.flatMap { try? $0.decode(String.self) }
        }
    }

    public func bindSubject(kind: String, subject: String, name: String, by actor: String) throws(AirlockError) {
        try transaction { () throws(AirlockError) in
            if let bound = try run("SELECT subject FROM identity_subjects WHERE kind = $1 AND name = $2 FOR UPDATE", [.text(kind), .text(name)])
                .rows.first.flatMap({ try? $0.decode(String.self) }) {
                guard bound == subject else { throw WebSignInRecords.nameTaken(name, kind: kind) }
                return
            }
            try run("INSERT INTO identity_subjects VALUES ($1,$2,$3,$4)", [.text(kind), .text(subject), .text(name), .text(Clock.now())])
            try appendAudit(event: "identity-bound", proposalID: nil, actor: actor, detail: WebSignInRecords.bindDetail(kind: kind, subject: subject, name: name))
        }
    }
}
