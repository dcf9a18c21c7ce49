import AirlockCore

/// The AWS catalog generated into `profiles/aws/` (docs/aws-catalog.md): per service, how
/// its operations appear on the wire and their IAM access levels. Parsed from the JSON text
/// here; the broker reads the files.
public enum AWSProtocol: String, Sendable {
    case query, ec2, json
    case restJSON = "rest-json"
    case restXML = "rest-xml"
    case cbor = "smithy-rpc-v2-cbor"

    /// The protocol a request looks like when its service is not known (a refusal must still
    /// reach the SDK in a shape it parses, so the user reads Airlock's message and not
    /// "Unknown"): a JSON target header, a form body with `Action=`, or REST-XML (S3's).
    public static func guess(contentType: String?, target: String?, body: [UInt8]) -> AWSProtocol {
        let type = contentType?.lowercased() ?? ""
        if target != nil || type.hasPrefix("application/x-amz-json") { return .json }
        if type.hasPrefix("application/cbor") { return .cbor }
        if type.hasPrefix("application/x-www-form-urlencoded"), body.starts(with: Array("Action=".utf8)) || body.firstRange(of: Array("&Action=".utf8)) != nil {
            return .query
        }
        return .restXML
    }
}

public struct AWSOperation: Sendable {
    public let name: String
    public let method: String
    public let uri: String
    public let requiredQuery: [String]
    public let requiredHeaders: [String]
    public let iamActions: [String]
    public let access: [String]
    /// nil (signed as the service says), "none" (sent unsigned) or "v4-unsigned-body".
    public let authType: String?
    let template: URITemplate
    /// "service:Operation", the overrides' key; its IAM access levels and actions as rulings
    /// name them. Made once here, not per request.
    let key: String
    /// What its IAM access level alone decides (read for List/Read only, else mutation):
    /// the ruling of every request no override names, made once.
    let iamRuling: Ruling

    /// How it ranks among templates a request matches (docs/design.md §4.4).
    var rank: URITemplate.Rank {
        var rank = template.rank
        rank.required = requiredQuery.count + requiredHeaders.count
        return rank
    }

    init(json: JSON, service: String) throws(AWSCatalogError) {
        guard let name = json["name"]?.string, let method = json["method"]?.string, let uri = json["uri"]?.string else {
            throw AWSCatalogError("operation without name, method or uri")
        }
        self.name = name
        self.method = method
        self.uri = uri
        requiredQuery = json["required_query"]?.stringArray ?? []
        requiredHeaders = (json["required_headers"]?.stringArray ?? []).map { $0.lowercased() }
        iamActions = json["iam_actions"]?.stringArray ?? []
        access = json["access"]?.stringArray ?? []
        authType = json["auth_type"]?.string
        template = URITemplate(uri)
        key = service + ":" + name
        let levels = access.joined(separator: ", "), actions = iamActions.joined(separator: ", ")
        if access.isEmpty {
            iamRuling = Ruling(.mutation, "no IAM access level known for \(service):\(name): unknown means mutation")
        } else if access.allSatisfy({ $0 == "List" || $0 == "Read" }) {
            iamRuling = Ruling(.read, "IAM access level \(levels) (\(actions))")
        } else {
            iamRuling = Ruling(.mutation, "IAM access level \(levels) (\(actions))")
        }
    }
}

public struct AWSService: Sendable {
    public let name: String
    public let serviceID: String
    public let signingName: String
    public let endpointPrefix: String
    public let wireProtocol: AWSProtocol
    public let apiVersion: String
    public let targetPrefix: String?
    public let jsonVersion: String?
    public let signatureVersion: String?
    public let operations: [AWSOperation]
    let byName: [String: Int]
    /// Query parameters that pick a REST operation (template literals such as `uploads`,
    /// required members such as `uploadId`): each may appear once (docs/gate.md).
    public let routingQueryKeys: Set<String>
    /// REST operations by method and the first path segment their template fixes (or "" when
    /// it begins with a label), each list in rank order, best first (docs/design.md §4.4):
    /// resolving a request looks at the operations its path can match, not at all of them.
    /// Keyed by method, then segment: no key string is built per request.
    let restIndex: [String: [String: [Int]]]

    public func operation(named name: String) -> AWSOperation? {
        byName[name].map { operations[$0] }
    }

