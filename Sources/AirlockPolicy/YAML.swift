/// A strict reader for the YAML Airlock's own files use (profiles, overrides, tool profiles):
/// block mappings and sequences, flow `[...]` and `{...}` (which may span lines), plain,
/// single- and double-quoted scalars, `|` and `>` block scalars, and comments.
///
/// Deliberately refused, with the line: anchors, aliases and tags (alias expansion is the
/// classic way to blow up a YAML parser), tabs in indentation, duplicate keys, several
/// documents. Scalars stay strings; the caller decides what `true` or `8GiB` means.
/// Pure and allocation-light: no Foundation, no regular expressions. It scans UTF-8 bytes, not
/// Characters: every byte YAML's syntax cares about is ASCII, which never occurs inside a
/// multi-byte UTF-8 sequence. (Reading profiles character by character took 2 ms for a
/// 6.7 KB tool profile, on every `airlock run`: `airlock-bench parse`, BENCHMARKS.md.)
public struct YAMLNode: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case scalar(String, quoted: Bool)
        case mapping([Entry])
        case sequence([YAMLNode])
    }

    public struct Entry: Sendable, Equatable {
        public var key: String
        public var line: Int
        public var value: YAMLNode
    }

    public var value: Value
    /// 1-based line where the node starts.
    public var line: Int

    public var scalar: String? {
        if case .scalar(let text, _) = value { return text }
        return nil
    }

    /// A plain `null`, `~` or empty value.
    public var isNull: Bool {
        if case .scalar(let text, let quoted) = value { return !quoted && (text.isEmpty || text == "null" || text == "~") }
        return false
    }
}

public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

public enum YAML {
    /// Parses one document. Returns nil for a document with no content.
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode? {
        var reader = BlockReader(lines: try logicalLines(text))
        guard reader.index < reader.lines.count else { return nil }
        let first = reader.lines[reader.index]
        let node = try reader.block(indent: first.indent, line: first.number)
        if reader.index < reader.lines.count {
            let stray = reader.lines[reader.index]
            throw YAMLError(line: stray.number, message: "unexpected indentation or content")
        }
        return node
    }

    struct Line {
        var number: Int
        var indent: Int
        var text: Substring  // without indentation; comments not yet removed
        /// A line that starts with `#`: skipped like a blank line (`indent` -1), except inside
        /// a block scalar, where it is content (its own indentation is kept here).
        var commentIndent: Int? = nil
        var comment: Substring = ""
    }

    static func logicalLines(_ text: String) throws(YAMLError) -> [Line] {
        var out: [Line] = []
        var number = 0
        var sawContent = false
        let utf8 = text.utf8
        var lineStart = utf8.startIndex
        while true {
            let end = utf8[lineStart...].firstIndex(of: ASCII.newline) ?? utf8.endIndex
            defer { if end < utf8.endIndex { lineStart = utf8.index(after: end) } }
            number += 1
            var lineEnd = end
            if lineEnd > lineStart, utf8[utf8.index(before: lineEnd)] == ASCII.carriageReturn { lineEnd = utf8.index(before: lineEnd) }
            var indent = 0
            var contentStart = lineStart
            while contentStart < lineEnd, utf8[contentStart] == ASCII.space || utf8[contentStart] == ASCII.tab {
                if utf8[contentStart] == ASCII.tab { throw YAMLError(line: number, message: "tabs are not allowed for indentation") }
                indent += 1
                contentStart = utf8.index(after: contentStart)
            }
            let rest = Substring(utf8[contentStart..<lineEnd])
            let firstByte = rest.utf8.first
            if firstByte == nil || firstByte == ASCII.hash {
                // Blank and comment lines still matter inside block scalars: keep them marked.
                var blank = Line(number: number, indent: -1, text: "")
                if firstByte == ASCII.hash {
                    blank.commentIndent = indent
                    blank.comment = rest
                }
                out.append(blank)
            } else if indent == 0 && (rest == "---" || rest.utf8.starts(with: "--- ".utf8)) {
                if sawContent { throw YAMLError(line: number, message: "only one YAML document is allowed") }
            } else if indent == 0 && rest == "..." {
                break
            } else {
                if firstByte == ASCII.percent { throw YAMLError(line: number, message: "YAML directives are not allowed") }
                sawContent = true
                out.append(Line(number: number, indent: indent, text: rest))
            }
            if end == utf8.endIndex { break }
        }
        return out
    }

    struct BlockReader {
        var lines: [Line]
        var index = 0

        init(lines: [Line]) {
            self.lines = lines
            skipBlank()
        }

