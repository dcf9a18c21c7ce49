import AirlockCore
import AirlockPolicy
import Glibc

/// The host's real AWS credentials, found the standard way (docs/design.md §4.3): the environment,
/// then the profile (`--aws-profile`, `AWS_PROFILE`, else `default`) in the shared
/// credentials and config files, including `credential_process`. Only ever read outside the
/// sandbox, and only when a request is forwarded or executed.
public final class HostCredentials: @unchecked Sendable {
    let environment: [String: String]
    let profile: String?
    private var mutex = pthread_mutex_t()
    private var cached: (credentials: SigV4.Credentials, expires: Int?)?
    /// The shared files that lie where the agent can write, read once here, before the agent
    /// starts (nil: absent then). Read later, a file the agent replaced (or created, or moved a
    /// masked one aside to create) could name a credential_process the broker would run
    /// outside the sandbox. Files elsewhere are read when needed, so rotated keys are seen.
    private let pinned: [String: String?]

    public init(environment: [String: String], profile: String?, writableRoots: WritableRoots = WritableRoots([])) {
        self.environment = environment
        self.profile = profile
        var pinned: [String: String?] = [:]
        let home = environment["HOME"] ?? "/"
        let cwd = HostPath.normalize(currentDirectoryPath())
        for path in [CredentialSources.awsCredentialsFile(environment, home: home), CredentialSources.awsConfigFile(environment, home: home)] {
            let full = CredentialSources.absolute(path, home: home, cwd: cwd)
            if writableRoots.contain(full) { pinned[path] = .some(try? readTextFile(full, limit: 1 << 20)) }
        }
        self.pinned = pinned
        pthread_mutex_init(&mutex, nil)
    }

    /// A shared file's text: as read at start when it lies where the agent can write, else now.
    func text(_ path: String) -> String? {
        if let pinned = pinned[path] { return pinned }
        return try? readTextFile(path, limit: 1 << 20)
    }

    var home: String { environment["HOME"] ?? "/" }
    var profileName: String { profile ?? environment["AWS_PROFILE"] ?? environment["AWS_DEFAULT_PROFILE"] ?? "default" }
    // CredentialSources names the same files to the sandbox's masks (docs/sandbox.md).
    var credentialsFile: String { CredentialSources.awsCredentialsFile(environment, home: home) }
    var configFile: String { CredentialSources.awsConfigFile(environment, home: home) }

    /// The credentials `credentials()` would return without resolving anything, or nil.
    func cachedCredentials() -> SigV4.Credentials? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let cached, cached.expires.map({ $0 - 300 > Clock.epochSeconds() }) ?? true { return cached.credentials }
        return nil
    }

    public func credentials() throws(AirlockError) -> SigV4.Credentials {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let cached, cached.expires.map({ $0 - 300 > Clock.epochSeconds() }) ?? true { return cached.credentials }
        let resolved = try resolve()
        cached = resolved
        return resolved.credentials
    }

    /// The region for real AWS endpoints when a request names none.
    public func defaultRegion() -> String {
        if let region = environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"], !region.isEmpty { return region }
        let config = text(configFile).map(INI.parse) ?? [:]
        return config[configSection]?["region"] ?? "us-east-1"
    }

    var configSection: String { profileName == "default" ? "default" : "profile \(profileName)" }

    func resolve() throws(AirlockError) -> (credentials: SigV4.Credentials, expires: Int?) {
        if profile == nil, let key = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"],
            !key.isEmpty, !secret.isEmpty
        {
            return (SigV4.Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"]), nil)
        }
        let credentialsINI = text(credentialsFile).map(INI.parse) ?? [:]
        if let section = credentialsINI[profileName], let found = Self.staticKeys(section) { return (found, nil) }
        let configINI = text(configFile).map(INI.parse) ?? [:]
        if let section = configINI[configSection] {
            if let found = Self.staticKeys(section) { return (found, nil) }
            if let command = section["credential_process"] { return try runCredentialProcess(command) }
            if section["role_arn"] != nil || section["sso_session"] != nil || section["sso_start_url"] != nil {
                throw AirlockError(
                    "AWS profile \(profileName) uses role assumption or SSO, which Airlock does not resolve yet",
                    hint: "give the broker a profile with keys or credential_process (e.g. `aws configure export-credentials --format process`)")
            }
        }
        throw AirlockError(
            "no AWS credentials for the broker (profile \(profileName))",
            hint: "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY where you start airlock, or configure \(credentialsFile) or \(configFile)")
    }

    static func staticKeys(_ section: [String: String]) -> SigV4.Credentials? {
        guard let key = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] else { return nil }
        return SigV4.Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: section["aws_session_token"])
    }

    /// Runs `credential_process` (split like a shell would, without a shell) and reads its
    /// JSON: {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?, "Expiration"?}.
    func runCredentialProcess(_ command: String) throws(AirlockError) -> (credentials: SigV4.Credentials, expires: Int?) {
        let argv = ShellWords.split(command)
        guard !argv.isEmpty else { throw AirlockError("credential_process of profile \(profileName) is empty") }
        let output = try ChildProcess.run(argv, environment: environment)
        guard output.status == 0 else {
            throw AirlockError("credential_process of profile \(profileName) failed (exit \(output.status)): \(output.stderr.prefix(300))")
        }
        guard let json = try? JSON.parse(output.stdout), let key = json["AccessKeyId"]?.string,
            let secret = json["SecretAccessKey"]?.string
        else { throw AirlockError("credential_process of profile \(profileName) did not print AccessKeyId and SecretAccessKey as JSON") }
        let expires = json["Expiration"]?.string.flatMap(ISO8601.epochSeconds)
        return (SigV4.Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: json["SessionToken"]?.string), expires)
    }
}

enum ISO8601 {
    /// "2026-01-01T12:00:00Z" (or with +00:00, fractions) → seconds since the epoch.
    static func epochSeconds(_ text: String) -> Int? {
        let digits = text.unicodeScalars.filter { ("0"..."9").contains($0) }.map { Int($0.value) - 48 }
        guard digits.count >= 14 else { return nil }
        func number(_ range: Range<Int>) -> Int { digits[range].reduce(0) { $0 * 10 + $1 } }
        var parts = tm()
        parts.tm_year = Int32(number(0..<4) - 1900)
        parts.tm_mon = Int32(number(4..<6) - 1)
        parts.tm_mday = Int32(number(6..<8))
        parts.tm_hour = Int32(number(8..<10))
        parts.tm_min = Int32(number(10..<12))
        parts.tm_sec = Int32(number(12..<14))
        return Int(timegm(&parts))
    }
}

