import AirlockCore

/// "One reading or none" (docs/gate.md): the broker acts on a request only when AWS can read
/// it exactly one way. The agent writes its own bytes, so an SDK's serializer proves nothing:
/// what counts is how the upstream's parser reads them. moto (the upstream in the tests) takes
/// `Action` from the query string before `X-Amz-Target`, the first of two `Action`s, the last
/// of two JSON keys, and picks a protocol by Content-Type; AWS's own front ends differ again.
/// Wherever two readings are possible, the request is refused instead of resolved.
extension AWSRequest {
    /// Why this request could be read in more than one way, or nil when it cannot.
    /// `decidingQueryKeys` are the query parameters that pick or condition a REST operation
    /// (`AWSClassifier.decidingQueryKeys(for:)`).
    public func ambiguity(for service: AWSService, servicePath: String, decidingQueryKeys: Set<String>) -> String? {
        // HTTP methods are case-sensitive, SigV4 signs them upper-cased (found by scripts/fuzz).
        guard Self.methods.contains(method) else { return "the method \(method.prefix(16)) is not one AWS APIs use (\(Self.methods.sorted().joined(separator: ", ")))" }
        if let repeated = repeatedHeader() { return "the header \(repeated) appears more than once" }
        if let override = UpstreamReading.methodOverride(headers) { return "\(override) asks for another method than the request's own" }
        let target = header("x-amz-target")
        let contentType = header("content-type")?.lowercased() ?? ""
        let queryKeys = queryItems.map(\.key)
        switch service.wireProtocol {
        case .query, .ec2:
            if target != nil { return "X-Amz-Target is not part of \(service.name)'s protocol (query: Action=…)" }
            return formAmbiguity(contentType: contentType)
        case .json:
            if let target {
                if Self.isCBORPath(servicePath) { return "the request has both X-Amz-Target and a CBOR operation path" }
                guard contentType.hasPrefix("application/x-amz-json-") else {
                    return "an X-Amz-Target request must have Content-Type application/x-amz-json-1.0 or 1.1 (this one: \(contentType.isEmpty ? "none" : contentType))"
                }
                // Parameters ride in the JSON body; a query string could carry an `Action`
                // that some parsers prefer to the header.
                if !query.isEmpty { return "a JSON-protocol request (X-Amz-Target \(target)) carries parameters in its body, not in a query string" }
                return jsonAmbiguity()
            }
            if Self.isCBORPath(servicePath) { return cborAmbiguity(service: service, servicePath: servicePath, contentType: contentType) }
            // Query-compatible JSON services (sqs, cloudwatch) also take `Action=` forms.
            return formAmbiguity(contentType: contentType)
        case .cbor:
            if target != nil { return "X-Amz-Target is not part of \(service.name)'s protocol (rpc-v2-cbor)" }
            return cborAmbiguity(service: service, servicePath: servicePath, contentType: contentType)
        case .restJSON, .restXML:
            if target != nil { return "X-Amz-Target is not part of \(service.name)'s REST protocol" }
            if queryKeys.contains("Action") { return "an Action parameter is not part of \(service.name)'s REST protocol" }
            if !["s3", "s3control"].contains(service.name), let trick = Self.pathTrick(servicePath) { return trick }
            var seen = Set<String>()
            for key in queryKeys where decidingQueryKeys.contains(key) && !seen.insert(key).inserted {
                return "the query parameter \(key) appears more than once"
            }
            // A REST body may be an opaque payload (a document, a function's input); when it
            // is JSON at all, it must be JSON with one reading.
            if contentType.contains("json") { return jsonAmbiguity() }
            return nil
        }
    }

    static let methods: Set<String> = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]

    /// A header name (case-insensitively) given twice: `X-Amz-Target`, `Content-Type` and the
    /// signing headers decide how a request is read, and no SDK repeats a header.
    func repeatedHeader() -> String? {
        var seen = Set<String>()
        for header in headers where !seen.insert(header.name.lowercased()).inserted { return header.name }
        return nil
    }

    /// query/ec2 forms and query-mode JSON services: parameters in one place only, each once,
    /// and a body only as a form.
    func formAmbiguity(contentType: String) -> String? {
        if header("smithy-protocol") != nil { return "smithy-protocol is not part of the query protocol" }
        var keys = queryItems.map(\.key)
        if !body.isEmpty {
            guard method == "POST" else { return "a \(method) request of the query protocol has a body" }
            guard !contentType.isEmpty, Self.isFormContentType(contentType) else {
                return "a query-protocol body must be application/x-www-form-urlencoded (this one: \(contentType.isEmpty ? "none" : contentType))"
            }
            if !query.isEmpty { return "parameters are in both the URL and the body" }
            keys = Self.parseForm(String(decoding: body, as: UTF8.self)).map(\.key)
        }
        var seen = Set<String>()
        for key in keys where !seen.insert(key).inserted { return "the parameter \(key) appears more than once" }
        return nil
    }

    func cborAmbiguity(service: AWSService, servicePath: String, contentType: String) -> String? {
        let parts = servicePath.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "service", parts[3] == "operation", !parts[4].isEmpty else {
            return "an rpc-v2-cbor request's path must be /service/<service>/operation/<operation>"
        }
        if let prefix = service.targetPrefix, parts[2] != prefix { return "the CBOR path names service \(parts[2]), not \(prefix)" }
        guard header("smithy-protocol") == "rpc-v2-cbor" else { return "an rpc-v2-cbor request needs the header smithy-protocol: rpc-v2-cbor" }
        if !body.isEmpty && !contentType.hasPrefix("application/cbor") { return "an rpc-v2-cbor body must be application/cbor" }
        if queryItems.contains(where: { $0.key == "Action" }) { return "an Action parameter is not part of the rpc-v2-cbor protocol" }
        return nil
    }

    /// A body that is not JSON at all is malformed (refused as such); one that is, must be
    /// JSON with exactly one reading.
    func jsonAmbiguity() -> String? {
        guard !body.isEmpty, (try? JSON.parse(bytes: body)) != nil else { return nil }
        do {
            _ = try JSON.parseStrict(bytes: body)
            return nil
        } catch {
            return "the JSON body cannot be read one way only: \(error)"
        }
    }

    static func isCBORPath(_ path: String) -> Bool {
        path.hasPrefix("/service/") && path.contains("/operation/")
    }

    /// A path another parser could normalize differently: an empty segment (`//`) or `.`/`..`
    /// (also %-encoded). A trailing `/` is part of some operations' paths and stays.
    static func pathTrick(_ path: String) -> String? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for (index, segment) in segments.enumerated() {
            if segment.isEmpty {
                if index == segments.count - 1 { continue }
                return "the path has an empty segment (//)"
            }
            let decoded = PercentEncoding.decode(String(segment))
            if decoded == "." || decoded == ".." { return "the path has a \(decoded) segment" }
        }
        return nil
    }
}

/// Region names as AWS spells them (`us-east-1`, `us-gov-west-1`, `eu-isoe-west-1`): the
/// region signs the request and names the upstream host, so anything else is refused.
public enum AWSRegion {
    public static func isValidName(_ name: String) -> Bool {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts.count <= 5, name.utf8.count <= 32,
              let last = parts.last, !last.isEmpty, last.count <= 2, last.allSatisfy(\.isASCIIDigit) else { return false }
        return parts.dropLast().allSatisfy { part in !part.isEmpty && part.utf8.allSatisfy { (0x61...0x7A).contains($0) } }
            && (2...4).contains(parts[0].count)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
