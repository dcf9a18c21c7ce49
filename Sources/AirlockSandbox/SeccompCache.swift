import AirlockCore
import AirlockPolicy
import CAirlockLinux
import Glibc

/// The compiled seccomp program, kept in the state directory's cache (`cache/seccomp/KEY`),
/// which no sandbox sees: libseccomp builds the same program every time for one build of
/// Airlock (the rules, and libseccomp itself, are linked into the executable), so a launch
/// reads it back instead of building it (docs/sandbox.md, "Start-up"). Keyed by the
/// executable's identity as the tool-profile cache is: a rebuilt or upgraded Airlock builds
/// again. The file holds a SHA-256 of the instructions; a damaged or truncated entry is a miss.
/// Whoever can write the state directory could weaken the filter, as they could edit the
/// profiles or the policy kept there: it is the person's own directory.
public struct SeccompCache: Sendable {
    public let path: String

    public init?(stateDir: String) {
        var st = stat()
        guard stat("/proc/self/exe", &st) == 0 else { return nil }
        let build = "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
        path = stateDir + "/cache/seccomp/" + SigV4.hexSHA256(Array("airlock-seccomp v1\n\(build)\n".utf8))
    }

    static let magic = Array("airlock-seccomp v1\n".utf8)

    /// The cached program, or nil (none yet, or not one this build wrote whole).
    public func load() -> SeccompProgram? {
        guard let bytes = try? readFile(path, limit: 1 << 16), bytes.count > Self.magic.count + 65,
              bytes.starts(with: Self.magic) else { return nil }
        let digestStart = Self.magic.count
        let digest = String(decoding: bytes[digestStart..<digestStart + 64], as: UTF8.self)
        guard bytes[digestStart + 64] == UInt8(ascii: "\n") else { return nil }
        let program = Array(bytes[(digestStart + 65)...])
        let stride = MemoryLayout<sock_filter>.stride
        // BPF_MAXINSNS: the kernel loads no longer program.
        guard program.count % stride == 0, (1...4096).contains(program.count / stride),
              SigV4.hexSHA256(program) == digest else { return nil }
        return SeccompProgram(bytes: program)
    }

    /// Keeps `program` for the next launch; a failure only costs the next launch a build.
    public func remember(_ program: SeccompProgram) {
        let directory = String(path[..<path.lastIndex(of: "/")!])
        let cache = String(directory[..<directory.lastIndex(of: "/")!])
        _ = mkdir(cache, 0o700)
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else { return }
        let bytes = program.bytes
        try? writeFileAtomically(path, Self.magic + Array(SigV4.hexSHA256(bytes).utf8) + [UInt8(ascii: "\n")] + bytes)
    }

    /// The program from the cache, or built (and then cached).
    public func program() throws(AirlockError) -> SeccompProgram {
        if let cached = load() { return cached }
        let built = try SeccompProgram.build()
        remember(built)
        return built
    }
}
