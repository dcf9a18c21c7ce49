/// GitHub's API, classified (docs/github.md): REST by method and path (GET and HEAD read,
/// anything else a change; the endpoints that hand out tokens or concern secrets are gated
/// even to read), GraphQL by parsing the document (`query` read, `mutation` and
/// `subscription` changes, anything that does not parse a change). Pure.
public enum GitHubClassifier {
    /// Path segments of endpoints that return a token or concern secrets.
    static let sensitiveSegments: Set<String> = [
        "secrets", "access_tokens", "registration-token", "remove-token", "personal-access-tokens",
        "personal-access-token-requests", "authorizations", "token", "tokens", "keys", "credential-authorizations",
    ]

    /// A REST request, read as GitHub's router reads it (docs/github.md, "One reading or
    /// none"): the path decoded once, segment by segment, after refusing what could decode
    /// to another route (an escaped letter, digit or `-._~`, an escaped slash or dot, invalid
    /// escapes, dot or empty segments). `path` may carry its query after `?`.
    public static func classifyREST(method: String, path: String, query: String = "") -> Ruling {
        let upper = method.uppercased()
        if let problem = UpstreamReading.methodProblem(method) { return Ruling(.deny, "no single reading: \(problem)") }
        let rawPath = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? path
        let rawQuery = query.isEmpty ? String(path.drop { $0 != "?" }.dropFirst()) : query
        if let problem = KubernetesRequest.pathProblem(rawPath) ?? UpstreamReading.encodingProblem(rawPath) {
            return Ruling(.deny, "no single reading: \(problem)")
        }
        var segments: [String] = []
        for raw in rawPath.split(separator: "/") {
            guard let decoded = UpstreamReading.decodeSegment(raw) else {
                return Ruling(.deny, "no single reading: the path segment \(raw) is not valid percent-encoding")
            }
            segments.append(decoded)
        }
        // Rails routes `secrets.json` (a format) and may drop `;params` as `secrets`: each
        // segment is matched by what precedes its first '.' or ';'.
        let lowered = segments.map { String($0.lowercased().prefix { $0 != "." && $0 != ";" }) }
        if lowered == ["graphql"] {
            return Ruling(.deny, "no single reading: GraphQL is served only at exactly /graphql (on an enterprise host /api/graphql), by POST, without a query string; \(rawPath) is refused")
        }
        // Whatever the method (found by the github-path fuzz target: `PO[T …/git-receive-pack`).
        if GitSmartHTTP.read(method: upper, path: rawPath, query: rawQuery) != .other || lowered.last == "git-upload-pack"
            || lowered.last == "git-receive-pack" || lowered.suffix(2) == ["info", "refs"] {
            return Ruling(.deny, "git's smart HTTP protocol on an API path (\(rawPath)): pushes and fetches go to the git host, never to the API host")
        }
        // Rack splits a query on ';' as well as '&': refused rather than read two ways.
        switch UpstreamReading.goQuery(rawQuery) {
        case .failure(let problem): return Ruling(.deny, "no single reading: \(problem.description)")
        case .success(let pairs) where pairs.contains(where: { $0.key.lowercased() == "_method" }):
            return Ruling(.deny, "no single reading: _method in the query asks for another method than the request's own")
        case .success: break
        }
        let sensitive = lowered.first { sensitiveSegments.contains($0) }
        let shown = "/" + segments.joined(separator: "/")
        switch upper {
        case "GET", "HEAD":
            if let sensitive { return Ruling(.sensitive, "\(upper) \(shown): \(sensitive) endpoints are gated even to read") }
            return Ruling(.read, "\(upper) \(shown)")
        case "POST", "PUT", "PATCH", "DELETE":
            if let sensitive { return Ruling(.sensitive, "\(upper) \(shown): concerns \(sensitive)") }
            return Ruling(.mutation, "\(upper) \(shown)")
        default:
            // Found by the github-path fuzz target: an unknown method on a secrets route is
            // still a secrets route (a change that can also read them).
            if let sensitive { return Ruling(.sensitive, "\(upper) \(shown): an unknown method on a \(sensitive) route") }
            return Ruling(.mutation, "\(upper) \(shown): unknown methods count as changes")
        }
    }

