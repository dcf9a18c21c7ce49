import AirlockCore
import AirlockPolicy
import Foundation
import Glibc
import Testing

@testable import AirlockBroker

/// The snapshot an agent host uploads to its team gate: what arrives is exactly what was
/// packed, and a hostile archive writes nothing outside its destination and is refused.
@Suite struct SnapshotArchiveTests: FileFixtures {
    /// A hand-made archive: a header naming `entries`, then `bodies`.
    func archive(_ entries: [Any], bodies: String = "", request: [String: Any] = ["tool": "terraform"]) throws -> [UInt8] {
        let header = try JSONSerialization.data(withJSONObject: ["format": SnapshotArchive.format, "request": request, "entries": entries])
        return Array(header) + [0x0A] + Array(bodies.utf8)
    }

    @Test func whatArrivesIsWhatWasPacked() throws {
        let root = try directory("roundtrip")
        try write(root + "/ws/main.tf", "resource {}\n")
        try write(root + "/ws/deploy.sh", "echo hi\n", mode: 0o755)
        try write(root + "/ws/modules/m/main.tf", "module\n")
        try write(root + "/ws/empty", "")
        symlink("modules/m", root + "/ws/link")
        let sent = try WorkspaceSnapshot.manifest(of: root + "/ws")
        let bytes = try SnapshotArchive.pack(root + "/ws", request: .object([("tool", .string("terraform"))]))
        let unpacked = try SnapshotArchive.unpack(bytes, into: root + "/out", limit: 1 << 20)
        #expect(unpacked.manifest == sent)
        #expect(unpacked.manifest.digest == sent.digest)
        #expect(unpacked.request["tool"]?.string == "terraform")
        var info = stat()
        #expect(lstat(root + "/out/link", &info) == 0 && info.st_mode & S_IFMT == S_IFLNK)
        #expect(stat(root + "/out/deploy.sh", &info) == 0 && info.st_mode & 0o111 != 0)
    }

    @Test func hostileArchivesAreRefusedAndWriteNothingOutside() throws {
        let root = try directory("hostile")
        let outside = root + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        let cases: [(String, [UInt8])] = [
            ("dot-dot", try archive([["f", "../outside/x", 2, false]], bodies: "hi")),
            ("absolute", try archive([["f", "/tmp/x", 2, false]], bodies: "hi")),
            ("through a symlink it made", try archive([["l", "a", outside], ["f", "a/x", 2, false]], bodies: "hi")),
            ("parent not listed", try archive([["f", "b/x", 2, false]], bodies: "hi")),
            ("repeated", try archive([["f", "x", 1, false], ["f", "x", 1, false]], bodies: "ab")),
            ("short body", try archive([["f", "x", 10, false]], bodies: "hi")),
            ("trailing bytes", try archive([["f", "x", 1, false]], bodies: "hi")),
            ("too large", try archive([["f", "x", 2048, false]], bodies: String(repeating: "a", count: 2048))),
            ("a device", try archive([["c", "x"]])),
            ("negative size", try archive([["f", "x", -1, false]])),
            ("dot", try archive([["d", "."]])),
            ("not an archive", Array("{\"format\": \"tar\"}\n".utf8)),
            ("no header", Array("just bytes".utf8)),
        ]
        for (index, (name, bytes)) in cases.enumerated() {
            #expect(throws: Beneath.Failure.self, "\(name)") {
                _ = try SnapshotArchive.unpack(bytes, into: root + "/out\(index)", limit: 1024)
            }
            #expect((try? FileManager.default.contentsOfDirectory(atPath: outside)) == [], "\(name) wrote outside")
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/x") || (try? String(contentsOfFile: "/tmp/x", encoding: .utf8)) != "hi")
    }
}