    /// Parses one `profiles/aws/services/<name>.json`.
    public init(jsonText: String) throws(AWSCatalogError) {
        let json: JSON
        do { json = try JSON.parse(jsonText) } catch { throw AWSCatalogError("service file: \(error)") }
        guard let name = json["name"]?.string, let signing = json["signing_name"]?.string,
            let protocolName = json["protocol"]?.string, let wire = AWSProtocol(rawValue: protocolName)
        else { throw AWSCatalogError("service file without name, signing_name or a known protocol") }
        self.name = name
        serviceID = json["service_id"]?.string ?? name
        signingName = signing
        endpointPrefix = json["endpoint_prefix"]?.string ?? name
        wireProtocol = wire
        apiVersion = json["api_version"]?.string ?? ""
        targetPrefix = json["target_prefix"]?.string
        jsonVersion = json["json_version"]?.string
        signatureVersion = json["signature_version"]?.string
        var operations: [AWSOperation] = []
        for item in json["operations"]?.array ?? [] { operations.append(try AWSOperation(json: item, service: name)) }
        self.operations = operations
        routingQueryKeys = Set(operations.flatMap { $0.requiredQuery + $0.template.queryLiterals.map(\.key) })
        byName = Dictionary(operations.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        restIndex = Self.restIndex(operations)
    }

    /// METHOD → segment → the operations whose template starts with /segment/ (or is exactly
    /// /segment) followed by those that start with a label, merged in rank order; METHOD → ""
    /// → those that start with a label.
    static func restIndex(_ operations: [AWSOperation]) -> [String: [String: [Int]]] {
        var fixed: [String: [Int]] = [:], open: [String: [Int]] = [:]
        for (index, operation) in operations.enumerated() {
            if let segment = operation.template.firstSegment {
                fixed[operation.method + " " + segment, default: []].append(index)
            } else {
                open[operation.method + " ", default: []].append(index)
            }
        }
        func ranked(_ indices: [Int]) -> [Int] {
            indices.sorted { operations[$0].rank > operations[$1].rank || (operations[$0].rank == operations[$1].rank && $0 < $1) }
        }
        var index: [String: [String: [Int]]] = [:]
        for (key, indices) in open { index[String(key.dropLast()), default: [:]][""] = ranked(indices) }
        for (key, indices) in fixed {
            let method = String(key.prefix { $0 != " " })
            index[method, default: [:]][String(key.dropFirst(method.count + 1))] = ranked(indices + (open[method + " "] ?? []))
        }
        return index
    }

    /// The operations a request with this method and first path segment can match, best
    /// ranked first.
    func restCandidates(method: String, firstSegment: String) -> [Int] {
        guard let bySegment = restIndex[method] else { return [] }
        return bySegment[firstSegment] ?? bySegment[""] ?? []
    }
}

/// One line of `profiles/aws/index.json`.
public struct AWSServiceEntry: Sendable, Equatable {
    public let name: String
    public let serviceID: String
    public let configKey: String
    public let envSuffix: String
    public let signingName: String
    public let endpointPrefix: String
}

public struct AWSCatalogIndex: Sendable {
    public let services: [AWSServiceEntry]
    public let sources: [String: String]

    public init(jsonText: String) throws(AWSCatalogError) {
        let json: JSON
        do { json = try JSON.parse(jsonText) } catch { throw AWSCatalogError("index.json: \(error)") }
        var services: [AWSServiceEntry] = []
        for item in json["services"]?.array ?? [] {
            guard let name = item["name"]?.string, let key = item["config_key"]?.string,
                let suffix = item["env_suffix"]?.string, let signing = item["signing_name"]?.string
            else { throw AWSCatalogError("index.json: a service entry lacks name, config_key, env_suffix or signing_name") }
            services.append(AWSServiceEntry(
                name: name, serviceID: item["service_id"]?.string ?? name, configKey: key, envSuffix: suffix,
                signingName: signing, endpointPrefix: item["endpoint_prefix"]?.string ?? name))
        }
        guard !services.isEmpty else { throw AWSCatalogError("index.json lists no services") }
        self.services = services
        sources = Dictionary(uniqueKeysWithValues: (json["sources"]?.objectPairs ?? []).compactMap { key, value in
            value.string.map { (key, $0) }
        })
    }

    public func entry(named name: String) -> AWSServiceEntry? {
        services.first { $0.name == name }
    }

    /// Services that sign with `signingName` (several share one: rds, docdb, neptune…).
    public func services(signingAs signingName: String) -> [AWSServiceEntry] {
        services.filter { $0.signingName == signingName }
    }
}

public struct AWSCatalogError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
