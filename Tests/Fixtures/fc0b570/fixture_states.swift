// Built by make.sh inside a worktree of commit fc0b570, against that commit's own store code
// (never part of the current package). It leaves proposals in the states only a crash leaves,
// which no command of fc0b570 stops in: `approved` (the approver's process died between the
// approval and the claim) and `executing` (it died after claiming). It makes exactly the calls
// fc0b570's `airlock approve` and executor make before such a crash.
//
//   fixture-states (--sqlite STATE_DIR | --postgres URL) approve ID ACTOR
//   fixture-states (--sqlite STATE_DIR | --postgres URL) claim ID ACTOR [EXECUTOR LEASE_MS_FROM_NOW]
//     claim without EXECUTOR: a local process's claim under this process's identity, which
//     ends when it exits (as a killed `airlock approve`); with one: a gate replica's, leased
//     for LEASE_MS_FROM_NOW (negative: already lapsed).
import AirlockCore
import AirlockStore
import AirlockStorePostgres
import Glibc

let arguments = CommandLine.arguments
guard arguments.count >= 6 else {
    writeStandardError("usage: fixture-states (--sqlite DIR | --postgres URL) (approve|claim) ID ACTOR [EXECUTOR LEASE_MS]\n")
    exit(2)
}
do throws(AirlockError) {
    let store: any ProposalStore
    switch arguments[1] {
    case "--sqlite": store = try SQLiteProposalStore(stateDir: arguments[2])
    case "--postgres": store = try PostgresProposalStore(try PostgresStoreConfiguration(parsing: arguments[2]))
    default: writeStandardError("fixture-states: --sqlite or --postgres\n"); exit(2)
    }
    let id = arguments[4], actor = arguments[5]
    switch arguments[3] {
    case "approve":
        try store.apply(.approve, to: id, actor: actor, note: "fixture: the approver's process died before it claimed the execution")
    case "claim":
        if arguments.count >= 8, let milliseconds = Int64(arguments[7]) {
            try store.apply(.startExecution, to: id, actor: actor, executor: arguments[6],
                            leaseUntil: Clock.epochMilliseconds() + milliseconds)
        } else {
            try store.apply(.startExecution, to: id, actor: actor, executor: Actor.processIdentity())
        }
    default:
        writeStandardError("fixture-states: approve or claim\n")
        exit(2)
    }
    print("\(id) \(arguments[3])")
} catch {
    writeStandardError("fixture-states: \(error)\n")
    exit(1)
}
