import AirlockCore
import AirlockPolicy
import Glibc

/// The fuzz targets of scripts/fuzz (docs/fuzzing.md). Each takes arbitrary bytes and checks
/// a property, not only that nothing crashes: a violated property is a `fatalError`, which
/// libFuzzer reports with the input that caused it.
enum FuzzTargets {
    static let names = ["aws-request", "json", "profile", "sigv4", "kubernetes", "github-path", "graphql", "git-push"]

    static func run(_ name: String, _ data: [UInt8]) {
        switch name {
        case "aws-request": awsRequest(data)
        case "json": json(data)
        case "profile": profile(data)
        case "sigv4": sigV4(data)
        case "kubernetes": kubernetes(data)
        case "github-path": githubPath(data)
        case "graphql": graphql(data)
        case "git-push": gitPush(data)
        default: fatalError("unknown fuzz target \(name) (known: \(names.joined(separator: ", ")))")
        }
    }

    /// Raw HTTP as the seeds hold it: `METHOD TARGET` line, header lines, a blank line, the body.
    static func request(_ data: [UInt8]) -> AWSRequest? {
        guard data.count <= 1 << 20 else { return nil }
        var end: Int?
        for index in data.indices.dropLast() where data[index] == 0x0A && data[index + 1] == 0x0A {
            end = index
            break
        }
        let head = String(decoding: data[..<(end ?? data.count)], as: UTF8.self)
        let body = end.map { Array(data[($0 + 2)...]) } ?? []
        let lines = head.split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = lines.first else { return nil }
        let parts = first.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].hasPrefix("/") else { return nil }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingLeadingSpace()))
        }
        return AWSRequest(method: String(parts[0]), target: String(parts[1]), headers: headers, body: body)
    }

    // MARK: AWS request reader and classifier

    /// One reading or none: a request the broker accepts must be read the same way whatever
    /// order its headers, query parameters and form fields come in, and whatever case its
    /// header names have (first-wins and last-wins parsers agree on it); an accepted request
    /// has each deciding input once; a `when` condition that any parser could read as set
    /// makes the operation sensitive.
    static func awsRequest(_ data: [UInt8]) {
        guard let request = request(data), request.path.hasPrefix("/svc/") else { return }
        let rest = request.path.dropFirst(5)
        let name = String(rest.prefix { $0 != "/" })
        guard let service = Catalog.shared.service(name) else { return }
        let below = String(rest.dropFirst(name.count))
        let servicePath = below.isEmpty ? "/" : below
        let classifier = Catalog.shared.classifier
        let keys = classifier.decidingQueryKeys(for: service)
        let refusal = request.malformation(for: service.wireProtocol)
            ?? request.ambiguity(for: service, servicePath: servicePath, decidingQueryKeys: keys)
        let again = request.malformation(for: service.wireProtocol)
            ?? request.ambiguity(for: service, servicePath: servicePath, decidingQueryKeys: keys)
        guard refusal == again else { fatalError("the refusal is not deterministic: \(String(describing: refusal)) / \(String(describing: again))") }
        guard refusal == nil else { return }

        // Accepted: each deciding input at most once, counted independently.
        let lowered = request.headers.map { $0.name.lowercased() }
        guard Set(lowered).count == lowered.count else { fatalError("accepted with a repeated header: \(lowered)") }
        if [.query, .ec2].contains(service.wireProtocol) {
            let actions = request.formParameters.filter { $0.key == "Action" }.count
            guard actions <= 1 else { fatalError("accepted with \(actions) Action parameters") }
        }
        if let body = try? JSON.parse(bytes: request.body), hasDuplicateKeys(body), lowered.contains("x-amz-target") {
            fatalError("accepted a JSON body with a repeated key")
        }

        let first = classifier.classify(request, service: service, servicePath: servicePath)
        let other = classifier.classify(permuted(request), service: service, servicePath: servicePath)
        guard first.ruling.decision == other.ruling.decision, first.operation == other.operation else {
            fatalError("two readings: \(first.operation ?? "?") \(first.ruling.decision) vs \(other.operation ?? "?") \(other.ruling.decision)")
        }
        // Fail closed: a condition member present in the body with any value but false.
        if let operation = first.operation, case .exact = first.resolution,
           let entries = classifier.overrides.sensitive["\(service.name):\(operation)"] {
            for entry in entries {
                guard let condition = entry.when, condition.location.hasPrefix("body:"),
                      case let member = condition.location.dropFirst(5).lowercased(),
                      let pairs = (try? JSON.parse(bytes: request.body))?.objectPairs else { continue }
                if pairs.contains(where: { $0.0.lowercased() == member && $0.1 != .bool(false) }), first.ruling.decision == .read {
                    fatalError("\(operation) with \(member) set was read as a plain read")
                }
            }
        }
    }

    /// The same request with headers, query parameters and form fields in reverse order and
    /// header names in upper case.
    static func permuted(_ request: AWSRequest) -> AWSRequest {
        var copy = request
        copy.headers = request.headers.reversed().map { (name: $0.name.uppercased(), value: $0.value) }
        if !request.query.isEmpty {
            copy.query = request.query.split(separator: "&", omittingEmptySubsequences: false).reversed().joined(separator: "&")
        }
        let contentType = request.header("content-type")?.lowercased() ?? ""
        if contentType.hasPrefix("application/x-www-form-urlencoded") {
            let text = String(decoding: request.body, as: UTF8.self)
            copy.body = Array(text.split(separator: "&", omittingEmptySubsequences: false).reversed().joined(separator: "&").utf8)
        }
        return copy
    }

    static func hasNonFinite(_ value: JSON) -> Bool {
        switch value {
        case .number(let number): return !number.isFinite
        case .object(let pairs): return pairs.contains { hasNonFinite($0.1) }
        case .array(let items): return items.contains(where: hasNonFinite)
        default: return false
        }
    }

    static func hasDuplicateKeys(_ value: JSON) -> Bool {
        switch value {
        case .object(let pairs):
            return Set(pairs.map(\.0)).count != pairs.count || pairs.contains { hasDuplicateKeys($0.1) }
        case .array(let items):
            return items.contains(where: hasDuplicateKeys)
        default:
            return false
        }
    }

    // MARK: JSON

    /// The strict reading accepts exactly the documents the lenient one reads without a
    /// repeated key (and with UTF-8 strings and strict numbers); what it accepts survives a
    /// round trip unchanged.
    static func json(_ data: [UInt8]) {
        let lenient = try? JSON.parse(bytes: data)
        let strict = try? JSON.parseStrict(bytes: data)
        if let strict {
            guard let lenient, lenient == strict else { fatalError("strict and lenient readings differ") }
            guard !hasDuplicateKeys(strict) else { fatalError("the strict reading kept a repeated key") }
            let text = strict.serialized()
            guard let back = try? JSON.parseStrict(bytes: Array(text.utf8)), back == strict else {
                fatalError("round trip changed the document: \(text.prefix(200))")
            }
        } else if let lenient, !hasDuplicateKeys(lenient), !hasNonFinite(lenient), String(validating: data, as: UTF8.self) != nil,
                  isStrictNumbersOnly(data) {
            fatalError("strict refused a document without repeated keys: \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
    }

    /// Numbers in the text follow JSON's grammar (a rough scan: no leading +, no leading
    /// zeros, no bare dots): only then must the strict reader accept.
    static func isStrictNumbersOnly(_ data: [UInt8]) -> Bool {
        var inString = false
        var escaped = false
        var previous: UInt8 = 0x20
        for (index, byte) in data.enumerated() {
            if inString {
                if escaped { escaped = false } else if byte == 0x5C { escaped = true } else if byte == 0x22 { inString = false }
                continue
            }
            if byte == 0x22 { inString = true; continue }
            let next = index + 1 < data.count ? data[index + 1] : 0x20
            if byte == 0x2B { return false }
            if byte == 0x2E, !(0x30...0x39).contains(previous) || !(0x30...0x39).contains(next) { return false }
            if byte == 0x30, !(0x30...0x39).contains(previous), previous != 0x2E, (0x30...0x39).contains(next) { return false }
            if (byte == 0x65 || byte == 0x45), !(0x30...0x39).contains(previous) { return false }
            if byte == 0x2D, (previous == 0x65 || previous == 0x45) == false, !(0x30...0x39).contains(next) { return false }
            if (byte == 0x65 || byte == 0x45), !((0x30...0x39).contains(next) || next == 0x2B || next == 0x2D) { return false }
            if byte == 0x2D || byte == 0x2B, previous == 0x65 || previous == 0x45, !(0x30...0x39).contains(next) { return false }
            previous = byte
        }
        return true
    }

    // MARK: Profiles

    /// Sandbox and tool profiles: an accepted profile never passes a credential-shaped
    /// variable or mounts a credential path, and a tool profile never allows a flag it does
    /// not also list as a redirect.
    static func profile(_ data: [UInt8]) {
        guard data.count <= ProfileParser.maximumSize, let text = String(validating: data, as: UTF8.self) else { return }
        if let profile = try? ProfileParser.parse(text, name: "fuzz", source: "fuzz.yaml") {
            for entry in profile.environment.pass where !EnvironmentPolicy.isPermittedPassEntry(entry) {
                fatalError("accepted a credential-shaped pass entry \(entry)")
            }
            for name in profile.environment.set.keys where CredentialRules.isCredentialName(name) {
                fatalError("accepted a credential-shaped variable \(name)")
            }
            let credentials = Set(CredentialRules.paths(home: "/home/user"))
            for path in profile.filesystem.readOnly + profile.filesystem.readWrite + profile.filesystem.readOnlyIfPresent {
                let expanded = HostPath.normalize(HostPath.expandingTilde(path, home: "/home/user"))
                if credentials.contains(where: { HostPath.isWithin(expanded, $0) }) { fatalError("accepted a credential path \(path)") }
            }
        }
        if let tool = try? ToolProfileParser.parse(text, source: "fuzz.yaml") {
            guard tool.allowFlags.isSubset(of: tool.redirectFlags) else { fatalError("allow_flags outside redirect_flags") }
            guard tool.valueFlags.isDisjoint(with: tool.booleanFlags) else { fatalError("a flag both valued and boolean") }
        }
    }

    // MARK: SigV4

    /// A request signed with a key verifies with it, and no longer verifies once its method,
    /// path, a signed header or its body changes.
    static func sigV4(_ data: [UInt8]) {
        guard let unsigned = request(data), unsigned.path.utf8.count < 4096 else { return }
        let credentials = SigV4.Credentials(accessKeyID: "AKIDFUZZDUMMY", secretAccessKey: "fuzz-dummy-secret")
        let payload = SigV4.hexSHA256(unsigned.body)
        let headers = unsigned.headers.filter { !["authorization", "x-amz-date", "host", "x-amz-content-sha256"].contains($0.name.lowercased()) }
        let signedHeaders = SigV4.signedHeaders(
            method: unsigned.method, path: unsigned.path, query: unsigned.query, host: "fuzz.example",
            headers: headers, payloadHash: payload, credentials: credentials, region: "us-east-1", service: "s3",
            timestamp: "20260101T000000Z", uriEncodedTwice: false)
        var signed = unsigned
        signed.headers = signedHeaders
        guard let signature = try? SigV4.parse(signed) else {
            // A header value that breaks the Authorization line's syntax (a comma in a name…)
            // may make it unparseable; then it must not verify either.
            return
        }
        do {
            try SigV4.verify(signed, signature: signature, secret: credentials.secretAccessKey, uriEncodedTwice: false)
        } catch {
            // Header names the signer and the verifier canonicalize differently are refused
            // later; a clean request must verify.
            if headers.allSatisfy({ isToken($0.name) && !$0.value.contains("\n") }) && Set(headers.map { $0.name.lowercased() }).count == headers.count {
                fatalError("a request signed with the key does not verify: \(error)")
            }
            return
        }
        var tampered = signed
        // (The signature covers the method upper-cased, as botocore signs it: `GEt` is `GET`.
        // The broker refuses methods that are not upper-case before it classifies.)
        tampered.method = signed.method.uppercased() == "GET" ? "PUT" : "GET"
        if (try? SigV4.verify(tampered, signature: signature, secret: credentials.secretAccessKey, uriEncodedTwice: false)) != nil {
            fatalError("verified with another method")
        }
        tampered = signed
        tampered.body = signed.body + [0x78]
        if (try? SigV4.verify(tampered, signature: signature, secret: credentials.secretAccessKey, uriEncodedTwice: false)) != nil {
            fatalError("verified with another body")
        }
        tampered = signed
        tampered.path = signed.path + "x"
        if (try? SigV4.verify(tampered, signature: signature, secret: credentials.secretAccessKey, uriEncodedTwice: false)) != nil {
            fatalError("verified with another path")
        }
        if (try? SigV4.verify(signed, signature: signature, secret: "another-secret", uriEncodedTwice: false)) != nil {
            fatalError("verified with another key")
        }
    }

    static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { (0x21...0x7E).contains($0) && $0 != 0x3A && $0 != 0x3B && $0 != 0x2C && $0 != 0x3D }
    }
}

