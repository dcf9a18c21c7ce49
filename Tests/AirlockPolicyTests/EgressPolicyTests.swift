import Testing

@testable import AirlockPolicy

@Suite struct IPAddressTests {
    @Test(arguments: [
        ("127.0.0.1", "loopback"), ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"), ("100.64.0.1", "shared"), ("224.0.0.1", "multicast"), ("0.0.0.0", "this network"),
        ("::1", "loopback"), ("fd00::1", "private"), ("fe80::1", "link-local"), ("ff02::1", "multicast"),
        ("::ffff:169.254.169.254", "link-local"), ("::ffff:127.0.0.1", "loopback"), ("::", "unspecified"),
    ])
    func specialPurpose(address: String, words: String) throws {
        let ip = try #require(IPAddress(address))
        #expect(ip.specialPurpose?.contains(words) == true, "\(address): \(String(describing: ip.specialPurpose))")
    }

    @Test(arguments: ["1.1.1.1", "8.8.8.8", "93.184.216.34", "2606:4700::1111", "172.32.0.1", "192.169.0.1"])
    func publicAddresses(address: String) throws {
        #expect(try #require(IPAddress(address)).specialPurpose == nil)
    }

    @Test(arguments: ["256.1.1.1", "1.2.3", "01.2.3.4", "1.2.3.4.5", "::1::2", "12345::", "fe80::1%eth0", "host", "", "1.2.3.-4"])
    func rejects(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func ranges() throws {
        let ten = try #require(IPRange("10.0.0.0/8"))
        #expect(ten.contains(IPAddress("10.255.0.1")!))
        #expect(!ten.contains(IPAddress("11.0.0.1")!))
        #expect(ten.contains(IPAddress("::ffff:10.1.2.3")!))
        let single = try #require(IPRange("127.0.0.1"))
        #expect(single.contains(IPAddress("127.0.0.1")!) && !single.contains(IPAddress("127.0.0.2")!))
        let v6 = try #require(IPRange("fd00::/8"))
        #expect(v6.contains(IPAddress("fd12::1")!) && !v6.contains(IPAddress("fe80::1")!))
        #expect(IPRange("10.0.0.0/33") == nil && IPRange("nope/8") == nil)
    }
}

@Suite struct EgressTargetTests {
    @Test func connectTargets() throws {
        #expect(try EgressTarget.connect("api.anthropic.com:443") == EgressTarget(host: "api.anthropic.com", port: 443, path: nil))
        #expect(try EgressTarget.connect("API.Example.COM.:8443").host == "api.example.com")
        #expect(try EgressTarget.connect("[::1]:443").host == "::1")
        #expect(try EgressTarget.connect("1.2.3.4:80").isIPLiteral)
    }

    @Test func absoluteTargets() throws {
        let target = try EgressTarget.absolute("http://example.com/a/b?c=d#frag")
        #expect(target == EgressTarget(host: "example.com", port: 80, path: "/a/b?c=d"))
        #expect(try EgressTarget.absolute("http://example.com:8080").path == "/")
        #expect(try EgressTarget.absolute("HTTP://example.com?x").path == "/?x")
    }

    @Test(arguments: [
        "example.com", "example.com:0", "example.com:65536", "example.com:+80", "exa mple.com:80", ":443", "a:b:c",
        "[::1:443", "[not-ip]:443", "under_score..com:443", "-bad.com:443", String(repeating: "a", count: 400) + ":443",
    ])
    func malformedConnect(authority: String) {
        #expect(throws: EgressTarget.Failure.self) { try EgressTarget.connect(authority) }
    }

    @Test(arguments: ["/relative", "https://example.com/", "ftp://x/", "http://user:pass@example.com/"])
    func malformedAbsolute(uri: String) {
        #expect(throws: EgressTarget.Failure.self) { try EgressTarget.absolute(uri) }
    }
}

@Suite struct EgressPolicyTests {
    let policy = EgressPolicy(
        allow: ["api.anthropic.com", "*.npmjs.org", "git.example.com:8443", "203.0.113.5:443", "registry.npmjs.org"]
            .compactMap { EgressRule.parse($0, source: "test") },
        deny: ["evil.npmjs.org"].compactMap { EgressRule.parse($0, source: "test") })

    func allowed(_ host: String, _ port: Int) -> Bool {
        if case .allow = policy.decide(host: host, port: port) { return true }
        return false
    }

    @Test func byNameAndPort() {
        #expect(allowed("api.anthropic.com", 443))
        #expect(allowed("api.anthropic.com", 80))
        #expect(!allowed("api.anthropic.com", 8443))  // rules without a port: 80 and 443
        #expect(!allowed("anthropic.com", 443))
        #expect(!allowed("xapi.anthropic.com", 443))
        #expect(allowed("www.npmjs.org", 443))
        #expect(!allowed("npmjs.org", 443))  // *.suffix is below the name, not the name
        #expect(!allowed("evilnpmjs.org", 443))
        #expect(allowed("git.example.com", 8443))
        #expect(!allowed("git.example.com", 443))
        #expect(!allowed("example.com", 443))
    }

