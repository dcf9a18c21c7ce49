import AirlockCore
import Crypto
import FoundationEssentials
import NIOCore
import NIOSSL
import Synchronization
import SwiftASN1
import X509

/// A certificate authority of one session (docs/gate.md, "AWS hosts through the proxy"): the
/// broker terminates TLS to AWS hosts the agent reaches through HTTPS_PROXY (clients that
/// hard-code `queue.amazonaws.com` and the like) and hands the requests to the AWS gateway,
/// where they are verified, classified and gated like any other. The CA may only sign names
/// under the AWS domains (a name-constrained CA: a client that checks constraints rejects
/// anything else it signed), its key never leaves the broker's memory, and it lives as long
/// as the session. The sandbox trusts its certificate (`AWS_CA_BUNDLE`, `SSL_CERT_FILE`,
/// `NODE_EXTRA_CA_CERTS`).
public final class SessionCA: Sendable {
    public static let domains = ["amazonaws.com", "amazonaws.com.cn", "api.aws"]
    /// github.com and its subdomains (api.github.com): terminated for the GitHub gateway.
    public static let gitHubDomains = ["github.com"]

    let key: P256.Signing.PrivateKey
    let certificate: Certificate
    let keyIdentifier: ArraySlice<UInt8>
    /// The CA certificate, PEM: what the sandbox trusts.
    public let pem: String
    /// The key of every leaf certificate, made with the first TLS context (the session's first
    /// interception): a session that never reaches an AWS host by name does not pay for it.
    private let leafKeys = Mutex<LeafKeys?>(nil)
    private let leaves = Mutex<[String: NIOSSLCertificate]>([:])

    struct LeafKeys: @unchecked Sendable {
        let key: P256.Signing.PrivateKey
        let forTLS: NIOSSLPrivateKey
    }

    func leafKey() throws -> LeafKeys {
        try leafKeys.withLock { keys in
            if let keys { return keys }
            let key = P256.Signing.PrivateKey()
            let made = LeafKeys(key: key, forTLS: try NIOSSLPrivateKey(bytes: Array(key.derRepresentation), format: .der))
            keys = made
            return made
        }
    }

    /// `extraDomains`: the human's GitHub Enterprise hosts, which the egress proxy terminates
    /// like github.com (docs/github.md).
    public init(extraDomains: [String] = []) throws(AirlockError) {
        do {
            let now = Date()
            key = P256.Signing.PrivateKey()
            let signer = Certificate.PrivateKey(key)
            let name = try DistinguishedName {
                OrganizationName("Airlock")
                CommonName("Airlock session CA (AWS and GitHub hosts and the sandbox's loopback only)")
            }
            let identifier = SubjectKeyIdentifier(hash: signer.publicKey)
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                // And the sandbox's loopback (the Kubernetes endpoint), no other address.
                Critical(NameConstraints(permittedDNSDomains: Self.domains + Self.gitHubDomains + extraDomains,
                                         permittedIPRanges: [ASN1OctetString(contentBytes: [127, 0, 0, 1, 255, 255, 255, 255])]))
                identifier
            }
            certificate = try Certificate(
                version: .v3, serialNumber: Self.serial(), publicKey: signer.publicKey,
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(7 * 24 * 3600),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: signer)
            keyIdentifier = identifier.keyIdentifier
            pem = try certificate.serializeAsPEM().pemString + "\n"
        } catch {
            throw AirlockError("cannot make the session's certificate authority: \(error)")
        }
    }

    /// 16 random bytes, the top bit clear: a positive INTEGER of at most 16 octets.
    static func serial() -> Certificate.SerialNumber {
        var bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        bytes[0] &= 0x7F
        bytes[0] |= 0x01
        return Certificate.SerialNumber(bytes: bytes)
    }

    /// Whether this CA may speak for `host` (an AWS host name).
    public static func covers(_ host: String) -> Bool {
        let name = host.lowercased()
        return domains.contains { name.hasSuffix("." + $0) }
    }

    /// A leaf certificate for `host`, issued once per session and name.
    func leaf(for host: String) throws -> NIOSSLCertificate {
        if let cached = leaves.withLock({ $0[host] }) { return cached }
        let now = Date()
        let publicKey = Certificate.PublicKey(try leafKey().key.publicKey)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames([Self.ipv4(host).map { .ipAddress(ASN1OctetString(contentBytes: $0[...])) } ?? .dnsName(host)])
            AuthorityKeyIdentifier(keyIdentifier: keyIdentifier)
        }
        let issued = try Certificate(
            version: .v3, serialNumber: Self.serial(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: min(now.addingTimeInterval(24 * 3600), certificate.notValidAfter),
            // No common name for an address: OpenSSL checks a CN against the CA's DNS
            // constraints when there is no DNS name, and 127.0.0.1 is not one of them.
            issuer: certificate.subject,
            subject: Self.ipv4(host) == nil ? try DistinguishedName { CommonName(host) } : try DistinguishedName { OrganizationName("Airlock") },
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key))
        var serializer = DER.Serializer()
        try serializer.serialize(issued)
        let leaf = try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
        leaves.withLock { $0[host] = leaf }
        return leaf
    }

    /// The four bytes of a dotted IPv4 address.
    static func ipv4(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { part -> UInt8? in
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber) else { return nil }
            return UInt8(part)
        }
        return bytes.count == 4 ? bytes : nil
    }

    private let fixedContexts = Mutex<[String: NIOSSLContext]>([:])

    /// A server context that always presents the certificate for `host` (an IP address or a
    /// name the client may not send by SNI): the Kubernetes endpoint on 127.0.0.1, and an API
    /// server's address reached by CONNECT. A name outside the CA's constraints gets a
    /// certificate that clients checking constraints refuse: the connection ends at the
    /// broker either way (docs/kubernetes.md).
    public func context(for host: String) throws(AirlockError) -> NIOSSLContext {
        if let cached = fixedContexts.withLock({ $0[host] }) { return cached }
        do {
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: [.certificate(try leaf(for: host))], privateKey: .privateKey(try leafKey().forTLS))
            configuration.minimumTLSVersion = .tlsv12
            let context = try NIOSSLContext(configuration: configuration)
            fixedContexts.withLock { $0[host] = context }
            return context
        } catch {
            throw AirlockError("cannot make the TLS context for \(host): \(error)")
        }
    }

    struct NotAnAWSHost: Error, CustomStringConvertible {
        let name: String?
        var description: String { "TLS for \(name ?? "no server name") is not Airlock's to answer (AWS hosts only)" }
    }

    /// One server context for the session: the certificate is chosen per connection by the
    /// name the client asks for (SNI), and only for AWS hosts.
    public func serverContext() throws(AirlockError) -> NIOSSLContext {
        let leafKey: NIOSSLPrivateKey
        do {
            leafKey = try self.leafKey().forTLS
        } catch {
            throw AirlockError("cannot make the key for AWS hosts' certificates: \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: [], privateKey: .privateKey(leafKey))
        configuration.minimumTLSVersion = .tlsv12
        let ca = self
        configuration.sslContextCallback = { values, promise in
            guard let name = values.serverHostname?.lowercased(), Self.covers(name) else {
                promise.fail(NotAnAWSHost(name: values.serverHostname))
                return
            }
            do {
                var changes = NIOSSLContextConfigurationOverride()
                changes.certificateChain = [.certificate(try ca.leaf(for: name))]
                changes.privateKey = .privateKey(leafKey)
                promise.succeed(changes)
            } catch {
                promise.fail(error)
            }
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw AirlockError("cannot make the TLS context for AWS hosts: \(error)")
        }
    }
}
