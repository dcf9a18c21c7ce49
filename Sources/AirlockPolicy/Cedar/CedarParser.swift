/// A Cedar policy file that does not parse: where and what was expected.
public struct CedarSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var location: CedarLocation
    public var message: String

    public var description: String { "line \(location.line), column \(location.column): \(message)" }
}

/// Cedar's syntax (the reference's grammar, docs/policy.md): a file is read whole, strictly;
/// the first error stops it with its line and column. Templates (`?principal`) are refused:
/// Airlock's policies are static.
public enum CedarParser {
    /// Extension functions and the methods Cedar knows; anything else is a syntax error, as
    /// in the reference.
    static let functions: Set<String> = ["ip", "decimal"]
    static let methods: Set<String> = ["contains", "containsAll", "containsAny", "isEmpty", "lessThan", "lessThanOrEqual",
                                       "greaterThan", "greaterThanOrEqual", "isIpv4", "isIpv6", "isLoopback",
                                       "isMulticast", "isInRange"]
    /// The built-in methods' arity is checked as the policy is read (extension methods and
    /// functions are checked by the validator, and fail when evaluated).
    static let builtinArity: [String: Int] = ["contains": 1, "containsAll": 1, "containsAny": 1, "isEmpty": 0]
    static let reserved: Set<String> = ["true", "false", "if", "then", "else", "in", "is", "like", "has", "__cedar"]

    public static func parse(_ text: String, idPrefix: String = "policy") throws(CedarSyntaxError) -> [CedarPolicy] {
        var parser = try Parser(text: text)
        var policies: [CedarPolicy] = []
        while !parser.atEnd {
            policies.append(try parser.policy(id: "\(idPrefix)\(policies.count)"))
        }
        return policies
    }

    /// One expression (tests and `airlock policy` tools).
    public static func parseExpression(_ text: String) throws(CedarSyntaxError) -> CedarExpr {
        var parser = try Parser(text: text)
        let expr = try parser.expression()
        guard parser.atEnd else { throw parser.error("unexpected \(parser.peek.spelled) after the expression") }
        return expr
    }

    enum Token: Equatable {
        case identifier(String)
        case string(String)
        case integer(String)
        case punctuation(String)
        case end

        var spelled: String {
            switch self {
            case .identifier(let name): return "`\(name)`"
            case .string(let raw): return "string \"\(raw)\""
            case .integer(let digits): return "number \(digits)"
            case .punctuation(let mark): return "`\(mark)`"
            case .end: return "end of file"
            }
        }
    }

    struct Lexed {
        var token: Token
        var location: CedarLocation
        var offset: Int
        var endOffset: Int
    }

