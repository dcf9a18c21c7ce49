import AirlockCore
import AirlockPolicy
import Glibc

/// Endpoint discovery (Timestream's `DescribeEndpoints`; DynamoDB's when a client turns it
/// on) names the host the client must call next. botocore decides whether a request goes
/// through `HTTPS_PROXY` once, for the configured endpoint (loopback: never), so a discovered
/// `https://<address>` would be dialled directly, and there is no DNS in the sandbox. The
/// broker therefore answers with its own per-service address, and remembers the real one to
/// forward to when the upstream is AWS itself (docs/gate.md, "Endpoint discovery").
public final class AWSEndpointDiscovery: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var hosts: [String: String] = [:]

    public init() { pthread_mutex_init(&mutex, nil) }

    /// The discovered host for a service, when one was seen.
    public func host(for service: String) -> String? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return hosts[service]
    }

    func remember(_ host: String, for service: String) {
        pthread_mutex_lock(&mutex)
        hosts[service] = host
        pthread_mutex_unlock(&mutex)
    }

    /// `{"Endpoints":[{"Address": …, "CachePeriodInMinutes": …}]}` with every Address replaced
    /// by `brokerAddress`, and the first original address; nil when the body is not that shape
    /// (then it passes unchanged: an error answer, for instance).
    public static func rewrite(_ body: [UInt8], brokerAddress: String) -> (body: [UInt8], discovered: String?)? {
        guard let json = try? JSON.parseStrict(bytes: body), case .object(var pairs) = json,
              let index = pairs.firstIndex(where: { $0.0 == "Endpoints" }), case .array(let endpoints) = pairs[index].1 else { return nil }
        var discovered: String?
        var rewritten: [JSON] = []
        for endpoint in endpoints {
            guard case .object(var fields) = endpoint else { return nil }
            if let at = fields.firstIndex(where: { $0.0 == "Address" }) {
                if discovered == nil { discovered = fields[at].1.string }
                fields[at].1 = .string(brokerAddress)
            }
            rewritten.append(.object(fields))
        }
        pairs[index].1 = .array(rewritten)
        return (Array(JSON.object(pairs).serialized().utf8), discovered)
    }

    /// Only an AWS host name is ever remembered as somewhere to send the human's credentials.
    public static func isAWSHost(_ address: String) -> Bool {
        let name = address.lowercased()
        guard name.hasSuffix(".amazonaws.com") || name.hasSuffix(".amazonaws.com.cn") else { return false }
        return name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D }
    }
}
