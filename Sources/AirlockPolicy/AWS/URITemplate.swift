/// A botocore `requestUri` template: `/{Bucket}/{Key+}?uploads`. `{X}` matches one path
/// segment, `{X+}` the rest (slashes included); literals after `?` must be in the query.
struct URITemplate: Sendable {
    enum Token: Sendable {
        case literal([UInt8])
        case label(String)
        case greedy(String)
    }

    let tokens: [Token]
    let queryLiterals: [(key: String, value: String?)]
    /// Ranking facts (docs/design.md §4.4): more literal characters and fewer greedy labels win.
    let literalLength: Int
    let greedyCount: Int

    init(_ template: String) {
        let parts = template.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var tokens: [Token] = []
        var literal: [UInt8] = []
        var bytes = Array(parts[0].utf8)[...]
        while let byte = bytes.first {
            bytes = bytes.dropFirst()
            guard byte == UInt8(ascii: "{"), let close = bytes.firstIndex(of: UInt8(ascii: "}")) else {
                literal.append(byte)
                continue
            }
            if !literal.isEmpty { tokens.append(.literal(literal)); literal = [] }
            var name = String(decoding: bytes[bytes.startIndex..<close], as: UTF8.self)
            bytes = bytes[(close + 1)...]
            if name.hasSuffix("+") {
                name.removeLast()
                tokens.append(.greedy(name))
            } else {
                tokens.append(.label(name))
            }
        }
        if !literal.isEmpty { tokens.append(.literal(literal)) }
        self.tokens = tokens
        var query: [(String, String?)] = []
        if parts.count > 1 {
            for item in parts[1].split(separator: "&") {
                let kv = item.split(separator: "=", maxSplits: 1)
                query.append((String(kv[0]), kv.count > 1 ? String(kv[1]) : nil))
            }
        }
        queryLiterals = query
        literalLength = tokens.reduce(0) { total, token in
            if case .literal(let bytes) = token { return total + bytes.count }
            return total
        }
        greedyCount = tokens.reduce(0) { total, token in
            if case .greedy = token { return total + 1 }
            return total
        }
    }

    /// The first path segment when the template fixes it: `/2015-03-31/functions/{Name}` →
    /// "2015-03-31", `/tags` → "tags"; nil when a label begins it (`/{Bucket}`).
    var firstSegment: String? {
        guard case .literal(let bytes)? = tokens.first, bytes.first == 0x2F else { return nil }
        let rest = bytes.dropFirst()
        if let slash = rest.firstIndex(of: 0x2F) {
            return rest.startIndex == slash ? nil : String(decoding: rest[..<slash], as: UTF8.self)
        }
        // The whole literal is the segment only if nothing follows it.
        return tokens.count == 1 && !rest.isEmpty ? String(decoding: rest, as: UTF8.self) : nil
    }

    /// The ranking facts as one comparable value: more query literals, more required members
    /// (added by the operation), more literal characters, fewer greedy labels.
    var rank: Rank { Rank(queryLiterals: queryLiterals.count, required: 0, literal: literalLength, greedy: -greedyCount) }

    struct Rank: Comparable, Sendable {
        var queryLiterals: Int, required: Int, literal: Int, greedy: Int
        static func < (a: Rank, b: Rank) -> Bool {
            (a.queryLiterals, a.required, a.literal, a.greedy) < (b.queryLiterals, b.required, b.literal, b.greedy)
        }
    }

    /// The label values (still percent-encoded) if `path` matches, else nil.
    func match(_ path: [UInt8]) -> [String: String]? {
        var spans: [(name: String, range: Range<Int>)] = []
        return match(path, spans: &spans)
    }

    /// `spans`: a buffer the caller keeps across templates (one allocation, not one a try).
    func match(_ path: [UInt8], spans: inout [(name: String, range: Range<Int>)]) -> [String: String]? {
        // Where each label matched, as ranges: strings are made once, for a match (trying
        // each end of a label made a string per try; BENCHMARKS.md).
        spans.removeAll(keepingCapacity: true)
        guard matchFrom(0, path[...], &spans) else { return nil }
        var bindings: [String: String] = [:]
        for span in spans { bindings[span.name] = String(decoding: path[span.range], as: UTF8.self) }
        return bindings
    }

    private func matchFrom(_ index: Int, _ rest: ArraySlice<UInt8>, _ spans: inout [(name: String, range: Range<Int>)]) -> Bool {
        guard index < tokens.count else { return rest.isEmpty }
        switch tokens[index] {
        case .literal(let bytes):
            guard rest.starts(with: bytes) else { return false }
            return matchFrom(index + 1, rest.dropFirst(bytes.count), &spans)
        case .label(let name), .greedy(let name):
            let greedy: Bool
            if case .greedy = tokens[index] { greedy = true } else { greedy = false }
            // One or more bytes; a plain label stops at '/'. Longest first, then shorter.
            var end = rest.startIndex
            while end < rest.endIndex && (greedy || rest[end] != UInt8(ascii: "/")) { end += 1 }
            while end > rest.startIndex {
                spans.append((name, rest.startIndex..<end))
                if matchFrom(index + 1, rest[end...], &spans) { return true }
                spans.removeLast()
                end -= 1
            }
            return false
        }
    }
}
