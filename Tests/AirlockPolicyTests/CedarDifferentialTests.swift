import AirlockCore
import Foundation
import Testing

@testable import AirlockPolicy

/// The Cedar evaluator and validator against the reference engine (Rust `cedar-policy`, through
/// PyPI's `cedarpy`; docs/policy.md, "Checked against the reference"): scripts/cedar_diff.py
/// generates random policy sets over Airlock's schema, random entities and requests, and
/// records the reference's answers; every decision, every determining policy id, every erroring
/// policy id, parse acceptance and validation acceptance must be the same here.
@Suite struct CedarDifferentialTests {
    static let casesPath = ProcessInfo.processInfo.environment["AIRLOCK_CEDAR_CASES"]

    struct Divergence: CustomStringConvertible {
        var what: String
        var policies: String
        var detail: String
        var description: String { "\(what): \(detail)\n--- policies ---\n\(policies)" }
    }

    static func uid(_ json: CedarJSON?) -> CedarEntityUID? {
        guard let json else { return nil }
        return try? CedarJSONFormat.entityUID(json)
    }

    @Test func agreesWithTheReferenceEngine() throws {
        guard let path = Self.casesPath, let data = FileManager.default.contents(atPath: path) else {
            Issue.record("the Cedar differential cases are not available: scripts/test generates them with scripts/cedar_diff.py (AIRLOCK_CEDAR_CASES; needs cedarpy from scripts/requirements.txt in .venv)")
            return
        }
        let document = try CedarJSON.parse([UInt8](data), maximumDepth: 256)
        let schema = try CedarSchema(json: try #require(document["schema"]))
        let cases = try #require(document["cases"]?.array)
        var divergences: [Divergence] = []
        var pairs = 0, parsed = 0, validated = 0, allowed = 0, errored = 0
        for item in cases {
            let text = try #require(item["policies"]?.string)
            let referenceParses = item["parses"] == .bool(true)
            let policies: [CedarPolicy]?
            var parseError = ""
            do { policies = try CedarParser.parse(text) } catch { policies = nil; parseError = error.description }
            guard (policies != nil) == referenceParses else {
                divergences.append(Divergence(what: "parse acceptance", policies: text,
                                              detail: "reference parses: \(referenceParses); here: \(policies != nil) \(parseError)"))
                continue
            }
            guard let policies else { continue }
            parsed += 1
            if case .bool(let referenceValid)? = item["validates"] {
                let problems = CedarValidator.validate(policies, schema: schema)
                if problems.isEmpty != referenceValid {
                    let reference = (item["validation_errors"]?.array ?? []).compactMap(\.string).joined(separator: " | ")
                    divergences.append(Divergence(what: "validation acceptance", policies: text,
                                                  detail: "reference valid: \(referenceValid) [\(reference)]; here: \(problems.map(\.description))"))
                }
                if referenceValid { validated += 1 }
            }
            let entities = CedarEntities(try CedarJSONFormat.entities(try #require(item["entities"])))
            let policySet = CedarPolicySet(policies)
            for request in item["requests"]?.array ?? [] {
                pairs += 1
                let cedarRequest = CedarRequest(principal: try #require(Self.uid(request["principal"])),
                                                action: try #require(Self.uid(request["action"])),
                                                resource: try #require(Self.uid(request["resource"])),
                                                context: try CedarJSONFormat.record(request["context"] ?? .object([])))
                // The plain evaluator and the folded, indexed set Airlock decides with: both
                // must answer as the reference does.
                let response = CedarAuthorizer.authorize(policies, cedarRequest, entities)
                let indexed = policySet.authorize(cedarRequest, entities)
                if indexed.allowed != response.allowed || indexed.determining.sorted() != response.determining.sorted()
                    || indexed.errors.map(\.policy).sorted() != response.errors.map(\.policy).sorted() {
                    divergences.append(Divergence(what: "folded and indexed set", policies: text,
                                                  detail: "plain: \(response); folded and indexed: \(indexed)"))
                }
                let decision = request["decision"]?.string == "Allow"
                let reasons = (request["reasons"]?.array ?? []).compactMap(\.string).sorted()
                let errors = (request["errors"]?.array ?? []).compactMap(\.string).sorted()
                if decision { allowed += 1 }
                if !errors.isEmpty { errored += 1 }
                let mine = (response.allowed, response.determining.sorted(), response.errors.map(\.policy).sorted())
                if mine.0 != decision || mine.1 != reasons || mine.2 != errors {
                    divergences.append(Divergence(what: "authorization", policies: text,
                                                  detail: "request \(request.compactText)\nreference: \(decision ? "Allow" : "Deny") \(reasons) errors \(errors)\nhere: \(mine.0 ? "Allow" : "Deny") \(mine.1) errors \(response.errors.map { "\($0.policy): \($0.message)" })"))
                }
            }
        }
        print("cedar differential: \(cases.count) policy sets (\(parsed) parsed, \(validated) valid), \(pairs) (policy set, request) pairs, \(allowed) allowed, \(errored) with an erroring policy, \(divergences.count) divergences")
        if case .object(let stats)? = document["stats"] {
            print("cedar differential, constructs generated: " + stats.map { "\($0.0)=\($0.1.compactText)" }.joined(separator: " "))
            // Every construct the issue lists, often enough to mean something; errors and
            // forbid-wins decisions a real share.
            func count(_ name: String) -> Int64 { if case .integer(let n)? = document["stats"]?[name] { return n } else { return 0 } }
            for construct in ["permit", "forbid", "scope_eq", "scope_in", "scope_is", "action_list", "action_eq", "action_in_group", "when",
                              "unless", "hierarchy_in", "record_literal", "set_literal", "attribute_access", "has", "like", "comparison",
                              "equality", "and", "or", "not", "if_then_else", "contains", "containsAll", "containsAny", "ip", "isInRange",
                              "decimal", "decimal_compare", "annotation", "arithmetic", "is_in_condition"] {
                #expect(count(construct) >= 500, "\(construct) occurred \(count(construct)) times; the generator must make it at least 500")
            }
            #expect(count("erroring_policies") * 100 >= count("policies"), "erroring policies: \(count("erroring_policies")) of \(count("policies"))")
            #expect(count("forbid_wins") * 100 >= count("pairs"), "forbid-wins decisions: \(count("forbid_wins")) of \(count("pairs"))")
        } else {
            Issue.record("the cases carry no construct counts")
        }
        #expect(pairs >= 20_000, "the issue asks for at least 20,000 pairs in CI")
        for divergence in divergences.prefix(8) { Issue.record("\(divergence)") }
        #expect(divergences.isEmpty, "\(divergences.count) divergences from the reference (first ones above)")
    }
}

extension CedarJSON {
    var compactText: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .integer(let n): return String(n)
        case .string(let s): return JSON.quote(s)
        case .array(let items): return "[" + items.map(\.compactText).joined(separator: ",") + "]"
        case .object(let pairs): return "{" + pairs.map { JSON.quote($0.0) + ":" + $0.1.compactText }.joined(separator: ",") + "}"
        }
    }
}
