import AirlockCore

/// What counts as a credential, for paths and environment variables. These rules are the
/// floor under every profile (docs/design.md §2.1, §3): no profile can loosen them.
public enum CredentialRules {
    /// Credential locations relative to a home directory. Never mounted; masked when a
    /// mounted tree (say, a workspace that is the home itself) would contain them.
    public static let homeRelativePaths: [String] = [
        ".aws", ".ssh", ".kube", ".config/gh", ".docker", ".netrc", ".git-credentials",
        ".gnupg", ".config/gcloud", ".azure", ".terraform.d/credentials.tfrc.json",
        ".config/hub", ".vault-token", ".pypirc", ".npmrc", ".config/op",
        ".password-store", ".local/share/keyrings", ".config/helm/repositories.yaml",
        ".oci", ".boto", ".s3cfg", ".config/airlock",
    ]

    /// Files and directories under /etc that hold host secrets; masked inside the sandbox
    /// even though /etc itself is mounted read-only.
    public static let etcSecrets: [String] = [
        "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
        "/etc/sudoers.d", "/etc/ssl/private", "/etc/security/opasswd", "/etc/krb5.keytab",
        "/etc/kubernetes", "/etc/rancher", "/etc/boto.cfg", "/etc/docker/key.json",
        "/etc/libvirt/secrets", "/etc/wireguard", "/etc/NetworkManager/system-connections",
        // An agent host's enrollment token for the team gate (`airlock run --gate`).
        "/etc/airlock/gate-token",
    ]

    // Files that credential variables name (KUBECONFIG, AWS_CONFIG_FILE, GH_CONFIG_DIR, …) and
    // the files those name are listed by CredentialSources, from the loaders' own paths.

    /// Credential-shaped environment names: never passed into a sandbox, whatever a profile
    /// asks. Matched case-sensitively on the whole name.
    public static let environmentPatterns: [Glob] = [
        "AWS_*", "AMAZON_*", "*_TOKEN", "*_TOKEN_*", "*TOKEN", "*_SECRET", "*_SECRET_*", "*SECRET*",
        "*PASSWORD*", "*PASSWD*", "*_CREDENTIALS", "*_CREDENTIALS_*", "*CREDENTIAL*",
        "*_PRIVATE_KEY*", "*_ACCESS_KEY*", "*_SECRET_KEY*", "*_SESSION_KEY*", "*_AUTH",
        "*_AUTH_*", "KUBECONFIG", "SSH_AUTH_SOCK", "SSH_AGENT_PID", "GPG_AGENT_INFO",
        "AZURE_*", "ARM_*", "GCLOUD_*", "CLOUDSDK_*", "VAULT_*", "DOCKER_*",
        "KRB5*", "NETRC", "GNUPGHOME", "DATABASE_URL", "*_DSN", "PGPASS*", "MYSQL_PWD",
    ].map(Glob.init)

    /// An agent's own model-provider key (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`) may be passed
    /// by a profile that names it exactly; it is never an infrastructure credential.
    public static let agentKeyPattern = Glob("*_API_KEY")

    /// An agent's own model-provider key named exactly (`GOOGLE_API_KEY` too, although
    /// `GOOGLE_*` is credential-shaped); AWS keys never.
    public static func isAgentKey(_ name: String) -> Bool {
        agentKeyPattern.matches(name) && !name.hasPrefix("AWS_") && !name.hasPrefix("AMAZON_")
    }

    public static func isCredentialName(_ name: String) -> Bool {
        environmentPatterns.contains { $0.matches(name) }
    }

    /// Credential paths for a host user, absolute and normalized.
    public static func paths(home: String) -> [String] {
        homeRelativePaths.map { HostPath.normalize(home + "/" + $0) }
    }
}

