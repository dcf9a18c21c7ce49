import Foundation
import Testing

/// The approvers' web page (docs/web.md) in a real browser: Debian's chromium driven by
/// Selenium (Tests/Support/web_checks.py) against two real gate replicas on one PostgreSQL
/// store, executing at moto, with a stand-in OpenID Connect provider (Tests/Support/
/// oidc_standin.py: no identity provider runs here; it does what matters like a real one:
/// the code flow with PKCE, one-time codes, signed ID tokens and a JWKS). And `airlock ui`
/// on a local store, its one approval executed at moto.
@Suite(.serialized) struct WebPageTests {
    static var checks: String { Stage.repoRoot + "/Tests/Support/web_checks.py" }

    /// A missing browser is a failure with the install hint, never a silent skip.
    static func browserAvailable() -> Bool {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] where access(tool, X_OK) != 0 {
            Issue.record("\(tool) is missing: apt-get install chromium chromium-driver (scripts/test installs them)")
            return false
        }
        guard runProcess(PythonTools.python, ["-c", "import selenium"], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").status == 0 else {
            Issue.record("selenium is not in \(PythonTools.venv): scripts/test installs scripts/requirements.txt")
            return false
        }
        return true
    }

    /// The stand-in provider, registered for these redirect URIs.
    final class Provider: @unchecked Sendable {
        let process: Process
        let issuer: String
        let secretFile: String

        init(redirects: [String], directory: String) throws {
            secretFile = directory + "/oidc-secret"
            let secret = "secret-" + UUID().uuidString
            try secret.write(toFile: secretFile, atomically: true, encoding: .utf8)
            process = Process()
            process.executableURL = URL(fileURLWithPath: PythonTools.python)
            process.arguments = [Stage.repoRoot + "/Tests/Support/oidc_standin.py", "--client-id", "airlock", "--client-secret", secret]
                + redirects.flatMap { ["--redirect-uri", $0] }
            let output = Pipe()
            process.standardOutput = output
            _ = FileManager.default.createFile(atPath: directory + "/oidc.log", contents: nil)
            process.standardError = FileHandle(forWritingAtPath: directory + "/oidc.log")
            try process.run()
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { throw TestUpstreamError("oidc_standin.py did not start") }
                line.append(chunk)
            }
            guard let issuer = (try JSONSerialization.jsonObject(with: line) as? [String: Any])?["issuer"] as? String else {
                throw TestUpstreamError("oidc_standin.py did not say its issuer: \(String(decoding: line, as: UTF8.self))")
            }
            self.issuer = issuer
        }

        deinit {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    static func webConfig(port: Int, provider: Provider, proxy: Bool, enrol: String) -> String {
        """
        web:
          url: http://127.0.0.1:\(port)
          enrol: \(enrol)
          oidc: {issuer: "\(provider.issuer)", client_id: airlock, client_secret_file: \(provider.secretFile)}
        \(proxy ? "  proxy: {addresses: [\"127.0.0.2\"]}\n" : "")  roles: {admin: [airlock-admins], approver: [airlock-approvers], viewer: [engineering]}

        """
    }

    /// Two approvers for deleting a queue; one for anything else.
    static let policy = """
        @id("two-for-queue-deletes")
        @approvals("2")
        permit (principal, action == Action::"aws:sqs:DeleteQueue", resource);

        @id("one-for-the-rest")
        permit (principal, action, resource)
        unless { action == Action::"aws:sqs:DeleteQueue" };
        """

    /// Runs web_checks.py; every check it printed is an expectation here.
    static func run(_ arguments: [String], expecting names: [String], timeout: Double = 300, sourceLocation: SourceLocation = #_sourceLocation) {
        let out = runProcess(PythonTools.python, [checks] + arguments, environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()],
                             directory: "/tmp", timeout: timeout)
        let lines = out.stdout.split(separator: "\n").map(String.init)
        for name in names {
            let line = lines.first { $0 == "ok \(name)" || $0.hasPrefix("FAIL \(name):") || $0.hasPrefix("FAIL \(name) ") }
            #expect(line == "ok \(name)", "\(name): \(line ?? "not reported")\n\(out.stdout.suffix(4000))\n\(out.stderr.suffix(4000))", sourceLocation: sourceLocation)
        }
        #expect(out.status == 0, "web_checks.py \(arguments.first ?? ""): \(out.stdout.suffix(3000))\n\(out.stderr.suffix(3000))", sourceLocation: sourceLocation)
    }

    @Test func approversSignInSeeTheQueueLiveOnEveryReplicaAndDecideInTheBrowser() throws {
        guard PythonTools.available(), Self.browserAvailable() else { return }
        let moto = try Moto()
        let directory = makeTemporaryDirectory(prefix: "airlock-web")
        let (portA, portB) = (Moto.freePort(), Moto.freePort())
        let provider = try Provider(redirects: [portA, portB].map { "http://127.0.0.1:\($0)/ui/oidc/callback" }, directory: directory)
        try Self.policy.write(toFile: directory + "/policy.cedar", atomically: true, encoding: .utf8)
        let database = try TeamGate.freshPostgres()
        let a = try TeamGate(store: "postgres", upstream: moto.url,
                             extra: "replica: web-a\npolicy: \(directory)/policy.cedar\n" + Self.webConfig(port: portA, provider: provider, proxy: true, enrol: "admin"),
                             postgres: database, port: portA)
        let b = try TeamGate(store: "postgres", upstream: moto.url,
                             extra: "replica: web-b\npolicy: \(directory)/policy.cedar\n" + Self.webConfig(port: portB, provider: provider, proxy: false, enrol: "provider"),
                             postgres: database, port: portB)
        let host = a.enrol("host", "web-host")
        let bob = b.admin(["user", "add", "bob", "--login-link"])
        #expect(bob.status == 0, "\(bob)")
        let bobLink = try #require(bob.stdout.split(separator: "\n").last.map(String.init))
        #expect(bobLink.hasPrefix("http://127.0.0.1:\(portB)/ui/login/"), "\(bob.stdout)")

        let artifacts = Stage.repoRoot + "/.build/web-artifacts"
        try? FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        Self.run(["browser", "--gate-a", a.url, "--gate-b", b.url, "--idp", provider.issuer, "--host-token", host, "--moto", moto.url,
                  "--bob-link", bobLink, "--artifacts", artifacts],
                 expecting: ["signin-oidc-browser", "live-across-replicas", "proposal-page", "csrf-refused", "digest-refused", "approve-executes",
                             "two-approvers", "xss-rendered-as-text", "audit-view"])
        for shot in ["queue.png", "proposal.png"] {
            #expect((try? FileManager.default.attributesOfItem(atPath: artifacts + "/" + shot)[.size] as? Int) ?? 0 > 10_000, "no screenshot \(shot)")
        }

        // Sign-in failures, each refused with nothing decided, on replica A (which also
        // trusts a proxy at 127.0.0.2).
        let session = "web-fail-" + String(UUID().uuidString.prefix(8)).lowercased()
        #expect(a.call("POST", "/v1/sessions", token: host, body: ["id": session, "workspace": "/w"]).status == 201)
        let pending = a.call("POST", "/v1/proposals", token: host, body: ["session_id": session, "payload_base64": GateServiceTests.createQueue("web-fail")])
        let pendingID = try #require(pending.json["id"] as? String, "\(pending)")
        func link(_ name: String) throws -> String {
            let made = a.admin(["user", "add", name, "--login-link"])
            #expect(made.status == 0, "\(made)")
            return try #require(made.stdout.split(separator: "\n").last.map(String.init))
        }
        let used = try link("dana"), revoked = try link("carol")
        // Replica A enrols people by an admin's binding only (web.enrol: admin): dave's
        // provider account (the stand-in's subject is sub-NAME) and mallory behind the proxy.
        for binding in [["dave", "--subject", "sub-dave"], ["mallory", "--proxy"]] {
            let bound = a.admin(["user", "bind"] + binding)
            #expect(bound.status == 0, "user bind \(binding): \(bound)")
        }
        let revoke = try String(decoding: JSONSerialization.data(withJSONObject: [TeamGate.binary, "user", "revoke", "carol", "--config", a.config]), as: UTF8.self)
        Self.run(["signin-failures", "--gate", a.url, "--idp", provider.issuer, "--host-token", host, "--pending", pendingID,
                  "--link", used, "--used-link", used, "--revoked-link", revoked, "--revoke-command", revoke, "--proxy-user", "mallory",
                  "--provider-gate", b.url, "--token-user", "bob"],
                 expecting: ["oidc-good", "oidc-es256", "oidc-wrong_iss-refused", "oidc-wrong_aud-refused", "oidc-expired-refused", "oidc-alg_none-refused",
                             "oidc-unknown_kid-refused", "oidc-bad_nonce-refused", "oidc-bad_signature-refused", "oidc-hs256-refused",
                             "oidc-state-mismatch", "oidc-pkce-mismatch", "oidc-code-reuse", "no-groups-refused", "proxy-from-elsewhere",
                             "proxy-from-proxy", "proxy-repeated-header", "oidc-unbound-refused", "oidc-takeover-refused", "link-reused", "link-unknown", "revoked-cookie", "nothing-decided"])
        #expect(a.call("GET", "/v1/proposals/\(pendingID)", token: host).json["state"] as? String == "pending")
        // One person, one identity: dave signed in by the provider is user:dave, whose
        // binding is in the audit log; the audit chain is intact after all of it.
        let audit = a.admin(["audit", "export"])
        #expect(audit.stdout.contains("identity-bound") && audit.stdout.contains("login-link-used"), "\(audit.stdout.suffix(2000))")
    }

    @Test func airlockUIServesTheLocalQueueOnLoopbackOnly() throws {
        guard Launch.anyAvailable(), PythonTools.available(), Self.browserAvailable() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let moto = try Moto()
        let script = """
            aws sqs create-queue --queue-name local-web-q > cq.out 2>&1; echo $? > cq.rc
            grep -o 'Proposal [0-9a-f]*' cq.out | head -1 | cut -d' ' -f2 > id.txt; touch proposed
            airlock wait $(cat id.txt) --timeout 200 > wait.txt 2>&1; echo $? > wait.rc
            """
        let artifacts = Stage.repoRoot + "/.build/web-artifacts"
        try? FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        var checked = false
        let out = scene.agent(script, moto: moto, timeout: 300) { _ in
            guard scene.waitForFile("proposed", timeout: 200) else { return }
            // `airlock ui` as the human, with the human's AWS keys: it approves as `airlock
            // approve` would.
            let ui = Process()
            ui.executableURL = URL(fileURLWithPath: Stage.airlock)
            ui.arguments = ["ui", "--state-dir", scene.stateDir]
            // `airlock ui` is airlock-gate's: the staged airlock finds it by AIRLOCK_GATE_BINARY.
            ui.environment = scene.environment.merging(Moto.keys) { $1 }
                .merging(["AWS_DEFAULT_REGION": "us-east-1", "AIRLOCK_GATE_BINARY": TeamGate.binary]) { $1 }
            let output = Pipe()
            ui.standardOutput = output
            let log = scene.root + "/ui.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            ui.standardError = FileHandle(forWritingAtPath: log)
            guard (try? ui.run()) != nil else { Issue.record("airlock ui did not start"); return }
            defer { kill(ui.processIdentifier, SIGTERM); ui.waitUntilExit() }
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                line.append(chunk)
            }
            let link = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(link.hasPrefix("http://127.0.0.1:") && link.contains("/ui/login/"), "airlock ui printed: \(link) \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            Self.run(["local-ui", "--link", link, "--pid", String(ui.processIdentifier), "--artifacts", artifacts, "--summary", "sqs:CreateQueue"],
                     expecting: ["local-queue", "local-approve", "local-link-reused", "loopback-only", "local-host-checked"])
            checked = true
        }
        #expect(checked)
        #expect(out.status == 0, "\(out)")
        #expect(scene.file("wait.rc") == "0\n", "the agent's wait: \(scene.file("wait.txt"))")
        #expect(moto.aws(["sqs", "list-queues"]).stdout.contains("local-web-q"), "approved in the browser, created at moto")
        let audit = scene.airlock(["audit", "verify"])
        #expect(audit.status == 0, "\(audit)")
    }
}