    /// A GraphQL request (`{"query", "operationName", "variables"}`): the operation that
    /// would run decides.
    public static func classifyGraphQL(document: String, operationName: String?) -> Ruling {
        switch GraphQLDocument.operation(document, named: operationName) {
        case .success(let operation):
            let label = operation.name.map { "\(operation.kind.rawValue) \($0)" } ?? operation.kind.rawValue
            switch operation.kind {
            case .query: return Ruling(.read, "GraphQL \(label)")
            case .mutation: return Ruling(.mutation, "GraphQL \(label)")
            case .subscription: return Ruling(.mutation, "GraphQL \(label): subscriptions are not passed as reads")
            }
        case .failure(let problem):
            return Ruling(.mutation, "GraphQL document that does not parse to one operation (\(problem.description)): counted as a change")
        }
    }
}

/// Just enough of GraphQL's grammar to know which operation a document runs: the lexer
/// (names, punctuators, numbers, strings and block strings, comments, commas as whitespace)
/// and the top level of an executable document (operations and fragments, their selection
/// sets skipped by balanced brackets). Anything else does not parse.
public enum GraphQLDocument {
    public enum Kind: String, Sendable { case query, mutation, subscription }

    public struct Operation: Sendable, Equatable {
        public var kind: Kind
        public var name: String?
    }

    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    enum Token: Equatable {
        case name(String)
        case punctuator(Character)
        case value  // a number or a string: never a keyword
    }

    static let limit = 1 << 20

    static func tokens(_ text: String) -> Result<[Token], Problem> {
        guard text.utf8.count <= limit else { return .failure(Problem("the document is larger than 1 MiB")) }
        var tokens: [Token] = []
        let scalars = Array(text.unicodeScalars)
        var index = 0
        func isNameStart(_ c: Unicode.Scalar) -> Bool { c == "_" || ("a"..."z").contains(c) || ("A"..."Z").contains(c) }
        func isNameContinue(_ c: Unicode.Scalar) -> Bool { isNameStart(c) || ("0"..."9").contains(c) }
        while index < scalars.count {
            let c = scalars[index]
            switch c {
            case " ", "\t", "\n", "\r", ",", "\u{FEFF}":
                index += 1
            case "#":
                while index < scalars.count && scalars[index] != "\n" && scalars[index] != "\r" { index += 1 }
            case "!", "$", "&", "(", ")", ":", "=", "@", "[", "]", "{", "|", "}":
                tokens.append(.punctuator(Character(c)))
                index += 1
            case ".":
                guard index + 2 < scalars.count, scalars[index + 1] == ".", scalars[index + 2] == "." else {
                    return .failure(Problem("a lone '.'"))
                }
                tokens.append(.punctuator("…"))
                index += 3
            case "\"":
                if index + 2 < scalars.count && scalars[index + 1] == "\"" && scalars[index + 2] == "\"" {
                    // A block string: up to the next unescaped """.
                    index += 3
                    var closed = false
                    while index < scalars.count {
                        if scalars[index] == "\\" && index + 3 < scalars.count && scalars[index + 1] == "\"" && scalars[index + 2] == "\""
                            && scalars[index + 3] == "\"" {
                            index += 4
                        } else if scalars[index] == "\"" && index + 2 < scalars.count && scalars[index + 1] == "\"" && scalars[index + 2] == "\"" {
                            index += 3
                            closed = true
                            break
                        } else {
                            index += 1
                        }
                    }
                    guard closed else { return .failure(Problem("an unterminated block string")) }
                } else {
                    index += 1
                    var closed = false
                    while index < scalars.count {
                        let s = scalars[index]
                        if s == "\n" || s == "\r" { return .failure(Problem("a line break inside a string")) }
                        if s == "\\" { index += 2; continue }
                        index += 1
                        if s == "\"" { closed = true; break }
                    }
                    guard closed else { return .failure(Problem("an unterminated string")) }
                }
                tokens.append(.value)
            case "-", "0"..."9":
                index += 1
                while index < scalars.count, isNameContinue(scalars[index]) || scalars[index] == "." || scalars[index] == "+" || scalars[index] == "-" {
                    index += 1
                }
                tokens.append(.value)
            default:
                guard isNameStart(c) else { return .failure(Problem("an unexpected character U+\(String(c.value, radix: 16, uppercase: true))")) }
                let start = index
                while index < scalars.count && isNameContinue(scalars[index]) { index += 1 }
                tokens.append(.name(String(String.UnicodeScalarView(scalars[start..<index]))))
            }
        }
        return .success(tokens)
    }

