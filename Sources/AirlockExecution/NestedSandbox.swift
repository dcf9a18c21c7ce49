import AirlockCore
import AirlockPolicy
import Glibc

/// Agents that bring their own sandbox (Codex's bubblewrap, Claude Code's) cannot make it
/// inside Airlock's: the seccomp filter refuses new namespaces and mounts, and Landlock
/// forbids mounts to a landlocked process. That stays refused (docs/sandbox.md, "Agents that
/// bring their own sandbox", says why); what this adds is an explanation where the user
/// sees it. Inside, `bwrap` is Airlock (first in PATH, where Codex looks before its bundled
/// copy, and over the system's), and says what happened and what to set.
public enum NestedSandbox {
    public static let program = "bwrap"

    public static let explanation = """
        airlock: bwrap cannot run here: this program runs inside Airlock's sandbox, which refuses new \
        namespaces and mounts (a process that can make them could undo the sandbox it is in). Airlock's \
        sandbox already confines every command: the workspace is the only writable tree, the network goes \
        through its allowlist, credentials stay outside and changes wait for approval. Run the agent \
        without a sandbox of its own: for Codex, drop --sandbox or pass --sandbox danger-full-access (the \
        codex profile sets sandbox_mode = "danger-full-access" in ~/.codex/config.toml). See docs/sandbox.md, \
        "Agents that bring their own sandbox".

        """

    /// Where the system keeps bubblewrap, if it does: covered by the explanation too.
    static let systemPaths = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]

    public static func addExplanation(to layout: inout SandboxLayout, airlockBinary: String) {
        layout.mounts.append(.symlink(target: SandboxLayout.runDirectory + "/bin/" + program, pointsTo: "airlock"))
        var covered = Set<String>()
        for path in systemPaths where access(path, X_OK) == 0 {
            guard let real = HostInspectionPaths.realPath(path), SandboxLayout.isSystemPath(real), covered.insert(real).inserted else { continue }
            layout.addReadOnlyBind(source: airlockBinary, target: real, directory: false)
        }
    }
}
