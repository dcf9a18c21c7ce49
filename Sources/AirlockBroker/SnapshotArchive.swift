import AirlockCore
import AirlockPolicy
import Glibc

/// A workspace snapshot on the wire, from an agent host to its team gate (docs/gate.md,
/// "Command proposals on the gate"): one JSON line, then the files' bytes in the order the
/// line lists them.
///
///     {"format": "airlock-snapshot/v1", "request": {…}, "entries": [["d", path],
///      ["f", path, size, executable], ["l", path, target], …]}\n<bytes of every "f">
///
/// Not tar: the gate unpacks what an agent host sent, and a tar reader's corner cases
/// (members through an earlier symlink, `..`, hard links, devices, duplicate names) are
/// what an attacker would aim at. Here every path is a clean relative path whose parent is
/// a directory listed before it, files are created with O_EXCL beneath the destination
/// (never through a symlink), and nothing but directories, regular files and symlinks exists.
public enum SnapshotArchive {
    public static let format = "airlock-snapshot/v1"
    /// Entries one archive may hold.
    public static let entryLimit = 200_000

    public struct Unpacked: Sendable {
        public var request: JSON
        public var manifest: SnapshotManifest
    }

    /// Packs `directory` (a snapshot Airlock made) with `request`.
    public static func pack(_ directory: String, request: JSON) throws(Beneath.Failure) -> [UInt8] {
        let manifest = try WorkspaceSnapshot.manifest(of: directory)
        let root = try Beneath.openRoot(directory)
        defer { close(root) }
        var bodies: [UInt8] = []
        var entries: [JSON] = []
        for entry in manifest.entries {
            switch entry.kind {
            case .directory:
                entries.append(.array([.string("d"), .string(entry.path)]))
            case .file(let size, _, let executable):
                let bytes = try Beneath.read(root, entry.path, limit: size)
                guard bytes.count == size else { throw Beneath.Failure("\(entry.path) changed while it was packed") }
                bodies += bytes
                entries.append(.array([.string("f"), .string(entry.path), .number(Double(size)), .bool(executable)]))
            case .symlink(let target):
                entries.append(.array([.string("l"), .string(entry.path), .string(target)]))
            }
        }
        let header = JSON.object([("format", .string(format)), ("request", request), ("entries", .array(entries))])
        return Array((header.serialized() + "\n").utf8) + bodies
    }

    /// Unpacks into `destination` (created, must not exist); what it unpacked, as digested
    /// from the files it wrote.
    public static func unpack(_ bytes: [UInt8], into destination: String, limit: Int) throws(Beneath.Failure) -> Unpacked {
        guard let newline = bytes.firstIndex(of: 0x0A), newline <= 64 << 20 else { throw Beneath.Failure("the archive has no header line") }
        guard let header = try? JSON.parseStrict(bytes: Array(bytes[..<newline])), header["format"]?.string == format,
              let request = header["request"], case .array(let entries)? = header["entries"] else {
            throw Beneath.Failure("not an \(format) archive")
        }
        guard entries.count <= entryLimit else { throw Beneath.Failure("the archive lists more than \(entryLimit) entries") }
        guard mkdir(destination, 0o755) == 0 else { throw Beneath.Failure("\(destination): \(Beneath.errnoText())") }
        let root = try Beneath.openRoot(destination)
        defer { close(root) }
        var directories: Set<String> = [""]
        var seen: Set<String> = []
        var offset = newline + 1
        var total = 0
        for entry in entries {
            guard case .array(let fields) = entry, let kind = fields.first?.string, fields.count >= 2, let path = fields[1].string,
                  SnapshotManifest.isRelativePath(path), seen.insert(path).inserted else {
                throw Beneath.Failure("the archive has a malformed, unsafe or repeated entry: \(entry.serialized().prefix(200))")
            }
            let parent = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : ""
            let name = String(path.split(separator: "/").last ?? "")
            guard directories.contains(parent) else { throw Beneath.Failure("\(path): its directory is not listed before it") }
            let parentFD = parent.isEmpty ? dup(root) : try Beneath.open(root, parent, flags: O_RDONLY | O_DIRECTORY)
            defer { close(parentFD) }
            switch (kind, fields.count) {
            case ("d", 2):
                guard mkdirat(parentFD, name, 0o755) == 0 else { throw Beneath.Failure("\(path): \(Beneath.errnoText())") }
                directories.insert(path)
            case ("f", 4):
                guard let size = fields[2].int, size >= 0, let executable = fields[3].bool else { throw Beneath.Failure("\(path): malformed size") }
                total += size
                guard total <= limit else { throw Beneath.Failure("the snapshot is larger than the gate takes (\(ByteSize.format(UInt64(limit))))") }
                guard bytes.count - offset >= size else { throw Beneath.Failure("the archive ends inside \(path)") }
                let fd = openat(parentFD, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, executable ? 0o755 : 0o644)
                guard fd >= 0 else { throw Beneath.Failure("\(path): \(Beneath.errnoText())") }
                defer { close(fd) }
                var written = 0
                while written < size {
                    let count = bytes[(offset + written)..<(offset + size)].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { throw Beneath.Failure("\(path): \(Beneath.errnoText())") }
                    written += count
                }
                // The mode exactly as listed (the umask must not change what is digested).
                fchmod(fd, executable ? 0o755 : 0o644)
                offset += size
            case ("l", 3):
                guard let target = fields[2].string, !target.isEmpty, !target.utf8.contains(0) else { throw Beneath.Failure("\(path): malformed symlink") }
                guard symlinkat(target, parentFD, name) == 0 else { throw Beneath.Failure("\(path): \(Beneath.errnoText())") }
            default:
                throw Beneath.Failure("\(path): entries are directories, files or symlinks only")
            }
        }
        guard offset == bytes.count else { throw Beneath.Failure("the archive has \(bytes.count - offset) bytes after its last file") }
        // Digested from what was written, never from the header's claims.
        return Unpacked(request: request, manifest: try WorkspaceSnapshot.manifest(of: destination))
    }
}
