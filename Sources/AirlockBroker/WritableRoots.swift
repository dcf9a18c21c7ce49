import AirlockCore

/// The trees the agent can write (the workspace, a profile's read-write paths), to decide
/// whether a credential file lies in one: compared as written and with symlinks resolved, on
/// both sides, so `~/.aws` linked into the workspace counts as the workspace's, whether the
/// file exists yet or not (docs/sandbox.md, "Credential files").
public struct WritableRoots: Sendable {
    let roots: [String]

    public init(_ roots: [String]) {
        var all: [String] = []
        for root in roots.map(HostPath.normalize) {
            for form in [root, resolvedHostPath(root)] where !all.contains(form) { all.append(form) }
        }
        self.roots = all
    }

    /// Whether `path` (absolute) is, or would be created, inside one of them.
    public func contain(_ path: String) -> Bool {
        let forms = [HostPath.normalize(path), resolvedHostPath(path)]
        return forms.contains { form in roots.contains { HostPath.isWithin(form, $0) } }
    }
}
