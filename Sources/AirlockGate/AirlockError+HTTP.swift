import AirlockCore

/// The gate's HTTP status for each error code: the one place it is decided (docs/gate.md,
/// "Status codes"). An error without a code is the store or a driver failing: 503, nothing was
/// decided, the caller may try again.
extension AirlockError {
    public var httpStatus: Int {
        guard let code else { return 503 }
        switch code {
        case .usage, .badRequest, .ambiguousRequest, .malformedRequest, .badSnapshot, .unknownService, .scopeMismatch, .unsupportedSigning:
            return 400
        case .unauthenticated: return 401
        case .forbidden, .denied, .proposalPending: return 403
        case .notFound, .noSuchProposal, .noSuchSession, .noSuchOutput, .noSuchIdentity: return 404
        case .sessionExists, .conflict, .tampered, .sessionRevoked, .leaseLost: return 409
        case .tooLarge, .requestTooLarge: return 413
        case .refused, .toolMissing: return 422
        case .frozen: return 423
        case .proposalLimit, .quotaExceeded, .busy: return 429
        case .noCommands, .notYet: return 501
        case .upstreamUnavailable, .gateUnreachable, .gateUncertain, .gateError: return 502
        case .storeUnavailable, .storageUnavailable, .artifactMissing, .overloaded: return 503
        default: return 500
        }
    }

    /// `{"error": {"code", "message"}}`, the hint after the message.
    public var json: JSON {
        .object([("error", .object([("code", .string(code?.rawValue ?? AirlockError.Code.storeUnavailable.rawValue)),
                                    ("message", .string(message + (hint.map { " (\($0))" } ?? "")))]))])
    }
}