    @Test func denyWins() {
        if case .refuse(let rule, _) = policy.decide(host: "evil.npmjs.org", port: 443) {
            #expect(rule.contains("deny evil.npmjs.org"))
        } else {
            Issue.record("deny did not win")
        }
        // A deny without a port holds on every port, even against an allow naming that port.
        let ported = EgressPolicy(allow: [EgressRule.parse("*.example.com:8443", source: "x")!],
                                  deny: [EgressRule.parse("secret.example.com", source: "y")!])
        #expect(ported.decide(host: "secret.example.com", port: 8443) != .allow(rule: "allow *.example.com:8443 (x)"))
        #expect(ported.decide(host: "open.example.com", port: 8443) == .allow(rule: "allow *.example.com:8443 (x)"))
    }

    @Test func awsIsAlwaysRefusedHere() {
        let open = EgressPolicy(allow: [EgressRule.parse("*.amazonaws.com", source: "x")!])
        for host in ["s3.amazonaws.com", "ec2.us-east-1.amazonaws.com", "sts.amazonaws.com.cn", "x.api.aws"] {
            guard case .refuse(let rule, let hint) = open.decide(host: host, port: 443) else {
                Issue.record("\(host) allowed")
                continue
            }
            #expect(rule.contains("AWS endpoint") && hint.contains("AWS_CONFIG_FILE"))
        }
    }

    @Test func ipLiteralsNeedARule() {
        #expect(allowed("203.0.113.5", 443))
        #expect(!allowed("203.0.113.6", 443))
        guard case .refuse(let rule, _) = policy.decide(host: "1.1.1.1", port: 443) else { return }
        #expect(rule.contains("IP addresses need an explicit rule"))
        // An opened range is for names that resolve into it, not a licence to dial its addresses.
        let ranged = EgressPolicy(allowedRanges: [IPRange("10.0.0.0/8")!])
        if case .allow = ranged.decide(host: "10.1.2.3", port: 443) { Issue.record("literal in an opened range allowed") }
    }

    @Test func refusalsSayHowToAllow() {
        guard case .refuse(let rule, let hint) = policy.decide(host: "pypi.org", port: 443) else { return }
        #expect(rule == "pypi.org is not on the allow list")
        #expect(hint.contains("airlock run --allow-domain pypi.org"))
    }

    /// DNS rebinding and metadata: an allowed name that resolves somewhere non-public.
    @Test func nonPublicAddressesAreRefusedUnlessOpened() {
        let metadata = [IPAddress("169.254.169.254")!]
        guard case .failure(let refusal) = policy.permittedAddresses(metadata, host: "api.anthropic.com") else {
            Issue.record("metadata address permitted")
            return
        }
        #expect(refusal.rule.contains("169.254.169.254 is link-local"))
        if case .success = policy.permittedAddresses([IPAddress("10.0.0.1")!], host: "x") { Issue.record("private permitted") }
        if case .success = policy.permittedAddresses([IPAddress("127.0.0.1")!], host: "x") { Issue.record("loopback permitted") }
        // Mixed answers: only the public ones are used.
        if case .success(let picked) = policy.permittedAddresses([IPAddress("10.0.0.1")!, IPAddress("93.184.216.34")!], host: "x") {
            #expect(picked == [IPAddress("93.184.216.34")!])
        } else {
            Issue.record("public address refused")
        }
        let opened = EgressPolicy(allowedRanges: [IPRange("127.0.0.0/8")!])
        if case .failure = opened.permittedAddresses([IPAddress("127.0.0.1")!], host: "x") { Issue.record("opened loopback refused") }
        if case .success = policy.permittedAddresses([], host: "nowhere") { Issue.record("nothing resolved, yet permitted") }
    }

    @Test(arguments: ["*", "*.com.*", "a/b", "host:0", "host:99999", "*.1.2.3.4", "not a host", "", "single"])
    func badRules(text: String) {
        #expect(EgressRule.parse(text, source: "x") == nil)
    }

