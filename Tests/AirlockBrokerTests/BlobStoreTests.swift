import AirlockCore
import AirlockPolicy
import AirlockStore
import AirlockStorePostgres
import AirlockExecution
import Glibc
import Foundation
import Testing

/// The blob stores (docs/gate.md, "Shared state"), each driver held to the same promises: a
/// blob written piece by piece is named by its SHA-256 and read back a chunk at a time; the
/// same bytes sent twice are held once and count for whoever sent them first; bytes changed
/// in storage are refused, never used; the sweep removes only what is old and unnamed.
@Suite struct BlobStoreTests {
    enum Driver: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case directory, postgres
        var testDescription: String { rawValue }

        func make() throws -> (any BlobStore, PostgresProposalStore?) {
            switch self {
            case .directory:
                return (DirectoryBlobStore(directory: NSTemporaryDirectory() + "airlock-blobs-\(UUID().uuidString)"), nil)
            case .postgres:
                let (store, _) = try StoreDriver.postgres.make()
                let postgres = store as! PostgresProposalStore
                return (postgres, postgres)
            }
        }
    }

    static let bytes: [UInt8] = (0..<(5 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }  // 2.5 MiB

    @Test(arguments: Driver.allCases)
    func blobsAreContentAddressedAndReadInChunks(_ driver: Driver) throws {
        let (blobs, _) = try driver.make()
        let writer = try blobs.makeWriter(owner: "host:a")
        var offset = 0
        for size in [1, 700_000, 1 << 20, 3, 1_000_000] where offset < Self.bytes.count {
            let end = min(Self.bytes.count, offset + size)
            try writer.append(Array(Self.bytes[offset..<end]))
            offset = end
        }
        try writer.append(Array(Self.bytes[offset...]))
        let (digest, size) = try writer.finish()
        #expect(digest == SigV4.hexSHA256(Self.bytes) && size == Self.bytes.count)
        #expect(try blobs.blobSize(digest) == Self.bytes.count)
        var pieces: [Int] = []
        #expect(try blobs.readBlob(digest) { (piece: [UInt8]) throws(AirlockError) in pieces.append(piece.count) })
        #expect(pieces.allSatisfy { $0 <= BlobChunking.chunkSize } && pieces.reduce(0, +) == Self.bytes.count, "\(pieces)")
        #expect(try blobs.blob(digest) == Self.bytes)
        // Sent again by another host: held once, counted for the first.
        #expect(try blobs.put(Self.bytes, owner: "host:b") == digest)
        #expect(try blobs.bytesStored(owner: "host:a", since: 0) == Self.bytes.count)
        #expect(try blobs.bytesStored(owner: "host:b", since: 0) == 0)
        // Not held: nil, false, no file written.
        let absent = String(repeating: "0", count: 64)
        #expect(try blobs.blobSize(absent) == nil && blobs.blob(absent) == nil)
        let target = NSTemporaryDirectory() + "airlock-blob-out-\(UUID().uuidString)"
        #expect(try !blobs.writeBlob(absent, to: target, mode: 0o600) && !FileManager.default.fileExists(atPath: target))
        #expect(try blobs.writeBlob(digest, to: target, mode: 0o640))
        #expect(FileManager.default.contents(atPath: target) == Data(Self.bytes))
        // A name that is not a digest is never a path.
        #expect(try blobs.blobSize("../../etc/passwd") == nil)
        // Abandoned: nothing is named.
        let abandoned = try blobs.makeWriter(owner: "host:a")
        try abandoned.append([1, 2, 3])
        abandoned.abandon()
        #expect(try blobs.blobSize(SigV4.hexSHA256([1, 2, 3])) == nil)
    }

    @Test(arguments: Driver.allCases)
    func theSweepRemovesOnlyOldUnnamedBlobs(_ driver: Driver) throws {
        let (blobs, _) = try driver.make()
        let kept = try blobs.put(Array("named by an open proposal".utf8), owner: "host:a")
        let old = try blobs.put(Array("nobody names me".utf8), owner: "host:a")
        // Nothing is old yet.
        #expect(try blobs.sweep(keeping: [], before: Clock.epochMilliseconds() - 60_000).count == 0)
        // Everything is old: the unnamed one goes.
        let swept = try blobs.sweep(keeping: [kept], before: Clock.epochMilliseconds() + 60_000)
        #expect(swept.count == 1 && swept.bytes == "nobody names me".utf8.count)
        #expect(try blobs.blobSize(kept) != nil && blobs.blobSize(old) == nil)
        // Stored again, it is new again.
        #expect(try blobs.put(Array("named by an open proposal".utf8), owner: "host:b") == kept)
        #expect(try blobs.sweep(keeping: [], before: Clock.epochMilliseconds() - 60_000).count == 0)
        #expect(try blobs.blobSize(kept) != nil)
    }

    /// Bytes changed in the database are refused (a replica never sends what was not proposed).
    @Test func changedChunksAreRefused() throws {
        let (blobs, postgres) = try Driver.postgres.make()
        let digest = try blobs.put(Self.bytes, owner: "host:a")
        try postgres!.changeFirstChunk()
        #expect(throws: AirlockError.self) { _ = try blobs.blob(digest) }
        let target = NSTemporaryDirectory() + "airlock-blob-out-\(UUID().uuidString)"
        #expect(throws: AirlockError.self) { _ = try blobs.writeBlob(digest, to: target, mode: 0o600) }
        #expect(!FileManager.default.fileExists(atPath: target))
    }
}

