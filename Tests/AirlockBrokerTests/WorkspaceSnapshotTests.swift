import AirlockCore
import AirlockPolicy
import Foundation
import Glibc
import Testing

@testable import AirlockBroker

/// The workspace snapshot, copied beneath the workspace: symlinks are copied, never followed,
/// even when one is swapped in while the copy runs (docs/commands.md).
@Suite struct WorkspaceSnapshotTests: FileFixtures {
    @Test func copiesFilesDirectoriesAndSymlinksAndDigestsThem() throws {
        let root = try directory("copy")
        try write(root + "/ws/main.tf", "resource {}\n")
        try write(root + "/ws/deploy.sh", "echo hi\n", mode: 0o755)
        try write(root + "/ws/.terraform/providers/evil", "binary")
        try write(root + "/ws/modules/m/main.tf", "module\n")
        try write(root + "/host-secret", "PLANTED-HOST-FILE")
        symlink(root + "/host-secret", root + "/ws/link")
        mkfifo(root + "/ws/fifo", 0o644)
        let result = try WorkspaceSnapshot.copy(root + "/ws", to: root + "/snap", exclusion: SnapshotExclusion(patterns: [".terraform"]))
        let manifest = result.manifest
        #expect(manifest.entries.map(\.path) == ["deploy.sh", "link", "main.tf", "modules", "modules/m", "modules/m/main.tf"])
        #expect(manifest.entry("link")?.kind == .symlink(target: root + "/host-secret"))
        #expect(manifest.entry("deploy.sh")?.kind == .file(size: 8, sha256: SigV4.hexSHA256(Array("echo hi\n".utf8)), executable: true))
        #expect(result.leftOut == ["fifo"])
        // The copy is what the manifest says, and re-walking it gives the same digest.
        #expect(try WorkspaceSnapshot.manifest(of: root + "/snap").digest == manifest.digest)
        #expect(try String(contentsOfFile: root + "/snap/main.tf", encoding: .utf8) == "resource {}\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/snap/link") == root + "/host-secret")
        // A change to the copy changes the digest.
        try write(root + "/snap/main.tf", "resource { changed }\n")
        #expect(try WorkspaceSnapshot.manifest(of: root + "/snap").digest != manifest.digest)
    }

    @Test func tooLargeIsRefusedNamingTheLargestDirectories() throws {
        let root = try directory("large")
        try write(root + "/ws/main.tf", "x")
        try write(root + "/ws/node_modules/big/blob", String(repeating: "a", count: 300_000))
        try write(root + "/ws/data/blob", String(repeating: "b", count: 100_000))
        do {
            _ = try WorkspaceSnapshot.copy(root + "/ws", to: root + "/snap", exclusion: SnapshotExclusion(patterns: []), limit: 200_000)
            Issue.record("a workspace over the limit was copied")
        } catch {
            #expect(error.description.contains("node_modules/big (293 KiB)") && error.description.contains("snapshot: {exclude: ["), "\(error)")
        }
        // Excluded, it fits.
        #expect((try? WorkspaceSnapshot.copy(root + "/ws", to: root + "/snap2", exclusion: SnapshotExclusion(patterns: ["node_modules"]),
                                             limit: 200_000)) != nil)
    }

    /// A directory swapped for a symlink to a host directory, over and over, while
    /// snapshots are taken: no snapshot ever holds the host directory's file.
    @Test func aSymlinkSwappedInMidCopyIsNeverFollowed() throws {
        let root = try directory("race")
        try write(root + "/host/secret.txt", "PLANTED-HOST-FILE")
        for index in 0..<40 { try write(root + "/ws/data/f\(index)", String(repeating: "x", count: 1000)) }
        let stop = ManagedFlag()
        let swapper = Thread {
            while !stop.value {
                rename(root + "/ws/data", root + "/ws/data.real")
                symlink(root + "/host", root + "/ws/data")
                unlink(root + "/ws/data")
                rename(root + "/ws/data.real", root + "/ws/data")
            }
        }
        swapper.start()
        var copied = 0, refused = 0, sawSymlink = 0
        for attempt in 0..<150 {
            let destination = root + "/snap\(attempt)"
            do {
                let result = try WorkspaceSnapshot.copy(root + "/ws", to: destination, exclusion: SnapshotExclusion(patterns: []))
                copied += 1
                if case .symlink? = result.manifest.entry("data")?.kind { sawSymlink += 1 }
                #expect(!result.manifest.entries.contains { $0.path.hasSuffix("secret.txt") })
            } catch {
                refused += 1
            }
            let found = runProcess("/bin/grep", ["-r", "-l", "PLANTED-HOST-FILE", destination])
            #expect(found.isEmpty, "attempt \(attempt) copied the host file: \(found)")
        }
        stop.value = true
        while swapper.isExecuting { usleep(1000) }
        #expect(copied + refused == 150)
        print("snapshot race: \(copied) copied (\(sawSymlink) saw the symlink), \(refused) refused mid-copy")
    }

    @Test func beneathRefusesSymlinksAndEscapes() throws {
        let root = try directory("beneath")
        try write(root + "/ws/a/b.txt", "inside")
        try write(root + "/outside.txt", "PLANTED")
        symlink(root + "/outside.txt", root + "/ws/a/link.txt")
        symlink(root, root + "/ws/up")
        let fd = try Beneath.openRoot(root + "/ws")
        defer { close(fd) }
        #expect(try Beneath.read(fd, "a/b.txt", limit: 100) == Array("inside".utf8))
        for path in ["a/link.txt", "up/outside.txt", "../outside.txt", "a/../../outside.txt", "/etc/passwd"] {
            #expect(throws: Beneath.Failure.self) { try Beneath.read(fd, path, limit: 100) }
        }
        // The fallback (kernels without openat2) refuses the same.
        for path in ["a/link.txt", "up/outside.txt", "../outside.txt"] {
            #expect(throws: Beneath.Failure.self) { try Beneath.openByComponents(fd, path, flags: O_RDONLY, mode: 0) }
        }
        // Replacing writes beneath, atomically, and never through a symlink.
        try Beneath.replace(fd, "a/new.txt", with: Array("new".utf8), mode: 0o644, owner: nil)
        #expect(try String(contentsOfFile: root + "/ws/a/new.txt", encoding: .utf8) == "new")
        #expect(throws: Beneath.Failure.self) { try Beneath.replace(fd, "up/outside.txt", with: [1], mode: 0o644, owner: nil) }
        #expect(try String(contentsOfFile: root + "/outside.txt", encoding: .utf8) == "PLANTED")
    }

    func runProcess(_ executable: String, _ arguments: [String]) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try? process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var value: Bool {
        get { lock.lock(); defer { lock.unlock() }; return flag }
        set { lock.lock(); flag = newValue; lock.unlock() }
    }
}
