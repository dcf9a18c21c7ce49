import AirlockCore
import AirlockPolicy
import AirlockStore

/// An error the broker answers with itself, shaped as the service's protocol expects so the
/// SDK shows its code and message ("An error occurred (AirlockProposalPending) when calling
/// the TerminateInstances operation: …").
public struct AWSErrorResponse: Sendable {
    public var status: Int
    public var code: String
    public var message: String

    /// `code`: AWS's own error code (`AccessDenied`, `InvalidAccessKeyId`).
    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// An Airlock refusal in AWS's error shape: the code is Airlock's (AirlockError.Code).
    public init(status: Int, code: AirlockError.Code, message: String) {
        self.init(status: status, code: code.rawValue, message: message)
    }

    public func render(for wire: AWSProtocol?, requestID: String) -> (headers: [(String, String)], body: [UInt8]) {
        switch wire {
        case .json?, .restJSON?, .cbor?:
            let body = JSON.object([("__type", .string(code)), ("message", .string(message)), ("Message", .string(message))])
            return ([("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code), ("x-amzn-RequestId", requestID)],
                    Array(body.serialized().utf8))
        case .ec2?:
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>\(xml(code))</Code><Message>\(xml(message))</Message></Error></Errors><RequestID>\(requestID)</RequestID></Response>"
            return ([("Content-Type", "text/xml;charset=UTF-8")], Array(body.utf8))
        case .query?:
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>\(xml(code))</Code><Message>\(xml(message))</Message></Error><RequestId>\(requestID)</RequestId></ErrorResponse>"
            return ([("Content-Type", "text/xml"), ("x-amzn-RequestId", requestID)], Array(body.utf8))
        case .restXML?, nil:
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(xml(code))</Code><Message>\(xml(message))</Message><RequestId>\(requestID)</RequestId></Error>"
            return ([("Content-Type", "application/xml"), ("x-amz-request-id", requestID)], Array(body.utf8))
        }
    }

    func xml(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }

    // MARK: The broker's answers

    public static func pending(_ proposal: Proposal) -> AWSErrorResponse {
        AWSErrorResponse(status: 403, code: .proposalPending, message: """
            Airlock: \(proposal.summary) needs a human's approval (\(proposal.decision.rawValue): \(proposal.rule)). \
            Proposal \(proposal.id) is pending. Nothing was changed. A human inspects it with `airlock show \(proposal.id)` \
            and approves it with `airlock approve \(proposal.id)` (or denies it with `airlock deny \(proposal.id)`). \
            Wait for the decision and its result with `airlock wait \(proposal.id)`.
            """)
    }

    public static func denied(_ summary: String, rule: String) -> AWSErrorResponse {
        AWSErrorResponse(status: 403, code: .denied, message: "Airlock: \(summary) is not allowed: \(rule). No proposal was made.")
    }

    public static func signature(_ failure: SigV4.Failure, s3: Bool) -> AWSErrorResponse {
        switch failure {
        case .missing:
            return AWSErrorResponse(status: 403, code: s3 ? "AccessDenied" : "MissingAuthenticationToken",
                                    message: "Airlock: the request is not signed; sign it with this session's keys (AWS_ACCESS_KEY_ID in the sandbox)")
        case .unsupported(let what):
            return AWSErrorResponse(status: 400, code: .unsupportedSigning,
                                    message: "Airlock: \(what) is not supported by the broker; use SigV4 (the default of every current AWS SDK)")
        default:
            return AWSErrorResponse(status: 403, code: s3 ? "SignatureDoesNotMatch" : "InvalidSignatureException",
                                    message: "Airlock: \(failure); the request was not sent anywhere")
        }
    }
}
