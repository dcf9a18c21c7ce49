import AirlockCore
import AirlockPolicy
import Testing

/// What an agent wrote, printed for a human (docs/design.md 5.1): nothing a terminal acts on
/// passes, everything is still readable, and JSON stays JSON.
@Suite struct TerminalTextTests {
    @Test(arguments: [
        ("plain text, with\ttabs\nand lines", "plain text, with\ttabs\nand lines"),
        ("\u{1B}]52;c;SGVsbG8=\u{07}", "\\e]52;c;SGVsbG8=\\a"),
        ("\u{1B}[2J\u{1B}[H", "\\e[2J\\e[H"),
        ("\u{1B}]8;;http://x\u{07}click\u{1B}]8;;\u{07}", "\\e]8;;http://x\\aclick\\e]8;;\\a"),
        ("abc\u{202E}fed", "abc<U+202E>fed"),
        ("\u{2066}x\u{2069}\u{200F}\u{061C}", "<U+2066>x<U+2069><U+200F><U+061C>"),
        ("zero\u{200B}width\u{FEFF}", "zero<U+200B>width<U+FEFF>"),
        ("carriage\rreturn", "carriage\\rreturn"),
        ("nul\u{0}del\u{7F}", "nul\\x00del\\x7F"),
        ("c1 \u{9B}31m csi \u{9D}osc", "c1 \\u{9B}31m csi \\u{9D}osc"),
        ("emoji 🚀 and é stay", "emoji 🚀 and é stay"),
    ])
    func controlsAndReorderingBecomeVisible(_ text: String, _ shown: String) {
        #expect(TerminalText.neutralize(text) == shown)
        #expect(TerminalText.isSafe(TerminalText.neutralize(text)))
    }

    @Test func jsonStaysJSONWithTheSameText() throws {
        let document = JSON.object([("summary", .string("stack \u{1B}[2J\u{202E}kcats \u{9B}"))])
        let printed = TerminalText.neutralizeJSON(document.serialized())
        let acted = printed.unicodeScalars.filter { scalar in
            let value = scalar.value
            return value < 0x20 || value == 0x7F || (0x80...0x9F).contains(value) || value == 0x202E
        }
        #expect(acted.isEmpty, "\(printed)")
        #expect(printed.contains("\\u001b[2J") && printed.contains("\\u202e") && printed.contains("\\u009b"), "\(printed)")
        #expect(try JSON.parse(printed) == document)
    }
}
