/// A `git push` over smart HTTP, as the agent's git sends it to `git-receive-pack`
/// (docs/github.md, "git over HTTPS"): pkt-lines of ref updates (`OLD NEW REF`, the first
/// with the capabilities after a NUL), optional `shallow` lines before them, a flush, push
/// options when negotiated (then another flush), and the pack. Read strictly, so the ref
/// updates a proposal pins are the ones the server would apply: one reading or none. Pure.
public struct GitReceivePack: Sendable, Equatable {
    public struct RefUpdate: Sendable, Equatable {
        public var old: String
        public var new: String
        public var ref: String

        public init(old: String, new: String, ref: String) {
            self.old = old
            self.new = new
            self.ref = ref
        }

        public var isCreate: Bool { old.allSatisfy { $0 == "0" } }
        public var isDelete: Bool { new.allSatisfy { $0 == "0" } }
    }

    public var shallow: [String]
    public var updates: [RefUpdate]
    public var capabilities: [String]
    public var pushOptions: [String]
    /// The packfile (empty when every update deletes).
    public var pack: [UInt8]
    /// The capability text exactly as sent after the NUL (git begins it with a space), and
    /// whether each line (shallow, updates, push options, in order) ended with a line feed
    /// (git's commands do not): kept so that what parses serializes back byte for byte.
    public var capabilityText: String?
    public var lineFeeds: [Bool] = []

    public init(shallow: [String] = [], updates: [RefUpdate], capabilities: [String], pushOptions: [String] = [], pack: [UInt8]) {
        self.shallow = shallow
        self.updates = updates
        self.capabilities = capabilities
        self.pushOptions = pushOptions
        self.pack = pack
    }

    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// pkt-line's largest packet (4 bytes of length included).
    static let maximumPacket = 65520

    enum Packet: Equatable {
        case data([UInt8])
        case flush
    }

    /// One packet at `offset`; the offset after it.
    static func packet(_ bytes: [UInt8], at offset: Int) -> Result<(Packet, Int), Problem> {
        guard bytes.count - offset >= 4 else { return .failure(Problem("a pkt-line is cut short")) }
        var length = 0
        for byte in bytes[offset..<(offset + 4)] {
            let digit: Int
            switch byte {
            case 0x30...0x39: digit = Int(byte - 0x30)
            case 0x61...0x66: digit = Int(byte - 0x61 + 10)
            default: return .failure(Problem("a pkt-line length is not four lowercase hex digits"))
            }
            length = length * 16 + digit
        }
        if length == 0 { return .success((.flush, offset + 4)) }
        guard length > 4, length <= maximumPacket else { return .failure(Problem("a pkt-line length of \(length) (delim, response-end and lengths 1-4 do not belong here)")) }
        guard bytes.count - offset >= length else { return .failure(Problem("a pkt-line is longer than the body")) }
        return .success((.data(Array(bytes[(offset + 4)..<(offset + length)])), offset + length))
    }

