import AirlockCore
import AirlockPolicy
import AirlockStore
import Glibc

/// What an execution sandbox a team gate started records (docs/gate.md, "Command proposals on
/// the gate"): the run cannot reach the gate's database, so each call it sends for the
/// approved proposal and each change it refused is appended to `calls.jsonl` in the artifact,
/// which only the gate's user can write, and the gate reads it into its own store when the run
/// ends (`drain`). It is only a `CallRecorder`: an execution proposes and decides nothing.
public final class ExecutionSpool: CallRecorder, @unchecked Sendable {
    let path: String
    private var mutex = pthread_mutex_t()

    public init(path: String) {
        self.path = path
        pthread_mutex_init(&mutex, nil)
    }

    /// Recorded (fsynced) before the call is sent, or it is not sent.
    public func record(_ call: RecordedCall) throws(AirlockError) {
        let line: JSON
        switch call {
        case .executionCall(let proposalID, _, let summary, let rule):
            line = .object([("kind", .string("call")), ("proposal", .string(proposalID)), ("summary", .string(summary)), ("rule", .string(rule))])
        case .refusal(_, let summary, let rule):
            line = .object([("kind", .string("refusal")), ("summary", .string(summary)), ("rule", .string(rule))])
        }
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AirlockError("cannot record the execution's call in \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array((line.serialized() + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else { throw AirlockError("cannot record the execution's call in \(path)") }
    }

    /// The gate's side: after a run, every line goes into the gate's store under the agent's
    /// session, and the file is removed. Returns how many lines were read, and the errors of
    /// those that could not be recorded (the caller logs them: the audit must not lose them
    /// silently).
    @discardableResult
    public static func drain(_ path: String, into store: any CallRecorder, sessionID: String) -> (count: Int, errors: [String]) {
        guard let text = try? readTextFile(path, limit: 64 << 20) else { return (0, []) }
        unlink(path)
        var count = 0
        var errors: [String] = []
        for line in text.split(separator: "\n") {
            guard let json = try? JSON.parseStrict(bytes: Array(line.utf8)), let summary = json["summary"]?.string,
                  let rule = json["rule"]?.string else { continue }
            count += 1
            do {
                if json["kind"]?.string == "call", let proposal = json["proposal"]?.string {
                    try store.recordExecutionCall(proposalID: proposal, sessionID: sessionID, summary: summary, rule: rule)
                } else {
                    try store.recordRefusal(sessionID: sessionID, summary: summary, rule: rule)
                }
            } catch {
                errors.append("\(summary): \(error.message)")
            }
        }
        return (count, errors)
    }
}
