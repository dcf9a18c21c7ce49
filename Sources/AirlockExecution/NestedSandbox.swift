import AirlockCore
import AirlockPolicy
import AirlockSandbox
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

    /// `bwrap --help`: what this program is. It names bubblewrap's options because it reads
    /// them all and refuses each sandbox they ask for: Codex picks a `bwrap` from PATH only
    /// when its help lists `--perms` (else it runs its bundled copy, whose error says nothing
    /// of Airlock).
    public static let help = """
        usage: bwrap [OPTIONS...] [--] COMMAND [ARGS...]

        This bwrap is Airlock's. It reads bubblewrap's options (--unshare-user, --unshare-net, --ro-bind,
        --bind, --proc, --dev, --tmpfs, --perms, --argv0, --ro-bind-fd, --as-pid-1, --die-with-parent and
        the rest) and refuses every sandbox they ask for, saying why:

        """ + explanation

    /// What `bwrap ARGS…` does inside: the help, or the refusal (exit 1, as bubblewrap's own
    /// failures).
    public static func run(_ arguments: [String]) -> Int32 {
        // Only bwrap's own options: a `--help` of the command after `--` is the command's.
        let own = arguments.prefix { $0 != "--" }
        if own.first == "--help" || own.first == "--version" {
            writeStandardOutput(own.first == "--help" ? help : "bwrap (Airlock): nested sandboxes are refused\n")
            return 0
        }
        writeStandardError(explanation)
        return 1
    }

    /// Where the system keeps bubblewrap, if it does: covered by the explanation too.
    static let systemPaths = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]

    public static func addExplanation(to layout: inout SandboxLayout, airlockBinary: String) {
        // A bind of this binary, not a symlink to it as the tools' shims are: Codex resolves
        // the `bwrap` it finds to its real path and runs that, so the name must survive.
        layout.addReadOnlyBind(source: airlockBinary, target: SandboxLayout.runDirectory + "/bin/" + program, directory: false)
        var covered = Set<String>()
        for path in systemPaths where access(path, X_OK) == 0 {
            guard let real = HostInspection.realPath(path), SandboxLayout.isSystemPath(real), covered.insert(real).inserted else { continue }
            layout.addReadOnlyBind(source: airlockBinary, target: real, directory: false)
        }
    }
}
