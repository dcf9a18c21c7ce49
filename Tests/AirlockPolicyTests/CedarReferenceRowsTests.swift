import AirlockCore
import Foundation
import Testing

@testable import AirlockPolicy

/// The reference engine's behaviours most easily got wrong (docs/policy.md, "Checked against the
/// reference"), each answer checked with cedarpy 4.12.2 (the rows' comments) and kept here so a
/// change that loses one fails by name, not only as a count of divergences.
@Suite struct CedarReferenceRowsTests {
    static let base = #"permit(principal, action == Action::"aws:s3:PutObject", resource) when { %@ };"#

    /// (condition, parses, validates) as cedarpy answers against Airlock's schema
    /// (`airlock policy schema --json`).
    static let validation: [(String, Bool, Bool)] = [
        (#"1 == "a""#, true, true),                                     // two literals compare without a type error
        (#"principal is Host && principal.nope == 1"#, true, true),      // a known-false left side hides the right
        (#"decimal("1.0") < decimal("2.0")"#, true, false),             // `<` is for Longs (and datetimes), not decimals
        (#"context.labels.containsAll([])"#, true, false),              // an empty set literal has no type
        (#"ip("300.1.1.1").isIpv4()"#, true, false),                    // extension literals are checked when validating
        (#""a\*" == "a""#, false, false),                               // `\*` only escapes inside a `like` pattern
        (#"--9223372036854775808 == 1"#, true, true),                   // parses; overflows when evaluated
        (#"resource.account == "1""#, true, false),                     // an optional attribute needs `has` first
        (#"!(resource has account) || resource.account == "1""#, true, false),  // a `has` on the left of || guards nothing
    ]

    @Test func validationAsTheReferenceAnswers() throws {
        for (condition, parses, validates) in Self.validation {
            let text = Self.base.replacingOccurrences(of: "%@", with: condition)
            let policies = try? CedarParser.parse(text)
            #expect((policies != nil) == parses, "\(condition): parses")
            guard let policies else { continue }
            let problems = CedarValidator.validate(policies, schema: AirlockCedar.schema(for: policies))
            #expect(problems.isEmpty == validates, "\(condition): \(problems)")
        }
    }

    /// (policy, decision, reasons, erroring) for a request whose resource is not in the store.
    static let evaluation: [(String, Bool, [String], [String])] = [
        (#"permit(principal, action, resource) when { resource has kind };"#, false, [], []),            // has on a missing entity: false
        (#"permit(principal, action, resource) when { resource.kind == "aws" };"#, false, [], ["policy0"]), // its attribute: an error
        (#"@id("mine") permit(principal, action, resource);"#, true, ["policy0"], []),                    // @id does not rename
        (#"permit(principal, action, resource) when { --9223372036854775808 == 1 };"#, false, [], ["policy0"]),  // overflow
        (#"forbid(principal, action, resource) when { resource.kind == "aws" }; permit(principal, action, resource);"#,
         true, ["policy1"], ["policy0"]),                                                                 // an erroring forbid is skipped
    ]

    @Test func evaluationAsTheReferenceAnswers() throws {
        let session = CedarEntity(CedarEntityUID("Session", "s"), attributes: [
            "host": .entity(CedarEntityUID("Host", "h")), "user": .entity(CedarEntityUID("Human", "u")), "profile": .string("p"), "labels": .set([]),
        ])
        let request = CedarRequest(principal: CedarEntityUID("Session", "s"), action: CedarEntityUID("Action", "aws:s3:PutObject"),
                                   resource: CedarEntityUID("Target", "absent"))
        for (text, allowed, reasons, errors) in Self.evaluation {
            let policies = try CedarParser.parse(text)
            for response in [CedarAuthorizer.authorize(policies, request, CedarEntities([session])),
                             CedarPolicySet(policies).authorize(request, CedarEntities([session]))] {
                #expect(response.allowed == allowed && response.determining == reasons && response.errors.map(\.policy) == errors,
                        "\(text): \(response)")
            }
        }
    }
}
