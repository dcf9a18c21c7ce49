/// Text an agent wrote, made safe to print on a human's terminal (docs/design.md 5.1; the agent
/// never approves, so it must not be able to draw on the approver's screen either). Every
/// control character and every character that reorders or hides text is replaced with a
/// visible escape: ESC (which starts CSI and OSC sequences: clearing the screen, OSC 8 links,
/// OSC 52 clipboard writes) becomes `\e`, BEL `\a`, CR `\r`, other C0 and DEL `\xHH`, C1
/// controls (8-bit CSI and OSC among them) `\u{9B}`, and bidirectional overrides, isolates and
/// marks (U+202E reverses what follows) and zero-width characters `<U+202E>`. Newlines and
/// tabs stay. Pure.
public enum TerminalText {
    /// Characters that reorder or hide text without being controls.
    static func isInvisibleFormat(_ value: UInt32) -> Bool {
        (0x202A...0x202E).contains(value) || (0x2066...0x2069).contains(value) || value == 0x200E || value == 0x200F
            || value == 0x061C || (0x200B...0x200D).contains(value) || value == 0x2060 || value == 0xFEFF || value == 0x2028 || value == 0x2029
    }

    public static func neutralize(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            let value = scalar.value
            switch value {
            case 0x0A, 0x09: out.unicodeScalars.append(scalar)
            case 0x1B: out += "\\e"
            case 0x07: out += "\\a"
            case 0x0D: out += "\\r"
            case 0x00...0x1F, 0x7F: out += "\\x" + hex(value, width: 2)
            case 0x80...0x9F: out += "\\u{" + hex(value, width: 2) + "}"
            case _ where isInvisibleFormat(value): out += "<U+" + hex(value, width: 4) + ">"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A JSON document's text (already escaping C0 controls) with the characters a terminal
    /// would act on escaped too (`\u202e`, `\u009b`, `\u007f`): the same document, readable.
    public static func neutralizeJSON(_ serialized: String) -> String {
        var out = ""
        out.reserveCapacity(serialized.utf8.count)
        for scalar in serialized.unicodeScalars {
            let value = scalar.value
            // Whitespace between tokens stays (inside strings JSON has escaped it already).
            if value == 0x0A || value == 0x09 || value == 0x0D {
                out.unicodeScalars.append(scalar)
            } else if value < 0x20 || value == 0x7F || (0x80...0x9F).contains(value) || isInvisibleFormat(value) {
                out += "\\u" + hex(value, width: 4).lowercased()
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Whether printing `text` as it is could act on a terminal.
    public static func isSafe(_ text: String) -> Bool { neutralize(text) == text }

    static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
