import AirlockPolicy
import Testing

/// git's smart HTTP protocol as the GitHub gateway reads it (docs/github.md, "git over HTTPS").
@Suite struct GitSmartHTTPTests {
    @Test(arguments: [
        ("GET", "/acme/app.git/info/refs", "service=git-upload-pack", Decision.read),
        ("GET", "/acme/app/info/refs", "service=git-receive-pack", .read),       // the push advertisement: refs only
        ("HEAD", "/acme/app.git/info/refs", "service=git-upload-pack", .read),
        ("POST", "/acme/app.git/git-upload-pack", "", .read),                     // clone and fetch
        ("POST", "/scm/team/app.git/git-upload-pack", "", .read),
        ("POST", "/acme/app.git/git-receive-pack", "", .mutation),                // a push: a proposal
        ("GET", "/acme/app.git/info/refs", "service=git-upload-pack&service=git-receive-pack", .deny),
        ("GET", "/acme/app.git/info/refs", "service=git-upload-archive", .read),   // not smart HTTP: a plain GET, no credentials
        ("GET", "/acme/app", "", .read),                                           // a web page
        ("POST", "/acme/app/issues", "", .deny),                                   // a web form: neither git nor the API
        ("PUT", "/acme/app.git/git-receive-pack", "", .deny),
        ("GET", "/acme/../secret.git/info/refs", "service=git-upload-pack", .deny),
        ("POST", "/acme/app.git%2fgit-receive-pack", "", .deny),
        ("POST", "/acme//app.git/git-receive-pack", "", .deny),
    ])
    func everyRule(method: String, path: String, query: String, decision: Decision) {
        let ruling = GitSmartHTTP.classify(method: method, path: path, query: query)
        #expect(ruling.decision == decision, "\(method) \(path)?\(query): \(ruling)")
    }

    @Test func theRepositoryIsThePathBeforeTheProtocolsSuffix() {
        #expect(GitSmartHTTP.read(method: "POST", path: "/acme/app.git/git-receive-pack", query: "") == .receivePack(repository: "/acme/app.git"))
        #expect(GitSmartHTTP.read(method: "GET", path: "/a/b/info/refs", query: "service=git-upload-pack")
                == .advertisement(repository: "/a/b", service: "git-upload-pack"))
        #expect(GitSmartHTTP.read(method: "GET", path: "/acme/app.git/git-receive-pack", query: "") == .other, "a GET is not a push")
    }
}
