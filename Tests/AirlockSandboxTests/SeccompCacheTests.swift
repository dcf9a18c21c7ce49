@testable import AirlockSandbox
import Foundation
import Testing

/// The compiled seccomp program kept in the state directory's cache (SeccompCache): read back
/// exactly as libseccomp built it, refused when damaged, and enforced when a launch uses it.
@Suite struct SeccompCacheTests {
    @Test func cachedProgramIsTheBuiltOneAndDamageIsAMiss() throws {
        let state = makeTemporaryDirectory(prefix: "airlock-seccomp-cache")
        let cache = try #require(SeccompCache(stateDir: state))
        #expect(cache.load() == nil)
        let built = try SeccompProgram.build()
        let first = try cache.program()
        #expect(first.bytes == built.bytes && first.count == built.count && first.count > 10)
        #expect(FileManager.default.fileExists(atPath: cache.path))
        let loaded = try #require(cache.load())
        #expect(loaded.bytes == built.bytes)
        #expect(loaded.program.pointee.len == UInt16(built.count))

        let good = try Data(contentsOf: URL(fileURLWithPath: cache.path))
        var flipped = good
        flipped[flipped.count - 3] ^= 0x01  // one bit of one instruction
        for (name, damaged) in [("a flipped bit", flipped), ("truncated", good.prefix(good.count - 8)),
                                ("another magic", Data("airlock-seccomp v0\n".utf8) + good.dropFirst(19)),
                                ("empty", Data()), ("no program", good.prefix(19 + 65))] {
            try damaged.write(to: URL(fileURLWithPath: cache.path))
            #expect(cache.load() == nil, "\(name)")
            // A miss builds again and rewrites the entry.
            #expect(try cache.program().bytes == built.bytes, "\(name)")
            #expect(cache.load()?.bytes == built.bytes, "\(name)")
        }
    }

    /// Launches after the first read the program from the cache; a damaged entry is rebuilt;
    /// either way the filter holds.
    @Test func launchesEnforceTheCachedProgram() throws {
        guard Launch.anyAvailable() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        #expect(scene.attempt("ptrace-traceme").stdout == "ptrace-traceme: EPERM (1)\n")
        let directory = scene.stateDir + "/cache/seccomp"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        #expect(entries.count == 1, "the first launch cached its program: \(entries)")
        guard let entry = entries.first else { return }
        let path = directory + "/" + entry
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(scene.attempt("unshare-user").stdout == "unshare-user: EPERM (1)\n")
        // A damaged entry: the launch builds the program again, enforces it and rewrites it.
        var damaged = good
        damaged[damaged.count - 1] ^= 0xFF
        try damaged.write(to: URL(fileURLWithPath: path))
        #expect(scene.attempt("ptrace-traceme").stdout == "ptrace-traceme: EPERM (1)\n")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == good)
    }
}
