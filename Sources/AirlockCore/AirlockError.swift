/// The one error type Airlock reports (docs/architecture.md, "Errors"): what failed, in the
/// reader's terms, what to do, a stable code a client may act on, and the error underneath.
/// The CLI's exit status (AirlockCLI, `fail`) and the gate's HTTP status (AirlockGateServer,
/// `AirlockError.httpStatus`) are each derived from the code in one place.
public struct AirlockError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public var hint: String?
    /// Nil: Airlock's own failure with nothing more to say (the CLI exits 125, the gate
    /// answers 503: the store or a driver failed, nothing was decided).
    public var code: Code?
    /// What failed underneath (a driver's error, a system call's), when there is one.
    public var cause: (any Error & Sendable)?

    public init(_ message: String, hint: String? = nil, code: Code? = nil, cause: (any Error & Sendable)? = nil) {
        self.message = message
        self.hint = hint
        self.code = code
        self.cause = cause
    }

    public var description: String {
        guard let hint else { return message }
        return "\(message)\n  hint: \(hint)"
    }

    public static func == (a: AirlockError, b: AirlockError) -> Bool {
        a.message == b.message && a.hint == b.hint && a.code == b.code
    }

    /// A stable, machine-readable name (`AirlockProposalLimit`): the gate's API and the
    /// agent's tools read it; the catalog below is every code there is.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // What the caller asked was wrong.
        /// The command line or a file given was not what was expected (exit 2).
        public static let usage = Code(rawValue: "AirlockUsage")
        public static let badRequest = Code(rawValue: "AirlockBadRequest")
        public static let ambiguousRequest = Code(rawValue: "AirlockAmbiguousRequest")
        public static let malformedRequest = Code(rawValue: "AirlockMalformedRequest")
        public static let badSnapshot = Code(rawValue: "AirlockBadSnapshot")
        public static let unknownService = Code(rawValue: "AirlockUnknownService")
        public static let scopeMismatch = Code(rawValue: "AirlockScopeMismatch")
        public static let tooLarge = Code(rawValue: "AirlockTooLarge")
        public static let requestTooLarge = Code(rawValue: "AirlockRequestTooLarge")
        public static let unsupportedSigning = Code(rawValue: "AirlockUnsupportedSigning")
        // Who is asking.
        public static let unauthenticated = Code(rawValue: "AirlockUnauthenticated")
        public static let forbidden = Code(rawValue: "AirlockForbidden")
        public static let denied = Code(rawValue: "AirlockDenied")
        // What is asked about.
        /// Something named does not exist (exit 1).
        public static let notFound = Code(rawValue: "AirlockNotFound")
        public static let noSuchProposal = Code(rawValue: "AirlockNoSuchProposal")
        public static let noSuchSession = Code(rawValue: "AirlockNoSuchSession")
        public static let noSuchOutput = Code(rawValue: "AirlockNoSuchOutput")
        public static let noSuchIdentity = Code(rawValue: "AirlockNoSuchIdentity")
        public static let sessionExists = Code(rawValue: "AirlockSessionExists")
        // The state of things.
        /// Another process changed it first, or the lifecycle refuses the step.
        public static let conflict = Code(rawValue: "AirlockConflict")
        public static let tampered = Code(rawValue: "AirlockTampered")
        public static let frozen = Code(rawValue: "AirlockFrozen")
        public static let sessionRevoked = Code(rawValue: "AirlockSessionRevoked")
        public static let leaseLost = Code(rawValue: "AirlockLeaseLost")
        public static let proposalLimit = Code(rawValue: "AirlockProposalLimit")
        public static let proposalPending = Code(rawValue: "AirlockProposalPending")
        /// Its deadline passed before it was decided or run (docs/policy.md): nothing ran.
        public static let expired = Code(rawValue: "AirlockExpired")
        public static let quotaExceeded = Code(rawValue: "AirlockQuotaExceeded")
        public static let busy = Code(rawValue: "AirlockBusy")
        /// A check or a step said no (exit 1): a failed verification, a run that failed.
        public static let refused = Code(rawValue: "AirlockRefused")
        // What this Airlock can do.
        public static let noCommands = Code(rawValue: "AirlockNoCommands")
        public static let notYet = Code(rawValue: "AirlockNotYet")
        public static let toolMissing = Code(rawValue: "AirlockToolMissing")
        public static let catalog = Code(rawValue: "AirlockCatalog")
        // Reaching things.
        public static let storeUnavailable = Code(rawValue: "AirlockStoreUnavailable")
        public static let storageUnavailable = Code(rawValue: "AirlockStorageUnavailable")
        /// What an execution needs is not in the blob store now; nothing was started.
        public static let artifactMissing = Code(rawValue: "AirlockArtifactMissing")
        /// A bound on connections (all, or one peer's) is reached: try again shortly.
        public static let overloaded = Code(rawValue: "AirlockOverloaded")
        public static let upstreamUnavailable = Code(rawValue: "AirlockUpstreamUnavailable")
        public static let gateUnreachable = Code(rawValue: "AirlockGateUnreachable")
        public static let gateUncertain = Code(rawValue: "AirlockGateUncertain")
        public static let gateError = Code(rawValue: "AirlockGateError")
        public static let brokerError = Code(rawValue: "AirlockBrokerError")
        // The sandboxed command itself.
        /// The command could not be executed (126).
        public static let commandNotExecutable = Code(rawValue: "AirlockCommandNotExecutable")
        /// The command was not found (127).
        public static let commandNotFound = Code(rawValue: "AirlockCommandNotFound")
    }
}
