/// A strict reader for the YAML Airlock's own files use (profiles, overrides, tool profiles):
/// block mappings and sequences, flow `[...]` and `{...}` (which may span lines), plain,
/// single- and double-quoted scalars, `|` and `>` block scalars, and comments.
///
/// Deliberately refused, with the line: anchors, aliases and tags (alias expansion is the
/// classic way to blow up a YAML parser), tabs in indentation, duplicate keys, several
/// documents. Scalars stay strings; the caller decides what `true` or `8GiB` means.
/// Pure and allocation-light: no Foundation, no regular expressions.
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
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var line = raw
            if line.last == "\r" { line = line.dropLast() }
            var indent = 0
            var rest = line[...]
            while let c = rest.first, c == " " || c == "\t" {
                if c == "\t" { throw YAMLError(line: number, message: "tabs are not allowed for indentation") }
                indent += 1
                rest = rest.dropFirst()
            }
            if rest.isEmpty || rest.first == "#" {
                // Blank and comment lines still matter inside block scalars: keep them marked.
                var blank = Line(number: number, indent: -1, text: "")
                if rest.first == "#" {
                    blank.commentIndent = indent
                    blank.comment = rest
                }
                out.append(blank)
                continue
            }
            if indent == 0 && (rest == "---" || rest.hasPrefix("--- ")) {
                if sawContent { throw YAMLError(line: number, message: "only one YAML document is allowed") }
                continue
            }
            if indent == 0 && rest == "..." { break }
            if rest.hasPrefix("%") { throw YAMLError(line: number, message: "YAML directives are not allowed") }
            sawContent = true
            out.append(Line(number: number, indent: indent, text: rest))
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
            text == "-" || text.hasPrefix("- ")
        }

        func startsBlock(_ text: Substring, line: Int) throws(YAMLError) -> Bool {
            if isSequenceItem(text) { return true }
            return try splitKey(text, line: line) != nil
        }

        mutating func sequence(indent: Int) throws(YAMLError) -> YAMLNode {
            let start = lines[index].number
            var items: [YAMLNode] = []
            while let line = current, line.indent == indent, isSequenceItem(line.text) {
                var rest = line.text.dropFirst()
                var offset = 1
                while rest.first == " " {
                    rest = rest.dropFirst()
                    offset += 1
                }
                if rest.isEmpty || rest.first == "#" {
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
                let trimmed = rest.drop { $0 == " " }
                if trimmed.isEmpty || trimmed.first == "#" {
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
            guard let first = text.first else { return YAMLNode(value: .scalar("", quoted: false), line: line) }
            switch first {
            case "&": throw YAMLError(line: line, message: "YAML anchors are not allowed")
            case "*": throw YAMLError(line: line, message: "YAML aliases are not allowed")
            case "!": throw YAMLError(line: line, message: "YAML tags are not allowed")
            case "|", ">": return try blockScalar(header: text, line: line, parentIndent: blockIndent)
            case "[", "{":
                var source = String(text)
                while true {
                    var flow = FlowReader(text: Array(source.unicodeScalars), line: line)
                    do {
                        let node = try flow.document()
                        return node
                    } catch let error where error.message == FlowReader.incomplete {
                        // The collection continues on the next line.
                        skipBlank()
                        guard let next = current else { throw YAMLError(line: line, message: "unclosed \(first)") }
                        source += " " + next.text
                        index += 1
                    }
                }
            default:
                var flow = FlowReader(text: Array(text.unicodeScalars), line: line)
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
            guard let first = text.first else { return nil }
            if first == "\"" || first == "'" {
                var flow = FlowReader(text: Array(text.unicodeScalars), line: line)
                let key = try flow.quoted()
                flow.skipSpaces()
                guard flow.peek == ":" else { return nil }
                flow.position += 1
                guard flow.atEnd || flow.peek == " " else { return nil }
                return (key, Substring(String(String.UnicodeScalarView(flow.text[flow.position...]))))
            }
            if "[{&*!|>#".unicodeScalars.contains(first.unicodeScalars.first!) { return nil }
            var i = text.startIndex
            while i < text.endIndex {
                if text[i] == ":" {
                    let after = text.index(after: i)
                    if after == text.endIndex || text[after] == " " {
                        let key = text[..<i].trimmingTrailingSpaces()
                        return key.isEmpty ? nil : (String(key), text[after...])
                    }
                }
                if text[i] == "#", i > text.startIndex, text[text.index(before: i)] == " " { return nil }
                i = text.index(after: i)
            }
            return nil
        }
    }

    /// Scalars and flow collections within one (possibly joined) line.
    struct FlowReader {
        static let incomplete = "incomplete flow collection"
        var text: [Unicode.Scalar]
        var line: Int
        var position = 0
        var depth = 0

        init(text: [Unicode.Scalar], line: Int) {
            self.text = text
            self.line = line
        }

        var atEnd: Bool { position >= text.count }
        var peek: Unicode.Scalar? { atEnd ? nil : text[position] }

        func fail(_ message: String) -> YAMLError { YAMLError(line: line, message: message) }

        mutating func skipSpaces() {
            while let c = peek, c == " " { position += 1 }
        }

        /// After the value only a comment may follow.
        mutating func expectEnd() throws(YAMLError) {
            skipSpaces()
            if let c = peek, c != "#" { throw fail("unexpected text after the value") }
        }

        mutating func document() throws(YAMLError) -> YAMLNode {
            let node = try flowValue()
            try expectEnd()
            return node
        }

        /// A scalar in block context: quoted, or plain up to a comment.
        mutating func blockScalarValue() throws(YAMLError) -> YAMLNode {
            if let c = peek, c == "\"" || c == "'" {
                let value = try quoted()
                try expectEnd()
                return YAMLNode(value: .scalar(value, quoted: true), line: line)
            }
            var end = text.count
            for i in 0..<text.count where text[i] == "#" && i > 0 && text[i - 1] == " " {
                end = i
                break
            }
            let value = String(String.UnicodeScalarView(text[0..<end])).trimmingTrailingSpaces()
            return YAMLNode(value: .scalar(String(value), quoted: false), line: line)
        }

        mutating func flowValue() throws(YAMLError) -> YAMLNode {
            skipSpaces()
            guard let c = peek else { throw fail(Self.incomplete) }
            switch c {
            case "[": return try flowSequence()
            case "{": return try flowMapping()
            case "\"", "'": return YAMLNode(value: .scalar(try quoted(), quoted: true), line: line)
            case "&": throw fail("YAML anchors are not allowed")
            case "*": throw fail("YAML aliases are not allowed")
            case "!": throw fail("YAML tags are not allowed")
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
            if peek == "]" {
                position += 1
                depth -= 1
                return YAMLNode(value: .sequence(items), line: line)
            }
            while true {
                items.append(try flowValue())
                skipSpaces()
                guard let c = peek else { throw fail(Self.incomplete) }
                position += 1
                if c == "]" { break }
                guard c == "," else { throw fail("expected ',' or ']' in a flow sequence") }
                skipSpaces()
                if peek == "]" { position += 1; break }  // trailing comma
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
            if peek == "}" {
                position += 1
                depth -= 1
                return YAMLNode(value: .mapping(entries), line: line)
            }
            while true {
                skipSpaces()
                guard let c = peek else { throw fail(Self.incomplete) }
                let key = c == "\"" || c == "'" ? try quoted() : plainInFlow()
                skipSpaces()
                guard peek == ":" else {
                    if atEnd { throw fail(Self.incomplete) }
                    throw fail("expected ':' after key '\(key)'")
                }
                position += 1
                guard seen.insert(key).inserted else { throw fail("key '\(key)' appears twice") }
                entries.append(YAMLNode.Entry(key: key, line: line, value: try flowValue()))
                skipSpaces()
                guard let next = peek else { throw fail(Self.incomplete) }
                position += 1
                if next == "}" { break }
                guard next == "," else { throw fail("expected ',' or '}' in a flow mapping") }
                skipSpaces()
                if peek == "}" { position += 1; break }
            }
            depth -= 1
            return YAMLNode(value: .mapping(entries), line: line)
        }

        /// Plain scalar in flow context: ends at `,`, `]`, `}`, or `:` followed by a space or end.
        mutating func plainInFlow() -> String {
            let start = position
            while let c = peek {
                if c == "," || c == "]" || c == "}" || c == "[" || c == "{" { break }
                if c == ":" && (position + 1 >= text.count || text[position + 1] == " " || text[position + 1] == ","
                    || text[position + 1] == "}" || text[position + 1] == "]") { break }
                if c == "#" && position > start && text[position - 1] == " " { break }
                position += 1
            }
            return String(String(String.UnicodeScalarView(text[start..<position])).trimmingTrailingSpaces())
        }

        mutating func quoted() throws(YAMLError) -> String {
            guard let quote = peek else { throw fail("expected a quoted string") }
            position += 1
            var out = String.UnicodeScalarView()
            while true {
                guard let c = peek else { throw fail("unterminated quoted string") }
                position += 1
                if c == quote {
                    if quote == "'" && peek == "'" {  // '' is a literal quote
                        out.append("'")
                        position += 1
                        continue
                    }
                    return String(out)
                }
                if quote == "\"" && c == "\\" {
                    guard let e = peek else { throw fail("unterminated escape") }
                    position += 1
                    switch e {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "r": out.append("\r")
                    case "0": out.append("\0")
                    case "\"", "\\", "/", " ": out.append(e)
                    case "u", "x", "U":
                        let count = e == "x" ? 2 : e == "u" ? 4 : 8
                        guard position + count <= text.count,
                            let value = UInt32(String(String.UnicodeScalarView(text[position..<position + count])), radix: 16),
                            let scalar = Unicode.Scalar(value)
                        else { throw fail("bad \\\(e) escape") }
                        out.append(scalar)
                        position += count
                    default: throw fail("unknown escape \\\(e)")
                    }
                    continue
                }
                out.append(c)
            }
        }
    }
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
