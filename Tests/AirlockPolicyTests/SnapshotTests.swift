import AirlockCore
import Testing

@testable import AirlockPolicy

@Suite struct SnapshotManifestTests {
    static let entries = [
        SnapshotEntry(path: "main.tf", kind: .file(size: 10, sha256: "aa", executable: false)),
        SnapshotEntry(path: "modules", kind: .directory),
        SnapshotEntry(path: "modules/net/deploy.sh", kind: .file(size: 4, sha256: "bb", executable: true)),
        SnapshotEntry(path: "modules/net", kind: .directory),
        SnapshotEntry(path: "link", kind: .symlink(target: "/etc/passwd")),
    ]

    @Test func canonicalTextRoundTripsAndIsOrdered() throws {
        let manifest = SnapshotManifest(entries: Self.entries)
        #expect(manifest.entries.map(\.path) == ["link", "main.tf", "modules", "modules/net", "modules/net/deploy.sh"])
        let parsed = try #require(SnapshotManifest.parse(manifest.text))
        #expect(parsed == manifest)
        #expect(parsed.digest == manifest.digest)
        #expect(manifest.fileCount == 2 && manifest.totalBytes == 14)
        // Order of discovery does not matter; content does.
        #expect(SnapshotManifest(entries: Self.entries.reversed()).digest == manifest.digest)
        var changed = Self.entries
        changed[2] = SnapshotEntry(path: "modules/net/deploy.sh", kind: .file(size: 4, sha256: "bc", executable: true))
        #expect(SnapshotManifest(entries: changed).digest != manifest.digest)
        // The executable bit is part of it too.
        changed[2] = SnapshotEntry(path: "modules/net/deploy.sh", kind: .file(size: 4, sha256: "bb", executable: false))
        #expect(SnapshotManifest(entries: changed).digest != manifest.digest)
    }

    @Test func differencesNameWhatChanged() {
        let before = SnapshotManifest(entries: Self.entries)
        var entries = Self.entries.filter { $0.path != "link" }
        entries.append(SnapshotEntry(path: "extra.tf", kind: .file(size: 1, sha256: "cc", executable: false)))
        entries[0] = SnapshotEntry(path: "main.tf", kind: .file(size: 11, sha256: "ab", executable: false))
        let after = SnapshotManifest(entries: entries)
        #expect(after.differences(from: before) == ["extra.tf (new)", "link (gone)", "main.tf"])
    }

