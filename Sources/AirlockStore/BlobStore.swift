import AirlockCore
import Crypto
import Glibc

/// Bytes an execution needs besides its payload (docs/gate.md, "Shared state"): staged S3
/// multipart parts, a command proposal's artifact (snapshot, plan, provider directory) and the
/// outputs a run wrote (terraform's new state). Content-addressed by SHA-256, so a host cannot
/// replace bytes another proposal names, and a file stored twice (a provider binary) is held once.
///
/// Where they live decides whether replicas can run each other's work: the PostgreSQL store
/// keeps them in the database every replica reads (`blobs`, `blob_chunks`); a SQLite gate (one
/// replica) and a local session in a directory (`DirectoryBlobStore`).
public protocol BlobStore: AnyObject, Sendable {
    /// Starts a blob written piece by piece (never held whole in memory); `owner` is who sent
    /// it (an agent host's actor name; "airlock" for the gate's own), counted by `bytesStored`.
    func makeWriter(owner: String) throws(AirlockError) -> any BlobWriter
    /// The blob's size, nil when it is not held.
    func blobSize(_ digest: String) throws(AirlockError) -> Int?
    /// The blob's bytes in order, piece by piece (at most `BlobChunking.chunkSize` each).
    /// False when it is not held. The caller checks the digest it needs.
    func readBlob(_ digest: String, _ body: ([UInt8]) throws(AirlockError) -> Void) throws(AirlockError) -> Bool
    /// Bytes of the blobs `owner` sent since `since` (epoch milliseconds).
    func bytesStored(owner: String, since: Int64) throws(AirlockError) -> Int
    /// Removes the blobs last stored before `before` (epoch milliseconds) that are not in
    /// `keep`; answers how many and their bytes. Storing bytes already held counts as storing
    /// them again, so a blob a new proposal names is never among the old.
    func sweep(keeping keep: Set<String>, before: Int64) throws(AirlockError) -> (count: Int, bytes: Int)
}

/// One blob being written. `finish` stores it under its SHA-256 (once: the same bytes sent
/// twice are kept once) and answers the digest and size; `abandon` drops what was written.
public protocol BlobWriter: AnyObject {
    func append(_ bytes: [UInt8]) throws(AirlockError)
    func finish() throws(AirlockError) -> (digest: String, size: Int)
    func abandon()
}

public enum BlobChunking {
    /// One row of `blob_chunks`, one read of a file: 1 MiB.
    public static let chunkSize = 1 << 20

    public static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

extension BlobStore {
    /// A whole blob in memory, checked against its digest; nil when it is not held.
    public func blob(_ digest: String, limit: Int = 1 << 30) throws(AirlockError) -> [UInt8]? {
        var bytes: [UInt8] = []
        let found = try readBlob(digest) { (piece: [UInt8]) throws(AirlockError) in
            guard bytes.count + piece.count <= limit else { throw AirlockError("blob \(digest) is larger than \(limit) bytes") }
            bytes += piece
        }
        guard found else { return nil }
        guard SHA256.hash(data: bytes).hex == digest else {
            throw AirlockError("blob \(digest) was changed since it was stored; refusing to use it")
        }
        return bytes
    }

