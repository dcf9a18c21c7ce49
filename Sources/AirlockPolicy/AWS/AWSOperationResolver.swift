/// Identifies the operation of a request from the request alone (docs/design.md §4.1): `Action=` for
/// query/ec2, `X-Amz-Target` for json, the CBOR path, or method + URI template for REST.
public enum AWSResolution: Sendable {
    case exact(AWSOperation, bindings: [String: String])
    /// Several operations match equally well: the most privileged decides.
    case ambiguous([AWSOperation])
    case unknown(String)

    public var operationName: String? {
        if case .exact(let operation, _) = self { return operation.name }
        return nil
    }
}

public enum AWSOperationResolver {
    /// `servicePath` is the request path with the broker's `/svc/<name>` prefix removed
    /// (`/` when nothing is left).
    public static func resolve(_ request: AWSRequest, service: AWSService, servicePath: String) -> AWSResolution {
        switch service.wireProtocol {
        case .query, .ec2:
            guard let found = request.firstFormValue("Action"), let action = found, !action.isEmpty else {
                return .unknown("no Action parameter")
            }
            return byName(action, service)
        case .json:
            // sqs, cloudwatch and others also accept query-style requests (x-amzn-query-mode).
            if let target = request.header("x-amz-target") {
                // By bytes: Character counting and a concatenated prefix were most of a json
                // request's resolution.
                guard let prefix = service.targetPrefix, target.utf8.count > prefix.utf8.count,
                      target.utf8.starts(with: prefix.utf8),
                      target.utf8[target.utf8.index(target.utf8.startIndex, offsetBy: prefix.utf8.count)] == UInt8(ascii: ".") else {
                    return .unknown("X-Amz-Target \(target) is not for \(service.name)")
                }
                return byName(String(Substring(target.utf8.dropFirst(prefix.utf8.count + 1))), service)
            }
            if let found = request.firstFormValue("Action"), let action = found {
                return byName(action, service)
            }
            return cborOrUnknown(servicePath, service, missing: "no X-Amz-Target header")
        case .cbor:
            return cborOrUnknown(servicePath, service, missing: "no CBOR operation path")
        case .restJSON, .restXML:
            return matchTemplate(request, service: service, servicePath: servicePath)
        }
    }

    static func byName(_ name: String, _ service: AWSService) -> AWSResolution {
        guard let operation = service.operation(named: name) else {
            return .unknown("\(name) is not an operation of \(service.name)")
        }
        return .exact(operation, bindings: [:])
    }

    /// smithy-rpc-v2-cbor: POST /service/<target>/operation/<Op>.
    static func cborOrUnknown(_ path: String, _ service: AWSService, missing: String) -> AWSResolution {
        let parts = path.split(separator: "/")
        if parts.count == 4, parts[0] == "service", parts[2] == "operation" { return byName(String(parts[3]), service) }
        return .unknown(missing)
    }

    /// Ranks matching templates as docs/design.md §4.4 says: candidates missing a required query
    /// parameter or header drop out; then more query literals, more required members, more
    /// literal path characters and fewer greedy labels win.
    static func matchTemplate(_ request: AWSRequest, service: AWSService, servicePath: String) -> AWSResolution {
        let path = Array(servicePath.utf8)
        var query = QueryLookup(request.query)
        // Only the operations whose template can start like this path, best ranked first
        // (AWSService.restIndex): the first match's rank ends the search once a worse rank
        // comes up. (Measured: looking at every operation of the method, each with a set of
        // the request's lowercased header names, was most of a classification; BENCHMARKS.md.)
        let rest = path.dropFirst(path.first == 0x2F ? 1 : 0)
        let first = String(decoding: rest.prefix { $0 != 0x2F }, as: UTF8.self)
        // Candidates are looked at in place and kept by index: copying an AWSOperation (a
        // retain and a release for each of its fields) was a fifth of a REST resolution.
        var best: [(index: Int, bindings: [String: String])] = []
        var bestRank: URITemplate.Rank?
        var spans: [(name: String, range: Range<Int>)] = []
        let operations = service.operations
        for index in service.restCandidates(method: request.method, firstSegment: first) {
            let rank = operations[index].rank
            if let bestRank, rank < bestRank { break }
            guard operations[index].requiredQuery.allSatisfy({ key in query.has(key) }),
                operations[index].requiredHeaders.allSatisfy({ request.header($0) != nil })
            else { continue }
            let literalsPresent = operations[index].template.queryLiterals.allSatisfy { literal in
                query.has(literal.key, value: literal.value)
            }
            guard literalsPresent, let bindings = operations[index].template.match(path, spans: &spans) else { continue }
            bestRank = rank
            best.append((index, bindings))
        }
        switch best.count {
        case 0: return .unknown("no \(service.name) operation matches \(request.method) \(servicePath)")
        case 1: return .exact(operations[best[0].index], bindings: best[0].bindings)
        default: return .ambiguous(best.map { operations[$0.index] })
        }
    }
}

/// A request's query asked by key, and value, as its decoded pairs read: without decoding it
/// when it holds no escape (`%` or `+`), since every key and value is then its bytes as
/// written (decoding the query was most of a REST resolution; BENCHMARKS.md). A key without
/// `=` has no value.
struct QueryLookup {
    let raw: String
    let plain: Bool
    var bytes: [UInt8]?
    var decoded: [(key: String, value: String?)]?

    init(_ raw: String) {
        self.raw = raw
        plain = !raw.utf8.contains { $0 == 0x25 || $0 == 0x2B }
    }

    /// `key` is present (with any value, or none).
    mutating func has(_ key: String) -> Bool {
        has(key, value: nil)
    }

    /// `key` is present, with exactly `value` when one is given.
    mutating func has(_ key: String, value: String?) -> Bool {
        guard !raw.isEmpty else { return false }
        if plain {
            if bytes == nil { bytes = Array(raw.utf8) }
            for (rawKey, rawValue) in FormPairs(bytes![...]) where rawKey.elementsEqual(key.utf8) {
                guard let value else { return true }
                if let rawValue, rawValue.elementsEqual(value.utf8) { return true }
            }
            return false
        }
        if decoded == nil { decoded = AWSRequest.parseForm(raw) }
        return decoded!.contains { $0.key == key && (value == nil || $0.value == value) }
    }
}

