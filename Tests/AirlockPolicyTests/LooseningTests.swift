import Testing

@testable import AirlockPolicy

@Suite struct LooseningTests {
    @Test func aToolNoLongerInterceptedIsALoosening() throws {
        let profile = try ProfileParser.parse("tools: [kubectl]\n", name: "few", source: "few.yaml")
        #expect(profile.tools == ["kubectl"])
        let found = Loosening.of(profile).map(\.what)
        for tool in ["terraform", "helm", "gh"] {
            #expect(found.contains { $0.hasPrefix("\(tool) is not intercepted") }, "\(found)")
        }
        #expect(!found.contains { $0.hasPrefix("kubectl") })
        // Unsaid, every shipped tool is intercepted.
        #expect(ProfileStack([try ProfileParser.parse("", name: "x", source: "x.yaml")]).tools == SandboxDefaults.tools)
        #expect(throws: ProfileError.self) { try ProfileParser.parse("tools: [../x]\n", name: "bad", source: "bad.yaml") }
    }

    @Test func everyLooseningIsReported() throws {
        let profile = try ProfileParser.parse("""
            filesystem:
              readonly: [/srv/ro]
              readwrite: [/srv/rw]
              tmp_size: 8GiB
            environment:
              pass: [EDITOR, "MYAPP_*", ANTHROPIC_API_KEY]
            rlimits:
              nproc: 4096
              fsize: unlimited
              core: 0
              as: unlimited
            """, name: "loose", source: "loose.yaml")
        let found = Loosening.of(profile).map(\.what)
        #expect(found.contains { $0.contains("/srv/rw is writable") })
        #expect(found.contains { $0.contains("/srv/ro is readable") })
        #expect(found.contains { $0.contains("EDITOR") })
        #expect(found.contains { $0.contains("MYAPP_*") })
        #expect(found.contains { $0.contains("own API key ANTHROPIC_API_KEY") })
        #expect(found.contains { $0.contains("/tmp may grow to 8GiB") })
        #expect(found.contains { $0.contains("rlimit nproc is 4096") })
        #expect(found.contains { $0.contains("rlimit fsize is unlimited") })
        #expect(found.contains { $0.contains("rlimit as is unlimited") })
        #expect(!found.contains { $0.contains("core") })  // tighter or equal is no loosening
        #expect(found.count == 9)
    }

    @Test func tighterProfilesAreNotLoosenings() throws {
        let profile = try ProfileParser.parse("rlimits:\n  nproc: 10\nfilesystem:\n  tmp_size: 64MiB",
                                              name: "tight", source: "tight.yaml")
        #expect(Loosening.of(profile).isEmpty)
    }
}
