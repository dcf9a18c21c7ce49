import AirlockCore
import AirlockPolicy
import Testing

@Suite struct GateConfigTests {
    @Test func aTeamConfigIsRead() throws {
        let config = try GateConfig.parse("""
            listen: 0.0.0.0:8443
            tls: {certificate: /etc/airlock/gate.crt, key: /etc/airlock/gate.key}
            store: {postgres: "postgres://airlock@db.internal/airlock"}
            state_dir: /var/lib/airlock-gate
            aws: {profile: deploy}
            """, source: "gate.yaml")
        #expect(config.host == "0.0.0.0" && config.port == 8443 && config.tlsCertificate == "/etc/airlock/gate.crt")
        #expect(config.store == .postgres("postgres://airlock@db.internal/airlock"))
        #expect(config.awsProfile == "deploy" && config.awsUpstream == "aws" && !config.isLoopback)
        let local = try GateConfig.parse("listen: 127.0.0.1:9000\nstore: {sqlite: /tmp/g}\nstate_dir: /tmp/g\naws: {upstream: 'http://127.0.0.1:5000'}\n",
                                         source: "gate.yaml")
        #expect(local.isLoopback && local.tlsCertificate == nil && local.store == .sqlite("/tmp/g") && local.awsUpstream == "http://127.0.0.1:5000")
        // Defaults for replicas and logs; then each set.
        #expect(local.replica == nil && local.leaseSeconds == 30 && local.shutdownGraceSeconds == 60 && local.jsonLogs)
        let tuned = try GateConfig.parse("listen: 127.0.0.1:9000\nstore: {sqlite: /tmp/g}\nstate_dir: /tmp/g\nreplica: gate-a.eu_1\n"
            + "executions: {lease_seconds: 5, shutdown_grace_seconds: 0}\nlog: {format: text}\n", source: "gate.yaml")
        #expect(tuned.replica == "gate-a.eu_1" && tuned.leaseSeconds == 5 && tuned.shutdownGraceSeconds == 0 && !tuned.jsonLogs)
        let role = try GateConfig.parse("listen: 127.0.0.1:9000\nstore: {sqlite: /tmp/g}\nstate_dir: /tmp/g\n"
            + "aws: {assume_role: 'arn:aws:iam::123456789012:role/airlock-deploy'}\n", source: "gate.yaml")
        #expect(role.awsAssumeRole == "arn:aws:iam::123456789012:role/airlock-deploy" && local.awsAssumeRole == nil)
        // Rules (docs/policy.md): the gate's policy file and whether every session names its launcher.
        let ruled = try GateConfig.parse("listen: 127.0.0.1:9000\nstore: {sqlite: /tmp/g}\nstate_dir: /tmp/g\n"
            + "policy: /etc/airlock/gate-policy.cedar\nrequire_launcher: true\n", source: "gate.yaml")
        #expect(ruled.policyFile == "/etc/airlock/gate-policy.cedar" && ruled.requireLauncher && !local.requireLauncher && local.policyFile == nil)
        for bad in ["policy: relative.cedar\n", "require_launcher: yes\n"] {
            #expect(throws: AirlockError.self, "\(bad)") {
                try GateConfig.parse("listen: 127.0.0.1:9000\nstore: {sqlite: /tmp/g}\nstate_dir: /tmp/g\n" + bad, source: "gate.yaml")
            }
        }
    }

    /// `kubernetes` and `github` (docs/gate.md, "Kubernetes and GitHub on the gate"): the API
    /// servers hosts may propose for, each mapped to a context of the gate's own kubeconfig,
    /// and the GitHub hosts with the gate's token file for each.
    @Test func theKubernetesAndGitHubMappingIsRead() throws {
        let config = try GateConfig.parse("""
            listen: 127.0.0.1:9000
            store: {sqlite: /g}
            state_dir: /g
            kubernetes:
              kubeconfig: /etc/airlock/gate-kubeconfig
              clusters:
                - {server: "https://kube.internal:6443", context: prod-deployer}
                - {server: "https://10.0.0.5:6443", context: staging}
            github:
              - {host: GitHub.com, token_file: /etc/airlock/github-token}
              - {host: ghe.example.com, token_file: /etc/airlock/ghe-token}
            """, source: "gate.yaml")
        #expect(config.kubeconfig == "/etc/airlock/gate-kubeconfig")
        #expect(config.kubernetesClusters == [.init(server: "https://kube.internal:6443", context: "prod-deployer"),
                                              .init(server: "https://10.0.0.5:6443", context: "staging")])
        #expect(config.githubHosts == [.init(host: "github.com", tokenFile: "/etc/airlock/github-token"),
                                       .init(host: "ghe.example.com", tokenFile: "/etc/airlock/ghe-token")])
        let none = try GateConfig.parse("listen: 127.0.0.1:9000\nstore: {sqlite: /g}\nstate_dir: /g\n", source: "gate.yaml")
        #expect(none.kubeconfig == nil && none.kubernetesClusters.isEmpty && none.githubHosts.isEmpty)
    }

    @Test(arguments: [
        ("kubernetes: {kubeconfig: relative, clusters: [{server: 'https://k:6443', context: c}]}", "absolute path"),
        ("kubernetes: {kubeconfig: /k}", "must list the API servers"),
        ("kubernetes: {kubeconfig: /k, clusters: [{server: 'kube:6443', context: c}]}", "API server's URL"),
        ("kubernetes: {kubeconfig: /k, clusters: [{server: 'https://k:6443'}]}", "context is required"),
        ("kubernetes: {kubeconfig: /k, clusters: [{server: 'https://k:6443', context: a}, {server: 'https://k:6443', context: b}]}", "twice"),
        ("github: [{host: api.github.com, token_file: /t}]", "github.com, which serves api.github.com"),
        ("github: [{host: 'evil/host', token_file: /t}]", "must be a host name"),
        ("github: [{host: github.com, token_file: relative}]", "absolute path"),
        ("github: [{host: github.com, token: x}]", "unknown key 'token'"),
        ("github: {host: github.com}", "must list hosts"),
    ])
    func badMappingsSayWhatIsWrong(_ line: String, _ says: String) {
        do {
            _ = try GateConfig.parse("listen: 127.0.0.1:9000\nstore: {sqlite: /g}\nstate_dir: /g\n" + line + "\n", source: "gate.yaml")
            Issue.record("\(line) was read")
        } catch {
            #expect(error.message.contains(says), "\(line): \(error.message)")
        }
    }

    /// `limits` and `store.schema` (docs/gate.md, "Bounds and timeouts"): defaults that fit
    /// 100 sessions per host, each key set, and the connections in force under a descriptor
    /// limit (256 left for the store, files and sandboxes; one peer half of them).
    @Test func limitsAndTheSchemaAreRead() throws {
        let plain = try GateConfig.parse("listen: 127.0.0.1:9000\nstore: {postgres: 'postgres://a@db/x'}\nstate_dir: /g\n", source: "gate.yaml")
        #expect(plain.postgresSchema == "airlock" && plain.limits == GateConfig.Limits())
        #expect(plain.limits.waitsPerHost == 200 && plain.limits.pendingPerHost == 1000 && plain.limits.blobBytesPerHost == 16 << 30)
        #expect(plain.limits.effective(descriptorLimit: 1024) == (768, 384))
        #expect(plain.limits.effective(descriptorLimit: 65536) == (4096, 2048))
        let tuned = try GateConfig.parse("""
            listen: 127.0.0.1:9000
            store: {postgres: 'postgres://a@db/x', schema: gate_prod}
            state_dir: /g
            limits: {connections: 1000, connections_per_peer: 900, header_timeout_seconds: 3, idle_timeout_seconds: 1830,
                     waits_per_host: 50, pending_per_host: 400, blob_bytes_per_host: 2GiB}
            """, source: "gate.yaml")
        #expect(tuned.postgresSchema == "gate_prod")
        #expect(tuned.limits.headerTimeoutSeconds == 3 && tuned.limits.idleTimeoutSeconds == 1830 && tuned.limits.waitsPerHost == 50)
        #expect(tuned.limits.pendingPerHost == 400 && tuned.limits.blobBytesPerHost == 2 << 30)
        #expect(tuned.limits.effective(descriptorLimit: 65536) == (1000, 900))
        #expect(tuned.limits.effective(descriptorLimit: 1024) == (768, 768))
    }

    @Test(arguments: [
        ("listen: 0.0.0.0:8443\nstore: {sqlite: /g}\nstate_dir: /g\n", "needs tls"),
        ("listen: 127.0.0.1\nstore: {sqlite: /g}\nstate_dir: /g\n", "HOST:PORT"),
        ("listen: 127.0.0.1:99999\nstore: {sqlite: /g}\nstate_dir: /g\n", "HOST:PORT"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g, postgres: x}\nstate_dir: /g\n", "exactly one"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g, schema: s}\nstate_dir: /g\n", "for a postgres store"),
        ("listen: 127.0.0.1:1\nstore: {postgres: x, schema: 'a; DROP'}\nstate_dir: /g\n", "lowercase name"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\nlimits: {waits: 3}\n", "unknown key 'waits'"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\nlimits: {connections: 2}\n", "limits.connections must be"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\nlimits: {blob_bytes_per_host: lots}\n", "a size such as"),
        ("listen: 127.0.0.1:1\nstate_dir: /g\n", "store is required"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: relative\n", "absolute"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\nexecutor: x\n", "unknown key 'executor'"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\naws: {upstream: ftp://x}\n", "aws.upstream"),
        ("listen: 127.0.0.1:1\ntls: {certificate: /c}\nstore: {sqlite: /g}\nstate_dir: /g\n", "tls.key is required"),
        ("", "empty"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\nreplica: 'a b'\n", "replica must be"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\nexecutions: {lease_seconds: 1}\n", "lease_seconds must be"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\nexecutions: {lease_seconds: soon}\n", "lease_seconds must be"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\nexecutions: {retries: 3}\n", "unknown key 'retries'"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\nlog: {format: xml}\n", "json or text"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\naws: {assume_role: 'arn:aws:iam::12345:role/x'}\n", "role ARN"),
        ("listen: 127.0.0.1:1\nstore: {sqlite: /g}\nstate_dir: /g\naws: {assume_role: 'arn:aws:iam::123456789012:user/x'}\n", "role ARN"),
    ])
    func badConfigsSayWhatIsWrong(text: String, expected: String) {
        do {
            _ = try GateConfig.parse(text, source: "gate.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func theHostConfigNamesTheGate() throws {
        let config = try HostConfig.parse("gate: {url: 'https://gate.internal:8443', token_file: /etc/airlock/gate-token, ca: /etc/airlock/ca.pem}\n",
                                          source: "config.yaml")
        #expect(config == HostConfig(gateURL: "https://gate.internal:8443", gateTokenFile: "/etc/airlock/gate-token", gateCA: "/etc/airlock/ca.pem"))
        #expect(try HostConfig.parse("", source: "config.yaml") == HostConfig())
        for (text, expected) in [("gate: {token_file: /t}\n", "gate.url is required"), ("gate: {url: ftp://x}\n", "https://"),
                                 ("gate: {url: 'https://g', ca: relative}\n", "absolute"), ("gates: {}\n", "unknown key 'gates'"),
                                 ("gate: {url: 'https://g', token: x}\n", "unknown key 'token'"), ("gate: x\n", "mapping")] {
            #expect(throws: AirlockError.self) { try HostConfig.parse(text, source: "config.yaml") }
            do { _ = try HostConfig.parse(text, source: "config.yaml") } catch { #expect(error.message.contains(expected), "\(text): \(error.message)") }
        }
    }
}