        mutating func skipBlank() {
            while index < lines.count, lines[index].indent < 0 { index += 1 }
        }

        var current: Line? {
            index < lines.count ? lines[index] : nil
        }

        /// A node whose first line is the current line, at `indent`.
        mutating func block(indent: Int, line: Int) throws(YAMLError) -> YAMLNode {
            guard let first = current else { return YAMLNode(value: .scalar("", quoted: false), line: line) }
            if isSequenceItem(first.text) { return try sequence(indent: indent) }
            if try splitKey(first.text, line: first.number) != nil { return try mapping(indent: indent) }
            // A lone scalar (a document that is just a value, or a flow collection).
            index += 1
            let value = try inlineValue(first.text, line: first.number, blockIndent: indent)
            skipBlank()
            return value
        }

        func isSequenceItem(_ text: Substring) -> Bool {
            let utf8 = text.utf8
            guard utf8.first == ASCII.dash else { return false }
            let after = utf8.index(after: utf8.startIndex)
            return after == utf8.endIndex || utf8[after] == ASCII.space
        }

        func startsBlock(_ text: Substring, line: Int) throws(YAMLError) -> Bool {
            if isSequenceItem(text) { return true }
            return try splitKey(text, line: line) != nil
        }

        mutating func sequence(indent: Int) throws(YAMLError) -> YAMLNode {
            let start = lines[index].number
            var items: [YAMLNode] = []
            while let line = current, line.indent == indent, isSequenceItem(line.text) {
                let afterDash = line.text.utf8.dropFirst()
                let rest = Substring(afterDash.drop { $0 == ASCII.space })
                let offset = 1 + afterDash.count - rest.utf8.count
                if rest.isEmpty || rest.utf8.first == ASCII.hash {
                    index += 1
                    skipBlank()
                    if let next = current, next.indent > indent {
                        items.append(try block(indent: next.indent, line: next.number))
                    } else {
                        items.append(YAMLNode(value: .scalar("", quoted: false), line: line.number))
                    }
                } else if try startsBlock(rest, line: line.number) {
                    // "- key: value" or "- - x": the rest is a block that starts at this column.
                    lines[index] = Line(number: line.number, indent: indent + offset, text: rest)
                    items.append(try block(indent: indent + offset, line: line.number))
                } else {
                    index += 1
                    items.append(try inlineValue(rest, line: line.number, blockIndent: indent))
                    skipBlank()
                }
            }
            if let line = current, line.indent > indent {
                throw YAMLError(line: line.number, message: "unexpected indentation")
            }
            return YAMLNode(value: .sequence(items), line: start)
        }

        mutating func mapping(indent: Int) throws(YAMLError) -> YAMLNode {
            let start = lines[index].number
            var entries: [YAMLNode.Entry] = []
            var seen = Set<String>()
            while let line = current, line.indent == indent {
                if isSequenceItem(line.text) { break }
                guard let (key, rest) = try splitKey(line.text, line: line.number) else {
                    throw YAMLError(line: line.number, message: "expected 'key: value'")
                }
                guard seen.insert(key).inserted else {
                    throw YAMLError(line: line.number, message: "key '\(key)' appears twice")
                }
                let value: YAMLNode
                let trimmed = Substring(rest.utf8.drop { $0 == ASCII.space })
                if trimmed.isEmpty || trimmed.utf8.first == ASCII.hash {
                    index += 1
                    skipBlank()
                    if let next = current, next.indent > indent {
                        value = try block(indent: next.indent, line: next.number)
                    } else if let next = current, next.indent == indent, isSequenceItem(next.text) {
                        value = try sequence(indent: indent)  // "key:\n- a" (same indentation)
                    } else {
                        value = YAMLNode(value: .scalar("", quoted: false), line: line.number)
                    }
                } else {
                    index += 1
                    value = try inlineValue(trimmed, line: line.number, blockIndent: indent)
                    skipBlank()
                }
                entries.append(YAMLNode.Entry(key: key, line: line.number, value: value))
            }
            if let line = current, line.indent > indent {
                throw YAMLError(line: line.number, message: "unexpected indentation")
            }
            return YAMLNode(value: .mapping(entries), line: start)
        }

