import AirlockCore
import AirlockPolicy
import AirlockSandbox
import Glibc

/// Which tool profile texts this build of Airlock has parsed without error, with what the
/// launcher needs of them (the tool's name and where its binary may be). Kept in the state
/// directory's cache (`cache/tool-profiles/DIGEST`), which no sandbox sees; keyed by the
/// SHA-256 of the Airlock binary's identity, the profile's path and its exact text, so an
/// edited profile or another Airlock parses again. A damaged entry is a miss.
public struct ToolProfileCache: Sendable {
    public struct Summary: Sendable, Equatable {
        var tool: String
        var binaries: [String]
    }

    public let directory: String
    public let build: String

    public init?(stateDir: String) {
        // The executable's inode, size and modification time: a rebuilt or upgraded Airlock
        // (whose parser may read a profile differently) never trusts an older verdict.
        var st = stat()
        guard stat("/proc/self/exe", &st) == 0 else { return nil }
        directory = stateDir + "/cache/tool-profiles"
        build = "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    public func key(_ text: String, source: String) -> String {
        SigV4.hexSHA256(Array("airlock-tool-profile v1\n\(build)\n\(source)\n".utf8) + Array(text.utf8))
    }

    public func summary(of text: String, source: String) -> Summary? {
        guard let bytes = try? readFile(directory + "/" + key(text, source: source), limit: 1 << 16),
              let json = try? JSON.parse(String(decoding: bytes, as: UTF8.self)),
              let tool = json["tool"]?.string, let binaries = json["binaries"]?.stringArray else { return nil }
        return Summary(tool: tool, binaries: binaries)
    }

    public func remember(_ summary: Summary, of text: String, source: String) {
        // The state directory exists (the launcher made it); its cache may not yet.
        _ = mkdir(String(directory.dropLast("/tool-profiles".count)), 0o700)
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else { return }
        let json = JSON.object([("tool", .string(summary.tool)), ("binaries", .array(summary.binaries.map { .string($0) }))])
        try? writeFileAtomically(directory + "/" + key(text, source: source), Array(json.serialized().utf8))
    }
}
