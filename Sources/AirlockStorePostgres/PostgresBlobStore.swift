import AirlockCore
import AirlockStore
import Crypto
import NIOCore
import PostgresNIO

/// Blobs in the database every replica reads (docs/gate.md, "Shared state"; migration 9): a
/// part proposed through one replica is executed by another, a terraform state written by one
/// run is fetched through any. Each blob is written in 1 MiB rows of `blob_chunks` as its bytes
/// arrive (never whole in memory), under a random upload id; once whole, `blobs` names it by its
/// SHA-256. The same bytes sent twice keep the first copy (the second's rows are deleted).
/// Outside the audit chain's lock: a blob decides nothing until a proposal names it.
extension PostgresProposalStore: BlobStore {
    final class BlobUpload: BlobWriter {
        let store: PostgresProposalStore
        let owner: String
        let upload = RandomID.make(16)
        var hasher = SHA256()
        var size = 0
        var next = 0
        var buffered: [UInt8] = []
        var done = false

        init(store: PostgresProposalStore, owner: String) {
            self.store = store
            self.owner = owner
        }

        func append(_ bytes: [UInt8]) throws(AirlockError) {
            hasher.update(data: bytes)
            size += bytes.count
            buffered += bytes
            while buffered.count >= BlobChunking.chunkSize {
                let chunk = Array(buffered[..<BlobChunking.chunkSize])
                buffered.removeFirst(BlobChunking.chunkSize)
                try write(chunk)
            }
        }

        func write(_ chunk: [UInt8]) throws(AirlockError) {
            let n = next
            next += 1
            do {
                _ = try store.locked { () throws(AirlockError) in
                    try store.run("INSERT INTO blob_chunks (upload, n, bytes) VALUES ($1, $2, $3)", [.text(upload), .integer(Int64(n)), .bytes(chunk)])
                }
            } catch {
                throw AirlockError("cannot keep the blob in PostgreSQL: \(error.message)", code: .storageUnavailable)
            }
        }

        func finish() throws(AirlockError) -> (digest: String, size: Int) {
            if !buffered.isEmpty || next == 0 {
                try write(buffered)
                buffered = []
            }
            let digest = hasher.finalize().hex
            done = true
            do {
                try store.locked { () throws(AirlockError) in
                    // Held already: the first copy stays (bytes held once count once, for
                    // whoever sent them first), stored again now for the sweep; this copy's
                    // rows go.
                    let kept = try store.run("""
                        INSERT INTO blobs (digest, upload, size, owner, created_ms, stored_ms) VALUES ($1, $2, $3, $4, $5, $5)
                        ON CONFLICT (digest) DO UPDATE SET stored_ms = EXCLUDED.stored_ms RETURNING upload
                        """, [.text(digest), .text(upload), .integer(Int64(size)), .text(owner), .integer(Clock.epochMilliseconds())])
                        .rows.first.flatMap { try? $0.decode(String.self) }
                    if kept != upload {
                        try store.run("DELETE FROM blob_chunks WHERE upload = $1", [.text(upload)])
                    }
                }
            } catch {
                throw AirlockError("cannot keep the blob in PostgreSQL: \(error.message)", code: .storageUnavailable)
            }
            return (digest, size)
        }

        func abandon() {
            guard !done else { return }
            done = true
            guard next > 0 else { return }
            _ = try? store.locked { () throws(AirlockError) in try store.run("DELETE FROM blob_chunks WHERE upload = $1", [.text(upload)]) }
        }
    }

    public func makeWriter(owner: String) throws(AirlockError) -> any BlobWriter {
        BlobUpload(store: self, owner: owner)
    }

    public func blobSize(_ digest: String) throws(AirlockError) -> Int? {
        guard BlobChunking.isDigest(digest) else { return nil }
        return try locked { () throws(AirlockError) in
            try run("SELECT size FROM blobs WHERE digest = $1", [.text(digest)]).rows.first.flatMap { try? $0.decode(Int64.self) }.map { Int($0) }
        }
    }

    public func readBlob(_ digest: String, _ body: ([UInt8]) throws(AirlockError) -> Void) throws(AirlockError) -> Bool {
        guard BlobChunking.isDigest(digest) else { return false }
        guard let upload = try locked({ () throws(AirlockError) in
            try run("SELECT upload FROM blobs WHERE digest = $1", [.text(digest)]).rows.first.flatMap { try? $0.decode(String.self) }
        }) else { return false }
        // A row at a time: a provider binary of hundreds of MiB is never whole in memory.
        var n: Int64 = 0
        while true {
            let row = try locked { () throws(AirlockError) in
                try run("SELECT bytes FROM blob_chunks WHERE upload = $1 AND n = $2", [.text(upload), .integer(n)]).rows.first
            }
            guard let row, let buffer = try? row.decode(ByteBuffer.self) else { return true }
            try body(Array(buffer.readableBytesView))
            n += 1
        }
    }

    public func sweep(keeping keep: Set<String>, before: Int64) throws(AirlockError) -> (count: Int, bytes: Int) {
        try locked { () throws(AirlockError) in
            let rows = try run("""
                DELETE FROM blobs WHERE stored_ms < $1 AND NOT (digest = ANY(string_to_array($2, ','))) RETURNING upload, size
                """, [.integer(before), .text(keep.sorted().joined(separator: ","))]).rows
            var bytes = 0
            for row in rows {
                guard let (upload, size) = try? row.decode((String, Int64).self) else { continue }
                bytes += Int(size)
                try run("DELETE FROM blob_chunks WHERE upload = $1", [.text(upload)])
            }
            return (rows.count, bytes)
        }
    }

    public func bytesStored(owner: String, since: Int64) throws(AirlockError) -> Int {
        try locked { () throws(AirlockError) in
            try run("SELECT COALESCE(SUM(size), 0)::BIGINT FROM blobs WHERE owner = $1 AND created_ms >= $2", [.text(owner), .integer(since)])
                .rows.first.flatMap { try? $0.decode(Int64.self) }.map { Int($0) } ?? 0
        }
    }
}