/// A command artifact through the blob store (ArtifactBlobs): stored file by file with its
/// listing, restored whole elsewhere with modes and links, refused when the listing points
/// outside the artifact, and named for the sweep while its proposal is open.
@Suite struct ArtifactBlobsTests {
    func artifact() throws -> ArtifactLayout {
        let root = NSTemporaryDirectory() + "airlock-artifact-\(UUID().uuidString)"
        let layout = ArtifactLayout(host: root)
        for directory in [layout.snapshot + "/modules", layout.plan, layout.dataDirectory + "/providers", layout.steps] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        try Data("resource \"terraform_data\" \"x\" {}\n".utf8).write(to: URL(fileURLWithPath: layout.snapshot + "/main.tf"))
        try Data("plan bytes".utf8).write(to: URL(fileURLWithPath: layout.plan + "/plan.tfplan"))
        try Data("#!/bin/sh\necho provider\n".utf8).write(to: URL(fileURLWithPath: layout.dataDirectory + "/providers/terraform-provider-x"))
        chmod(layout.dataDirectory + "/providers/terraform-provider-x", 0o755)
        try FileManager.default.createSymbolicLink(atPath: layout.dataDirectory + "/providers/current", withDestinationPath: "terraform-provider-x")
        try Data("not kept".utf8).write(to: URL(fileURLWithPath: layout.steps + "/0-setup.json"))
        return layout
    }

    @Test func anArtifactIsRestoredWholeOnAnotherReplica() throws {
        let blobs = DirectoryBlobStore(directory: NSTemporaryDirectory() + "airlock-blobs-\(UUID().uuidString)")
        let made = try artifact()
        let listing = try ArtifactBlobs.store(made, blobs: blobs)
        #expect(ArtifactBlobs.missing(listing, blobs: blobs) == nil)
        let elsewhere = ArtifactLayout(host: NSTemporaryDirectory() + "airlock-replica-b-\(UUID().uuidString)/artifacts/a1")
        try ArtifactBlobs.restore(listing, blobs: blobs, into: elsewhere)
        #expect(FileManager.default.contents(atPath: elsewhere.plan + "/plan.tfplan") == Data("plan bytes".utf8))
        #expect(FileManager.default.isExecutableFile(atPath: elsewhere.dataDirectory + "/providers/terraform-provider-x"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: elsewhere.dataDirectory + "/providers/current") == "terraform-provider-x")
        #expect(!FileManager.default.fileExists(atPath: elsewhere.steps), "a preparation's scratch was kept")
        // A file gone from the store: said, and a restore leaves nothing half-made.
        let provider = SigV4.hexSHA256(Array("#!/bin/sh\necho provider\n".utf8))
        try FileManager.default.removeItem(atPath: blobs.directory + "/" + provider)
        #expect(ArtifactBlobs.missing(listing, blobs: blobs)?.contains("tfdata/providers/terraform-provider-x") == true)
        let third = ArtifactLayout(host: NSTemporaryDirectory() + "airlock-replica-c-\(UUID().uuidString)")
        #expect(throws: AirlockError.self) { try ArtifactBlobs.restore(listing, blobs: blobs, into: third) }
        #expect(!FileManager.default.fileExists(atPath: third.host))
        // The sweep keeps what an open proposal names.
        let named = try ArtifactBlobs.named(by: [Self.proposal(listing)], blobs: blobs)
        #expect(named.contains(listing) && named.contains(SigV4.hexSHA256(Array("plan bytes".utf8))))
    }

    @Test func aListingReachingOutsideTheArtifactIsRefused() throws {
        let blobs = DirectoryBlobStore(directory: NSTemporaryDirectory() + "airlock-blobs-\(UUID().uuidString)")
        let body = try blobs.put(Array("x".utf8), owner: "airlock")
        // Through a link (a listing rewritten in the database): refused before anything is written.
        let link = try blobs.put(Array(#"{"format":"airlock-artifact/v1","entries":[["d","tfdata",493],["l","tfdata/x","/tmp"],["f","tfdata/x/planted",420,"\#(body)",1]]}"#.utf8), owner: "airlock")
        let linked = ArtifactLayout(host: NSTemporaryDirectory() + "airlock-hostile-\(UUID().uuidString)/a")
        #expect(throws: AirlockError.self) { try ArtifactBlobs.restore(link, blobs: blobs, into: linked) }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/planted"))
        for path in ["../escape", "/etc/passwd", "snapshot/../../escape", "elsewhere/file"] {
            let listing = try blobs.put(Array(#"{"format":"airlock-artifact/v1","entries":[["f","\#(path)",420,"\#(body)",1]]}"#.utf8), owner: "airlock")
            let into = ArtifactLayout(host: NSTemporaryDirectory() + "airlock-hostile-\(UUID().uuidString)/a")
            #expect(throws: AirlockError.self, "\(path)") { try ArtifactBlobs.restore(listing, blobs: blobs, into: into) }
            #expect(!FileManager.default.fileExists(atPath: into.host))
        }
    }

    static func proposal(_ listing: String) -> Proposal {
        let payload = CommandPayload(tool: "terraform", binary: "/usr/bin/terraform", command: ["terraform", "apply"], apply: ["apply"],
                                     workspace: "/w", directory: "/w", artifact: "a1", pins: [("snapshot", "s"), ("artifact", listing)],
                                     reason: "r", snapshotFiles: 1, snapshotBytes: 1, snapshotDigest: "s", outputs: [])
        let bytes = ProposalPayload.command(payload).bytes
        return Proposal(id: "p1", sessionID: "s1", kind: .command, state: .pending, summary: "terraform apply", decision: .mutation, rule: "r",
                        createdAt: Clock.now(), updatedAt: Clock.now(), digest: SigV4.hexSHA256(bytes), payload: bytes, upstream: "aws")
    }
}
