/// Just enough HCL to read Terraform's CLI configuration (`.terraformrc`) and dependency
/// lock file (`.terraform.lock.hcl`): blocks (`name "label" { … }`), attributes (`key = value`)
/// whose values are strings, numbers, booleans, lists and nested objects, and the three
/// comment styles. Heredocs and expressions are refused: neither file needs them, and a file
/// Airlock cannot read exactly is refused, never guessed at. Pure.
public indirect enum HCLValue: Sendable, Equatable {
    case string(String)
    case number(String)
    case bool(Bool)
    case list([HCLValue])
    case object(HCLBody)

    public var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var strings: [String]? {
        guard case .list(let items) = self else { return nil }
        let texts = items.compactMap(\.string)
        return texts.count == items.count ? texts : nil
    }
}

public struct HCLBlock: Sendable, Equatable {
    public var type: String
    public var labels: [String]
    public var body: HCLBody
}

public struct HCLBody: Sendable, Equatable {
    public var attributes: [(name: String, value: HCLValue)] = []
    public var blocks: [HCLBlock] = []

    public static func == (a: HCLBody, b: HCLBody) -> Bool {
        a.blocks == b.blocks && a.attributes.map(\.name) == b.attributes.map(\.name) && a.attributes.map(\.value) == b.attributes.map(\.value)
    }

    public func attribute(_ name: String) -> HCLValue? {
        attributes.first { $0.name == name }?.value
    }

    public func blocks(_ type: String) -> [HCLBlock] {
        blocks.filter { $0.type == type }
    }
}

public struct HCLError: Error, Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

public enum HCL {
    public static func parse(_ text: String) throws(HCLError) -> HCLBody {
        var parser = Parser(tokens: try tokenize(text))
        let body = try parser.body(closing: false)
        return body
    }

    enum Token: Equatable {
        case word(String)
        case string(String)
        case number(String)
        case symbol(Character)
        case newline
    }

