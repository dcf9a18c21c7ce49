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
                guard let prefix = service.targetPrefix, target.hasPrefix(prefix + ".") else {
                    return .unknown("X-Amz-Target \(target) is not for \(service.name)")
                }
                return byName(String(target.dropFirst(prefix.count + 1)), service)
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
        // The query decoded only if a candidate asks about it (most do not).
        var decoded: [(key: String, value: String?)]?
        func query() -> [(key: String, value: String?)] {
            if let decoded { return decoded }
            let items = request.query.isEmpty ? [] : request.queryItems
            decoded = items
            return items
        }
        // Only the operations whose template can start like this path, best ranked first
        // (AWSService.restIndex): the first match's rank ends the search once a worse rank
        // comes up. (Measured: looking at every operation of the method, each with a set of
        // the request's lowercased header names, was most of a classification; BENCHMARKS.md.)
        let rest = path.dropFirst(path.first == 0x2F ? 1 : 0)
        let first = String(decoding: rest.prefix { $0 != 0x2F }, as: UTF8.self)
        var best: [(AWSOperation, [String: String])] = []
        var bestRank: URITemplate.Rank?
        for index in service.restCandidates(method: request.method, firstSegment: first) {
            let operation = service.operations[index]
            let rank = operation.rank
            if let bestRank, rank < bestRank { break }
            guard operation.requiredQuery.allSatisfy({ key in query().contains { $0.key == key } }),
                operation.requiredHeaders.allSatisfy({ request.header($0) != nil })
            else { continue }
            let literalsPresent = operation.template.queryLiterals.allSatisfy { literal in
                guard let value = literal.value else { return query().contains { $0.key == literal.key } }
                return query().contains { $0.key == literal.key && $0.value == value }
            }
            guard literalsPresent, let bindings = operation.template.match(path) else { continue }
            bestRank = rank
            best.append((operation, bindings))
        }
        switch best.count {
        case 0: return .unknown("no \(service.name) operation matches \(request.method) \(servicePath)")
        case 1: return .exact(best[0].0, bindings: best[0].1)
        default: return .ambiguous(best.map(\.0))
        }
    }
}
