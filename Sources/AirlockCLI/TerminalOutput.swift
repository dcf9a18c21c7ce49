import AirlockCore
import AirlockPolicy

// What `airlock` prints for a human (docs/design.md, 5.1 "Deciding, and what the human sees"): proposals hold
// text an agent wrote (stack names, object keys, commit messages, command lines, file names),
// and a terminal acts on escape sequences in it (clearing the screen, OSC 8 links, OSC 52
// clipboard writes, bidi overrides that reorder what is shown). Every `print` in this module
// goes through here and shows them as visible escapes (TerminalText); JSON documents escape
// them as JSON does.

/// `Swift.print`, neutralized. Shadows it in this module, so no print can forget.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    let text = items.map { "\($0)" }.joined(separator: separator)
    writeOutput(Array((TerminalText.neutralize(text) + terminator).utf8))
}

/// One JSON document on a line, the characters a terminal would act on escaped (`\u202e`).
func printJSON(_ json: JSON) {
    writeOutput(Array((TerminalText.neutralizeJSON(json.serialized()) + "\n").utf8))
}

/// `print` where a type's own `print` would shadow it.
func printText(_ text: String) { print(text) }
