import AirlockBroker
import AirlockCore
import AirlockPolicy
import Glibc

/// The SHA-256 of a tool's program, pinned per session and in every command proposal
/// (docs/tools.md): an execution runs the pinned path only if its bytes are still these.
///
/// Hashing terraform's 90 MB took 0.26 s of CPU here, paid at every session start and every
/// execution without a cache; so digests are remembered in the state directory (which no
/// sandbox sees), keyed by the file's device, inode, size, modification and change times:
/// any write to the file changes its change time, which no unprivileged program can set back.
public enum ToolDigest {
    public static func of(_ path: String, stateDir: String?) throws(AirlockError) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw AirlockError("\(path): \(String(cString: strerror(errno)))") }
        let identity = "\(path)\n\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec):\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
        let directory = stateDir.map { $0 + "/cache/tool-digests" }
        let entry = directory.map { $0 + "/" + SigV4.hexSHA256(Array(identity.utf8)) }
        if let entry, let bytes = try? readFile(entry, limit: 256), bytes.count == 64, bytes.allSatisfy({ $0 < 0x80 && isxdigit(Int32($0)) != 0 }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        let digest: String
        do {
            digest = try PinnedFiles.fileDigest(path, followLinks: true)
        } catch {
            throw AirlockError("cannot read \(path): \(error)")
        }
        if let directory, let entry, let stateDir {
            _ = mkdir(stateDir + "/cache", 0o700)
            if mkdir(directory, 0o700) == 0 || errno == EEXIST { try? writeFileAtomically(entry, Array(digest.utf8)) }
        }
        return digest
    }
}