    /// The operations of an executable document, in order.
    public static func operations(_ text: String) -> Result<[Operation], Problem> {
        let tokens: [Token]
        switch Self.tokens(text) {
        case .success(let found): tokens = found
        case .failure(let problem): return .failure(problem)
        }
        var operations: [Operation] = []
        var index = 0
        /// Skips one balanced group opening at `index` ({…}, (…) or […]).
        func skipGroup() -> Problem? {
            var stack: [Character] = []
            repeat {
                guard index < tokens.count else { return Problem("an unclosed bracket") }
                if case .punctuator(let p) = tokens[index] {
                    switch p {
                    case "{": stack.append("}")
                    case "(": stack.append(")")
                    case "[": stack.append("]")
                    case "}", ")", "]":
                        guard stack.last == p else { return Problem("mismatched brackets") }
                        stack.removeLast()
                    default: break
                    }
                }
                index += 1
            } while !stack.isEmpty
            return nil
        }
        /// After an operation's or fragment's header: variables, directives, type condition,
        /// then the selection set.
        func skipToSelectionSet() -> Problem? {
            while index < tokens.count {
                switch tokens[index] {
                case .punctuator("{"): return skipGroup()
                case .punctuator("("), .punctuator("["):
                    if let problem = skipGroup() { return problem }
                case .punctuator("}"), .punctuator(")"), .punctuator("]"):
                    return Problem("a closing bracket before the selection set")
                default:
                    index += 1
                }
            }
            return Problem("a definition without a selection set")
        }
        while index < tokens.count {
            switch tokens[index] {
            case .punctuator("{"):
                if let problem = skipGroup() { return .failure(problem) }
                operations.append(Operation(kind: .query, name: nil))
            case .name(let keyword) where keyword == "query" || keyword == "mutation" || keyword == "subscription":
                index += 1
                var name: String?
                if index < tokens.count, case .name(let found) = tokens[index] { name = found; index += 1 }
                if let problem = skipToSelectionSet() { return .failure(problem) }
                operations.append(Operation(kind: Kind(rawValue: keyword)!, name: name))
            case .name("fragment"):
                index += 1
                if let problem = skipToSelectionSet() { return .failure(problem) }
            case .name(let other):
                return .failure(Problem("'\(other)' is not an operation or fragment (type system documents are not executed)"))
            default:
                return .failure(Problem("a definition must start with query, mutation, subscription, fragment or {"))
            }
        }
        guard !operations.isEmpty else { return .failure(Problem("no operation")) }
        return .success(operations)
    }

    /// The operation a request runs: the named one, or the only one. An anonymous operation
    /// must be alone (GraphQL's own rule).
    public static func operation(_ text: String, named: String?) -> Result<Operation, Problem> {
        let all: [Operation]
        switch operations(text) {
        case .success(let found): all = found
        case .failure(let problem): return .failure(problem)
        }
        if all.count > 1 && all.contains(where: { $0.name == nil }) {
            return .failure(Problem("an anonymous operation beside others"))
        }
        if let named, !named.isEmpty {
            let matches = all.filter { $0.name == named }
            guard matches.count == 1 else { return .failure(Problem(matches.isEmpty ? "no operation named \(named)" : "two operations named \(named)")) }
            return .success(matches[0])
        }
        guard all.count == 1 else { return .failure(Problem("\(all.count) operations and no operationName")) }
        return .success(all[0])
    }
}