    static func isObjectID(_ text: Substring) -> Bool {
        (text.count == 40 || text.count == 64) && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// git check-ref-format's rules for a full ref name (`refs/...`).
    public static func isValidRef(_ ref: String) -> Bool {
        guard ref.hasPrefix("refs/"), ref.count <= 1024, !ref.hasSuffix("/"), !ref.hasSuffix("."), !ref.contains(".."),
              !ref.contains("//"), !ref.contains("@{"), ref != "@" else { return false }
        for component in ref.split(separator: "/") {
            if component.hasPrefix(".") || component.hasSuffix(".lock") { return false }
        }
        return ref.unicodeScalars.allSatisfy { scalar in
            scalar.value > 0x20 && scalar.value != 0x7F && !" ~^:?*[\\".unicodeScalars.contains(scalar)
        }
    }

    /// Reads a receive-pack request body.
    public static func parse(_ bytes: [UInt8]) -> Result<GitReceivePack, Problem> {
        var offset = 0
        var shallow: [String] = []
        var updates: [RefUpdate] = []
        var capabilities: [String] = []
        var capabilityText: String?
        var lineFeeds: [Bool] = []
        var seen = Set<String>()
        var idLength: Int?
        commands: while true {
            let next: (Packet, Int)
            switch packet(bytes, at: offset) {
            case .success(let found): next = found
            case .failure(let problem): return .failure(problem)
            }
            offset = next.1
            guard case .data(var line) = next.0 else { break commands }
            lineFeeds.append(line.last == 0x0A)
            if line.last == 0x0A { line.removeLast() }
            var text = line
            if updates.isEmpty, let nul = line.firstIndex(of: 0) {
                text = Array(line[..<nul])
                let listed = String(decoding: line[(nul + 1)...], as: UTF8.self)
                guard String(validating: line[(nul + 1)...], as: UTF8.self) != nil else { return .failure(Problem("the capabilities are not UTF-8")) }
                capabilities = listed.split(separator: " ").map(String.init)
                capabilityText = listed
            } else if line.contains(0) {
                return .failure(Problem("a NUL after the first command"))
            }
            guard let command = String(validating: text, as: UTF8.self) else { return .failure(Problem("a command is not UTF-8")) }
            if command.hasPrefix("shallow ") {
                guard updates.isEmpty, isObjectID(command.dropFirst(8)) else { return .failure(Problem("a malformed or misplaced shallow line")) }
                shallow.append(String(command.dropFirst(8)))
                continue
            }
            if command.hasPrefix("push-cert") { return .failure(Problem("signed pushes (push-cert) are not supported")) }
            let fields = command.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 3, isObjectID(fields[0]), isObjectID(fields[1]), fields[0].count == fields[1].count else {
                return .failure(Problem("a command is not OLD NEW REF"))
            }
            if let idLength, idLength != fields[0].count { return .failure(Problem("object ids of two lengths")) }
            idLength = fields[0].count
            let update = RefUpdate(old: String(fields[0]), new: String(fields[1]), ref: String(fields[2]))
            guard isValidRef(update.ref) else { return .failure(Problem("\(update.ref.prefix(200)) is not a valid ref name")) }
            guard !(update.isCreate && update.isDelete) else { return .failure(Problem("\(update.ref) is created and deleted at once")) }
            guard seen.insert(update.ref).inserted else { return .failure(Problem("\(update.ref) is updated twice")) }
            updates.append(update)
        }
        guard !updates.isEmpty else { return .failure(Problem("no ref updates")) }
        var pushOptions: [String] = []
        if capabilities.contains("push-options") {
            while true {
                let next: (Packet, Int)
                switch packet(bytes, at: offset) {
                case .success(let found): next = found
                case .failure(let problem): return .failure(problem)
                }
                offset = next.1
                guard case .data(var line) = next.0 else { break }
                lineFeeds.append(line.last == 0x0A)
                if line.last == 0x0A { line.removeLast() }
                guard let option = String(validating: line, as: UTF8.self), !option.contains("\0") else {
                    return .failure(Problem("a push option is not UTF-8 text"))
                }
                pushOptions.append(option)
            }
        }
        let pack = Array(bytes[offset...])
        if updates.allSatisfy(\.isDelete) {
            guard pack.isEmpty else { return .failure(Problem("a pack after deletions only")) }
        } else {
            guard pack.count >= 12, pack.starts(with: Array("PACK".utf8)), pack[4] == 0, pack[5] == 0, pack[6] == 0, pack[7] == 2 || pack[7] == 3 else {
                return .failure(Problem("the pack does not start with a version 2 or 3 PACK header"))
            }
        }
        var push = GitReceivePack(shallow: shallow, updates: updates, capabilities: capabilities, pushOptions: pushOptions, pack: pack)
        push.capabilityText = capabilityText
        push.lineFeeds = lineFeeds
        return .success(push)
    }

    /// The request as bytes again (what a pinned push replays).
    public func serialized() -> [UInt8] {
        func packet(_ text: [UInt8]) -> [UInt8] {
            let length = text.count + 4
            let hex = Array("0123456789abcdef".utf8)
            return [hex[(length >> 12) & 15], hex[(length >> 8) & 15], hex[(length >> 4) & 15], hex[length & 15]] + text
        }
        var out: [UInt8] = []
        var line = 0
        func feed() -> [UInt8] {
            defer { line += 1 }
            return line < lineFeeds.count && !lineFeeds[line] ? [] : [0x0A]
        }
        for oid in shallow { out += packet(Array("shallow \(oid)".utf8) + feed()) }
        for (index, update) in updates.enumerated() {
            var text = Array("\(update.old) \(update.new) \(update.ref)".utf8)
            // A first command sent without capabilities has no NUL either.
            if index == 0, capabilityText != nil || !capabilities.isEmpty {
                text += [0] + Array((capabilityText ?? capabilities.joined(separator: " ")).utf8)
            }
            out += packet(text + feed())
        }
        out += Array("0000".utf8)
        if capabilities.contains("push-options") {
            for option in pushOptions { out += packet(Array(option.utf8) + feed()) }
            out += Array("0000".utf8)
        }
        return out + pack
    }

    /// What the approver is told about each update: created, deleted, updated; and a
    /// protected branch pattern it matches (`protected`: globs such as `refs/heads/main`,
    /// `refs/heads/release/*`). Whether an update is a force push needs the repository (is
    /// OLD an ancestor of NEW?): the endpoint asks git.
    public func labels(protected: [Glob]) -> [(ref: String, label: String)] {
        updates.map { update in
            var label = update.isCreate ? "create" : update.isDelete ? "delete" : "update"
            if let pattern = protected.first(where: { $0.matches(update.ref) }) { label += ", protected (\(pattern.pattern))" }
            return (update.ref, label)
        }
    }
}