extension String {
    func trimmingLeadingSpace() -> String { String(drop { $0 == " " || $0 == "\t" }) }
}

/// The committed AWS catalog, loaded once (AIRLOCK_FUZZ_CATALOG, default profiles/aws).
final class Catalog: @unchecked Sendable {
    static let shared = Catalog()
    let directory: String
    let classifier: AWSClassifier
    private var services: [String: AWSService?] = [:]

    init() {
        directory = ProcessInfo.environment["AIRLOCK_FUZZ_CATALOG"] ?? "profiles/aws"
        let overrides = (try? readTextFile(directory + "/overrides.yaml", limit: 8 << 20)).flatMap { try? AWSOverrides(yamlText: $0) }
        guard let overrides else { fatalError("cannot read \(directory)/overrides.yaml: set AIRLOCK_FUZZ_CATALOG to profiles/aws") }
        classifier = AWSClassifier(overrides: overrides)
    }

    func service(_ name: String) -> AWSService? {
        guard name.utf8.count <= 64, name.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }) else { return nil }
        if let cached = services[name] { return cached }
        let loaded = (try? readTextFile(directory + "/services/\(name).json", limit: 32 << 20)).flatMap { try? AWSService(jsonText: $0) }
        services[name] = loaded
        return loaded
    }
}

enum ProcessInfo {
    static var environment: [String: String] { currentEnvironment() }
}