    static func lex(_ text: String) throws(CedarSyntaxError) -> [Lexed] {
        let scalars = Array(text.unicodeScalars)
        var tokens: [Lexed] = []
        var index = 0, line = 1, column = 1
        func advance() {
            if scalars[index] == "\n" { line += 1; column = 1 } else { column += 1 }
            index += 1
        }
        func isIdentStart(_ s: Unicode.Scalar) -> Bool { s == "_" || ("a"..."z").contains(s) || ("A"..."Z").contains(s) }
        func isIdentPart(_ s: Unicode.Scalar) -> Bool { isIdentStart(s) || ("0"..."9").contains(s) }
        let twoCharacter: Set<String> = ["::", "==", "!=", "<=", ">=", "&&", "||"]
        let oneCharacter: Set<Unicode.Scalar> = ["(", ")", "[", "]", "{", "}", ",", ";", ":", ".", "@", "!", "-", "+", "*", "<", ">", "?", "/", "%", "="]
        while index < scalars.count {
            let s = scalars[index]
            if s == " " || s == "\t" || s == "\n" || s == "\r" { advance(); continue }
            if s == "/", index + 1 < scalars.count, scalars[index + 1] == "/" {
                while index < scalars.count, scalars[index] != "\n" { advance() }
                continue
            }
            let start = CedarLocation(line: line, column: column), startOffset = index
            if isIdentStart(s) {
                var name = String.UnicodeScalarView()
                while index < scalars.count, isIdentPart(scalars[index]) { name.append(scalars[index]); advance() }
                tokens.append(Lexed(token: .identifier(String(name)), location: start, offset: startOffset, endOffset: index))
            } else if ("0"..."9").contains(s) {
                var digits = String.UnicodeScalarView()
                while index < scalars.count, ("0"..."9").contains(scalars[index]) { digits.append(scalars[index]); advance() }
                if index < scalars.count, isIdentStart(scalars[index]) {
                    throw CedarSyntaxError(location: start, message: "invalid number: a letter follows its digits")
                }
                tokens.append(Lexed(token: .integer(String(digits)), location: start, offset: startOffset, endOffset: index))
            } else if s == "\"" {
                advance()
                var raw = String.UnicodeScalarView()
                var closed = false
                while index < scalars.count {
                    let c = scalars[index]
                    if c == "\"" { advance(); closed = true; break }
                    if c == "\\" {
                        raw.append(c); advance()
                        guard index < scalars.count else { break }
                    }
                    raw.append(scalars[index]); advance()
                }
                guard closed else { throw CedarSyntaxError(location: start, message: "a string is not closed: expected `\"`") }
                tokens.append(Lexed(token: .string(String(raw)), location: start, offset: startOffset, endOffset: index))
            } else if index + 1 < scalars.count, twoCharacter.contains(String(String.UnicodeScalarView([s, scalars[index + 1]]))) {
                let mark = String(String.UnicodeScalarView([s, scalars[index + 1]]))
                advance(); advance()
                tokens.append(Lexed(token: .punctuation(mark), location: start, offset: startOffset, endOffset: index))
            } else if oneCharacter.contains(s) {
                advance()
                tokens.append(Lexed(token: .punctuation(String(s)), location: start, offset: startOffset, endOffset: index))
            } else {
                throw CedarSyntaxError(location: start, message: "unexpected character \(CedarEntityUID.quote(String(s)))")
            }
        }
        tokens.append(Lexed(token: .end, location: CedarLocation(line: line, column: column), offset: index, endOffset: index))
        return tokens
    }