    @Test(arguments: [#"["f","../x",1,"aa"]"#, #"["f","/abs",1,"aa"]"#, #"["f","a//b",1,"aa"]"#, #"["q","a"]"#, #"["f","a",-1,"aa"]"#, "not json"])
    func hostileManifestsAreRefused(_ line: String) {
        #expect(SnapshotManifest.parse(line + "\n") == nil)
    }

    @Test func exclusionByNameAndByPath() {
        let exclusion = SnapshotExclusion(patterns: [".terraform", "*.log", "data/raw"], paths: ["secrets/.aws"])
        #expect(exclusion.excludes(".terraform"))
        #expect(exclusion.excludes("envs/prod/.terraform"))
        #expect(exclusion.excludes("logs/build.log"))
        #expect(exclusion.excludes("data/raw"))
        #expect(!exclusion.excludes("other/data/raw"))
        #expect(exclusion.excludes("secrets/.aws"))
        #expect(!exclusion.excludes("main.tf"))
        #expect(!exclusion.excludes(".terraform.lock.hcl"))
    }

    @Test func theTooLargeMessageNamesTheLargestDirectoriesAndTheFix() {
        let sizes = ["node_modules": 900 << 20, "node_modules/big": 880 << 20, "data": 200 << 20, "src": 1 << 20, "a/b/c": 999 << 20]
        let largest = SnapshotSize.largest(sizes)
        #expect(largest.map(\.path) == ["node_modules/big", "data", "src"])
        let message = SnapshotSize.refusal(total: 1101 << 20, limit: 256 << 20, largest: largest)
        #expect(message.contains("256 MiB") && message.contains("node_modules/big (880 MiB)"), "\(message)")
        #expect(message.contains("snapshot: {exclude: [node_modules/big, data, src]}"), "\(message)")
    }
}

@Suite struct TerraformFilesTests {
    @Test func theGeneratedConfigurationKeepsOnlyProviderInstallation() throws {
        let human = """
            # my settings
            plugin_cache_dir = "$HOME/.terraform.d/plugin-cache"
            credentials "app.terraform.io" {
              token = "PLANTED-TF-TOKEN"
            }
            provider_installation {
              dev_overrides {
                "hashicorp/aws" = "/home/me/evil-provider"
              }
              filesystem_mirror {
                path    = "/opt/tf-plugins"
                include = ["registry.terraform.io/hashicorp/*"]
              }
              network_mirror {
                url = "https://mirror.example.com/providers/"
              }
              /* the rest */
              direct { exclude = ["registry.terraform.io/hashicorp/*"] }
            }
            """
        let config = try TerraformCLIConfig.generate(from: human)
        #expect(!config.text.contains("evil-provider") && !config.text.contains("dev_overrides"))
        #expect(!config.text.contains("PLANTED-TF-TOKEN") && !config.text.contains("plugin_cache_dir"))
        #expect(config.text.contains(#"path = "/opt/tf-plugins""#))
        #expect(config.text.contains(#"exclude = ["registry.terraform.io/hashicorp/*"]"#))
        #expect(config.mirrorPaths == ["/opt/tf-plugins"])
        #expect(config.mirrorHosts == ["mirror.example.com"])
        #expect(config.dropped.contains("provider_installation.dev_overrides") && config.dropped.contains("credentials"))
        // What it generates reads back as the same methods.
        let back = try HCL.parse(config.text)
        #expect(back.blocks("provider_installation").first?.body.blocks.map(\.type) == ["filesystem_mirror", "network_mirror", "direct"])
    }

    @Test func withoutAConfigurationOnlyTheRegistryIsUsed() throws {
        // An explicit block turns off the implied local mirrors (terraform.d/plugins in the
        // workspace, ~/.terraform.d/plugins in a home).
        for text in [nil, "", "disable_checkpoint = true\n", "provider_installation {\n  dev_overrides { \"a/b\" = \"/x\" }\n}\n"] as [String?] {
            let config = try TerraformCLIConfig.generate(from: text)
            #expect(config.text.contains("provider_installation {\n  direct {}\n}"), "\(String(describing: text))")
            #expect(config.mirrorPaths.isEmpty)
        }
    }

    @Test(arguments: [
        "provider_installation {\n  filesystem_mirror { path = \"relative\" }\n}\n",
        "provider_installation {\n  network_mirror { url = \"http://insecure\" }\n}\n",
        "provider_installation {\n  unknown_method {}\n}\n",
        "provider_installation {\n  direct { include = \"not a list\" }\n}\n",
        "provider_installation {\n  filesystem_mirror { path = \"/x\", other = 1 }\n}\n",
        "provider_installation {}\nprovider_installation {}\n",
        "x = <<EOF\nhi\nEOF\n", "a = \"${var.x}\"\n", "unterminated {\n",
    ])
    func configurationsAirlockCannotReadExactlyAreRefused(_ text: String) {
        #expect(throws: HCLError.self) { try TerraformCLIConfig.generate(from: text) }
    }

    @Test func theLockFileNamesProvidersVersionsAndHashes() throws {
        let lock = """
            # This file is maintained automatically by "terraform init".
            provider "registry.terraform.io/hashicorp/aws" {
              version     = "5.31.0"
              constraints = ">= 5.0.0"
              hashes = [
                "h1:abc=",
                "zh:0123",
              ]
            }
            """
        #expect(try TerraformProvider.fromLockFile(lock) == [
            TerraformProvider(address: "registry.terraform.io/hashicorp/aws", version: "5.31.0", hashes: ["h1:abc=", "zh:0123"]),
        ])
    }