    /// Stores `bytes` (small ones: outputs, listings); answers the digest.
    @discardableResult
    public func put(_ bytes: [UInt8], owner: String) throws(AirlockError) -> String {
        let writer = try makeWriter(owner: owner)
        do throws(AirlockError) {
            var offset = 0
            repeat {
                let end = min(bytes.count, offset + BlobChunking.chunkSize)
                try writer.append(Array(bytes[offset..<end]))
                offset = end
            } while offset < bytes.count
            return try writer.finish().digest
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// Stores a file, read a chunk at a time; answers its digest and size.
    public func putFile(_ path: String, owner: String) throws(AirlockError) -> (digest: String, size: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw AirlockError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let writer = try makeWriter(owner: owner)
        var buffer = [UInt8](repeating: 0, count: BlobChunking.chunkSize)
        do throws(AirlockError) {
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw AirlockError("cannot read \(path): \(String(cString: strerror(errno)))") }
                if n == 0 { break }
                try writer.append(Array(buffer[0..<n]))
            }
            return try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// Writes the blob into a new file at `path` (mode `mode`), checking its digest; false
    /// when it is not held (nothing is left at `path` then, nor on a mismatch).
    public func writeBlob(_ digest: String, to path: String, mode: mode_t) throws(AirlockError) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw AirlockError("cannot write \(path): \(String(cString: strerror(errno)))") }
        var hasher = SHA256()
        var closed = false
        defer { if !closed { close(fd) } }
        do throws(AirlockError) {
            let found = try readBlob(digest) { (piece: [UInt8]) throws(AirlockError) in
                hasher.update(data: piece)
                var offset = 0
                while offset < piece.count {
                    let n = piece.withUnsafeBytes { write(fd, $0.baseAddress! + offset, piece.count - offset) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw AirlockError("cannot write \(path): \(String(cString: strerror(errno)))") }
                    offset += n
                }
            }
            guard found else { unlink(path); return false }
            guard hasher.finalize().hex == digest else { throw AirlockError("blob \(digest) was changed since it was stored; refusing to use it") }
            fchmod(fd, mode)
            close(fd)
            closed = true
            return true
        } catch {
            unlink(path)
            throw error
        }
    }
}

extension Digest {
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Blobs as files named by their digest in one directory: a local session's staged parts, a
/// SQLite gate's (one replica). Who sent each is a marker file under `owners/`, whose time is
/// when it was sent.
public final class DirectoryBlobStore: BlobStore {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    final class Writer: BlobWriter {
        let store: DirectoryBlobStore
        let owner: String
        let temporary: String
        let fd: Int32
        var hasher = SHA256()
        var size = 0
        var done = false

        init(store: DirectoryBlobStore, owner: String) throws(AirlockError) {
            self.store = store
            self.owner = owner
            try ensureDirectory(store.directory)
            temporary = store.directory + "/.upload-\(getpid())-\(RandomID.make(8))"
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw AirlockError("cannot write in \(store.directory): \(String(cString: strerror(errno)))", code: .storageUnavailable) }
        }

        func append(_ bytes: [UInt8]) throws(AirlockError) {
            hasher.update(data: bytes)
            size += bytes.count
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw AirlockError("cannot write in \(store.directory): \(String(cString: strerror(errno)))", code: .storageUnavailable) }
                offset += n
            }
        }

        func finish() throws(AirlockError) -> (digest: String, size: Int) {
            let digest = hasher.finalize().hex
            fsync(fd)
            close(fd)
            done = true
            let path = store.directory + "/" + digest
            if access(path, F_OK) == 0 {
                // Held already: it counts for whoever sent it first, and is new to the sweep.
                unlink(temporary)
                utimes(path, nil)
            } else if rename(temporary, path) != 0 {
                unlink(temporary)
                throw AirlockError("cannot keep blob \(digest): \(String(cString: strerror(errno)))", code: .storageUnavailable)
            } else {
                store.mark(owner: owner, digest: digest)
            }
            return (digest, size)
        }

        func abandon() {
            guard !done else { return }
            done = true
            close(fd)
            unlink(temporary)
        }

