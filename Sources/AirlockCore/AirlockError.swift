/// The one error type Airlock reports to people: what failed, in their terms, and what to do.
///
/// `exitCode` follows docs/design.md §6: Airlock's own failures end `airlock run` with 125.
public struct AirlockError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public var hint: String?
    public var exitCode: Int32
    /// A machine-readable name for errors a client may act on (`AirlockProposalLimit`).
    public var code: String?

    public init(_ message: String, hint: String? = nil, exitCode: Int32 = 125, code: String? = nil) {
        self.message = message
        self.hint = hint
        self.exitCode = exitCode
        self.code = code
    }

    public var description: String {
        guard let hint else { return message }
        return "\(message)\n  hint: \(hint)"
    }
}