    @Test func profileNetworkSection() throws {
        let profile = try ProfileParser.parse("""
            network:
              allow: [api.openai.com, "*.pythonhosted.org", "git.test:8443"]
              deny: [evil.test]
              registries: [pypi, npm]
              allow_addresses: [127.0.0.1/32]
              timeouts: {header: 2s, idle: 5m, total: 1h}
              max_tunnels: 64
            """, name: "net", source: "net.yaml")
        let stack = ProfileStack([profile])
        let policy = stack.egressPolicy(extraAllow: [("extra.test", "--allow-domain")])
        #expect(policy.allow.map(\.description).contains("files.pythonhosted.org"))
        #expect(policy.allow.map(\.description).contains("registry.npmjs.org"))
        #expect(policy.allow.last?.source == "--allow-domain")
        #expect(policy.deny.map(\.description) == ["evil.test"])
        #expect(policy.allowedRanges == [IPRange("127.0.0.1/32")!])
        #expect(stack.egressTimeouts == (2, 300, 3600, 64))
        let loose = Loosening.of(profile).map(\.what)
        #expect(loose.contains { $0.contains("api.openai.com") } && loose.contains { $0.contains("pypi registry") }
                && loose.contains { $0.contains("127.0.0.1/32") })
    }

    @Test(arguments: [
        ("network:\n  allow: [\"*\"]", "not a host"),
        ("network:\n  registries: [cpan]", "unknown registry 'cpan'"),
        ("network:\n  allow_addresses: [10.0.0.0/99]", "not an address or CIDR"),
        ("network:\n  timeouts: {header: soon}", "not a duration"),
        ("network:\n  max_tunnels: 0", "1 to 100000"),
        ("network:\n  allowed: [x.com]", "unknown key 'allowed'"),
    ])
    func badNetworkSections(text: String, words: String) {
        #expect(throws: ProfileError.self) { try ProfileParser.parse(text, name: "n", source: "n.yaml") }
        do { _ = try ProfileParser.parse(text, name: "n", source: "n.yaml") } catch {
            #expect(error.message.contains(words), "\(error)")
            #expect(error.line == 2)
        }
    }
}

/// The egress proxy refuses the team gate (docs/gate.md, "Team gate"): by name on every port,
/// and by address under any name, literal or resolved; allow rules cannot reopen it.
@Suite struct EgressGateRefusalTests {
    let base = EgressPolicy(allow: [EgressRule(pattern: "gate.internal", port: 8443, source: "profile"),
                                    EgressRule(pattern: "*.internal", port: nil, source: "profile")],
                            allowedRanges: [IPRange("10.0.0.0/8")!])

    @Test(arguments: [
        ("https://gate.internal:8443", "gate.internal"), ("https://GATE.internal", "gate.internal"),
        ("https://user@gate.internal:8443/v1?x", "gate.internal"), ("http://[::1]:9000", "::1"), ("http://127.0.0.1:9000/", "127.0.0.1"),
    ])
    func theGatesHostIsRead(url: String, host: String) {
        #expect(EgressPolicy.host(ofURL: url) == host)
    }

    @Test func theGateIsRefusedByNameAndAddress() {
        let gateAddress = IPAddress("10.1.2.3")!
        let policy = base.refusingGate(url: "https://gate.internal:8443", resolved: [gateAddress])
        for port in [8443, 443, 22] {
            guard case .refuse(let rule, _) = policy.decide(host: "gate.internal", port: port) else {
                Issue.record("gate.internal:\(port) allowed"); continue
            }
            #expect(rule.contains("team gate"))
        }
        guard case .refuse = policy.decide(host: "10.1.2.3", port: 8443) else { Issue.record("literal allowed"); return }
        guard case .refuse = policy.decide(host: "::ffff:10.1.2.3", port: 8443) else { Issue.record("mapped literal allowed"); return }
        guard case .failure = policy.permittedAddresses([IPAddress("::ffff:10.1.2.3")!], host: "v6.internal") else {
            Issue.record("a mapped AAAA answer for the gate permitted"); return
        }
        let dotted = base.refusingGate(url: "https://gate.internal.:8443/", resolved: [])
        guard case .refuse = dotted.decide(host: "gate.internal", port: 8443) else { Issue.record("trailing-dot gate URL not refused"); return }
        // Another allowed name that resolves to the gate: refused after resolution.
        #expect(policy.decide(host: "alias.internal", port: 443) == .allow(rule: "allow *.internal (profile)"))
        guard case .failure(let refusal) = policy.permittedAddresses([gateAddress], host: "alias.internal") else {
            Issue.record("alias of the gate permitted"); return
        }
        #expect(refusal.rule.contains("team gate"))
        guard case .failure = policy.permittedAddresses([IPAddress("10.9.9.9")!, gateAddress], host: "mixed.internal") else {
            Issue.record("a name that also resolves to the gate permitted"); return
        }
        // Others are untouched.
        #expect(policy.permittedAddresses([IPAddress("10.9.9.9")!], host: "db.internal") == .success([IPAddress("10.9.9.9")!]))
        #expect(base.decide(host: "gate.internal", port: 8443) == .allow(rule: "allow gate.internal:8443 (profile)"))
    }
}
