import AirlockPolicy
import Testing

/// Who may do what on a team gate: the whole table, and the tokens' form.
@Suite struct GateAccessTests {
    @Test(arguments: GateAccess.Role.allCases)
    func everyRoleAndAction(_ role: GateAccess.Role) {
        let hostMay: Set<GateAccess.Action> = [.whoami, .propose, .recordSession, .waitOwn]
        for action in GateAccess.Action.allCases {
            let expected = role == .host ? hostMay.contains(action) : !([.propose, .recordSession] as Set).contains(action)
            #expect(GateAccess.allows(role, action) == expected, "\(role) \(action)")
        }
        // The invariant itself: no host may decide anything.
        #expect(!GateAccess.allows(.host, .approve) && !GateAccess.allows(.host, .deny) && !GateAccess.allows(.host, .revoke))
    }

    @Test func tokensClaimTheirRoleAndNothingElse() {
        let host = GateToken.make(.host), user = GateToken.make(.approver)
        #expect(GateToken.claimedRole(host) == .host && GateToken.claimedRole(user) == .approver)
        #expect(host.count == 13 + 43 && host != GateToken.make(.host))
        #expect(GateToken.hash(host).count == 64 && GateToken.hash(host) != GateToken.hash(user))
        for bad in ["", "airlock_host_", "airlock_host_" + String(repeating: "a", count: 42), "airlock_root_" + String(repeating: "a", count: 43),
                    "airlock_host_" + String(repeating: "a", count: 42) + "!", "Bearer " + host, host + "\n"] {
            #expect(GateToken.claimedRole(bad) == nil, "\(bad)")
        }
    }
}