        deinit { abandon() }
    }

    public func makeWriter(owner: String) throws(AirlockError) -> any BlobWriter {
        try Writer(store: self, owner: owner)
    }

    func ownerDirectory(_ owner: String) -> String {
        directory + "/owners/" + SHA256.hash(data: Array(owner.utf8)).hex.prefix(32)
    }

    func mark(owner: String, digest: String) {
        let folder = ownerDirectory(owner)
        guard (try? ensureDirectory(folder)) != nil else { return }
        let marker = folder + "/" + digest + "-" + RandomID.make(6)
        let fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
    }

    public func blobSize(_ digest: String) throws(AirlockError) -> Int? {
        guard BlobChunking.isDigest(digest) else { return nil }
        var info = stat()
        guard stat(directory + "/" + digest, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    public func readBlob(_ digest: String, _ body: ([UInt8]) throws(AirlockError) -> Void) throws(AirlockError) -> Bool {
        guard BlobChunking.isDigest(digest) else { return false }
        let path = directory + "/" + digest
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { return false }
            throw AirlockError("cannot read \(path): \(String(cString: strerror(errno)))", code: .storageUnavailable)
        }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: BlobChunking.chunkSize)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw AirlockError("cannot read \(path): \(String(cString: strerror(errno)))", code: .storageUnavailable) }
            if n == 0 { return true }
            try body(Array(buffer[0..<n]))
        }
    }

    public func sweep(keeping keep: Set<String>, before: Int64) throws(AirlockError) -> (count: Int, bytes: Int) {
        var count = 0, bytes = 0
        for name in Self.names(directory) where BlobChunking.isDigest(name) && !keep.contains(name) {
            var info = stat()
            let path = directory + "/" + name
            guard stat(path, &info) == 0, Self.milliseconds(info.st_mtim) < before else { continue }
            if unlink(path) == 0 {
                count += 1
                bytes += Int(info.st_size)
            }
        }
        // Owner markers only count the last 24 hours.
        for owner in Self.names(directory + "/owners") where !owner.hasPrefix(".") {
            let folder = directory + "/owners/" + owner
            for marker in Self.names(folder) {
                var info = stat()
                if stat(folder + "/" + marker, &info) == 0, Self.milliseconds(info.st_mtim) < Clock.epochMilliseconds() - 86_400_000 {
                    unlink(folder + "/" + marker)
                }
            }
        }
        return (count, bytes)
    }

    static func milliseconds(_ time: timespec) -> Int64 {
        Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec / 1_000_000)
    }

    static func names(_ folder: String) -> [String] {
        guard let dir = opendir(folder) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func bytesStored(owner: String, since: Int64) throws(AirlockError) -> Int {
        let folder = ownerDirectory(owner)
        guard let dir = opendir(folder) else { return 0 }
        defer { closedir(dir) }
        var total = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.utf8.count > 64, case let digest = String(name.prefix(64)), BlobChunking.isDigest(digest) else { continue }
            var marker = stat()
            guard stat(folder + "/" + name, &marker) == 0 else { continue }
            let at = Int64(marker.st_mtim.tv_sec) * 1000 + Int64(marker.st_mtim.tv_nsec / 1_000_000)
            guard at >= since else { continue }
            total += (try blobSize(digest)) ?? 0
        }
        return total
    }
}

/// A store's blobs with an older home still read: a gate upgraded to blobs in PostgreSQL
/// finds the parts an earlier release kept in `state_dir/blobs` (docs/gate.md, "Shared
/// state"). Everything new goes to `primary`; only `primary` is swept and counted.
public final class LayeredBlobStore: BlobStore {
    public let primary: any BlobStore
    public let legacy: any BlobStore

    public init(primary: any BlobStore, legacy: any BlobStore) {
        self.primary = primary
        self.legacy = legacy
    }

    public func makeWriter(owner: String) throws(AirlockError) -> any BlobWriter { try primary.makeWriter(owner: owner) }

    public func blobSize(_ digest: String) throws(AirlockError) -> Int? {
        if let size = try primary.blobSize(digest) { return size }
        return try legacy.blobSize(digest)
    }

    public func readBlob(_ digest: String, _ body: ([UInt8]) throws(AirlockError) -> Void) throws(AirlockError) -> Bool {
        if try primary.readBlob(digest, body) { return true }
        return try legacy.readBlob(digest, body)
    }

    public func bytesStored(owner: String, since: Int64) throws(AirlockError) -> Int {
        try primary.bytesStored(owner: owner, since: since)
    }

    public func sweep(keeping keep: Set<String>, before: Int64) throws(AirlockError) -> (count: Int, bytes: Int) {
        try primary.sweep(keeping: keep, before: before)
    }
}