    static func tokenize(_ text: String) throws(HCLError) -> [(Token, Int)] {
        var tokens: [(Token, Int)] = []
        let chars = Array(text.unicodeScalars)
        var i = 0
        var line = 1
        func fail(_ message: String) -> HCLError { HCLError(line: line, message: message) }
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "\n":
                tokens.append((.newline, line))
                line += 1
                i += 1
            case " ", "\t", "\r":
                i += 1
            case "#":
                while i < chars.count, chars[i] != "\n" { i += 1 }
            case "/" where i + 1 < chars.count && chars[i + 1] == "/":
                while i < chars.count, chars[i] != "\n" { i += 1 }
            case "/" where i + 1 < chars.count && chars[i + 1] == "*":
                i += 2
                while i + 1 < chars.count, !(chars[i] == "*" && chars[i + 1] == "/") {
                    if chars[i] == "\n" { line += 1 }
                    i += 1
                }
                guard i + 1 < chars.count else { throw fail("unterminated /* comment") }
                i += 2
            case "{", "}", "[", "]", "=", ",", ":":
                tokens.append((.symbol(Character(c)), line))
                i += 1
            case "\"":
                i += 1
                var out = ""
                while true {
                    guard i < chars.count, chars[i] != "\n" else { throw fail("unterminated string") }
                    let d = chars[i]
                    i += 1
                    if d == "\"" { break }
                    if d == "$" || d == "%", i < chars.count, chars[i] == "{" { throw fail("templates (${…}) are not supported here") }
                    guard d == "\\" else { out.unicodeScalars.append(d); continue }
                    guard i < chars.count else { throw fail("unterminated escape") }
                    let e = chars[i]
                    i += 1
                    switch e {
                    case "n": out += "\n"
                    case "t": out += "\t"
                    case "r": out += "\r"
                    case "\"": out += "\""
                    case "\\": out += "\\"
                    default: throw fail("unsupported escape \\\(e)")
                    }
                }
                tokens.append((.string(out), line))
            case "<":
                throw fail("heredocs are not supported here")
            default:
                if c.properties.isAlphabetic || c == "_" {
                    var word = ""
                    while i < chars.count, chars[i].properties.isAlphabetic || chars[i] == "_" || chars[i] == "-"
                        || ("0"..."9").contains(chars[i]) {
                        word.unicodeScalars.append(chars[i])
                        i += 1
                    }
                    tokens.append((.word(word), line))
                } else if ("0"..."9").contains(c) || c == "-" {
                    var number = ""
                    while i < chars.count, ("0"..."9").contains(chars[i]) || chars[i] == "." || chars[i] == "-" || chars[i] == "e" {
                        number.unicodeScalars.append(chars[i])
                        i += 1
                    }
                    tokens.append((.number(number), line))
                } else {
                    throw fail("unexpected character '\(c)'")
                }
            }
        }
        return tokens
    }

    struct Parser {
        let tokens: [(Token, Int)]
        var index = 0
        var depth = 0

        init(tokens: [(Token, Int)]) { self.tokens = tokens }

        var line: Int { index < tokens.count ? tokens[index].1 : (tokens.last?.1 ?? 1) }
        func fail(_ message: String) -> HCLError { HCLError(line: line, message: message) }

        mutating func skipNewlines() {
            while index < tokens.count, tokens[index].0 == .newline { index += 1 }
        }

        mutating func body(closing: Bool) throws(HCLError) -> HCLBody {
            depth += 1
            defer { depth -= 1 }
            guard depth <= 32 else { throw fail("nested too deeply") }
            var body = HCLBody()
            while true {
                skipNewlines()
                guard index < tokens.count else {
                    if closing { throw fail("missing }") }
                    return body
                }
                if tokens[index].0 == .symbol("}") {
                    guard closing else { throw fail("unexpected }") }
                    index += 1
                    return body
                }
                let name: String
                switch tokens[index].0 {
                case .word(let word): name = word
                // `"hashicorp/aws" = "…"` (dev_overrides, object keys).
                case .string(let key) where index + 1 < tokens.count && tokens[index + 1].0 == .symbol("="):
                    index += 1
                    body.attributes.append((key, try attributeValue()))
                    continue
                default: throw fail("expected a name")
                }
                index += 1
                var labels: [String] = []
                while index < tokens.count, case .string(let label) = tokens[index].0 {
                    labels.append(label)
                    index += 1
                }
                guard index < tokens.count else { throw fail("unexpected end after \(name)") }
                switch tokens[index].0 {
                case .symbol("=") where labels.isEmpty:
                    index += 1
                    body.attributes.append((name, try value()))
                case .symbol("{"):
                    index += 1
                    body.blocks.append(HCLBlock(type: name, labels: labels, body: try self.body(closing: true)))
                default:
                    throw fail("expected = or { after \(name)")
                }
            }
        }

        mutating func attributeValue() throws(HCLError) -> HCLValue {
            guard index < tokens.count, tokens[index].0 == .symbol("=") else { throw fail("expected =") }
            index += 1
            return try value()
        }

        mutating func value() throws(HCLError) -> HCLValue {
            skipNewlines()
            guard index < tokens.count else { throw fail("expected a value") }
            let (token, _) = tokens[index]
            index += 1
            switch token {
            case .string(let text): return .string(text)
            case .number(let text): return .number(text)
            case .word("true"): return .bool(true)
            case .word("false"): return .bool(false)
            case .symbol("["):
                var items: [HCLValue] = []
                while true {
                    skipNewlines()
                    guard index < tokens.count else { throw fail("missing ]") }
                    if tokens[index].0 == .symbol("]") { index += 1; return .list(items) }
                    items.append(try value())
                    skipNewlines()
                    if index < tokens.count, tokens[index].0 == .symbol(",") { index += 1 }
                }
            case .symbol("{"):
                return .object(try body(closing: true))
            default:
                throw fail("expressions are not supported here")
            }
        }
    }
}
