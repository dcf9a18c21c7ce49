import Testing

@testable import AirlockPolicy

@Suite struct ProfileParserTests {
    func parse(_ text: String) throws(ProfileError) -> Profile {
        try ProfileParser.parse(text, name: "test", source: "test.yaml")
    }

    @Test func fullProfile() throws {
        let profile = try parse("""
            description: builds things
            extends: default
            filesystem:
              readonly: [/srv/tools, ~/.cargo]
              readwrite:
                - /srv/cache
              tmp_size: 4GiB
            environment:
              pass: [CARGO_HOME, "MYAPP_*", ANTHROPIC_API_KEY]
              set: {RUST_BACKTRACE: "1"}
            rlimits:
              nproc: 2048
              fsize: unlimited
              as: 16GiB
            """)
        #expect(profile.description == "builds things")
        #expect(profile.extends == ["default"])
        #expect(profile.filesystem.readOnly == ["/srv/tools", "~/.cargo"])
        #expect(profile.filesystem.readWrite == ["/srv/cache"])
        #expect(profile.filesystem.tmpSize == 4 << 30)
        #expect(profile.environment.pass == ["CARGO_HOME", "MYAPP_*", "ANTHROPIC_API_KEY"])
        #expect(profile.environment.set == ["RUST_BACKTRACE": "1"])
        #expect(profile.rlimits == [.nproc: .limited(2048), .fsize: .unlimited, .addressSpace: .limited(16 << 30)])
    }

    /// Hostile and mistaken profiles: each refused with the line that is wrong.
    @Test(arguments: [
        ("filesystem:\n  readonyl: [/x]", 2, "unknown key 'readonyl'"),
        ("colour: blue", 1, "unknown key 'colour'"),
        ("filesystem:\n  readonly: /x", 2, "must be a list"),
        ("filesystem:\n  readonly: [relative/path]", 2, "absolute path"),
        ("filesystem:\n  readwrite: [/srv/../etc]", 2, "'..'"),
        ("filesystem:\n  tmp_size: huge", 2, "not a size"),
        ("environment:\n  pass: [AWS_SECRET_ACCESS_KEY]", 2, "looks like a credential"),
        ("environment:\n  pass: [GITHUB_TOKEN]", 2, "looks like a credential"),
        ("environment:\n  pass: [SSH_AUTH_SOCK]", 2, "looks like a credential"),
        ("environment:\n  pass: [KUBECONFIG]", 2, "looks like a credential"),
        ("environment:\n  pass: [\"bad name\"]", 2, "not a variable name"),
        ("environment:\n  set: {AWS_ACCESS_KEY_ID: x}", 2, "looks like a credential"),
        ("environment:\n  set: {DB_PASSWORD: x}", 2, "looks like a credential"),
        ("environment:\n  set: {AIRLOCK_SESSION: x}", 2, "set by Airlock"),
        ("rlimits:\n  nproc: lots", 2, "not a valid value"),
        ("rlimits:\n  fsize: -1", 2, "not a valid value"),
        ("rlimits:\n  threads: 5", 2, "unknown key 'threads'"),
        ("extends: ../etc/passwd", 1, "not a profile name"),
        ("a: &x 1", 1, "anchors"),
        ("description: [unclosed", 1, "unclosed"),
        ("description: one\ndescription: two", 2, "twice"),
    ])
    func refused(text: String, line: Int, words: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(words), "\(error)")
            #expect(error.description.hasPrefix("test.yaml:\(line): "))
        }
    }

    /// `aws.production_accounts`: 12-digit ids, merged across layers (a layer only adds).
    @Test func productionAccounts() throws {
        let profile = try parse("aws:\n  production_accounts: [\"111122223333\", \"444455556666\"]\n")
        #expect(profile.aws.productionAccounts == ["111122223333", "444455556666"])
        #expect(throws: ProfileError.self) { try parse("aws:\n  production_accounts: [prod]\n") }
        #expect(throws: ProfileError.self) { try parse("aws:\n  production_accounts: [\"1234\"]\n") }
        #expect(throws: ProfileError.self) { try parse("aws:\n  accounts: [\"111122223333\"]\n") }
        var other = try parse("aws:\n  production_accounts: \"777788889999\"\n")
        other.name = "other"
        #expect(ProfileStack([profile, other]).productionAccounts == ["111122223333", "444455556666", "777788889999"])
    }

    @Test func hugeProfileIsRefused() {
        let text = "description: " + String(repeating: "x", count: ProfileParser.maximumSize)
        #expect(throws: ProfileError.self) { try parse(text) }
    }

    @Test func emptyProfileIsEmpty() throws {
        let profile = try parse("")
        #expect(profile.filesystem == Profile.Filesystem())
        #expect(profile.rlimits.isEmpty)
    }

    @Test(arguments: ["default", "claude-code", "a.b_c-1"])
    func validNames(name: String) { #expect(ProfileName.isValid(name)) }

    @Test(arguments: ["", ".hidden", "-x", "a/b", "..", "with space", String(repeating: "a", count: 65)])
    func invalidNames(name: String) { #expect(!ProfileName.isValid(name)) }

    @Test func stackLayersListsAndOverridesScalars() throws {
        var base = Profile(name: "base", source: "base.yaml")
        base.filesystem.readOnly = ["/a"]
        base.filesystem.tmpSize = 1 << 30
        base.environment.set = ["X": "1", "Y": "1"]
        base.rlimits = [.nproc: .limited(100)]
        var top = Profile(name: "top", source: "top.yaml")
        top.filesystem.readOnly = ["/a", "/b"]
        top.environment.set = ["Y": "2"]
        top.rlimits = [.nproc: .limited(200)]
        let stack = ProfileStack([base, top])
        #expect(stack.readOnly == ["/a", "/b"])
        #expect(stack.tmpSize == 1 << 30)
        #expect(stack.set == ["X": "1", "Y": "2"])
        #expect(stack.rlimits[.nproc] == .limited(200))
        #expect(stack.rlimits[.fsize] == SandboxDefaults.rlimits[.fsize])
        #expect(stack.homeName == "top")
    }
}
