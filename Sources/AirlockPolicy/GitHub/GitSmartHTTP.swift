/// A request to a git host, read as git's smart HTTP protocol has it (docs/github.md, "git over
/// HTTPS"): the refs advertisement (`GET …/info/refs?service=…`), a fetch (`POST
/// …/git-upload-pack`), a push (`POST …/git-receive-pack`), anything else. Pure.
public enum GitSmartHTTP: Sendable, Equatable {
    case advertisement(repository: String, service: String)
    case uploadPack(repository: String)
    case receivePack(repository: String)
    /// Not git: a web page (GET), or something refused.
    case other
    /// Looks like git's protocol but has no single reading (two services).
    case ambiguous(String)

    public static let services: Set<String> = ["git-upload-pack", "git-receive-pack"]

    /// `repository`: the path before the protocol's suffix (`/owner/repo.git`).
    public static func read(method: String, path: String, query: String) -> GitSmartHTTP {
        let upper = method.uppercased()
        if path.hasSuffix("/info/refs"), upper == "GET" || upper == "HEAD" {
            var service: String?
            for pair in query.split(separator: "&") {
                // Read decoded, as git http-backend reads its parameters.
                let key = PercentEncoding.decode(String(pair.prefix { $0 != "=" }), plusIsSpace: true)
                guard key == "service" else { continue }
                // One reading: a second service names two requests.
                if service != nil { return .ambiguous("the query names service twice") }
                service = PercentEncoding.decode(String(pair.drop { $0 != "=" }.dropFirst()), plusIsSpace: true)
            }
            guard let service, services.contains(service) else { return .other }
            return .advertisement(repository: String(path.dropLast("/info/refs".count)), service: service)
        }
        if upper == "POST", path.hasSuffix("/git-upload-pack") { return .uploadPack(repository: String(path.dropLast("/git-upload-pack".count))) }
        if upper == "POST", path.hasSuffix("/git-receive-pack") { return .receivePack(repository: String(path.dropLast("/git-receive-pack".count))) }
        return .other
    }

    /// The ruling: advertisements and fetches read, a push a change (a proposal that pins it),
    /// other GETs read (web pages, archives), anything else refused.
    public static func classify(method: String, path: String, query: String) -> Ruling {
        if let problem = UpstreamReading.methodProblem(method) ?? KubernetesRequest.pathProblem(path) ?? UpstreamReading.encodingProblem(path) {
            return Ruling(.deny, "no single reading: \(problem)")
        }
        switch read(method: method, path: path, query: query) {
        case .advertisement(let repository, let service): return Ruling(.read, "\(service) refs of \(repository)")
        case .uploadPack(let repository): return Ruling(.read, "fetch from \(repository)")
        case .receivePack(let repository): return Ruling(.mutation, "push to \(repository)")
        case .ambiguous(let why): return Ruling(.deny, "no single reading: \(why)")
        case .other:
            let upper = method.uppercased()
            if upper == "GET" || upper == "HEAD" { return Ruling(.read, "\(upper) \(path)") }
            return Ruling(.deny, "\(upper) \(path) is neither git's smart HTTP protocol nor the API; the broker does not send it")
        }
    }
}
