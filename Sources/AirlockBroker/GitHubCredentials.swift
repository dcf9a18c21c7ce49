import AirlockCore
import AirlockPolicy
import Glibc
import NIOSSL

/// The human's GitHub hosts and credentials, read outside the sandbox (docs/github.md, "The
/// endpoint"): github.com and api.github.com, every host of gh's `hosts.yml` (GitHub
/// Enterprise) and `GH_HOST`. API tokens as gh finds them (GH_TOKEN, GITHUB_TOKEN, or the
/// enterprise variables for other hosts, then hosts.yml, then `gh auth token`); git's own
/// credentials from `git credential fill`, which runs the human's credential helpers.
public final class GitHubCredentials: @unchecked Sendable {
    public let environment: [String: String]
    public let hosts: [String]
    private var mutex = pthread_mutex_t()
    /// Looked-up tokens, "" for none: asked once per session (`gh auth token` is a process).
    private var tokens: [String: String] = [:]
    /// git credential answers by host and path, with when they were asked: a clone makes
    /// several requests, each would run the human's helpers; kept a minute.
    private var gitAnswers: [String: (authorization: String?, at: Double)] = [:]
    private var trustContext: NIOSSLContext??
    /// Trees the agent can write (the workspace, a profile's read-write paths): git is never
    /// run with a configuration file there, which would let the agent pick the credential
    /// helper the broker runs outside the sandbox (docs/github.md, "Credentials").
    let writableRoots: WritableRoots
    /// Why `git credential fill` is not run this session, once found (nil: it may run).
    private var gitRefusal: String??
    /// A team gate's tokens by host (gate.yaml `github`): the only credentials it uses, never
    /// the environment's, gh's or git's helpers (docs/gate.md, "Kubernetes and GitHub on the gate").
    private let gateTokens: [String: String]?

    /// `hosts`: already read (the session CA's thread reads them at start-up), else read here.
    public init(environment: [String: String], hosts: [String]? = nil, writableRoots: WritableRoots = WritableRoots([])) {
        self.environment = environment
        self.hosts = hosts ?? Self.hosts(environment: environment)
        self.writableRoots = writableRoots
        gateTokens = nil
        pthread_mutex_init(&mutex, nil)
    }

    /// A team gate's: `tokens` by host (github.com's serves api.github.com too); `environment`
    /// only for where to connect and whom to trust (AIRLOCK_EGRESS_RESOLVE, SSL_CERT_FILE, PATH).
    public init(gateTokens tokens: [String: String], environment: [String: String]) {
        self.environment = environment
        var hosts = Array(tokens.keys).sorted()
        if tokens[Self.github] != nil { hosts.append(Self.api) }
        self.hosts = hosts
        writableRoots = WritableRoots([])
        gateTokens = tokens
        pthread_mutex_init(&mutex, nil)
    }

