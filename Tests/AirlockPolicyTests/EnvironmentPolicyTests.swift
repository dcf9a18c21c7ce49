import Testing

@testable import AirlockPolicy

@Suite struct EnvironmentPolicyTests {
    let host = [
        "TERM": "xterm", "LANG": "C.UTF-8", "LC_ALL": "C", "HOME": "/root", "PATH": "/host/bin",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_PROFILE": "prod",
        "GITHUB_TOKEN": "ghp_x", "GH_TOKEN": "x", "KUBECONFIG": "/root/.kube/config",
        "SSH_AUTH_SOCK": "/tmp/agent.sock", "VAULT_TOKEN": "s.x", "DB_PASSWORD": "pw",
        "ANTHROPIC_API_KEY": "sk-ant", "OPENAI_API_KEY": "sk-oa", "MYAPP_MODE": "dev",
        "MYAPP_API_KEY": "k", "GOOGLE_APPLICATION_CREDENTIALS": "/k.json", "NPM_TOKEN": "n",
        "EDITOR": "vim",
    ]

    func names(_ result: EnvironmentPolicy.Result) -> Set<String> { Set(result.variables.map(\.name)) }

    @Test func nothingButTerminalAndLocalePassesByDefault() {
        let result = EnvironmentPolicy.build(host: host, pass: [], set: [:], airlock: ["HOME": "/home/agent"])
        #expect(names(result) == ["TERM", "LANG", "LC_ALL", "HOME"])
        #expect(result.variables.first { $0.name == "HOME" }?.value == "/home/agent")
        #expect(result.withheld.isEmpty)
    }

    @Test func credentialsNeverPassEvenWhenAsked() {
        let asked = ["AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "KUBECONFIG", "SSH_AUTH_SOCK", "*"]
        let result = EnvironmentPolicy.build(host: host, pass: asked, set: [:], airlock: [:])
        for credential in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "GITHUB_TOKEN", "GH_TOKEN",
                           "KUBECONFIG", "SSH_AUTH_SOCK", "VAULT_TOKEN", "DB_PASSWORD",
                           "GOOGLE_APPLICATION_CREDENTIALS", "NPM_TOKEN", "ANTHROPIC_API_KEY", "MYAPP_API_KEY"] {
            #expect(!names(result).contains(credential), "\(credential) passed")
        }
        #expect(result.withheld.contains("AWS_SECRET_ACCESS_KEY"))
        #expect(names(result).contains("EDITOR"))  // "*" passes what is not credential-shaped
    }

    @Test func apiKeysPassOnlyByExactName() {
        let exact = EnvironmentPolicy.build(host: host, pass: ["ANTHROPIC_API_KEY"], set: [:], airlock: [:])
        #expect(names(exact).contains("ANTHROPIC_API_KEY"))
        #expect(!names(exact).contains("OPENAI_API_KEY"))
        let pattern = EnvironmentPolicy.build(host: host, pass: ["MYAPP_*"], set: [:], airlock: [:])
        #expect(names(pattern).contains("MYAPP_MODE"))
        #expect(!names(pattern).contains("MYAPP_API_KEY"))
        #expect(pattern.withheld == ["MYAPP_API_KEY"])
    }

    @Test func airlockVariablesWin() {
        let result = EnvironmentPolicy.build(host: host, pass: ["PATH"], set: ["PATH": "/x"], airlock: ["PATH": "/run/airlock/bin:/x"])
        #expect(result.variables.first { $0.name == "PATH" }?.value == "/run/airlock/bin:/x")
    }

    @Test(arguments: [
        "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "GH_TOKEN", "CI_JOB_TOKEN",
        "TF_TOKEN_app_terraform_io", "VAULT_TOKEN", "SLACK_BOT_TOKEN", "CLIENT_SECRET", "MY_SECRET_KEY",
        "PGPASSWORD", "DB_PASSWORD", "KUBECONFIG", "SSH_AUTH_SOCK", "AZURE_CLIENT_SECRET",
        "GOOGLE_APPLICATION_CREDENTIALS", "DOCKER_AUTH_CONFIG", "ARM_CLIENT_SECRET", "DATABASE_URL",
        "NPM_TOKEN", "HF_TOKEN", "STRIPE_SECRET_KEY", "GPG_PRIVATE_KEY",
    ])
    func credentialShaped(name: String) {
        #expect(CredentialRules.isCredentialName(name))
    }

    @Test(arguments: ["TERM", "LANG", "PATH", "HOME", "EDITOR", "ANTHROPIC_API_KEY", "CARGO_HOME", "RUST_LOG"])
    func notCredentialShaped(name: String) {
        #expect(!CredentialRules.isCredentialName(name))
    }
}