        /// The value on a line after `key:` or `- `. Flow collections may continue on the
        /// following lines; block scalars take the more-indented lines after them.
        mutating func inlineValue(_ text: Substring, line: Int, blockIndent: Int) throws(YAMLError) -> YAMLNode {
            guard let first = text.utf8.first else { return YAMLNode(value: .scalar("", quoted: false), line: line) }
            switch first {
            case ASCII.ampersand: throw YAMLError(line: line, message: "YAML anchors are not allowed")
            case ASCII.asterisk: throw YAMLError(line: line, message: "YAML aliases are not allowed")
            case ASCII.bang: throw YAMLError(line: line, message: "YAML tags are not allowed")
            case ASCII.pipe, ASCII.greater: return try blockScalar(header: text, line: line, parentIndent: blockIndent)
            case ASCII.openBracket, ASCII.openBrace:
                var source = Array(text.utf8)
                while true {
                    var flow = FlowReader(text: source, line: line)
                    do {
                        let node = try flow.document()
                        return node
                    } catch let error where error.message == FlowReader.incomplete {
                        // The collection continues on the next line. (Parsed again from its
                        // start: a few lines of bytes, microseconds.)
                        skipBlank()
                        guard let next = current else { throw YAMLError(line: line, message: "unclosed \(first == ASCII.openBracket ? "[" : "{")") }
                        source.append(ASCII.space)
                        source.append(contentsOf: next.text.utf8)
                        index += 1
                    }
                }
            default:
                var flow = FlowReader(text: Array(text.utf8), line: line)
                return try flow.blockScalarValue()
            }
        }

        mutating func blockScalar(header: Substring, line: Int, parentIndent: Int) throws(YAMLError) -> YAMLNode {
            let folded = header.first == ">"
            var chomp = header.dropFirst()
            var strip = false, keep = false
            if chomp.first == "-" { strip = true; chomp = chomp.dropFirst() } else if chomp.first == "+" { keep = true; chomp = chomp.dropFirst() }
            let tail = chomp.drop { $0 == " " }
            guard tail.isEmpty || tail.first == "#" else {
                throw YAMLError(line: line, message: "unsupported block scalar header '\(header)'")
            }
            var collected: [Substring] = []
            var contentIndent: Int?
            while index < lines.count {
                let next = lines[index]
                if next.indent < 0 {
                    // A `#` line indented like the content is content (`# a comment` in a
                    // file a profile writes), one indented less ends nothing here.
                    if let commentIndent = next.commentIndent, commentIndent > parentIndent,
                       commentIndent >= (contentIndent ?? commentIndent) {
                        let indent = contentIndent ?? commentIndent
                        contentIndent = indent
                        collected.append(Substring(String(repeating: " ", count: commentIndent - indent)) + next.comment)
                    } else {
                        collected.append("")
                    }
                    index += 1
                    continue
                }
                if next.indent <= parentIndent { break }
                let indent = contentIndent ?? next.indent
                contentIndent = indent
                if next.indent < indent { break }
                collected.append(Substring(String(repeating: " ", count: next.indent - indent)) + next.text)
                index += 1
            }
            // Trailing blank lines belong to chomping, not content.
            var trailing = 0
            while collected.last == "" {
                collected.removeLast()
                trailing += 1
            }
            var text = folded ? Self.fold(collected) : collected.joined(separator: "\n")
            if !strip && !collected.isEmpty { text += "\n" }
            if keep { text += String(repeating: "\n", count: trailing) }
            skipBlank()
            return YAMLNode(value: .scalar(text, quoted: true), line: line)
        }

        static func fold(_ lines: [Substring]) -> String {
            var out = ""
            for (i, line) in lines.enumerated() {
                if i > 0 { out += line.isEmpty || lines[i - 1].isEmpty || line.first == " " ? "\n" : " " }
                out += line
            }
            return out
        }

        /// Splits `key: rest` (plain or quoted key). nil when the line is not a mapping entry.
        func splitKey(_ text: Substring, line: Int) throws(YAMLError) -> (String, Substring)? {
            let utf8 = text.utf8
            guard let first = utf8.first else { return nil }
            if first == ASCII.doubleQuote || first == ASCII.singleQuote {
                var flow = FlowReader(text: Array(utf8), line: line)
                let key = try flow.quoted()
                flow.skipSpaces()
                guard flow.peek == ASCII.colon else { return nil }
                flow.position += 1
                guard flow.atEnd || flow.peek == ASCII.space else { return nil }
                return (key, Substring(String(decoding: flow.text[flow.position...], as: UTF8.self)))
            }
            if "[{&*!|>#".utf8.contains(first) { return nil }
            var i = utf8.startIndex
            var afterSpace = false
            while i < utf8.endIndex {
                let byte = utf8[i]
                let after = utf8.index(after: i)
                if byte == ASCII.colon, after == utf8.endIndex || utf8[after] == ASCII.space {
                    let key = text[..<i].trimmingTrailingSpaces()
                    return key.isEmpty ? nil : (String(key), text[after...])
                }
                if byte == ASCII.hash && afterSpace { return nil }
                afterSpace = byte == ASCII.space
                i = after
            }
            return nil
        }
    }

    /// Scalars and flow collections within one (possibly joined) line, as UTF-8 bytes.
    struct FlowReader {
        static let incomplete = "incomplete flow collection"
        var text: [UInt8]
        var line: Int
        var position = 0
        var depth = 0

        init(text: [UInt8], line: Int) {
            self.text = text
            self.line = line
        }

        var atEnd: Bool { position >= text.count }
        var peek: UInt8? { atEnd ? nil : text[position] }

        func fail(_ message: String) -> YAMLError { YAMLError(line: line, message: message) }

        mutating func skipSpaces() {
            while let c = peek, c == ASCII.space { position += 1 }
        }

        /// The bytes as a string, without trailing spaces and tabs.
        func string(_ range: Range<Int>) -> String {
            var end = range.upperBound
            while end > range.lowerBound, text[end - 1] == ASCII.space || text[end - 1] == ASCII.tab { end -= 1 }
            return String(decoding: text[range.lowerBound..<end], as: UTF8.self)
        }

        /// After the value only a comment may follow.
        mutating func expectEnd() throws(YAMLError) {
            skipSpaces()
            if let c = peek, c != ASCII.hash { throw fail("unexpected text after the value") }
        }

        mutating func document() throws(YAMLError) -> YAMLNode {
            let node = try flowValue()
            try expectEnd()
            return node
        }

        /// A scalar in block context: quoted, or plain up to a comment.
        mutating func blockScalarValue() throws(YAMLError) -> YAMLNode {
            if let c = peek, c == ASCII.doubleQuote || c == ASCII.singleQuote {
                let value = try quoted()
                try expectEnd()
                return YAMLNode(value: .scalar(value, quoted: true), line: line)
            }
            var end = text.count
            for i in 1..<max(text.count, 1) where text[i] == ASCII.hash && text[i - 1] == ASCII.space {
                end = i
                break
            }
            return YAMLNode(value: .scalar(string(0..<end), quoted: false), line: line)
        }

        mutating func flowValue() throws(YAMLError) -> YAMLNode {
            skipSpaces()
            guard let c = peek else { throw fail(Self.incomplete) }
            switch c {
            case ASCII.openBracket: return try flowSequence()
            case ASCII.openBrace: return try flowMapping()
            case ASCII.doubleQuote, ASCII.singleQuote: return YAMLNode(value: .scalar(try quoted(), quoted: true), line: line)
            case ASCII.ampersand: throw fail("YAML anchors are not allowed")
            case ASCII.asterisk: throw fail("YAML aliases are not allowed")
            case ASCII.bang: throw fail("YAML tags are not allowed")
            default: return YAMLNode(value: .scalar(plainInFlow(), quoted: false), line: line)
            }
        }

        mutating func enter() throws(YAMLError) {
            depth += 1
            if depth > 32 { throw fail("flow collections nest too deeply") }
        }

        mutating func flowSequence() throws(YAMLError) -> YAMLNode {
            try enter()
            position += 1
            var items: [YAMLNode] = []
            skipSpaces()
            if peek == ASCII.closeBracket {
                position += 1
                depth -= 1
                return YAMLNode(value: .sequence(items), line: line)
            }
            while true {
                items.append(try flowValue())
                skipSpaces()
                guard let c = peek else { throw fail(Self.incomplete) }
                position += 1
                if c == ASCII.closeBracket { break }
                guard c == ASCII.comma else { throw fail("expected ',' or ']' in a flow sequence") }
                skipSpaces()
                if peek == ASCII.closeBracket { position += 1; break }  // trailing comma
            }
            depth -= 1
            return YAMLNode(value: .sequence(items), line: line)
        }

        mutating func flowMapping() throws(YAMLError) -> YAMLNode {
            try enter()
            position += 1
            var entries: [YAMLNode.Entry] = []
            var seen = Set<String>()
            skipSpaces()
            if peek == ASCII.closeBrace {
                position += 1
                depth -= 1
                return YAMLNode(value: .mapping(entries), line: line)
            }
            while true {
                skipSpaces()
                guard let c = peek else { throw fail(Self.incomplete) }
                let key = c == ASCII.doubleQuote || c == ASCII.singleQuote ? try quoted() : plainInFlow()
                skipSpaces()
                guard peek == ASCII.colon else {
                    if atEnd { throw fail(Self.incomplete) }
                    throw fail("expected ':' after key '\(key)'")
                }
                position += 1
                guard seen.insert(key).inserted else { throw fail("key '\(key)' appears twice") }
                entries.append(YAMLNode.Entry(key: key, line: line, value: try flowValue()))
                skipSpaces()
                guard let next = peek else { throw fail(Self.incomplete) }
                position += 1
                if next == ASCII.closeBrace { break }
                guard next == ASCII.comma else { throw fail("expected ',' or '}' in a flow mapping") }
                skipSpaces()
                if peek == ASCII.closeBrace { position += 1; break }
            }
            depth -= 1
            return YAMLNode(value: .mapping(entries), line: line)
        }

        /// Plain scalar in flow context: ends at `,`, `]`, `}`, or `:` followed by a space or end.
        mutating func plainInFlow() -> String {
            let start = position
            while let c = peek {
                if c == ASCII.comma || c == ASCII.closeBracket || c == ASCII.closeBrace || c == ASCII.openBracket
                    || c == ASCII.openBrace { break }
                if c == ASCII.colon {
                    let next = position + 1 < text.count ? text[position + 1] : nil
                    if next == nil || next == ASCII.space || next == ASCII.comma || next == ASCII.closeBrace
                        || next == ASCII.closeBracket { break }
                }
                if c == ASCII.hash && position > start && text[position - 1] == ASCII.space { break }
                position += 1
            }
            return string(start..<position)
        }

        mutating func quoted() throws(YAMLError) -> String {
            guard let quote = peek else { throw fail("expected a quoted string") }
            position += 1
            var out: [UInt8] = []
            while true {
                guard let c = peek else { throw fail("unterminated quoted string") }
                position += 1
                if c == quote {
                    if quote == ASCII.singleQuote && peek == ASCII.singleQuote {  // '' is a literal quote
                        out.append(ASCII.singleQuote)
                        position += 1
                        continue
                    }
                    return String(decoding: out, as: UTF8.self)
                }
                if quote == ASCII.doubleQuote && c == ASCII.backslash {
                    guard let e = peek else { throw fail("unterminated escape") }
                    position += 1
                    switch e {
                    case UInt8(ascii: "n"): out.append(ASCII.newline)
                    case UInt8(ascii: "t"): out.append(ASCII.tab)
                    case UInt8(ascii: "r"): out.append(ASCII.carriageReturn)
                    case UInt8(ascii: "0"): out.append(0)
                    case ASCII.doubleQuote, ASCII.backslash, UInt8(ascii: "/"), ASCII.space: out.append(e)
                    case UInt8(ascii: "u"), UInt8(ascii: "x"), UInt8(ascii: "U"):
                        let count = e == UInt8(ascii: "x") ? 2 : e == UInt8(ascii: "u") ? 4 : 8
                        guard position + count <= text.count,
                            let value = UInt32(String(decoding: text[position..<position + count], as: UTF8.self), radix: 16),
                            let scalar = Unicode.Scalar(value)
                        else { throw fail("bad \\\(Character(Unicode.Scalar(e))) escape") }
                        out.append(contentsOf: String(Character(scalar)).utf8)
                        position += count
                    default: throw fail("unknown escape \\\(Character(Unicode.Scalar(e)))")
                    }
                    continue
                }
                out.append(c)
            }
        }
    }
}

/// The bytes of YAML's syntax.
enum ASCII {
    static let tab = UInt8(ascii: "\t"), newline = UInt8(ascii: "\n"), carriageReturn = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " "), bang = UInt8(ascii: "!"), doubleQuote = UInt8(ascii: "\""), hash = UInt8(ascii: "#")
    static let percent = UInt8(ascii: "%"), ampersand = UInt8(ascii: "&"), singleQuote = UInt8(ascii: "'")
    static let asterisk = UInt8(ascii: "*"), comma = UInt8(ascii: ","), dash = UInt8(ascii: "-"), colon = UInt8(ascii: ":")
    static let greater = UInt8(ascii: ">"), openBracket = UInt8(ascii: "["), backslash = UInt8(ascii: "\\")
    static let closeBracket = UInt8(ascii: "]"), openBrace = UInt8(ascii: "{"), pipe = UInt8(ascii: "|"), closeBrace = UInt8(ascii: "}")
}

extension StringProtocol {
    func trimmingTrailingSpaces() -> SubSequence {
        var end = endIndex
        while end > startIndex {
            let before = index(before: end)
            guard self[before] == " " || self[before] == "\t" else { break }
            end = before
        }
        return self[startIndex..<end]
    }
}
