// airlock-bench: measurements scripts/bench runs that need Airlock's own code (not shipped,
// not a test). `airlock-bench classify CORPUS CATALOG_DIR`: classification and signature
// verification cost per request over every operation of the catalog. `airlock-bench parse
// FILE...`: what reading profiles costs `airlock run` (the first parse in a process,
// which pays the Swift runtime's one-time type lookups, and warm parses).
import AirlockCore
import AirlockPolicy
import Glibc

func fail(_ message: String) -> Never {
    let text = "airlock-bench: \(message)\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

let arguments = CommandLine.arguments
if arguments.count >= 2, arguments[1] == "gate-load" {
    gateLoad(Array(arguments.dropFirst(2)))
    exit(0)
}
if arguments.count == 2, arguments[1] == "policy" {
    measurePolicy()
    exit(0)
}
if arguments.count >= 3, arguments[1] == "parse" {
    measureParsing(Array(arguments.dropFirst(2)))
    exit(0)
}
// `classify-count CORPUS CATALOG_DIR classify|verify ROUNDS`: the same work, untimed, for
// `valgrind --tool=callgrind` (instructions are repeatable on this noisy machine; seconds are
// not). scripts/bench runs it with 1 and 3 rounds: the difference over 2 × the corpus is the
// instructions per request, without the loading both runs share.
let counting = arguments.count == 6 && arguments[1] == "classify-count"
guard (arguments.count == 4 && arguments[1] == "classify") || counting else {
    fail("usage: airlock-bench classify CORPUS CATALOG_DIR | airlock-bench classify-count CORPUS CATALOG_DIR classify|verify ROUNDS | airlock-bench parse TOOL_PROFILE... | airlock-bench policy")
}
let corpusPath = arguments[2], catalogDir = arguments[3]

let index = (try? AWSCatalogIndex(jsonText: readTextFile(catalogDir + "/index.json", limit: 1 << 26))) ?? { fail("bad index") }()
var services: [String: AWSService] = [:]
for entry in index.services {
    guard let text = try? readTextFile(catalogDir + "/services/\(entry.name).json", limit: 1 << 26),
          let service = try? AWSService(jsonText: text) else { fail("bad service \(entry.name)") }
    services[entry.name] = service
}
let overridesText = (try? readTextFile(catalogDir + "/overrides.yaml", limit: 1 << 26)) ?? { fail("no overrides") }()
let classifier = AWSClassifier(overrides: (try? AWSOverrides(yamlText: overridesText)) ?? { fail("bad overrides") }())

struct Item {
    var service: AWSService
    var servicePath: String
    var request: AWSRequest
}
var items: [Item] = []
let corpus = (try? readTextFile(corpusPath, limit: 1 << 30)) ?? { fail("no corpus at \(corpusPath)") }()
for line in corpus.split(separator: "\n") {
    guard let json = try? JSON.parse(String(line)), let name = json["service"]?.string, let service = services[name],
          let method = json["method"]?.string, let path = json["path"]?.string, let host = json["host"]?.string else { continue }
    var headers = (json["headers"]?.objectPairs ?? []).compactMap { key, value in value.string.map { (name: key, value: $0) } }
    headers.insert((name: "host", value: host), at: 0)
    let body = json["body_base64"]?.string.flatMap(Base64.decode) ?? []
    let request = AWSRequest(method: method, target: path, headers: headers, body: body)
    let prefix = "/svc/" + name
    let below = request.path.hasPrefix(prefix) ? String(request.path.dropFirst(prefix.count)) : request.path
    items.append(Item(service: service, servicePath: below.isEmpty ? "/" : below, request: request))
}

@MainActor
func measure(_ label: String, rounds: Int, goal: Double, _ body: (Item) -> Void) {
    var samples: [Double] = []
    for _ in 0..<rounds {
        let start = Clock.monotonicSeconds()
        for item in items { body(item) }
        samples.append((Clock.monotonicSeconds() - start) / Double(items.count) * 1e6)
    }
    samples.sort()
    let median = samples[samples.count / 2]
    print("\(label): \(items.count) requests × \(rounds) rounds; median \(String(format2: median)) µs per request (best round \(String(format2: samples[0])) µs); goal ≤ \(String(format2: goal)) µs: \(median <= goal ? "met" : "NOT met")")
}

var sink = 0
if counting {
    let rounds = Int(arguments[5]) ?? 1
    for _ in 0..<rounds {
        for item in items {
            if arguments[4] == "classify" {
                sink &+= classifier.classify(item.request, service: item.service, servicePath: item.servicePath).ruling.decision.rawValue.count
            } else if let signature = try? SigV4.parse(item.request),
                      (try? SigV4.verify(item.request, signature: signature, secret: "airlock-corpus-dummy-secret",
                                         uriEncodedTwice: !["s3", "s3control", "s3express"].contains(signature.service))) != nil {
                sink &+= 1
            }
        }
    }
    print("counted \(items.count) requests × \(rounds) (\(sink))")
    exit(0)
}
measure("classify (resolve operation + decide)", rounds: 5, goal: 2) { item in
    let result = classifier.classify(item.request, service: item.service, servicePath: item.servicePath)
    sink &+= result.ruling.decision.rawValue.count
}
measure("verify SigV4 signature", rounds: 3, goal: 10) { item in
    guard let signature = try? SigV4.parse(item.request) else { return }
    if (try? SigV4.verify(item.request, signature: signature, secret: "airlock-corpus-dummy-secret",
                          uriEncodedTwice: !["s3", "s3control", "s3express"].contains(signature.service))) != nil { sink &+= 1 }
}
if sink == 42 { print("") }

extension String {
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        self = "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

/// The first parse of each file (in this order, in a fresh process: what `airlock run` pays)
/// and the median of 200 more.
func measureParsing(_ paths: [String]) {
    var total = 0.0
    for path in paths {
        guard let text = try? readTextFile(path, limit: 1 << 20) else { fail("cannot read \(path)") }
        // Tool profiles (profiles/tools/) and sandbox profiles have their own parsers.
        let isTool = path.contains("/tools/")
        let parse: () -> Bool = {
            isTool ? (try? ToolProfileParser.parse(text, source: path)) != nil
                : (try? ProfileParser.parse(text, name: "bench", source: path)) != nil
        }
        var start = Clock.monotonicSeconds()
        guard parse() else { fail("\(path) does not parse") }
        let first = (Clock.monotonicSeconds() - start) * 1e6
        total += first
        var samples: [Double] = []
        for _ in 0..<200 {
            start = Clock.monotonicSeconds()
            _ = parse()
            samples.append((Clock.monotonicSeconds() - start) * 1e6)
        }
        samples.sort()
        print("parse \(path) (\(text.utf8.count) bytes): first \(String(format2: first)) µs, then median \(String(format2: samples[100])) µs")
    }
    print("parse: first parses together \(String(format2: total)) µs")
}