    /// A git configuration file `git credential fill` would read that lies where the agent can
    /// write, if there is one (looked up once per session).
    public func untrustedGitConfiguration() -> String? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let gitRefusal { return gitRefusal }
        let sources = CredentialSources.find(environment: environment, home: environment["HOME"] ?? "/", cwd: "/") { path in
            try? readTextFile(path, limit: 4 << 20)
        }
        let found = sources.gitConfigurations.first { writableRoots.contain($0) }
        gitRefusal = .some(found)
        return found
    }

    public static let github = "github.com"
    public static let api = "api.github.com"

    /// Where gh keeps hosts.yml (CredentialSources: the same path is masked in the sandbox).
    static func configDirectory(_ environment: [String: String]) -> String {
        CredentialSources.ghConfigDirectory(environment, home: environment["HOME"] ?? "/")
    }

    /// hosts.yml: `HOST:` at the top level, `oauth_token: …` (and `user:`) below it.
    static func hostsFile(_ environment: [String: String]) -> [String: [String: String]] {
        guard let text = try? readTextFile(configDirectory(environment) + "/hosts.yml", limit: 1 << 20),
              let root = try? YAML.parse(text), case .mapping(let entries) = root.value else { return [:] }
        var hosts: [String: [String: String]] = [:]
        for entry in entries {
            var fields: [String: String] = [:]
            if case .mapping(let inner) = entry.value.value {
                for field in inner { if let value = field.value.scalar { fields[field.key] = value } }
            }
            hosts[entry.key.lowercased()] = fields
        }
        return hosts
    }

    /// The host names whose connections the egress proxy terminates.
    public static func hosts(environment: [String: String]) -> [String] {
        var names = [github, api]
        var extra = Array(hostsFile(environment).keys).sorted()
        if let host = environment["GH_HOST"]?.lowercased(), !host.isEmpty { extra.append(host) }
        for name in extra where !names.contains(name) && Self.isHostName(name) { names.append(name) }
        return names
    }

    public static func isHostName(_ name: String) -> Bool {
        !name.isEmpty && name.count < 254 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
    }

    public func covers(_ host: String) -> Bool { hosts.contains(host.lowercased()) }

    /// Whether `host` serves the REST and GraphQL API at its root (api.github.com) rather
    /// than below /api (an enterprise host) or not at all (github.com).
    public static func isAPIRoot(_ host: String) -> Bool { host == api }

    /// The API token for `host` (nil when the human has none: the request goes without).
    public func apiToken(for host: String) -> String? {
        let key = host == Self.api ? Self.github : host
        if let gateTokens { return gateTokens[key] }
        pthread_mutex_lock(&mutex)
        if let cached = tokens[key] { pthread_mutex_unlock(&mutex); return cached.isEmpty ? nil : cached }
        pthread_mutex_unlock(&mutex)
        var found: String?
        let variables = key == Self.github ? ["GH_TOKEN", "GITHUB_TOKEN"] : ["GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"]
        for name in variables { if let value = environment[name], !value.isEmpty { found = value; break } }
        if found == nil, let token = Self.hostsFile(environment)[key]?["oauth_token"], !token.isEmpty { found = token }
        if found == nil, let gh = Self.executable("gh", environment: environment),
           let output = try? ChildProcess.run([gh, "auth", "token", "--hostname", key], environment: environment, outputLimit: 1 << 16),
           output.status == 0 {
            let token = output.stdout.trimmingWhitespace()
            if !token.isEmpty { found = token }
        }
        pthread_mutex_lock(&mutex)
        tokens[key] = found ?? ""
        pthread_mutex_unlock(&mutex)
        return found
    }

    /// `Authorization` for a git request to `host` (`path`: the repository's path): what the
    /// human's git credential helpers answer, else the host's netrc entry (as git's libcurl
    /// would use it), else the API token as GitHub's git accepts it.
    public func gitAuthorization(host: String, path: String) -> String? {
        if let gateTokens {
            return gateTokens[host].map { "Basic " + Base64.encode(Array("x-access-token:\($0)".utf8)) }
        }
        let key = host + path
        let now = Clock.monotonicSeconds()
        pthread_mutex_lock(&mutex)
        let cached = gitAnswers[key]
        pthread_mutex_unlock(&mutex)
        if let cached, now - cached.at < 60 { return cached.authorization }
        let answer = askGit(host: host, path: path)
        pthread_mutex_lock(&mutex)
        gitAnswers[key] = (answer, now)
        pthread_mutex_unlock(&mutex)
        return answer
    }

    func askGit(host: String, path: String) -> String? {
        if untrustedGitConfiguration() == nil, let git = Self.executable("git", environment: environment) {
            var env = environment
            // Never a repository's own configuration: run from /, with no repository named.
            // (From the workspace, a .git/config the agent wrote would choose the helper.)
            for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM"] {
                env[name] = nil
            }
            env["GIT_TERMINAL_PROMPT"] = "0"
            env["GIT_ASKPASS"] = "/bin/false"
            env["SSH_ASKPASS"] = "/bin/false"
            let input = "protocol=https\nhost=\(host)\npath=\(path.hasPrefix("/") ? String(path.dropFirst()) : path)\n\n"
            if let output = try? ChildProcess.run([git, "credential", "fill"], environment: env, stdin: Array(input.utf8), directory: "/",
                                                  outputLimit: 1 << 16),
               output.status == 0 {
                var fields: [String: String] = [:]
                for line in output.stdout.split(separator: "\n") {
                    let parts = line.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
                }
                if let user = fields["username"], let password = fields["password"], !password.isEmpty {
                    return "Basic " + Base64.encode(Array("\(user):\(password)".utf8))
                }
            }
        }
        // libcurl's fallback in git itself: the host's netrc entry (CredentialSources names
        // the same file to the sandbox's masks).
        if let text = try? readTextFile(CredentialSources.netrcFile(environment, home: environment["HOME"] ?? "/"), limit: 1 << 20),
           let entry = Netrc.entry(text, host: host), let login = entry.login, let password = entry.password, !password.isEmpty {
            return "Basic " + Base64.encode(Array("\(login):\(password)".utf8))
        }
        guard let token = apiToken(for: host) else { return nil }
        return "Basic " + Base64.encode(Array("x-access-token:\(token)".utf8))
    }

    /// TLS trust for GitHub hosts: the human's SSL_CERT_FILE when set (as gh, git and curl
    /// use it), else the system's roots.
    public func trust() -> NIOSSLContext? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let trustContext { return trustContext }
        var made: NIOSSLContext?
        if let file = environment["SSL_CERT_FILE"], !file.isEmpty {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(file)
            made = try? NIOSSLContext(configuration: tls)
        }
        trustContext = .some(made)
        return made
    }

    /// Where to connect for `host`: the address AIRLOCK_EGRESS_RESOLVE pins it to, or the name.
    public func connectHost(_ host: String) -> String {
        EgressResolver(environment: environment).pinnedAddress(host)?.description ?? host
    }

    static func executable(_ name: String, environment: [String: String]) -> String? {
        for directory in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if access(path, X_OK) == 0 { return path }
        }
        return nil
    }
}
