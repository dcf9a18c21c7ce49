/// A profile's `github.repos` (docs/github.md, "Profiles"): which repositories reads may
/// touch. The repository of a request is read from its path: REST `/repos/OWNER/REPO/…`,
/// git `/OWNER/REPO(.git)/…`. Pure.
public enum GitHubRepoScope {
    /// `OWNER/REPO` (lowercased) of a REST path below the API root, nil when it names none.
    public static func repository(restPath path: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard parts.count >= 3, parts.first == "repos" else { return nil }
        let owner = parts[parts.startIndex + 1], name = parts[parts.startIndex + 2]
        guard !owner.isEmpty, !name.isEmpty else { return nil }
        return "\(owner)/\(name)".lowercased()
    }

    /// `OWNER/REPO` of a git repository path (`/acme/app.git`).
    public static func repository(gitPath path: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count == 2 else { return nil }
        let name = parts[1].hasSuffix(".git") ? parts[1].dropLast(4) : parts[1]
        return "\(parts[0])/\(name)".lowercased()
    }

    /// Why a read is outside the scopes (each layer's patterns: the repository must match one
    /// of every layer's), nil when it is inside or there is no scope. `repository` nil: the
    /// request names no single repository (search, GraphQL, a user's page), which a scope
    /// cannot vouch for.
    public static func refusal(repository: String?, what: String, scopes: [[Glob]]) -> String? {
        guard !scopes.isEmpty else { return nil }
        guard let repository else {
            return "\(what) names no single repository, and the profile scopes GitHub reads to \(scopes.map { $0.map(\.pattern).joined(separator: ", ") }.joined(separator: "; "))"
        }
        for scope in scopes where !scope.contains(where: { $0.matches(repository) }) {
            return "\(repository) is outside the repositories the profile scopes GitHub reads to (\(scope.map(\.pattern).joined(separator: ", ")))"
        }
        return nil
    }
}
