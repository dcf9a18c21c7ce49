import AirlockCore
import Glibc
import AirlockPolicy
import AirlockStore
import NIOSSL

/// HTTP calls to a team gate with one bearer token (docs/gate.md, "Team gate"): an agent
/// host's (`GateClientStore`) or an approver's (`airlock approve --gate`).
public struct GateHTTP: Sendable {
    let scheme: String
    let host: String
    let port: Int
    let basePath: String
    let token: String
    let trust: NIOSSLContext?
    /// Kept-alive connections to the gate, shared by copies of this client.
    public let connections: ConnectionPool

    /// `role`: the token must be one; `caFile`: PEM roots that sign the gate's certificate
    /// (a private CA), nil for the system's.
    public init(url: String, token: String, role: GateAccess.Role, caFile: String?) throws(AirlockError) {
        let parsed = try AWSUpstream(parsing: url)
        guard case .endpoint(let scheme, let host, let port, let basePath) = parsed else {
            throw AirlockError("--gate \(url) is not an http(s):// URL")
        }
        guard scheme == "https" || ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) else {
            throw AirlockError("--gate \(url) is plain HTTP to another host: the token would cross the network in clear text",
                               hint: "use https:// (and --gate-ca for a private CA)")
        }
        guard GateToken.claimedRole(token) == role else {
            throw AirlockError(role == .host ? "the gate token file does not hold an agent host's token (airlock_host_…)"
                                             : "the gate token file does not hold an approver's token (airlock_user_…)",
                               hint: role == .host ? "on the gate: airlock gate host add NAME --config gate.yaml"
                                                   : "on the gate: airlock gate user add NAME --config gate.yaml")
        }
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
        self.token = token
        if let caFile {
            do {
                var configuration = TLSConfiguration.makeClientConfiguration()
                configuration.trustRoots = .file(caFile)
                trust = try NIOSSLContext(configuration: configuration)
            } catch {
                throw AirlockError("cannot use \(caFile) as the gate's CA: \(error)")
            }
        } else {
            trust = nil
        }
        connections = ConnectionPool(scheme: scheme, host: host, port: port, trust: trust ?? UpstreamConnector.tlsContext)
    }

    /// A token saved in a file (whitespace around it ignored), with what to do when it is not there.
    public static func readToken(_ file: String, role: GateAccess.Role) throws(AirlockError) -> String {
        do {
            return String(try readTextFile(file, limit: 4096).filter { !$0.isWhitespace })
        } catch {
            let command = role == .host ? "host add" : "user add"
            throw AirlockError("cannot read the gate token: \(error.message)",
                               hint: "on the gate: airlock gate \(command) NAME --config gate.yaml, then save the token in \(file) (mode 0600)")
        }
    }

    /// One call; a refusal becomes an AirlockError carrying the gate's code and message.
    public func call(_ method: String, _ path: String, body: JSON? = nil, rawBody: [UInt8]? = nil,
                     timeoutSeconds: Int64 = 120) throws(AirlockError) -> JSON {
        let bytes = rawBody ?? body.map { Array($0.serialized().utf8) } ?? []
        var headers: [(name: String, value: String)] = [
            ("Host", port == (scheme == "https" ? 443 : 80) ? host : "\(host):\(port)"), ("Authorization", "Bearer \(token)"),
            ("Content-Length", String(bytes.count)), ("Accept", "application/json"),
        ]
        if rawBody != nil {
            headers.append(("Content-Type", "application/octet-stream"))
        } else if body != nil {
            headers.append(("Content-Type", "application/json"))
        }
        var response: ExecutionClient.Response
        var attempt = 0
        while true {
            switch connections.exchange(OutboundRequest(scheme: scheme, host: host, port: port, method: method, target: basePath + path,
                                                        headers: headers, body: bytes), timeoutSeconds: timeoutSeconds) {
            case .answered(let answer): response = answer
            case .notSent(let why):
                // Nothing left this host: a TLS replica at its connection bound closes before
                // the handshake, so this is tried again too, a little (about 2 s in all).
                guard attempt < 3 else {
                    throw AirlockError("the gate at \(scheme)://\(host):\(port) cannot be reached: \(why)", code: .gateUnreachable)
                }
                usleep(UInt32(250_000 << attempt))
                attempt += 1
                continue
            case .uncertain(let why): throw AirlockError("the call to the gate failed: \(why)", code: .gateUncertain)
            }
            // A replica at its connection bound answers 503 AirlockOverloaded before reading the
            // request (docs/gate.md, "Bounds and timeouts"): nothing was done, so any call is
            // tried again, backing off (0.25 s doubling, at most 6 tries, about 8 s in all).
            guard response.status == 503, attempt < 5, response.header("retry-after") != nil,
                  (try? JSON.parseStrict(bytes: response.body))?["error"]?["code"]?.string == AirlockError.Code.overloaded.rawValue else { break }
            usleep(UInt32(250_000 << attempt))
            attempt += 1
        }
        let json = (try? JSON.parseStrict(bytes: response.body)) ?? .null
        guard (200..<300).contains(response.status) else {
            let code = json["error"]?["code"]?.string.map(AirlockError.Code.init(rawValue:)) ?? .gateError
            let message = json["error"]?["message"]?.string ?? "HTTP \(response.status)"
            throw AirlockError("the gate refused: \(message)", code: code)
        }
        return json
    }

    /// A proposal as the gate shows it (an approver also gets its session, upstream, decider
    /// and payload).
    public static func proposal(_ json: JSON, session: String? = nil) -> Proposal? {
        guard let id = json["id"]?.string, let state = json["state"]?.string.flatMap(ProposalState.init(rawValue:)) else { return nil }
        return Proposal(
            id: id, sessionID: json["session"]?.string ?? session ?? "",
            kind: json["kind"]?.string.flatMap(Proposal.Kind.init(rawValue:)) ?? .api, state: state,
            summary: json["summary"]?.string ?? "", decision: json["decision"]?.string.flatMap(Decision.init(rawValue:)) ?? .mutation,
            rule: json["decision_reason"]?.string ?? "", createdAt: json["created_at"]?.string ?? "",
            updatedAt: json["updated_at"]?.string ?? "", digest: json["digest"]?.string ?? "",
            payload: json["payload_base64"]?.string.flatMap(Base64.decode) ?? [], upstream: json["upstream"]?.string ?? "",
            decidedBy: json["decided_by"]?.string, decisionNote: json["note"]?.string,
            result: json["result"].flatMap(ExecutionResult.init(json:)))
    }
}
