import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockStore
import Glibc

/// A command proposal's artifact in the gate's blob store (docs/gate.md, "Shared state"), so
/// the replica that approves can apply what another prepared: the snapshot, its manifest, the
/// plan, the CLI configuration and terraform's data directory (the providers `init` installed,
/// which `apply` of a saved plan needs). Every file is a blob (a provider binary is held once
/// for every proposal that uses it); the listing (paths, modes, digests, symlink targets) is a
/// blob too, and its digest is pinned in the payload (`pins["artifact"]`), so the artifact an
/// approval restores is the one proposed. The snapshot and plan are still checked against their
/// own pins after a restore, as on the replica that made them.
public enum ArtifactBlobs {
    /// What an apply reads, below the artifact directory.
    static let parts = ["snapshot", "snapshot.manifest", "plan", "tfdata", "terraformrc"]
    static let format = "airlock-artifact/v1"

    /// Stores the artifact's files and its listing; answers the listing's digest.
    public static func store(_ artifact: ArtifactLayout, blobs: any BlobStore) throws(AirlockError) -> String {
        var entries: [JSON] = []
        func walk(_ relative: String) throws(AirlockError) {
            let path = artifact.host + "/" + relative
            var info = stat()
            guard lstat(path, &info) == 0 else { return }
            let mode = Double(info.st_mode & 0o777)
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                entries.append(.array([.string("d"), .string(relative), .number(mode)]))
                guard let handle = opendir(path) else { throw AirlockError("cannot read \(path): \(String(cString: strerror(errno)))") }
                var names: [String] = []
                while let entry = readdir(handle) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(handle)
                for name in names.sorted() { try walk(relative + "/" + name) }
            case S_IFREG:
                let (digest, size) = try blobs.putFile(path, owner: "airlock")
                entries.append(.array([.string("f"), .string(relative), .number(mode), .string(digest), .number(Double(size))]))
            case S_IFLNK:
                var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlink(path, &target, target.count - 1)
                guard n >= 0 else { throw AirlockError("cannot read the link \(path): \(String(cString: strerror(errno)))") }
                let text = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                entries.append(.array([.string("l"), .string(relative), .string(text)]))
            default:
                break  // sockets, fifos: nothing an apply reads
            }
        }
        for part in parts { try walk(part) }
        let listing = JSON.object([("format", .string(format)), ("entries", .array(entries))])
        return try blobs.put(Array(listing.serialized().utf8), owner: "airlock")
    }

    struct Entry {
        var kind: String, path: String, mode: mode_t, digest: String, size: Int, target: String
    }

    /// The listing's entries, each path checked to stay below the artifact (no `..`, no
    /// absolute path): the listing is the gate's own, but it comes back from a database.
    static func entries(_ digest: String, blobs: any BlobStore) throws(AirlockError) -> [Entry]? {
        guard let bytes = try blobs.blob(digest, limit: 64 << 20) else { return nil }
        guard let json = try? JSON.parseStrict(bytes: bytes), json["format"]?.string == format, let items = json["entries"]?.array else {
            throw AirlockError("the artifact listing \(digest) is not one this Airlock reads")
        }
        var entries: [Entry] = []
        var seen = Set<String>()
        var links: [String] = []
        for item in items {
            guard let fields = item.array, fields.count >= 3, let kind = fields[0].string, let path = fields[1].string,
                  SnapshotManifest.isRelativePath(path), parts.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) else {
                throw AirlockError("the artifact listing \(digest) has an entry outside the artifact")
            }
            // Each path once, and nothing below a link: a restore never writes through one.
            guard seen.insert(path).inserted, !links.contains(where: { path.hasPrefix($0 + "/") }) else {
                throw AirlockError("the artifact listing \(digest) names \(path) twice or below a link")
            }
            if kind == "l" { links.append(path) }
            switch kind {
            case "d":
                entries.append(Entry(kind: kind, path: path, mode: mode_t(fields[2].int ?? 0o755) & 0o777, digest: "", size: 0, target: ""))
            case "f":
                guard fields.count == 5, let digest = fields[3].string, let size = fields[4].int else {
                    throw AirlockError("the artifact listing \(digest) has a malformed file entry")
                }
                entries.append(Entry(kind: kind, path: path, mode: mode_t(fields[2].int ?? 0o644) & 0o777, digest: digest, size: size, target: ""))
            case "l":
                guard let target = fields[2].string else { throw AirlockError("the artifact listing \(digest) has a malformed link") }
                entries.append(Entry(kind: kind, path: path, mode: 0, digest: "", size: 0, target: target))
            default:
                throw AirlockError("the artifact listing \(digest) has an entry of an unknown kind")
            }
        }
        return entries
    }

    /// The listing's digest and every file's, for the sweep to keep; none when the listing is
    /// gone (there is nothing left to keep). Throws when the listing cannot be read.
    public static func digests(_ listing: String, blobs: any BlobStore) throws(AirlockError) -> Set<String> {
        guard let entries = try entries(listing, blobs: blobs) else { return [] }
        return Set(entries.filter { $0.kind == "f" }.map(\.digest) + [listing])
    }

    /// Every blob `proposals` name (their parts, their artifacts' listings and files): what a
    /// sweep keeps while they are open.
    public static func named(by proposals: [Proposal], blobs: any BlobStore) throws(AirlockError) -> Set<String> {
        var named = Set<String>()
        for proposal in proposals {
            guard let payload = try? ProposalPayload(bytes: proposal.payload) else { continue }
            switch payload {
            case .s3Multipart(let manifest): named.formUnion(manifest.parts.map(\.blobSHA256))
            case .command(let command):
                if let listing = command.pins["artifact"] { named.formUnion(try digests(listing, blobs: blobs)) }
            case .aws, .kubernetes, .github, .gitPush: break
            }
        }
        return named
    }

    /// What of the artifact the blob store does not hold, nil when it holds all of it.
    public static func missing(_ digest: String, blobs: any BlobStore) -> String? {
        do {
            guard let entries = try entries(digest, blobs: blobs) else {
                return "the proposal's artifact (listing \(digest)) is not in the gate's blob store"
            }
            for entry in entries where entry.kind == "f" {
                guard let size = try blobs.blobSize(entry.digest) else {
                    return "\(entry.path) of the proposal's artifact (blob \(entry.digest)) is not in the gate's blob store"
                }
                guard size == entry.size else { return "\(entry.path) of the proposal's artifact is \(size) bytes in the blob store, not \(entry.size)" }
            }
            return nil
        } catch {
            return "the proposal's artifact cannot be read from the blob store (\(error.message))"
        }
    }

    /// Writes the artifact from the blob store into `artifact.host` (made beside it, then
    /// renamed into place; a replica that restored it meanwhile keeps its own).
    public static func restore(_ digest: String, blobs: any BlobStore, into artifact: ArtifactLayout) throws(AirlockError) {
        guard let entries = try entries(digest, blobs: blobs) else {
            throw AirlockError("the proposal's artifact (listing \(digest)) is not in the gate's blob store")
        }
        let staging = artifact.host + ".restore-" + RandomID.make(8)
        do {
            try PinnedFiles.makeParents(of: staging + "/x")
        } catch {
            throw AirlockError("cannot make \(staging): \(error)")
        }
        do throws(AirlockError) {
            for entry in entries {
                let path = staging + "/" + entry.path
                switch entry.kind {
                case "d":
                    guard mkdir(path, 0o700) == 0 else { throw AirlockError("cannot make \(path): \(String(cString: strerror(errno)))") }
                case "f":
                    guard try blobs.writeBlob(entry.digest, to: path, mode: entry.mode) else {
                        throw AirlockError("\(entry.path) of the proposal's artifact (blob \(entry.digest)) is not in the gate's blob store")
                    }
                default:
                    guard symlink(entry.target, path) == 0 else { throw AirlockError("cannot make the link \(path): \(String(cString: strerror(errno)))") }
                }
            }
            // Directories get their modes last (a read-only one would refuse its own files).
            for entry in entries.reversed() where entry.kind == "d" { chmod(staging + "/" + entry.path, entry.mode) }
            if rename(staging, artifact.host) != 0 {
                guard errno == EEXIST || errno == ENOTEMPTY else {
                    throw AirlockError("cannot move the restored artifact into place: \(String(cString: strerror(errno)))")
                }
                PinnedFiles.remove(staging)
            }
        } catch {
            PinnedFiles.remove(staging)
            throw error
        }
    }
}
