import AirlockCore
import AirlockPolicy
import Crypto

/// A signed checkpoint of the audit chain's head (docs/gate.md, "Signed audit checkpoints"):
/// the gate signs `(seq, hash)` of the newest entry with an Ed25519 key kept outside the
/// database at every decision. Whoever can write the database can rewrite the chain and
/// re-hash it, or delete its tail; they cannot sign. A checkpoint kept elsewhere (an export)
/// then proves what the chain held.
public struct AuditCheckpoint: Sendable, Equatable {
    public var seq: Int
    public var headHash: String
    public var at: String
    /// The first 16 hex digits of SHA-256 of the raw public key.
    public var keyID: String
    /// Base64 of the 64-byte Ed25519 signature of `message`.
    public var signature: String

    public init(seq: Int, headHash: String, at: String, keyID: String, signature: String) {
        self.seq = seq
        self.headHash = headHash
        self.at = at
        self.keyID = keyID
        self.signature = signature
    }

    /// What is signed: a domain-separated, unambiguous text.
    public static func message(seq: Int, headHash: String) -> [UInt8] {
        Array("airlock-audit-checkpoint/v1\n\(seq)\n\(headHash)".utf8)
    }

    public var json: JSON {
        .object([("seq", .number(Double(seq))), ("head_hash", .string(headHash)), ("at", .string(at)),
                 ("key_id", .string(keyID)), ("signature", .string(signature))])
    }

    public init?(json: JSON) {
        guard let seq = json["seq"]?.int, let head = json["head_hash"]?.string, let at = json["at"]?.string,
              let key = json["key_id"]?.string, let signature = json["signature"]?.string else { return nil }
        self.init(seq: Int(seq), headHash: head, at: at, keyID: key, signature: signature)
    }
}

/// The gate's signing key and the verifier's checks.
public struct AuditSigner: Sendable {
    let key: Curve25519.Signing.PrivateKey
    public var publicKey: [UInt8] { Array(key.publicKey.rawRepresentation) }
    public var keyID: String { Self.keyID(publicKey) }

    /// PKCS#8 DER of an Ed25519 private key is this prefix and the 32 raw bytes (RFC 8410),
    /// what `openssl genpkey -algorithm ed25519` writes.
    static let pkcs8Prefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]

    public init(pem: String, source: String) throws(AirlockError) {
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        guard pem.contains("-----BEGIN PRIVATE KEY-----"), let der = Base64.decode(body), der.count == 48,
              Array(der.prefix(16)) == Self.pkcs8Prefix,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32)) else {
            throw AirlockError("\(source) is not an Ed25519 private key in PEM (PKCS#8)",
                               hint: "make one with `airlock gate audit-key new FILE` or `openssl genpkey -algorithm ed25519 -out FILE`")
        }
        self.key = key
    }

    public init() { key = Curve25519.Signing.PrivateKey() }

    public var pem: String {
        "-----BEGIN PRIVATE KEY-----\n" + Base64.encode(Self.pkcs8Prefix + Array(key.rawRepresentation)) + "\n-----END PRIVATE KEY-----\n"
    }

    public static func keyID(_ publicKey: [UInt8]) -> String { String(SigV4.hexSHA256(publicKey).prefix(16)) }

    public func sign(seq: Int, headHash: String) -> AuditCheckpoint {
        let signature = (try? key.signature(for: AuditCheckpoint.message(seq: seq, headHash: headHash))).map { Array($0) } ?? []
        return AuditCheckpoint(seq: seq, headHash: headHash, at: Clock.now(), keyID: keyID, signature: Base64.encode(signature))
    }

    /// Whether `checkpoint` carries a valid signature by `publicKey` (raw, 32 bytes).
    public static func isSigned(_ checkpoint: AuditCheckpoint, publicKey: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey),
              let signature = Base64.decode(checkpoint.signature) else { return false }
        return key.isValidSignature(signature, for: AuditCheckpoint.message(seq: checkpoint.seq, headHash: checkpoint.headHash))
    }

    /// Everything wrong with a log and its checkpoints under `publicKey` (raw, 32 bytes):
    /// the chain itself, each checkpoint's signature, and each signed head against the
    /// chain: a signed head past the chain's end means its tail was deleted. `external`:
    /// checkpoints kept elsewhere (an earlier export), held to the same chain.
    public static func verify(entries: [AuditEntry], checkpoints: [AuditCheckpoint], publicKey: [UInt8],
                              external: [AuditCheckpoint] = []) -> [String] {
        var problems = AuditChain.verifyChain(entries).problems
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else {
            return problems + ["the public key is not an Ed25519 key (32 bytes, base64)"]
        }
        let bySeq = Dictionary(entries.map { ($0.seq, $0.hash) }, uniquingKeysWith: { first, _ in first })
        let last = entries.last?.seq ?? 0
        for (checkpoint, place) in checkpoints.map({ ($0, "checkpoint") }) + external.map({ ($0, "kept checkpoint") }) {
            guard let signature = Base64.decode(checkpoint.signature),
                  key.isValidSignature(signature, for: AuditCheckpoint.message(seq: checkpoint.seq, headHash: checkpoint.headHash)) else {
                problems.append("\(place) at entry \(checkpoint.seq) is not signed by this key (\(keyID(publicKey))): forged or from another key")
                continue
            }
            if checkpoint.seq > last {
                problems.append("a signed \(place) covers entry \(checkpoint.seq) but the chain ends at \(last): its tail was deleted")
            } else if let hash = bySeq[checkpoint.seq], hash != checkpoint.headHash {
                problems.append("entry \(checkpoint.seq) differs from its signed \(place): the chain was rewritten")
            }
        }
        return problems
    }
}

