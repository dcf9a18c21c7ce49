import AirlockPolicy
import Testing

/// git's push request (`git-receive-pack`): the ref updates a proposal pins are exactly the
/// ones the server would apply, and a request two readers could read differently is refused.
@Suite struct GitReceivePackTests {
    static let zero = String(repeating: "0", count: 40)
    static let a = String(repeating: "a", count: 40), b = String(repeating: "b", count: 40)
    static let pack: [UInt8] = Array("PACK".utf8) + [0, 0, 0, 2, 0, 0, 0, 1] + Array("objects".utf8)

    static func pkt(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        let hex = String(bytes.count + 4, radix: 16)
        return Array((String(repeating: "0", count: 4 - hex.count) + hex).utf8) + bytes
    }

    static func body(_ lines: [String], options: [String]? = nil, pack: [UInt8] = pack) -> [UInt8] {
        var out = lines.flatMap { pkt($0) } + Array("0000".utf8)
        if let options { out += options.flatMap { pkt($0 + "\n") } + Array("0000".utf8) }
        return out + pack
    }

    @Test func readsUpdatesCapabilitiesAndThePack() throws {
        let request = try GitReceivePack.parse(Self.body([
            "\(Self.a) \(Self.b) refs/heads/main\0report-status side-band-64k push-options\n",
            "\(Self.zero) \(Self.b) refs/heads/feature\n", "\(Self.a) \(Self.zero) refs/tags/old\n",
        ], options: ["ci.skip"])).get()
        #expect(request.updates.map(\.ref) == ["refs/heads/main", "refs/heads/feature", "refs/tags/old"])
        #expect(request.capabilities == ["report-status", "side-band-64k", "push-options"])
        #expect(request.pushOptions == ["ci.skip"])
        #expect(request.pack == Self.pack)
        #expect(request.updates[1].isCreate && request.updates[2].isDelete)
        // Serialized again, it reads the same.
        #expect(try GitReceivePack.parse(request.serialized()).get() == request)
        let labels = request.labels(protected: [Glob("refs/heads/main"), Glob("refs/heads/release/*")])
        #expect(labels.map(\.label) == ["update, protected (refs/heads/main)", "create", "delete"])
    }

    /// What parses serializes back byte for byte (a pinned push replays exactly what arrived):
    /// git's own form (capabilities after a space, commands without a line feed), a first
    /// command with no capabilities at all (found by the git-push fuzz target), push options.
    @Test(arguments: [
        body(["\(a) \(b) refs/heads/main\0 report-status side-band-64k agent=git/2.39.5"]),
        body(["shallow \(a)\n", "\(a) \(zero) refs/heads/gone\n"], pack: []),
        body(["\(a) \(b) refs/heads/main", "\(zero) \(b) refs/heads/new\n"]),
        body(["\(a) \(b) refs/heads/main\0push-options report-status\n"], options: ["ci.skip", "x=y"]),
    ])
    func requestsSerializeBackToTheirOwnBytes(bytes: [UInt8]) throws {
        let request = try GitReceivePack.parse(bytes).get()
        #expect(request.serialized() == bytes, "\(String(decoding: request.serialized(), as: UTF8.self))")
        #expect(try GitReceivePack.parse(request.serialized()).get() == request)
    }

    @Test func deletionsAloneCarryNoPack() throws {
        let request = try GitReceivePack.parse(Self.body(["\(Self.a) \(Self.zero) refs/heads/gone\0report-status\n"], pack: [])).get()
        #expect(request.pack.isEmpty)
        #expect(throws: GitReceivePack.Problem.self) {
            try GitReceivePack.parse(Self.body(["\(Self.a) \(Self.zero) refs/heads/gone\0report-status\n"])).get()
        }
    }

    @Test func malformedOrAmbiguousRequestsAreRefused() {
        let cases: [(String, [UInt8])] = [
            ("no updates", Array("0000".utf8) + Self.pack),
            ("the same ref twice", Self.body(["\(Self.a) \(Self.b) refs/heads/main\0\n", "\(Self.b) \(Self.a) refs/heads/main\n"])),
            ("not a ref", Self.body(["\(Self.a) \(Self.b) main\0\n"])),
            ("dot-dot in a ref", Self.body(["\(Self.a) \(Self.b) refs/heads/../main\0\n"])),
            ("a lock ref", Self.body(["\(Self.a) \(Self.b) refs/heads/main.lock\0\n"])),
            ("a ref with a space", Self.body(["\(Self.a) \(Self.b) refs/heads/a b\0\n"])),
            ("short oid", Self.body(["abc \(Self.b) refs/heads/main\0\n"])),
            ("upper-case oid", Self.body(["\(Self.a.uppercased()) \(Self.b) refs/heads/main\0\n"])),
            ("two oid lengths", Self.body(["\(Self.a) \(Self.b) refs/heads/x\0\n", "\(String(repeating: "c", count: 64)) \(String(repeating: "d", count: 64)) refs/heads/y\n"])),
            ("create and delete", Self.body(["\(Self.zero) \(Self.zero) refs/heads/main\0\n"])),
            ("a NUL later", Self.body(["\(Self.a) \(Self.b) refs/heads/x\0\n", "\(Self.a) \(Self.b) refs/heads/y\0caps\n"])),
            ("signed push", Self.body(["push-cert\0report-status\n"])),
            ("shallow after a command", Self.body(["\(Self.a) \(Self.b) refs/heads/x\0\n", "shallow \(Self.a)\n"])),
            ("bad length", Array("00zz".utf8)), ("length 3", Array("0003".utf8)), ("delim", Array("0001".utf8)),
            ("cut short", Array("00ff".utf8) + Array("short".utf8)), ("no flush", Self.pkt("\(Self.a) \(Self.b) refs/heads/x\0\n")),
            ("no pack", Self.body(["\(Self.a) \(Self.b) refs/heads/x\0\n"], pack: [])),
            ("not a pack", Self.body(["\(Self.a) \(Self.b) refs/heads/x\0\n"], pack: Array("NOTAPACK0000".utf8))),
            ("pack version 9", Self.body(["\(Self.a) \(Self.b) refs/heads/x\0\n"], pack: Array("PACK".utf8) + [0, 0, 0, 9, 0, 0, 0, 0])),
        ]
        for (name, bytes) in cases {
            guard case .failure = GitReceivePack.parse(bytes) else {
                Issue.record("\(name) was accepted")
                continue
            }
        }
    }
}