    /// A string literal's text with its escapes replaced (Rust's, as the reference reads them);
    /// in a `like` pattern `\*` is a literal star and `*` the wildcard.
    static func unescape(_ raw: String, pattern: Bool) -> [CedarPatternElement]? {
        let scalars = Array(raw.unicodeScalars)
        var out: [CedarPatternElement] = []
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            if c == "*" && pattern { out.append(.wildcard); i += 1; continue }
            guard c == "\\" else { out.append(.scalar(c)); i += 1; continue }
            i += 1
            guard i < scalars.count else { return nil }
            switch scalars[i] {
            case "n": out.append(.scalar("\n")); i += 1
            case "r": out.append(.scalar("\r")); i += 1
            case "t": out.append(.scalar("\t")); i += 1
            case "\\": out.append(.scalar("\\")); i += 1
            case "0": out.append(.scalar("\0")); i += 1
            case "'": out.append(.scalar("'")); i += 1
            case "\"": out.append(.scalar("\"")); i += 1
            case "*" where pattern: out.append(.scalar("*")); i += 1
            case "x":
                guard i + 2 < scalars.count, let value = UInt8(String(String.UnicodeScalarView(scalars[(i + 1)...(i + 2)])), radix: 16),
                      value <= 0x7F else { return nil }
                out.append(.scalar(Unicode.Scalar(value))); i += 3
            case "u":
                guard i + 1 < scalars.count, scalars[i + 1] == "{", let close = scalars[(i + 2)...].firstIndex(of: "}") else { return nil }
                let hex = String(String.UnicodeScalarView(scalars[(i + 2)..<close]))
                guard (1...6).contains(hex.count), let value = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(value) else { return nil }
                out.append(.scalar(scalar)); i = close + 1
            default:
                return nil
            }
        }
        return out
    }

    static func unescapeString(_ raw: String) -> String? {
        guard let elements = unescape(raw, pattern: false) else { return nil }
        var view = String.UnicodeScalarView()
        for case .scalar(let s) in elements { view.append(s) }
        return String(view)
    }

    struct Parser {
        let source: [Unicode.Scalar]
        let tokens: [Lexed]
        var position = 0

        init(text: String) throws(CedarSyntaxError) {
            source = Array(text.unicodeScalars)
            tokens = try CedarParser.lex(text)
        }

        var atEnd: Bool { tokens[position].token == .end }
        var peek: Token { tokens[position].token }
        var here: CedarLocation { tokens[position].location }
        func peek(_ ahead: Int) -> Token { tokens[min(position + ahead, tokens.count - 1)].token }

        func error(_ message: String, at location: CedarLocation? = nil) -> CedarSyntaxError {
            CedarSyntaxError(location: location ?? here, message: message)
        }

        mutating func next() -> Lexed {
            let token = tokens[position]
            if position < tokens.count - 1 { position += 1 }
            return token
        }

        func isPunctuation(_ mark: String) -> Bool { peek == .punctuation(mark) }
        func isWord(_ word: String) -> Bool { peek == .identifier(word) }

        mutating func take(_ mark: String) -> Bool {
            guard isPunctuation(mark) else { return false }
            position += 1
            return true
        }

        mutating func expect(_ mark: String, _ context: String) throws(CedarSyntaxError) {
            guard take(mark) else { throw error("expected `\(mark)` \(context), found \(peek.spelled)") }
        }

        mutating func expectWord(_ word: String, _ context: String) throws(CedarSyntaxError) {
            guard isWord(word) else { throw error("expected `\(word)` \(context), found \(peek.spelled)") }
            position += 1
        }

        mutating func identifier(_ what: String) throws(CedarSyntaxError) -> String {
            guard case .identifier(let name) = peek else { throw error("expected \(what), found \(peek.spelled)") }
            position += 1
            return name
        }

        mutating func stringLiteral(_ what: String) throws(CedarSyntaxError) -> String {
            let location = here
            guard case .string(let raw) = peek else { throw error("expected \(what) (a string in double quotes), found \(peek.spelled)") }
            position += 1
            guard let text = CedarParser.unescapeString(raw) else { throw error("invalid escape sequence in a string", at: location) }
            return text
        }

        // MARK: policies

        mutating func policy(id: String) throws(CedarSyntaxError) -> CedarPolicy {
            let start = tokens[position]
            var annotations: [(key: String, value: String)] = []
            while isPunctuation("@") {
                let location = here
                position += 1
                let key = try identifier("an annotation's name after `@`")
                var value = ""
                if take("(") {
                    value = try stringLiteral("the annotation's value")
                    try expect(")", "after the annotation's value")
                }
                if annotations.contains(where: { $0.key == key }) {
                    throw error("duplicate annotation `@\(key)`", at: location)
                }
                annotations.append((key, value))
            }
            let effectLocation = here
            let effectWord = try identifier("`permit` or `forbid`")
            guard let effect = CedarPolicy.Effect(rawValue: effectWord) else {
                throw error("expected `permit` or `forbid`, found `\(effectWord)`", at: effectLocation)
            }
            try expect("(", "after `\(effectWord)`")
            let principal = try entityScope(.principal)
            try expect(",", "after the principal's constraint")
            let action = try actionScope()
            try expect(",", "after the action's constraint")
            let resource = try entityScope(.resource)
            if isPunctuation(",") { throw error("unexpected `,`: a policy's scope is principal, action, resource") }
            try expect(")", "after the resource's constraint")
            var conditions: [CedarPolicy.Condition] = []
            while case .identifier(let word) = peek, word == "when" || word == "unless" {
                position += 1
                try expect("{", "after `\(word)`")
                if isPunctuation("}") { throw error("`\(word)` needs a condition between the braces") }
                let body = try expression()
                try expect("}", "after the `\(word)` condition")
                conditions.append(.init(isWhen: word == "when", body: body))
            }
            guard isPunctuation(";") else {
                throw error("expected `when`, `unless` or `;` after the policy's scope, found \(peek.spelled)")
            }
            let end = next()
            let text = String(String.UnicodeScalarView(source[start.offset..<end.endOffset]))
            return CedarPolicy(id: id, effect: effect, annotations: annotations, principal: principal, action: action,
                               resource: resource, conditions: conditions, location: start.location, text: text)
        }

        mutating func entityScope(_ variable: CedarVariable) throws(CedarSyntaxError) -> CedarPolicy.EntityConstraint {
            try expectWord(variable.rawValue, "in the policy's scope")
            if take("==") { return .equals(try scopeEntity()) }
            if isWord("in") {
                position += 1
                return .isIn(try scopeEntity())
            }
            if isWord("is") {
                position += 1
                let type = try path("an entity type after `is`")
                if isWord("in") {
                    position += 1
                    return .isTypeIn(type, try scopeEntity())
                }
                return .isType(type)
            }
            return .any
        }

        mutating func actionScope() throws(CedarSyntaxError) -> CedarPolicy.ActionConstraint {
            try expectWord("action", "in the policy's scope")
            if take("==") { return .equals(try actionEntity()) }
            if isWord("in") {
                position += 1
                if take("[") {
                    var list: [CedarEntityUID] = []
                    if !take("]") {
                        repeat { list.append(try actionEntity()) } while take(",")
                        try expect("]", "after the list of actions")
                    }
                    return .isIn(list)
                }
                return .isInOne(try actionEntity())
            }
            if isWord("is") { throw error("`action is …` is not allowed in a policy's scope") }
            return .any
        }

        mutating func actionEntity() throws(CedarSyntaxError) -> CedarEntityUID {
            let location = here
            let uid = try scopeEntity()
            guard uid.type == "Action" || uid.type.hasSuffix("::Action") else {
                throw error("expected an action (`Action::\"…\"`), found an entity of type `\(uid.type)`", at: location)
            }
            return uid
        }

        mutating func scopeEntity() throws(CedarSyntaxError) -> CedarEntityUID {
            if isPunctuation("?") { throw error("templates (`?principal`, `?resource`) are not supported: write the entity") }
            let type = try path("an entity (`Type::\"id\"`)")
            guard take("::") else { throw error("expected `::` and the entity's id after `\(type)`, found \(peek.spelled)") }
            let id = try stringLiteral("the entity's id")
            return CedarEntityUID(type, id)
        }

        /// `A::B::C`, stopping before a `::` that a string follows (an entity's id).
        mutating func path(_ what: String) throws(CedarSyntaxError) -> String {
            let location = here
            var parts = [try identifier(what)]
            while isPunctuation("::"), case .identifier(let next) = peek(1) {
                position += 2
                parts.append(next)
            }
            if let word = parts.first(where: { CedarParser.reserved.contains($0) }) {
                throw error("`\(word)` is reserved and cannot be a type name", at: location)
            }
            return parts.joined(separator: "::")
        }

        // MARK: expressions

        mutating func expression() throws(CedarSyntaxError) -> CedarExpr {
            let location = here
            if isWord("if") {
                position += 1
                let condition = try expression()
                try expectWord("then", "after `if`'s condition")
                let then = try expression()
                try expectWord("else", "after `then`'s expression")
                let otherwise = try expression()
                return CedarExpr(.ifThenElse(condition, then, otherwise), at: location)
            }
            return try or()
        }

        mutating func or() throws(CedarSyntaxError) -> CedarExpr {
            var left = try and()
            while isPunctuation("||") {
                let location = here
                position += 1
                left = CedarExpr(.or(left, try and()), at: location)
            }
            return left
        }

        mutating func and() throws(CedarSyntaxError) -> CedarExpr {
            var left = try relation()
            while isPunctuation("&&") {
                let location = here
                position += 1
                left = CedarExpr(.and(left, try relation()), at: location)
            }
            return left
        }

        static let relations: [String: CedarBinaryOperator] = ["==": .equal, "!=": .notEqual, "<": .less, "<=": .lessOrEqual, ">": .greater, ">=": .greaterOrEqual]

        mutating func relationOperator() -> CedarBinaryOperator? {
            if case .punctuation(let mark) = peek, let op = Self.relations[mark] { return op }
            if isWord("in") { return .isIn }
            return nil
        }

        mutating func relation() throws(CedarSyntaxError) -> CedarExpr {
            let location = here
            let left = try add()
            var result = left
            if let op = relationOperator() {
                position += 1
                result = CedarExpr(.binary(op, left, try add()), at: location)
            } else if isWord("has") {
                position += 1
                result = try hasPath(left, at: location)
            } else if isWord("like") {
                position += 1
                let patternLocation = here
                guard case .string(let raw) = peek else { throw error("expected a pattern (a string) after `like`, found \(peek.spelled)") }
                position += 1
                guard let pattern = CedarParser.unescape(raw, pattern: true) else { throw error("invalid escape sequence in a pattern", at: patternLocation) }
                result = CedarExpr(.like(left, pattern), at: location)
            } else if isWord("is") {
                position += 1
                let type = try path("an entity type after `is`")
                result = CedarExpr(.isType(left, type), at: location)
                if isWord("in") {
                    position += 1
                    let container = try add()
                    result = CedarExpr(.and(result, CedarExpr(.binary(.isIn, left, container), at: location)), at: location)
                }
            } else {
                return left
            }
            if relationOperator() != nil || isWord("has") || isWord("like") || isWord("is") {
                throw error("unexpected \(peek.spelled): relations do not chain (write `a < b && b < c`, or add parentheses)")
            }
            return result
        }

        /// `e has a` or, as Cedar 4 allows, `e has a.b.c` (each step checked, left to right).
        mutating func hasPath(_ target: CedarExpr, at location: CedarLocation) throws(CedarSyntaxError) -> CedarExpr {
            var names: [String] = []
            if case .string = peek {
                names.append(try stringLiteral("an attribute's name"))
            } else {
                let first = try identifier("an attribute's name after `has`")
                if CedarParser.reserved.contains(first) { throw error("`\(first)` is reserved: write it as a string (`has \"\(first)\"`)") }
                names.append(first)
                while take(".") {
                    let name = try identifier("an attribute's name after `.`")
                    if CedarParser.reserved.contains(name) { throw error("`\(name)` is reserved: it cannot name an attribute here") }
                    names.append(name)
                }
            }
            var result = CedarExpr(.has(target, names[0]), at: location)
            var prefix = target
            for index in 1..<max(names.count, 1) where index < names.count {
                prefix = CedarExpr(.attribute(prefix, names[index - 1]), at: location)
                result = CedarExpr(.and(result, CedarExpr(.has(prefix, names[index]), at: location)), at: location)
            }
            return result
        }

        mutating func add() throws(CedarSyntaxError) -> CedarExpr {
            var left = try multiply()
            while true {
                let location = here
                if take("+") { left = CedarExpr(.binary(.add, left, try multiply()), at: location) }
                else if take("-") { left = CedarExpr(.binary(.subtract, left, try multiply()), at: location) }
                else { return left }
            }
        }

        mutating func multiply() throws(CedarSyntaxError) -> CedarExpr {
            var left = try unary()
            while true {
                let location = here
                if take("*") { left = CedarExpr(.binary(.multiply, left, try unary()), at: location) }
                else if isPunctuation("/") || isPunctuation("%") { throw error("division and remainder are not supported in Cedar") }
                else { return left }
            }
        }

        mutating func unary() throws(CedarSyntaxError) -> CedarExpr {
            let location = here
            var nots = 0, negations = 0
            while isPunctuation("!") { nots += 1; position += 1 }
            if nots == 0 { while isPunctuation("-") { negations += 1; position += 1 } }
            if nots > 4 || negations > 4 { throw error("too many unary operators in a row (at most 4)", at: location) }
            if (nots > 0 && (isPunctuation("-") || isPunctuation("!"))) || (negations > 0 && isPunctuation("!")) {
                throw error("unexpected \(peek.spelled): `!` and `-` do not mix without parentheses")
            }
            var operand: CedarExpr
            if negations > 0, case .integer(let digits) = peek, !isAccessor(peek(1)) {
                let literalLocation = here
                position += 1
                guard let value = Int64("-" + digits) else { throw error("integer literal -\(digits) is out of range", at: literalLocation) }
                operand = CedarExpr(.literal(.long(value)), at: literalLocation)
                negations -= 1
            } else {
                operand = try member()
            }
            for _ in 0..<negations { operand = CedarExpr(.negate(operand), at: location) }
            for _ in 0..<nots { operand = CedarExpr(.not(operand), at: location) }
            return operand
        }

        func isAccessor(_ token: Token) -> Bool { token == .punctuation(".") || token == .punctuation("[") }

        mutating func member() throws(CedarSyntaxError) -> CedarExpr {
            var target = try primary()
            while true {
                let location = here
                if take(".") {
                    let name = try identifier("an attribute or method name after `.`")
                    if take("(") {
                        guard CedarParser.methods.contains(name) else {
                            if CedarParser.functions.contains(name) { throw error("`\(name)` is a function, not a method: write \(name)(…)", at: location) }
                            throw error("`\(name)` is not a method Cedar knows", at: location)
                        }
                        let arguments = try list(closing: ")")
                        if let arity = CedarParser.builtinArity[name], arguments.count != arity {
                            throw error("`\(name)` takes \(arity == 1 ? "one argument" : "no argument"), not \(arguments.count)", at: location)
                        }
                        target = CedarExpr(.method(target, name, arguments), at: location)
                    } else {
                        if CedarParser.reserved.contains(name) { throw error("`\(name)` is reserved: write [\"\(name)\"]", at: location) }
                        target = CedarExpr(.attribute(target, name), at: location)
                    }
                } else if take("[") {
                    let name = try stringLiteral("an attribute's name in `[…]`")
                    try expect("]", "after the attribute's name")
                    target = CedarExpr(.attribute(target, name), at: location)
                } else {
                    return target
                }
            }
        }

        mutating func list(closing: String) throws(CedarSyntaxError) -> [CedarExpr] {
            var items: [CedarExpr] = []
            if take(closing) { return items }
            repeat { items.append(try expression()) } while take(",")
            try expect(closing, "to close the list")
            return items
        }

        mutating func primary() throws(CedarSyntaxError) -> CedarExpr {
            let location = here
            switch peek {
            case .integer(let digits):
                position += 1
                guard let value = Int64(digits) else { throw error("integer literal \(digits) is out of range", at: location) }
                return CedarExpr(.literal(.long(value)), at: location)
            case .string:
                return CedarExpr(.literal(.string(try stringLiteral("a string"))), at: location)
            case .punctuation("("):
                position += 1
                let inner = try expression()
                try expect(")", "to close `(`")
                return inner
            case .punctuation("["):
                position += 1
                return CedarExpr(.set(try list(closing: "]")), at: location)
            case .punctuation("{"):
                position += 1
                var fields: [CedarRecordField] = []
                if !take("}") {
                    repeat {
                        let keyLocation = here
                        let key: String
                        if case .string = peek { key = try stringLiteral("a record key") } else {
                            key = try identifier("a record key")
                            if CedarParser.reserved.contains(key) { throw error("`\(key)` is reserved: write it as a string", at: keyLocation) }
                        }
                        try expect(":", "after the record key")
                        if fields.contains(where: { CedarText.sameBytes($0.key, key) }) {
                            throw error("duplicate key \(CedarEntityUID.quote(key)) in a record", at: keyLocation)
                        }
                        fields.append(CedarRecordField(key: key, value: try expression()))
                    } while take(",")
                    try expect("}", "to close the record")
                }
                return CedarExpr(.record(fields), at: location)
            case .punctuation("?"):
                throw error("templates (`?principal`, `?resource`) are not supported")
            case .identifier(let name):
                if name == "true" || name == "false" {
                    position += 1
                    return CedarExpr(.literal(.bool(name == "true")), at: location)
                }
                if peek(1) == .punctuation("::") {
                    let type = try path("an entity type")
                    guard take("::") else { throw error("expected `::` and an id after `\(type)`") }
                    guard case .string = peek else {
                        throw error("expected the entity's id (a string) after `\(type)::`, found \(peek.spelled)")
                    }
                    let id = try stringLiteral("the entity's id")
                    return CedarExpr(.literal(.entity(CedarEntityUID(type, id))), at: location)
                }
                if peek(1) == .punctuation("(") {
                    position += 2
                    guard CedarParser.functions.contains(name) else {
                        if CedarParser.methods.contains(name) { throw error("`\(name)` is a method, not a function: write x.\(name)(…)", at: location) }
                        throw error("`\(name)` is not a function Cedar knows", at: location)
                    }
                    return CedarExpr(.call(name, try list(closing: ")")), at: location)
                }
                if let variable = CedarVariable(rawValue: name) {
                    position += 1
                    return CedarExpr(.variable(variable), at: location)
                }
                if name == "if" { throw error("`if` needs parentheses here: (if … then … else …)") }
                throw error("unknown name `\(name)`: expected principal, action, resource, context, a literal or an entity")
            default:
                throw error("expected an expression, found \(peek.spelled)")
            }
        }
    }
}
