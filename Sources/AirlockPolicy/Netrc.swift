/// The netrc format (`machine HOST login USER password SECRET`, `default`, `macdef` blocks),
/// as libcurl reads it for git over HTTPS when no credential helper answers. Pure.
public enum Netrc {
    public struct Entry: Sendable, Equatable {
        public var login: String?
        public var password: String?
        public init(login: String? = nil, password: String? = nil) {
            self.login = login
            self.password = password
        }
    }

    /// The entry for `host`: its `machine` entry, else the `default` one (which must come last).
    public static func entry(_ text: String, host: String) -> Entry? {
        var tokens: [String] = []
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).makeIterator()
        while let line = lines.next() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if words.first == "macdef" {
                // A macro runs until an empty line; its words are not tokens.
                while let body = lines.next(), !String(body).trimmingWhitespace().isEmpty {}
                continue
            }
            tokens += words
        }
        var found: Entry?
        var current: Entry?
        var matches = false
        var index = 0
        func finish() { if matches, found == nil { found = current } }
        while index < tokens.count {
            let token = tokens[index]
            let value = index + 1 < tokens.count ? tokens[index + 1] : nil
            switch token {
            case "machine":
                finish()
                current = Entry()
                matches = value?.lowercased() == host.lowercased()
                index += 2
            case "default":
                finish()
                current = Entry()
                matches = found == nil
                index += 1
            case "login":
                current?.login = value
                index += 2
            case "password":
                current?.password = value
                index += 2
            case "account", "port":
                index += 2
            default:
                index += 1
            }
        }
        finish()
        return found
    }
}