/// The audit log as one JSON document (GET /v1/audit, `airlock audit export`): every entry,
/// every checkpoint and the public key, verifiable offline.
public enum AuditExport {
    public static let format = "airlock-audit-export/v1"

    public static func json(entries: [AuditEntry], checkpoints: [AuditCheckpoint], publicKey: [UInt8]?) -> JSON {
        .object([
            ("format", .string(format)),
            ("public_key", publicKey.map { .string(Base64.encode($0)) } ?? .null),
            ("key_id", publicKey.map { .string(AuditSigner.keyID($0)) } ?? .null),
            ("entries", .array(entries.map { entry in
                .object([("seq", .number(Double(entry.seq))), ("at", .string(entry.at)), ("event", .string(entry.event)),
                         ("proposal_id", entry.proposalID.map(JSON.string) ?? .null), ("actor", .string(entry.actor)),
                         ("detail", .string(entry.detail)), ("prev_hash", .string(entry.previousHash)), ("hash", .string(entry.hash))])
            })),
            ("checkpoints", .array(checkpoints.map(\.json))),
        ])
    }

    public static func read(_ json: JSON) throws(AirlockError) -> (entries: [AuditEntry], checkpoints: [AuditCheckpoint], publicKey: [UInt8]?) {
        guard json["format"]?.string == format, let entries = json["entries"]?.array, let checkpoints = json["checkpoints"]?.array else {
            throw AirlockError("not an Airlock audit export (\(format))")
        }
        var read: [AuditEntry] = []
        for entry in entries {
            guard let seq = entry["seq"]?.int, let at = entry["at"]?.string, let event = entry["event"]?.string,
                  let actor = entry["actor"]?.string, let detail = entry["detail"]?.string, let previous = entry["prev_hash"]?.string,
                  let hash = entry["hash"]?.string else { throw AirlockError("an entry of the export is incomplete") }
            read.append(AuditEntry(seq: Int(seq), at: at, event: event, proposalID: entry["proposal_id"]?.string, actor: actor,
                                   detail: detail, previousHash: previous, hash: hash))
        }
        var signed: [AuditCheckpoint] = []
        for checkpoint in checkpoints {
            guard let parsed = AuditCheckpoint(json: checkpoint) else { throw AirlockError("a checkpoint of the export is incomplete") }
            signed.append(parsed)
        }
        return (read, signed, json["public_key"]?.string.flatMap(Base64.decode))
    }
}
