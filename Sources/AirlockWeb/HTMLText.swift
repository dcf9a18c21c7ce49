import Mustache

/// HTML escaping by Unicode scalar, for every value a page shows (docs/web.md, "What the
/// page trusts"). swift-mustache's own HTML escaping looks characters up by grapheme
/// cluster, so `"` followed by a combining mark (U+0301) is one Character that is not `"`
/// and passes unescaped, and the browser then reads a bare `"`: an agent's object key
/// `x"\u{301} onmouseover=…` would leave its attribute. Scalars cannot combine.
public enum HTMLText {
    public static func escape(_ text: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\u{0}": out += "\u{FFFD}"
            // Characters that reorder or hide text (bidi overrides and isolates, zero-width
            // marks): an agent's key could show one name and be another. Shown, not obeyed.
            case "\u{200B}"..."\u{200F}", "\u{202A}"..."\u{202E}", "\u{2060}"..."\u{2064}", "\u{2066}"..."\u{2069}", "\u{FEFF}":
                out += "⟦U+" + String(scalar.value, radix: 16, uppercase: true) + "⟧"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A decoded value on one line: control characters (a newline that would forge a line
    /// of the page's own notes) written as escapes.
    public static func oneLine(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value) {
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// The content type every Airlock template names (`{{% CONTENT_TYPE: AIRLOCK_HTML}}`).
    struct ContentType: MustacheContentType {
        func escapeText(_ text: String) -> String { HTMLText.escape(text) }
    }

    static let registered: Bool = {
        MustacheContentTypes.register(ContentType(), named: "AIRLOCK_HTML")
        return true
    }()
}
