/// Who has approved a proposal and what it still needs (docs/policy.md, "Who may approve").
/// Pure: the one approve path (local CLI, the gate's API, anything later) asks it before it
/// counts an approval or runs anything.
public enum ApprovalTally {
    public enum Verdict: Sendable, Equatable {
        /// Enough distinct approvers: it runs now.
        case approved
        /// Counted; this many more distinct approvers are needed.
        case needsMore(Int)
        /// This approver may not approve it, and why; nothing is counted.
        case refused(String)
        /// Its deadline passed: it is expired, nothing runs.
        case expired
    }

    /// Where the decision is made: locally the human who launched the session is the only
    /// human and may approve (their approval counts once); on a team gate the launching
    /// human never counts, whatever token they use.
    public enum Place: Sendable, Equatable { case local, gate }

    /// The verdict of `approver`'s approval, given those counted before (`counted`), the
    /// session's launching human, and the clock (epoch seconds; `proposedAt` when it was
    /// proposed).
    public static func verdict(requirement: PolicyRequirement, approver: String, counted: [String], launcher: String?,
                               place: Place, proposedAt: Double, now: Double) -> Verdict {
        if requirement.expiresAfter.isFinite, now - proposedAt >= requirement.expiresAfter { return .expired }
        if place == .gate, let launcher, approver == launcher {
            return .refused("\(approver) launched the session that proposed it, and on a team gate the launching human never counts as an approver")
        }
        if counted.contains(approver) {
            return .refused("\(approver) already approved it; it needs \(requirement.approvals) distinct approvers, and one person counts once")
        }
        let distinct = Set(counted.filter { place == .local || $0 != launcher }).union([approver]).count
        let needed = max(1, requirement.approvals)
        return distinct >= needed ? .approved : .needsMore(needed - distinct)
    }
}
