/// Builds the sandbox's environment: cleared, then the always-safe terminal and locale
/// variables, then what the profile passes, minus anything credential-shaped, then Airlock's
/// own variables (which win).
public enum EnvironmentPolicy {
    /// Passed whenever the launcher has them: they describe the terminal and language only.
    public static let alwaysPassed: [Glob] = [
        "TERM", "COLORTERM", "LANG", "LANGUAGE", "LC_*", "TZ", "NO_COLOR", "FORCE_COLOR",
        "COLUMNS", "LINES",
    ].map(Glob.init)

    public struct Result: Sendable, Equatable {
        /// Sorted by name.
        public var variables: [(name: String, value: String)]
        /// Launcher variables a profile asked for that were withheld as credential-shaped.
        public var withheld: [String]

        public static func == (a: Result, b: Result) -> Bool {
            a.withheld == b.withheld && a.variables.map(\.name) == b.variables.map(\.name)
                && a.variables.map(\.value) == b.variables.map(\.value)
        }
    }

    /// An exact name in a profile's passthrough list must not be credential-shaped (that is
    /// an error in the profile). Patterns are allowed: credential-shaped names are withheld
    /// from every pattern at launch, whatever it matches.
    public static func isPermittedPassEntry(_ entry: String) -> Bool {
        !Glob(entry).isLiteral || !CredentialRules.isCredentialName(entry) || CredentialRules.isAgentKey(entry)
    }

    public static func build(
        host: [String: String], pass: [String], set: [String: String], airlock: [String: String]
    ) -> Result {
        var out: [String: String] = [:]
        var withheld: [String] = []
        let exact = Set(pass.filter { Glob($0).isLiteral })
        let patterns = pass.map(Glob.init).filter { !$0.isLiteral }
        for (name, value) in host {
            let byPattern = patterns.contains { $0.matches(name) }
            let asked = exact.contains(name) || byPattern
            let namedKey = exact.contains(name) && CredentialRules.isAgentKey(name)
            if CredentialRules.isCredentialName(name) && !namedKey {
                if asked { withheld.append(name) }
                continue
            }
            if alwaysPassed.contains(where: { $0.matches(name) }) || exact.contains(name) {
                out[name] = value
            } else if byPattern {
                // An API key passes only when named exactly, never through a pattern.
                if CredentialRules.agentKeyPattern.matches(name) { withheld.append(name) } else { out[name] = value }
            }
        }
        for (name, value) in set where !CredentialRules.isCredentialName(name) { out[name] = value }
        for (name, value) in airlock { out[name] = value }
        return Result(
            variables: out.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) },
            withheld: withheld.sorted())
    }
}
