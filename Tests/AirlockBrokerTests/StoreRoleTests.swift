import AirlockCore
import AirlockExecution
import AirlockPolicy
import AirlockStore
import AirlockStorePostgres
import Foundation
import Testing

@testable import AirlockBroker

/// The store split by role (docs/architecture.md, "The store by role"): which conformer plays
/// which role, and none pretends to play one it cannot (no method that only throws or returns
/// nothing).
@Suite struct StoreRoleTests {
    static let roles: [(name: String, check: @Sendable (Any.Type) -> Bool)] = [
        ("CallRecorder", { $0 is any CallRecorder.Type }), ("ProposalIntake", { $0 is any ProposalIntake.Type }),
        ("DecisionStore", { $0 is any DecisionStore.Type }), ("GateDirectory", { $0 is any GateDirectory.Type }),
        ("AuditLog", { $0 is any AuditLog.Type }),
    ]

    static let table: [(type: Any.Type, file: String, roles: Set<String>)] = [
        (InMemoryProposalStore.self, "Sources/AirlockStore/InMemoryProposalStore.swift",
         ["CallRecorder", "ProposalIntake", "DecisionStore", "GateDirectory", "AuditLog"]),
        (SQLiteProposalStore.self, "Sources/AirlockStore/SQLiteProposalStore.swift",
         ["CallRecorder", "ProposalIntake", "DecisionStore", "GateDirectory", "AuditLog"]),
        (PostgresProposalStore.self, "Sources/AirlockStorePostgres/PostgresProposalStore.swift",
         ["CallRecorder", "ProposalIntake", "DecisionStore", "GateDirectory", "AuditLog"]),
        // An agent host's: it proposes, waits, has its refusals audited; it decides nothing.
        (GateClient.self, "Sources/AirlockBroker/GateClient.swift", ["CallRecorder", "ProposalIntake"]),
        // An execution sandbox on a team gate records its calls, nothing else.
        (ExecutionSpool.self, "Sources/AirlockExecution/ExecutionSpool.swift", ["CallRecorder"]),
        // A session's lazy intake.
        (StoreCache.self, "Sources/AirlockExecution/AgentSession.swift", ["CallRecorder", "ProposalIntake"]),
    ]

    @Test func eachConformerPlaysItsRolesAndNoOther() {
        for row in Self.table {
            let played = Set(Self.roles.filter { $0.check(row.type) }.map(\.name))
            #expect(played == row.roles, "\(row.type) plays \(played.sorted()), expected \(row.roles.sorted())")
        }
    }

    /// A method whose whole body throws, or returns an empty list, nil or nothing, is a role
    /// pretended: found by reading the conformers' sources.
    @Test func noConformerHasAStubMethod() throws {
        let stub = try Regex(#"func [^{\n]*\{\s*(throw [^{}\n]*|\[\]|nil|)\s*\}"#)
        for row in Self.table {
            let text = try String(contentsOfFile: Stage.repoRoot + "/" + row.file, encoding: .utf8)
            let found = text.matches(of: stub).map { String(text[$0.range]) }
            #expect(found.isEmpty, "\(row.file): \(found)")
        }
    }
}

enum Stage {
    static let repoRoot: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }()
}
