import AirlockPolicy
import Testing

/// Profiles scope Kubernetes and GitHub reads (docs/kubernetes.md and docs/github.md, "Profiles").
@Suite struct ProfileScopeTests {
    static func stack(_ texts: [String]) throws -> ProfileStack {
        ProfileStack(try texts.enumerated().map { index, text in try ProfileParser.parse(text, name: "p\(index)", source: "p\(index).yaml") })
    }

    @Test func scopesParseAndEveryLayerNarrows() throws {
        let stack = try Self.stack([
            "kubernetes:\n  read_namespaces: [dev, staging]\ngithub:\n  repos: [acme/*]\n",
            "kubernetes:\n  read_namespaces: [staging, prod]\n  allow: [pods/exec]\ngithub:\n  repos: [acme/app, other/x]\n",
        ])
        #expect(stack.kubernetesReadNamespaces == ["staging"], "a namespace must be in every layer's list")
        #expect(stack.kubernetesAllow == ["pods/exec"])
        #expect(GitHubRepoScope.refusal(repository: "acme/app", what: "x", scopes: stack.githubRepoScopes) == nil)
        #expect(GitHubRepoScope.refusal(repository: "acme/other", what: "x", scopes: stack.githubRepoScopes) != nil, "not in the second layer's list")
        #expect(GitHubRepoScope.refusal(repository: "other/x", what: "x", scopes: stack.githubRepoScopes) != nil, "not in the first layer's list")
        #expect(try Self.stack(["description: none\n"]).kubernetesReadNamespaces == nil)
        #expect(try Self.stack(["description: none\n"]).githubRepoScopes.isEmpty)
    }

    @Test(arguments: [
        "kubernetes:\n  allow: [pods/exec, secrets]\n",
        "kubernetes:\n  read_namespaces: [a/b]\n",
        "kubernetes:\n  read_namespaces: [\"*\"]\n",
        "kubernetes:\n  namespaces: [a]\n",
        "github:\n  repos: [acme]\n",
        "github:\n  repos: [acme/app/extra]\n",
        "github:\n  repos: [../x]\n",
        "github:\n  orgs: [acme]\n",
    ])
    func badScopesAreRefusedWithTheLine(text: String) {
        #expect(throws: ProfileError.self) { try ProfileParser.parse(text, name: "bad", source: "bad.yaml") }
    }

    @Test(arguments: [
        ("/repos/Acme/App/pulls", "acme/app"), ("/repos/acme/app", "acme/app"), ("/repos/acme", nil), ("/user", nil),
        ("/search/code", nil), ("/repos//app/x", nil),
    ] as [(String, String?)])
    func restRepositories(path: String, repository: String?) {
        #expect(GitHubRepoScope.repository(restPath: path) == repository)
    }

    @Test(arguments: [("/acme/app.git", "acme/app"), ("/acme/app", "acme/app"), ("/scm/acme/app.git", nil), ("/acme", nil)] as [(String, String?)])
    func gitRepositories(path: String, repository: String?) {
        #expect(GitHubRepoScope.repository(gitPath: path) == repository)
    }

    @Test func aScopeRefusesWhatNamesNoRepository() {
        let scopes = [[Glob("acme/*")]]
        #expect(GitHubRepoScope.refusal(repository: nil, what: "GET /search/code", scopes: scopes)?.contains("names no single repository") == true)
        #expect(GitHubRepoScope.refusal(repository: nil, what: "GET /search/code", scopes: []) == nil)
    }
}
