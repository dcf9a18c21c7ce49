/// How a request that reached an AWS host name through the proxy (TLS terminated by the
/// broker) maps onto the broker's per-service paths (docs/gate.md). The service comes from the
/// signature's scope; the host only adds what virtual-hosted S3 puts there (the bucket), read
/// one way or refused. Pure.
public enum AWSHostRoute {
    public enum Outcome: Sendable, Equatable {
        /// Served as `/svc/<service><path>`.
        case service(String, path: String)
        case refused(String)
    }

    /// `host` is the name the client connected to (CONNECT, and the Host header agreed);
    /// `path` the request's path; `signingName` the SigV4 scope's service; `candidates` the
    /// catalog's services with that signing name and their endpoint prefixes; `version` the
    /// query protocol's `Version` parameter, when the request has one.
    public static func route(host: String, path: String, signingName: String?,
                             candidates: [(name: String, endpointPrefix: String, apiVersion: String)], version: String?) -> Outcome {
        let name = host.lowercased()
        guard let signingName else { return .refused("the request is not signed: Airlock cannot tell which AWS service it is for") }
        if signingName == "s3" || signingName == "s3express" {
            return s3(name, path: path)
        }
        switch candidates.count {
        case 0: return .refused("no AWS service signs as \(signingName)")
        case 1: return .service(candidates[0].name, path: path)
        default:
            // Several services share a signing name (elb and elbv2, rds and docdb…): the host
            // names the endpoint, the query protocol's Version the API.
            let first = name.split(separator: ".").first.map(String.init) ?? name
            var narrowed = candidates.filter { $0.endpointPrefix == first }
            if narrowed.count > 1, let version { narrowed = narrowed.filter { $0.apiVersion == version } }
            // DocumentDB and Neptune are served by RDS's own endpoint with RDS's API version
            // and signing name (the aws CLI sends all three to `rds.amazonaws.com`): the
            // request is RDS's, and RDS's catalog (every one of their IAM actions is `rds:*`)
            // classifies it; an operation it does not know is still a mutation.
            if narrowed.count > 1, let owner = narrowed.first(where: { $0.name == signingName && $0.endpointPrefix == signingName }) {
                narrowed = [owner]
            }
            guard narrowed.count == 1 else {
                return .refused("\(host) with a signature for \(signingName) could be \(candidates.map(\.name).joined(separator: " or ")); use the sandbox's AWS_CONFIG_FILE endpoints (/svc/<service>)")
            }
            return .service(narrowed[0].name, path: path)
        }
    }

    /// S3's host forms: path style (`s3.amazonaws.com`, `s3.<region>.amazonaws.com`,
    /// `s3-<region>.amazonaws.com`, dual-stack), and virtual-hosted style (`<bucket>.` in
    /// front of one of those), which becomes path style `/<bucket><path>`. Access points,
    /// S3 Express zonal endpoints and other special hosts are refused, not guessed at.
    static func s3(_ host: String, path: String) -> Outcome {
        let labels = host.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let s3Index = labels.firstIndex(where: { isS3Label($0) }) else {
            return .refused("\(host) is not an S3 endpoint Airlock knows (access points, S3 Express and object lambda hosts are not supported through the proxy; use the sandbox's AWS_CONFIG_FILE endpoints)")
        }
        let rest = Array(labels[(s3Index + 1)...])
        let domain = rest.suffix(3) == ["amazonaws", "com", "cn"] ? 3 : rest.suffix(2) == ["amazonaws", "com"] ? 2 : 0
        guard domain > 0 else { return .refused("\(host) is not an S3 endpoint Airlock knows") }
        // Between `s3` and the domain only a region and `dualstack` may appear.
        for label in rest.dropLast(domain) where label != "dualstack" && !AWSRegion.isValidName(label) {
            return .refused("\(host): '\(label)' is not a region in an S3 host name")
        }
        guard path.hasPrefix("/") else { return .refused("the request path must start with /") }
        if s3Index == 0 { return .service("s3", path: path) }
        let bucket = labels[..<s3Index].joined(separator: ".")
        guard isBucketName(bucket) else { return .refused("'\(bucket)' in \(host) is not a bucket name") }
        return .service("s3", path: "/" + bucket + (path == "/" ? "" : path))
    }

    static func isS3Label(_ label: String) -> Bool {
        label == "s3" || label == "s3-accelerate" || label == "s3-external-1" || (label.hasPrefix("s3-") && AWSRegion.isValidName(String(label.dropFirst(3))))
    }

    /// S3's rules for bucket names addressable in a host: 3–63 lowercase letters, digits,
    /// dots and hyphens, starting and ending with a letter or digit, no `..`, not an IP.
    public static func isBucketName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count), let first = bytes.first, let last = bytes.last,
              isLowerAlphanumeric(first), isLowerAlphanumeric(last), !name.contains(".."), !name.contains(".-"), !name.contains("-.") else { return false }
        guard bytes.allSatisfy({ isLowerAlphanumeric($0) || $0 == 0x2E || $0 == 0x2D }) else { return false }
        let parts = name.split(separator: ".")
        return !(parts.count == 4 && parts.allSatisfy { $0.allSatisfy(\.isNumber) })
    }

    static func isLowerAlphanumeric(_ byte: UInt8) -> Bool { (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) }
}
