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
            default: out.unicodeScalars.append(scalar)
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
