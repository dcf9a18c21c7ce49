import Testing

@testable import AirlockPolicy

@Suite struct GlobTests {
    @Test(arguments: [
        ("AWS_*", "AWS_SECRET_ACCESS_KEY", true),
        ("AWS_*", "AWS_", true),
        ("AWS_*", "XAWS_", false),
        ("*_TOKEN", "GITHUB_TOKEN", true),
        ("*_TOKEN", "GITHUB_TOKENS", false),
        ("*SECRET*", "MY_SECRET_THING", true),
        ("*SECRET*", "SECRET", true),
        ("LC_*", "LC_ALL", true),
        ("TERM", "TERM", true),
        ("TERM", "TERMINAL", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "acb", false),
        ("*", "", true),
        ("ab*ba", "aba", false),
    ])
    func matching(pattern: String, text: String, expected: Bool) {
        #expect(Glob(pattern).matches(text) == expected)
    }
}

@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("4096", UInt64(4096)), ("512K", 512 << 10), ("64MiB", 64 << 20), ("8GiB", 8 << 30),
        ("1T", 1 << 40), ("2 GiB", 2 << 30), ("10B", 10),
    ])
    func parses(text: String, value: UInt64) {
        #expect(ByteSize.parse(text) == value)
    }

    @Test(arguments: ["", "GiB", "-1", "1.5G", "lots", "99999999999999999999", "16777216T"])
    func rejects(text: String) {
        #expect(ByteSize.parse(text) == nil)
    }

    @Test func formats() {
        #expect(ByteSize.format(8 << 30) == "8GiB")
        #expect(ByteSize.format(1536) == "1536")
        #expect(ByteSize.format(2048) == "2KiB")
    }
}