    @Test func stateOutputsFollowTheBackend() throws {
        #expect(TerraformState.outputs(backendRecord: nil, workspace: "default") == ["terraform.tfstate", "terraform.tfstate.backup", "errored.tfstate"])
        let local = try JSON.parse(#"{"backend":{"type":"local","config":{"path":"state/prod.tfstate","workspace_dir":null}}}"#)
        #expect(TerraformState.outputs(backendRecord: local, workspace: "default") == ["state/prod.tfstate", "state/prod.tfstate.backup", "errored.tfstate"])
        #expect(TerraformState.outputs(backendRecord: nil, workspace: "prod")
                == ["terraform.tfstate.d/prod/terraform.tfstate", "terraform.tfstate.d/prod/terraform.tfstate.backup", "errored.tfstate"])
        let s3 = try JSON.parse(#"{"backend":{"type":"s3","config":{"bucket":"b"}}}"#)
        #expect(TerraformState.outputs(backendRecord: s3, workspace: "default") == ["errored.tfstate"])
        #expect(!TerraformState.isLocal(backendRecord: s3) && TerraformState.isLocal(backendRecord: nil))
        #expect(TerraformState.isWorkspaceName("prod-1") && !TerraformState.isWorkspaceName("../x") && !TerraformState.isWorkspaceName(""))
    }
}

@Suite struct ExecutionSpecTests {
    static let state = "/var/state"
    static let artifact = "/var/state/artifacts/0123abcd"

    static func spec(snapshot: String = artifact + "/snapshot", workspace: String = "/work/app", directory: String = "/work/app/infra",
                     binds: [ExecutionSpec.Bind] = []) -> ExecutionSpec {
        var spec = ExecutionSpec(mode: .apply(proposalID: "ab12cd34"), tool: "terraform", artifact: artifact, workspace: workspace,
                                 snapshot: snapshot, snapshotWritable: false, directory: directory, binds: binds,
                                 environment: ["TF_DATA_DIR": "/run/airlock/artifact/tfdata"],
                                 allow: [(rule: "registry.terraform.io", source: "tool"), (rule: "[::1]:8080", source: "test")],
                                 deny: [(rule: "evil.example", source: "profile")], addresses: ["10.0.0.5/32"])
        spec.binary = "/home/me/.tfenv/versions/1.5.7/terraform"
        spec.binaryDigest = String(repeating: "ab", count: 32)
        return spec
    }

    @Test func roundTrips() throws {
        let spec = Self.spec(binds: [.init(source: Self.artifact + "/outputs/terraform.tfstate", target: "/work/app/terraform.tfstate",
                                           writable: true, directory: false)])
        let parsed = try ExecutionSpec.parse(spec.json.serialized(), stateDirectory: Self.state)
        #expect(parsed == spec)
        let policy = parsed.egressPolicy
        #expect(policy.allow.map(\.description) == ["registry.terraform.io", "::1:8080"])
        #expect(policy.deny.count == 1 && policy.allowedRanges.count == 1)
    }

    @Test(arguments: [
        ("artifact", "/var/state/artifacts/../../etc"), ("artifact", "/elsewhere/artifacts/x"), ("snapshot", "/home/user/project"),
        ("snapshot", "/var/state/artifacts/0123abcd"), ("directory", "/etc"), ("workspace", "/"), ("mode", "apply:../x"),
        // The pinned program: an absolute, normalized path and a SHA-256.
        ("binary", "terraform"), ("binary", "/usr/bin/../../tmp/terraform"), ("binary_sha256", "abc"),
    ])
    func specsOutsideTheirArtifactAreRefused(_ field: String, _ value: String) throws {
        guard case .object(var fields) = Self.spec().json else { return }
        fields = fields.map { $0.0 == field ? ($0.0, .string(value)) : $0 }
        #expect(throws: ExecutionSpec.Invalid.self) { try ExecutionSpec.parse(JSON.object(fields).serialized(), stateDirectory: Self.state) }
    }

    @Test func writableBindsComeFromTheArtifactOnly() {
        let spec = Self.spec(binds: [.init(source: "/home/agent-writable", target: "/work/app/x", writable: true, directory: true)])
        #expect(throws: ExecutionSpec.Invalid.self) { try ExecutionSpec.parse(spec.json.serialized(), stateDirectory: Self.state) }
        let readOnly = Self.spec(binds: [.init(source: "/opt/tf-plugins", target: "/opt/tf-plugins", writable: false, directory: true)])
        #expect((try? ExecutionSpec.parse(readOnly.json.serialized(), stateDirectory: Self.state)) != nil)
    }
}
