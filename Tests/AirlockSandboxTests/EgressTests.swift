import Foundation
import Testing

/// The egress proxy as an agent meets it: real curl, pip and git inside `airlock run`, going
/// through the broker's proxy to test upstreams on the host.
@Suite struct EgressTests {
    static let pinned = ["web.test", "secure.test", "pypi.test", "git.test", "mirror.wild.test", "denied.wild.test", "extra.test",
                         "elsewhere.test", "loop.test", "meta.test", "internal.test"]

    static func pins() -> [String: String] {
        var names = Dictionary(uniqueKeysWithValues: pinned.map { ($0, "127.0.0.1") })
        names["loop.test"] = "127.0.0.2"
        names["meta.test"] = "169.254.169.254"
        names["internal.test"] = "10.0.0.1"
        return TestUpstream.pins(names)
    }

    /// curl -s through the proxy: the body, or the refusal, then the HTTP status on its own line.
    static func curl(_ url: String, into name: String, extra: String = "") -> String {
        "curl -sS --cacert ca.pem \(extra) -o \(name).body -w '%{http_code}' '\(url)' > \(name).status 2> \(name).err"
    }

    @Test(arguments: Launch.allCases)
    func allowedHostsPassAndEverythingElseIsRefused(_ launch: Launch) throws {
        guard launch.available() else { return }
        let upstream = try TestUpstream()
        let scene = Scene(launch)
        let (http, https) = (upstream.http, upstream.https)
        try FileManager.default.copyItem(atPath: upstream.caPath, toPath: scene.workspace + "/ca.pem")
        scene.chownTree()
        let profile = scene.egressProfile("""
            network:
              allow: [web.test:\(http), secure.test:\(https), "*.wild.test:\(https)", loop.test:\(http), meta.test:\(http), internal.test:\(http)]
              deny: [denied.wild.test]
              allow_addresses: [127.0.0.1/32]
            """)
        let script = [
            Self.curl("http://web.test:\(http)/hello.txt", into: "plain"),
            Self.curl("https://secure.test:\(https)/hello.txt", into: "tls"),
            Self.curl("https://mirror.wild.test:\(https)/hello.txt", into: "wildcard"),
            Self.curl("http://elsewhere.test:\(http)/", into: "unlisted"),
            Self.curl("https://denied.wild.test:\(https)/", into: "denied"),
            Self.curl("http://meta.test:\(http)/latest/meta-data/", into: "metadata"),
            Self.curl("http://internal.test:\(http)/", into: "internal"),
            Self.curl("http://loop.test:\(http)/", into: "loopback"),
            Self.curl("http://203.0.113.9:\(http)/hello.txt", into: "literal"),
            // An AWS host is answered by Airlock's AWS gateway (TLS with the session's CA, which
            // curl trusts through SSL_CERT_FILE): unsigned, it is refused there.
            "curl -sS -o aws.body -w '%{http_code}' https://s3.us-east-1.amazonaws.com/ > aws.status 2> aws.err",
            Self.curl("http://extra.test:\(http)/hello.txt", into: "session"),
            // Around the proxy: nothing listens on the sandbox's own loopback, and there is
            // no route and no DNS out of it.
            "curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:\(http)/hello.txt > direct-loopback.out 2>&1; echo $? > direct-loopback.status",
            "curl -sS --noproxy '*' --max-time 5 http://192.0.2.1/ > direct-remote.out 2>&1; echo $? > direct-remote.status",
            "getent hosts web.test > dns.out 2>&1; echo $? > dns.status",
            "env | grep -i _proxy= | sort > proxy.env",
        ].joined(separator: "; ")
        let out = scene.run(["/bin/sh", "-c", script], options: ["--profile", profile, "--allow-domain", "extra.test:\(http)"],
                            extraEnvironment: Self.pins())
        #expect(out.status == 0, "\(out)")
        func status(_ name: String) -> String { scene.file(name + ".status") }
        func body(_ name: String) -> String { scene.file(name + ".body") }

        #expect(status("plain") == "200" && body("plain") == "hello from the test upstream\n", "\(scene.file("plain.err"))")
        #expect(status("tls") == "200" && body("tls") == "hello from the test upstream\n", "\(scene.file("tls.err"))")
        #expect(status("wildcard") == "200", "\(scene.file("wildcard.err"))")
        #expect(status("session") == "200" && body("session") == "hello from the test upstream\n", "--allow-domain")

        // The refusal names the host, the rule and what a human does to allow it.
        #expect(status("unlisted") == "403")
        #expect(body("unlisted").contains("elsewhere.test:\(http)") && body("unlisted").contains("not on the allow list")
                && body("unlisted").contains("--allow-domain elsewhere.test"), "\(body("unlisted"))")
        // HTTPS: curl sees the 403 to its CONNECT (and fails with it, nothing reaches the host).
        #expect(scene.file("denied.err").contains("403"), "\(scene.file("denied.err"))")
        // Names allowed, addresses not: metadata, private ranges and loopback beyond the opened /32.
        for name in ["metadata", "internal", "loopback"] {
            #expect(status(name) == "403", "\(name): \(status(name)) \(body(name))")
        }
        #expect(body("metadata").contains("169.254.169.254"), "\(body("metadata"))")
        #expect(body("internal").contains("10.0.0.1"), "\(body("internal"))")
        #expect(status("literal") == "403" && body("literal").lowercased().contains("address"), "\(body("literal"))")
        #expect(status("aws") == "400" && body("aws").contains("not signed"), "\(status("aws")) \(body("aws")) \(scene.file("aws.err"))")

