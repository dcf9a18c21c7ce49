import AirlockCore
import Foundation
import Testing

@testable import AirlockPolicy

/// The generated corpus: for every operation of the catalog, one request botocore itself
/// serialized and signed (scripts/aws_corpus.py). Every one must resolve to its operation,
/// classify, and verify as signed with the corpus's dummy key.
@Suite struct AWSCorpusTests {
    static let corpusPath = ProcessInfo.processInfo.environment["AIRLOCK_AWS_CORPUS"]

    struct Line {
        var service: String
        var operation: String
        var request: AWSRequest
    }

    static func loadCorpus() -> [Line]? {
        guard let path = corpusPath, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return text.split(separator: "\n").compactMap { raw -> Line? in
            guard let json = try? JSON.parse(String(raw)), let service = json["service"]?.string,
                let operation = json["operation"]?.string, let method = json["method"]?.string,
                let path = json["path"]?.string, let host = json["host"]?.string
            else { return nil }
            var headers = (json["headers"]?.objectPairs ?? []).compactMap { name, value in value.string.map { (name: name, value: $0) } }
            headers.insert((name: "host", value: host), at: 0)
            let body = json["body_base64"]?.string.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
            return Line(service: service, operation: operation,
                        request: AWSRequest(method: method, target: path, headers: headers, body: body))
        }
    }

    @Test func everyOperationResolvesClassifiesAndVerifies() throws {
        guard let corpus = Self.loadCorpus() else {
            let message = "AWS corpus not available: scripts/test generates it (AIRLOCK_AWS_CORPUS)"
            Issue.record(Comment(rawValue: message))
            return
        }
        let catalog = try TestCatalog.load()
        let classifier = AWSClassifier(overrides: catalog.overrides)
        var exact = 0, ambiguous = 0, failed: [String] = []
        var verified = 0, unsignedOrOther = 0, badSignatures: [String] = []
        var decisions: [Decision: Int] = [:]
        var refused: [String] = []
        for line in corpus {
            let service = try #require(catalog.services[line.service], "no catalog file for \(line.service)")
            let prefix = "/svc/" + line.service
            let servicePath: String
            if line.request.path == prefix || line.request.path.hasPrefix(prefix + "/") {
                let rest = String(line.request.path.dropFirst(prefix.count))
                servicePath = rest.isEmpty ? "/" : rest
            } else {
                servicePath = line.request.path  // botocore dropped the endpoint path (see docs)
            }
            // What an SDK sends has one reading: never refused as ambiguous.
            if let ambiguity = line.request.ambiguity(for: service, servicePath: servicePath,
                                                      decidingQueryKeys: classifier.decidingQueryKeys(for: service)) {
                refused.append("\(line.service):\(line.operation): \(ambiguity)")
            }
            let result = classifier.classify(line.request, service: service, servicePath: servicePath)
            decisions[result.ruling.decision, default: 0] += 1
            switch result.resolution {
            case .exact(let operation, _) where operation.name == line.operation: exact += 1
            case .ambiguous(let candidates) where candidates.contains(where: { $0.name == line.operation }):
                ambiguous += 1
                // The deciding candidate is at least as privileged as the real one.
                let real = classifier.decide(service: service, operation: service.operation(named: line.operation)!,
                                             request: line.request, bindings: [:])
                #expect(real.decision <= result.ruling.decision)
            default: failed.append("\(line.service):\(line.operation) → \(result.resolution)")
            }
            // Signatures: every SigV4 request verifies with the dummy secret it was signed with.
            guard let signature = try? SigV4.parse(line.request) else {
                unsignedOrOther += 1
                continue
            }
            let s3Family = ["s3", "s3control", "s3express"].contains(signature.service)
            do {
                try SigV4.verify(line.request, signature: signature, secret: "airlock-corpus-dummy-secret",
                                 uriEncodedTwice: !s3Family)
                verified += 1
            } catch {
                badSignatures.append("\(line.service):\(line.operation): \(error)")
            }
        }
        let total = corpus.count
        print("""
            AWS corpus: \(total) requests; resolved exactly \(exact), ambiguous \(ambiguous), failed \(failed.count) \
            (\(String(format: "%.3f", Double(exact) * 100 / Double(total)))% exact); signatures verified \(verified), \
            not SigV4 \(unsignedOrOther), bad \(badSignatures.count); decisions \(decisions.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", "))
            """)
        for failure in failed { print("  unresolved: \(failure)") }
        print("AWS corpus: \(refused.count) requests refused as ambiguous")
        #expect(refused.isEmpty, "\(refused.prefix(20))")
        #expect(total > 18_000)
        #expect(Double(exact) / Double(total) >= 0.999, "exact \(exact) of \(total)")
        #expect(failed.count <= 10, "\(failed)")
        #expect(badSignatures.isEmpty, "\(badSignatures.prefix(20))")
        #expect(verified > 18_000)
    }
}

/// The committed catalog, read straight from profiles/aws.
struct TestCatalog {
    var index: AWSCatalogIndex
    var services: [String: AWSService]
    var overrides: AWSOverrides

    static let directory: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/profiles/aws"
    }()

    nonisolated(unsafe) static var cached: TestCatalog?
    static let lock = NSLock()

    static func load() throws -> TestCatalog {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        let index = try AWSCatalogIndex(jsonText: String(contentsOfFile: directory + "/index.json", encoding: .utf8))
        var services: [String: AWSService] = [:]
        for entry in index.services {
            services[entry.name] = try AWSService(jsonText: String(contentsOfFile: directory + "/services/\(entry.name).json", encoding: .utf8))
        }
        let overrides = try AWSOverrides(yamlText: String(contentsOfFile: directory + "/overrides.yaml", encoding: .utf8))
        let catalog = TestCatalog(index: index, services: services, overrides: overrides)
        cached = catalog
        return catalog
    }
}
