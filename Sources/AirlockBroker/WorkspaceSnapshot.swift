import AirlockCore
import AirlockPolicy
import Crypto
import Glibc

/// A command proposal's copy of the workspace (docs/commands.md): prepare and the approved
/// execution both run on it, never on the live workspace, so nothing the agent writes after
/// the proposal reaches the execution. Copied with directory descriptors (no path is ever
/// resolved through a symlink: symlinks are copied as symlinks, special files left out),
/// digested while copied, and re-walked before an execution.
public enum WorkspaceSnapshot {
    public static let defaultLimit = 256 << 20

    public struct Result: Sendable {
        public var manifest: SnapshotManifest
        /// Relative paths of sockets, FIFOs and devices, which are not copied.
        public var leftOut: [String]
    }

    /// Copies `workspace` into `destination` (created, must not exist).
    public static func copy(_ workspace: String, to destination: String, exclusion: SnapshotExclusion,
                            limit: Int = defaultLimit) throws(Beneath.Failure) -> Result {
        let source = try Beneath.openRoot(workspace)
        defer { close(source) }
        guard mkdir(destination, 0o755) == 0 else { throw Beneath.Failure("\(destination): \(Beneath.errnoText())") }
        let target = try Beneath.openRoot(destination)
        defer { close(target) }
        var walk = Walk(exclusion: exclusion, limit: limit)
        do {
            try walk.copy(source, to: target, prefix: "")
        } catch let failure as Beneath.Failure {
            throw failure
        } catch let overflow as Walk.Overflow {
            _ = overflow
            let sizes = (try? measure(workspace, exclusion: exclusion)) ?? [:]
            let total = sizes[""] ?? walk.total
            throw Beneath.Failure(SnapshotSize.refusal(total: total, limit: limit, largest: SnapshotSize.largest(sizes.filter { !$0.key.isEmpty })))
        } catch {
            throw Beneath.Failure("\(error)")
        }
        return Result(manifest: SnapshotManifest(entries: walk.entries), leftOut: walk.leftOut)
    }

    /// The manifest of a snapshot as it is now (to check it against the pinned one).
    public static func manifest(of directory: String) throws(Beneath.Failure) -> SnapshotManifest {
        let root = try Beneath.openRoot(directory)
        defer { close(root) }
        var walk = Walk(exclusion: SnapshotExclusion(patterns: []), limit: Int.max)
        do {
            try walk.copy(root, to: nil, prefix: "")
        } catch let failure as Beneath.Failure {
            throw failure
        } catch {
            throw Beneath.Failure("\(error)")
        }
        guard walk.leftOut.isEmpty else { throw Beneath.Failure("the snapshot holds special files: \(walk.leftOut.joined(separator: ", "))") }
        return SnapshotManifest(entries: walk.entries)
    }

    /// Bytes under each directory (relative path; "" is the root), files only, for the
    /// too-large message. Stops counting after a million entries.
    static func measure(_ workspace: String, exclusion: SnapshotExclusion) throws(Beneath.Failure) -> [String: Int] {
        let root = try Beneath.openRoot(workspace)
        defer { close(root) }
        var sizes: [String: Int] = [:]
        var budget = 1_000_000
        func visit(_ fd: Int32, _ prefix: String) throws(Beneath.Failure) -> Int {
            var total = 0
            for name in try Beneath.names(fd, what: prefix.isEmpty ? "the workspace" : prefix) {
                budget -= 1
                if budget < 0 { break }
                let relative = prefix.isEmpty ? name : prefix + "/" + name
                guard !exclusion.excludes(relative), let info = Beneath.status(fd, name) else { continue }
                switch info.st_mode & S_IFMT {
                case S_IFREG: total += Int(info.st_size)
                case S_IFDIR:
                    let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    guard child >= 0 else { continue }
                    defer { close(child) }
                    total += try visit(child, relative)
                default: continue
                }
            }
            sizes[prefix] = total
            return total
        }
        _ = try visit(root, "")
        return sizes
    }

    struct Walk {
        struct Overflow: Error {}