        #expect(status("direct-loopback") != "0" && status("direct-loopback") != "", "\(scene.file("direct-loopback.out"))")
        #expect(status("direct-remote") != "0" && status("direct-remote") != "", "\(scene.file("direct-remote.out"))")
        #expect(status("dns") != "0", "\(scene.file("dns.out"))")
        let environment = scene.file("proxy.env")
        for variable in ["HTTPS_PROXY=http://127.0.0.1:3128", "https_proxy=http://127.0.0.1:3128", "HTTP_PROXY=", "http_proxy=", "NO_PROXY=localhost,127.0.0.1,::1"] {
            #expect(environment.contains(variable), "\(variable) missing from\n\(environment)")
        }

        // Every connection is in the session log with its bytes and duration; refusals are
        // summarised when the run ends.
        let log = scene.latestSessionLog
        #expect(log.contains("egress GET web.test:\(http) → 127.0.0.1:"), "\(log)")
        #expect(log.contains("egress CONNECT secure.test:\(https) → 127.0.0.1:"), "\(log)")
        #expect(log.range(of: #"bytes up, [0-9]+ bytes down, [0-9.]+ s"#, options: .regularExpression) != nil, "\(log)")
        #expect(log.contains("egress refused denied.wild.test:\(https): deny denied.wild.test"), "\(log)")
        #expect(out.stderr.contains("the egress proxy refused"), "\(out.stderr)")
        #expect(out.stderr.contains("elsewhere.test:\(http)") && out.stderr.contains("meta.test:\(http)"), "\(out.stderr)")
    }

    /// The tools agents use to fetch code: pip from a PEP 503 index, git over HTTPS.
    @Test func pipAndGitWorkOverHTTPSThroughTheProxy() throws {
        guard Launch.anyAvailable(), PythonTools.available() else { return }
        let upstream = try TestUpstream()
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        try FileManager.default.copyItem(atPath: upstream.caPath, toPath: scene.workspace + "/ca.pem")
        scene.chownTree()
        let port = upstream.https
        let profile = scene.egressProfile("""
            filesystem:
              readonly: [\(PythonTools.venv)]
            network:
              allow: [pypi.test:\(port), git.test:\(port)]
              allow_addresses: [127.0.0.1/32]
            """)
        let out = scene.run(["/bin/sh", "-c", """
            set -e
            \(PythonTools.venv)/bin/pip download --no-cache-dir --disable-pip-version-check -q \
                --index-url https://pypi.test:\(port)/simple/ --cert ca.pem -d downloads airlock-probe
            GIT_SSL_CAINFO=ca.pem git clone -q https://git.test:\(port)/repo.git cloned
            git -C cloned log --format=%s
            """], options: ["--profile", profile], timeout: 180, extraEnvironment: Self.pins())
        #expect(out.status == 0, "\(out)")
        #expect(FileManager.default.fileExists(atPath: scene.workspace + "/downloads/airlock_probe-1.0-py3-none-any.whl"), "\(out)")
        #expect(scene.file("cloned/README") == "cloned through the Airlock proxy\n", "\(out)")
        #expect(out.stdout.contains("first"), "\(out)")
        let log = scene.latestSessionLog
        #expect(log.contains("egress CONNECT pypi.test:\(port)") && log.contains("egress CONNECT git.test:\(port)"), "\(log)")
    }

    /// A 1 GiB download through a tunnel arrives intact while the broker's memory stays flat:
    /// back-pressure holds the upstream while the agent is slower.
    @Test func gigabyteDownloadKeepsBrokerMemoryBounded() throws {
        guard Launch.anyAvailable() else { return }
        let upstream = try TestUpstream()
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let profile = scene.egressProfile("network:\n  allow: [web.test:\(upstream.http)]\n  allow_addresses: [127.0.0.1/32]\n")
        let size = 1 << 30
        let expected = TestUpstream.digest(ofBytes: size)
        func download(_ bytes: Int) -> (Outcome, Int) {
            var peak = 0
            // --proxytunnel: the plain-HTTP download goes through a CONNECT tunnel; a slow
            // reader (sha256sum) sits at the end so back-pressure matters.
            let out = scene.run(["/bin/sh", "-c", "curl -sS --proxytunnel http://web.test:\(upstream.http)/bytes/\(bytes) | sha256sum"],
                                options: ["--profile", profile], timeout: 600, extraEnvironment: Self.pins()) { pid in
                peak = BrokerProcess.peakResidentKiB(pid)
            }
            return (out, peak)
        }
        let (small, baseline) = download(1 << 20)
        #expect(small.status == 0, "\(small)")
        let (large, peak) = download(size)
        #expect(large.status == 0, "\(large)")
        #expect(large.stdout.hasPrefix(expected), "digest \(large.stdout) != \(expected)")
        print("broker peak resident memory: \(baseline / 1024) MiB for a 1 MiB download, \(peak / 1024) MiB for 1 GiB")
        #expect(baseline > 0 && peak > 0)
        #expect(peak - baseline < 32 * 1024, "the broker grew by \((peak - baseline) / 1024) MiB for a 1 GiB download")
        // The session log counts the bytes: the 1 GiB plus the response head.
        let log = scene.latestSessionLog
        let counted = log.split(separator: "\n").filter { $0.contains("CONNECT web.test") }.compactMap { line -> Int? in
            guard let range = line.range(of: #"[0-9]+ bytes down"#, options: .regularExpression) else { return nil }
            return Int(line[range].split(separator: " ")[0])
        }
        #expect(counted.contains { $0 > size && $0 < size + 4096 }, "\(log)")
    }

    /// 500 tunnels open at once and then closed, then malformed, oversized and slow clients:
    /// each gets a clear answer and the broker ends with the descriptors it started with.
    @Test func tunnelsAndAbusiveClientsLeaveNoDescriptorsBehind() throws {
        guard Launch.anyAvailable() else { return }
        let upstream = try TestUpstream()
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let port = upstream.http
        let profile = scene.egressProfile("""
            network:
              allow: [web.test:\(port)]
              allow_addresses: [127.0.0.1/32]
              timeouts: {header: 2}
            """)
        scene.write(scene.workspace + "/clients.py", Self.clientsScript(port: port))
        var counts: [String: Int] = [:]
        let out = scene.run(["/usr/bin/python3", "clients.py"], options: ["--profile", profile], timeout: 240,
                            extraEnvironment: Self.pins()) { pid in
            let ws = scene.workspace
            guard BrokerProcess.waitForFile(ws + "/ready") else { return }
            counts["before"] = BrokerProcess.descriptors(pid)
            _ = FileManager.default.createFile(atPath: ws + "/go", contents: nil)
            guard BrokerProcess.waitForFile(ws + "/opened", timeout: 120) else { return }
            counts["open"] = BrokerProcess.descriptors(pid)
            _ = FileManager.default.createFile(atPath: ws + "/close", contents: nil)
            guard BrokerProcess.waitForFile(ws + "/finished", timeout: 120) else { return }
            // Closing is asynchronous in the broker: give it a moment to settle.
            let deadline = Date().addingTimeInterval(10)
            repeat {
                counts["after"] = BrokerProcess.descriptors(pid)
                if counts["after"] == counts["before"] { break }
                usleep(100_000)
            } while Date() < deadline
            _ = FileManager.default.createFile(atPath: ws + "/done", contents: nil)
        }
        #expect(out.status == 0, "\(out)")
        let results = (try? JSONSerialization.jsonObject(with: Data(scene.file("results.json").utf8))) as? [String: Any] ?? [:]
        print("broker descriptors: \(counts); clients: \(results)")
        #expect(results["tunnels"] as? Int == 500, "\(results)")
        #expect(results["echoed"] as? Int == 500, "\(results)")
        let before = try #require(counts["before"]), open = try #require(counts["open"]), after = try #require(counts["after"])
        #expect(open >= before + 1000, "500 tunnels hold two descriptors each: \(before) → \(open)")
        #expect(after == before, "descriptors leaked: \(before) before, \(after) after")
        func answer(_ name: String) -> String { results[name] as? String ?? "(none)" }
        #expect(answer("bare-connect").hasPrefix("HTTP/1.1 400"), "\(answer("bare-connect"))")
        #expect(answer("connect-without-port").hasPrefix("HTTP/1.1 400"), "\(answer("connect-without-port"))")
        #expect(answer("garbage").hasPrefix("HTTP/1.1 400"), "\(answer("garbage"))")
        #expect(answer("origin-form").hasPrefix("HTTP/1.1 400") && answer("origin-form").contains("absolute URI"), "\(answer("origin-form"))")
        #expect(answer("huge-header").hasPrefix("HTTP/1.1 431"), "\(answer("huge-header"))")
        #expect(answer("huge-body").hasPrefix("HTTP/1.1 413"), "\(answer("huge-body"))")
        #expect(answer("slowloris").hasPrefix("HTTP/1.1 408"), "\(answer("slowloris"))")
        let slowSeconds = results["slowloris-seconds"] as? Double ?? 99
        #expect(slowSeconds >= 1.5 && slowSeconds < 6, "a slow client was cut off after \(slowSeconds) s (header timeout 2 s)")
        #expect(results["idle-closed"] as? Int == 200, "\(results)")
    }

    /// The in-sandbox client for the descriptor test; it coordinates with the test through
    /// files in the workspace (ready → go → opened → close → finished → done).
    static func clientsScript(port: Int) -> String {
        """
        import json, os, socket, time

        PROXY = ("127.0.0.1", 3128)
        results = {}

        def wait(name):
            while not os.path.exists(name):
                time.sleep(0.02)

        def touch(name):
            open(name, "w").close()

        def head(sock, limit=65536):
            data = b""
            while b"\\r\\n\\r\\n" not in data and len(data) < limit:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data

        def ask(raw, name):
            sock = socket.create_connection(PROXY)
            try:
                sock.sendall(raw)
                results[name] = head(sock).decode("latin-1")[:300]
            except OSError as error:
                results[name] = "error: %s" % error
            finally:
                sock.close()

        connect = b"CONNECT web.test:\(port) HTTP/1.1\\r\\nHost: web.test:\(port)\\r\\n\\r\\n"
        # One tunnel first, so the broker's lazily made resources exist before the count.
        warm = socket.create_connection(PROXY); warm.sendall(connect); head(warm); warm.close()
        time.sleep(0.5)
        touch("ready"); wait("go")

        tunnels = []
        for _ in range(500):
            tunnels.append(socket.create_connection(PROXY))
            tunnels[-1].sendall(connect)
        answers = [head(sock).split(b"\\r\\n")[0].decode("latin-1") for sock in tunnels]
        results["tunnels"] = answers.count("HTTP/1.1 200 Connection established")
        results["tunnel-answers"] = sorted(set(answers))
        # Each tunnel carries a request to the upstream and its answer back.
        echoed = []
        for sock in tunnels:
            try:
                sock.sendall(b"GET /echo-host HTTP/1.1\\r\\nHost: web.test\\r\\nConnection: close\\r\\n\\r\\n")
            except OSError as error:
                echoed.append(str(error))
        for sock in tunnels:
            try:
                echoed.append(head(sock).split(b"\\r\\n")[0].decode("latin-1"))
            except OSError as error:
                echoed.append(str(error))
        results["echoed"] = echoed.count("HTTP/1.0 200 OK") + echoed.count("HTTP/1.1 200 OK")
        results["echo-answers"] = sorted(set(echoed))
        touch("opened"); wait("close")
        for sock in tunnels:
            sock.close()

        ask(b"CONNECT\\r\\n\\r\\n", "bare-connect")
        ask(b"CONNECT web.test HTTP/1.1\\r\\n\\r\\n", "connect-without-port")
        ask(b"GARBAGE\\x00\\x01 nonsense\\r\\n\\r\\n", "garbage")
        ask(b"GET /hello.txt HTTP/1.1\\r\\nHost: web.test\\r\\n\\r\\n", "origin-form")
        ask(b"CONNECT web.test:\(port) HTTP/1.1\\r\\nX-Filler: " + b"a" * 300000 + b"\\r\\n\\r\\n", "huge-header")
        ask(b"POST http://web.test:\(port)/ HTTP/1.1\\r\\nHost: web.test\\r\\nContent-Length: 1000000000\\r\\n\\r\\n", "huge-body")

        # Slowloris: a request head dribbled out a byte at a time.
        slow = socket.create_connection(PROXY)
        started = time.time()
        slow.settimeout(0.3)
        answer = b""
        for byte in connect:
            try:
                slow.sendall(bytes([byte]))
                answer = slow.recv(4096)
                if answer:
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        results["slowloris"] = answer.decode("latin-1")[:200]
        results["slowloris-seconds"] = round(time.time() - started, 2)
        slow.close()

        # Many clients that connect and say nothing: all are cut off by the header timeout.
        idle = [socket.create_connection(PROXY) for _ in range(200)]
        time.sleep(3.5)
        closed = 0
        for sock in idle:
            sock.settimeout(2)
            try:
                while sock.recv(4096):
                    pass
                closed += 1
            except OSError:
                pass
            sock.close()
        results["idle-closed"] = closed

        with open("results.json", "w") as out:
            json.dump(results, out)
        touch("finished"); wait("done")
        """
    }

    /// Claude Code's profile: its API host is reachable (a local stand-in for
    /// api.anthropic.com on 127.0.0.2:443, which needs root to bind), other hosts are not, its
    /// own API key passes while infrastructure credentials do not, and what it writes to its
    /// home (its login) is there in the next session.
    @Test func claudeCodeProfileReachesItsAPIAndKeepsItsLogin() throws {
        guard Launch.root.available() else { return }
        let scene = Scene(.root)
        // Login persistence: one session writes the login, the next reads it.
        let login = scene.run(["/bin/sh", "-c", "mkdir -p ~/.claude && echo signed-in > ~/.claude/.credentials.json && echo $HOME"],
                              options: ["--profile", "claude-code"])
        #expect(login.status == 0, "\(login)")
        let later = scene.run(["/bin/sh", "-c", "cat ~/.claude/.credentials.json"], options: ["--profile", "claude-code"])
        #expect(later.stdout == "signed-in\n", "\(later)")

        let upstream: TestUpstream
        do {
            upstream = try TestUpstream(bind: "127.0.0.2", httpsPort: 443)
        } catch {
            Issue.record("cannot stand in for api.anthropic.com on 127.0.0.2:443: \(error)")
            return
        }
        try FileManager.default.copyItem(atPath: upstream.caPath, toPath: scene.workspace + "/ca.pem")
        scene.chownTree()
        let local = scene.egressProfile("network:\n  allow_addresses: [127.0.0.2/32]\n", name: "local-anthropic.yaml")
        let out = scene.run(["/bin/sh", "-c", """
            curl -sS --cacert ca.pem https://api.anthropic.com/echo-host; echo "api=$?"
            curl -sS --cacert ca.pem https://example.com/ 2>&1; echo "other=$?"
            echo "key=$ANTHROPIC_API_KEY"; env | grep -c AWS_SECRET_ACCESS_KEY=PLANTED
            """], options: ["--profile", "claude-code", "--profile", local],
            extraEnvironment: TestUpstream.pins(["api.anthropic.com": "127.0.0.2", "example.com": "127.0.0.2"])
                .merging(["ANTHROPIC_API_KEY": "sk-ant-test-key"]) { $1 })
        #expect(out.stdout.contains("api.anthropic.com\napi=0"), "\(out)")
        #expect(out.stdout.contains("403") && out.stdout.contains("other=56"), "\(out)")
        #expect(out.stdout.contains("key=sk-ant-test-key"), "\(out)")
        #expect(out.stdout.hasSuffix("0\n"), "an infrastructure credential passed: \(out)")
    }
}
