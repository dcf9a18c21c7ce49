import AirlockBroker
import AirlockCore
import AirlockExecution
import AirlockPolicy
import AirlockSandbox
import ArgumentParser

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check Cedar policies against Airlock's schema; print the schema.",
        discussion: """
            Rules decide each change an agent proposes (docs/policy.md): a matching `forbid`
            denies it at once; a `permit` annotated @airlock_allow runs it without a human;
            otherwise it waits for @approvals("N") distinct approvers (default 1) until
            @expires("1h") (default 24h). `airlock run` reads ~/.config/airlock/policy.cedar
            (or --policy FILE); a team gate reads the file gate.yaml's `policy` names.
            """,
        subcommands: [Check.self, Schema.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate policy files; print what each policy decides.",
            discussion: """
                Each FILE is read whole and strictly: a syntax error (with line and column), an
                entity type or action Airlock does not know, an attribute that may be missing
                without a `has` test, a comparison that can never be true, or an annotation out
                of range makes the file invalid. For a valid file, each policy is listed with
                its outcome. Exits 1 if any file is invalid.
                """)

        @Argument(help: ArgumentHelp("Cedar policy files.", valueName: "FILE")) var files: [String]
        @Flag(help: "Print one JSON document.") var json = false

        func run() throws {
            let environment = currentEnvironment()
            let library = ProfileLibrary(environment: environment, home: environment["HOME"] ?? "/")
            let catalog = try? AWSCatalogFiles.locate(environment: environment, profileSearchPath: library.searchPath)
            var reports: [JSON] = [], invalid = false
            for file in files {
                do throws(AirlockError) {
                    let text = try readTextFile(file, limit: 1 << 20)
                    let rules = try AirlockRules([AirlockRules.Source(label: file, text: text)], lookup: SessionRules.lookup(catalog))
                    let policies = rules.policies.map { policy -> JSON in
                        let annotations = rules.annotations[policy.id] ?? RuleAnnotations()
                        return .object([("id", .string(policy.id)), ("line", .number(Double(policy.location.line))),
                                        ("effect", .string(policy.effect.rawValue)), ("outcome", .string(Self.outcome(policy, annotations)))])
                    }
                    if json {
                        reports.append(.object([("file", .string(file)), ("valid", .bool(true)), ("policies", .array(policies))]))
                    } else {
                        print("\(file): valid, \(policies.count) \(policies.count == 1 ? "policy" : "policies")")
                        for policy in policies {
                            print("  \(policy["id"]?.string ?? "") (line \(policy["line"]?.int ?? 0)): \(policy["outcome"]?.string ?? "")")
                        }
                    }
                } catch {
                    invalid = true
                    if json {
                        reports.append(.object([("file", .string(file)), ("valid", .bool(false)), ("error", .string(error.message))]))
                    } else {
                        writeError("\(file): \(error.message)\n")
                        if let hint = error.hint { writeError("  hint: \(hint)\n") }
                    }
                }
            }
            if json { printJSON(.object([("files", .array(reports))])) }
            if invalid { throw ExitCode(1) }
        }

        static func outcome(_ policy: CedarPolicy, _ annotations: RuleAnnotations) -> String {
            if policy.effect == .forbid { return "forbid: denies at once" }
            if annotations.allow { return "permit: runs without a human (@airlock_allow)" }
            let who = annotations.approvals == 1 ? "1 approver" : "\(annotations.approvals) distinct approvers"
            let seconds = Int(annotations.expiresAfter)
            let within = seconds % 3600 == 0 ? "\(seconds / 3600) h" : seconds % 60 == 0 ? "\(seconds / 60) min" : "\(seconds) s"
            return "permit: asks \(who), expires after \(within)"
        }
    }

    struct Schema: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print Airlock's Cedar schema (principal, actions, resource, context).",
            discussion: "--json prints Cedar's JSON schema format, which the `cedar` CLI and editors read.")

        @Flag(help: "Cedar's JSON schema format.") var json = false

        func run() throws {
            let schema = AirlockCedar.schema(for: [])
            if json { printJSON(schema.json); return }
            print("principal: Session (in Host)")
            for (name, attribute) in AirlockCedar.sessionAttributes.sorted(by: { $0.key < $1.key }) {
                print("  principal.\(name)\(attribute.required ? "" : "?"): \(attribute.type)")
            }
            print("resource: Target (in Account)")
            for (name, attribute) in AirlockCedar.targetAttributes.sorted(by: { $0.key < $1.key }) {
                print("  resource.\(name)\(attribute.required ? "" : "?"): \(attribute.type)")
            }
            print("context:")
            for (name, attribute) in AirlockCedar.contextAttributes.sorted(by: { $0.key < $1.key }) {
                print("  context.\(name)\(attribute.required ? "" : "?"): \(attribute.type)")
            }
            print("actions: Action::\"aws:SERVICE:Operation\" (every operation of the AWS catalog), Action::\"kubernetes:VERB\",")
            print("  Action::\"github:push\", Action::\"github:METHOD\", Action::\"command:TOOL:SUBCOMMAND\"; groups:")
            print("  " + (AirlockCedar.kindGroups + AirlockCedar.providerGroups + ["aws:SERVICE", "command:TOOL"]).map { "Action::\"\($0)\"" }.joined(separator: ", "))
        }
    }
}