        let exclusion: SnapshotExclusion
        let limit: Int
        var entries: [SnapshotEntry] = []
        var leftOut: [String] = []
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 17)

        /// Walks `source` (copying into `target` when given), appending entries.
        mutating func copy(_ source: Int32, to target: Int32?, prefix: String) throws {
            for name in try Beneath.names(source, what: prefix.isEmpty ? "the workspace" : prefix) {
                let relative = prefix.isEmpty ? name : prefix + "/" + name
                if target != nil && exclusion.excludes(relative) { continue }
                guard let info = Beneath.status(source, name) else { continue }  // gone meanwhile
                switch info.st_mode & S_IFMT {
                case S_IFDIR:
                    // O_NOFOLLOW: a symlink swapped in since the lstat fails here.
                    let child = openat(source, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    guard child >= 0 else { throw Beneath.Failure("\(relative): \(Beneath.errorText(errno))") }
                    defer { close(child) }
                    var copyTarget: Int32?
                    if let target {
                        guard mkdirat(target, name, 0o755) == 0 else { throw Beneath.Failure("\(relative): \(Beneath.errnoText())") }
                        let made = openat(target, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                        guard made >= 0 else { throw Beneath.Failure("\(relative): \(Beneath.errnoText())") }
                        copyTarget = made
                    }
                    defer { if let copyTarget { close(copyTarget) } }
                    entries.append(SnapshotEntry(path: relative, kind: .directory))
                    try copy(child, to: copyTarget, prefix: relative)
                case S_IFREG:
                    entries.append(try copyFile(source, name, relative: relative, to: target))
                case S_IFLNK:
                    guard let destination = Beneath.readLink(source, name) else { throw Beneath.Failure("\(relative): \(Beneath.errnoText())") }
                    if let target, symlinkat(destination, target, name) != 0 { throw Beneath.Failure("\(relative): \(Beneath.errnoText())") }
                    entries.append(SnapshotEntry(path: relative, kind: .symlink(target: destination)))
                default:
                    leftOut.append(relative)
                }
            }
        }

        mutating func copyFile(_ directory: Int32, _ name: String, relative: String, to target: Int32?) throws -> SnapshotEntry {
            // O_NONBLOCK: a FIFO swapped in since the lstat must not hang the broker.
            let input = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard input >= 0 else { throw Beneath.Failure("\(relative): \(Beneath.errorText(errno))") }
            defer { close(input) }
            var info = stat()
            guard fstat(input, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
                throw Beneath.Failure("\(relative) changed into something that is not a regular file while it was copied")
            }
            let executable = info.st_mode & 0o100 != 0
            var output: Int32 = -1
            if let target {
                output = openat(target, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, executable ? 0o755 : 0o644)
                guard output >= 0 else { throw Beneath.Failure("\(relative): \(Beneath.errnoText())") }
            }
            defer { if output >= 0 { close(output) } }
            var hasher = SHA256()
            var size = 0
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { throw Beneath.Failure("\(relative): \(Beneath.errnoText())") }
                if count == 0 { break }
                size += count
                total += count
                if total > limit { throw Overflow() }
                buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                if output >= 0 {
                    var written = 0
                    while written < count {
                        let n = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, count - written) }
                        if n < 0 && errno == EINTR { continue }
                        guard n > 0 else { throw Beneath.Failure("\(relative): \(Beneath.errnoText())") }
                        written += n
                    }
                }
            }
            return SnapshotEntry(path: relative, kind: .file(size: size, sha256: SigV4.hex(Array(hasher.finalize())), executable: executable))
        }
    }

    /// Creates an empty file at `relative` in a snapshot, where a tool's declared output will
    /// be bound (a read-only tree needs the mount point). Parents must exist.
    public static func placeholder(_ snapshot: String, _ relative: String) throws(Beneath.Failure) {
        let root = try Beneath.openRoot(snapshot)
        defer { close(root) }
        let fd = try Beneath.open(root, relative, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o644)
        close(fd)
    }
}
