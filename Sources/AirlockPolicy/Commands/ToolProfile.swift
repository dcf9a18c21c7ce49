/// How Airlock treats one command-line tool (terraform, kubectl, helm, gh): read from
/// `profiles/tools/NAME.yaml`. Which subcommands read, change or are refused, which flags
/// take a value (so a value is never mistaken for a subcommand), which flags would point the
/// tool at other credentials or servers, and what to pin when a change is proposed.
public struct ToolProfile: Sendable {
    public var tool: String
    public var source: String
    public var description = ""
    /// Where the real binary may be on the host, in order (`~` is the launcher's home).
    public var binaries: [String] = []
    /// Flags whose value is the next argument (unless written `--flag=value`).
    public var valueFlags: Set<String> = []
    /// Flags known to take no value.
    public var booleanFlags: Set<String> = []
    /// Any of these makes the command a read: it prints help and does nothing.
    public var helpFlags: Set<String> = []
    /// Flags that change where the tool gets credentials or whom it talks to: refused unless
    /// listed in `allowFlags`. They take a value.
    public var redirectFlags: Set<String> = []
    public var allowFlags: Set<String> = []
    /// Flags whose value is a path that must stay inside the workspace (`-chdir`, `-state`).
    public var workspacePathFlags: Set<String> = []
    /// What a proposal's workspace snapshot leaves out (docs/commands.md): names matching
    /// any path component (`.terraform`), or paths from the workspace root (`data/raw`).
    public var snapshotExclude: [String] = []
    /// Files the approved run writes beside the configuration, relative to the tool's working
    /// directory: bound writable into the otherwise read-only snapshot, stored with the result
    /// and copied back into the workspace (terraform's local state).
    public var executionOutputs: [String] = []
    /// Whose CLI configuration the execution gets: `terraform` makes Airlock generate one from
    /// the human's, keeping provider installation only.
    public var executionCLIConfig: String?
    public var rules: [ToolRule] = []
    /// Variables the shim sets when it runs the real tool for a read in the agent's sandbox
    /// (CHECKPOINT_DISABLE: no update checks that the proxy would refuse anyway).
    public var environment: [String: String] = [:]
    /// The execution sandbox (where prepare and approved apply steps run): hosts its egress
    /// proxy allows (registries, the tool's API), and variables set there (`{artifact}` is the
    /// proposal's artifact directory inside it).
    public var executionHosts: [String] = []
    public var executionEnvironment: [String: String] = [:]
    /// Host files copied into the artifact directory for the execution, each variable set to
    /// its copy: the first candidate that exists (`$NAME` is the host variable's value, `~`
    /// the host home). The tool's own configuration and the human's credentials (kubeconfig)
    /// reach the execution sandbox this way, never the agent's.
    public var executionFiles: [(variable: String, candidates: [String])] = []
    /// Host variables passed into the execution sandbox as they are (GH_TOKEN).
    public var executionPass: [String] = []
    /// Host variables naming a server the execution talks to (GH_HOST): allowed through its
    /// proxy, like the servers of a copied kubeconfig.
    public var executionHostVariables: [String] = []
    /// What an unknown subcommand is: a change, unless the profile says otherwise.
    public var defaultDecision: Decision = .mutation

    public init(tool: String, source: String) {
        self.tool = tool
        self.source = source
    }

    /// Whether `flag` takes a value.
    func takesValue(_ flag: String) -> Bool? {
        if valueFlags.contains(flag) || redirectFlags.contains(flag) || workspacePathFlags.contains(flag) { return true }
        if booleanFlags.contains(flag) || helpFlags.contains(flag) { return false }
        return nil
    }
}

/// One subcommand's treatment.
public struct ToolRule: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case read, mutation, deny
        /// A change whose result the agent receives and must not see unapproved (`kubectl
        /// create token`: the approved run prints a service account token): proposed like a
        /// mutation, shown as a sensitive read.
        case sensitive
        /// `gh api`: GET and HEAD read, any other method changes.
        case byMethod = "by-method"
        /// `aws s3 sync`: a change when it writes to a URL (`destination_prefix`, e.g.
        /// `s3://`): the last positional argument (`destination: last`) or any
        /// (`destination: any`, for moves); local writes only read.
        case byDestination = "by-destination"
    }

    /// How a proposed change is prepared: what the broker runs first to get a preview and an
    /// artifact, and what the approved execution runs.
    public enum Prepare: String, Sendable, CaseIterable {
        /// The command itself runs on approval; the preview is the command and its pinned files.
        case none
        /// terraform: `plan -out` (or the saved plan the command names), preview `show`,
        /// execution `apply PLANFILE`.
        case terraformPlan = "terraform-plan"
        /// terraform destroy: `plan -destroy -out`, then as above.
        case terraformPlanDestroy = "terraform-plan-destroy"
        /// The command with the rule's `preview_flag` (`--dryrun`) is the preview; the
        /// approved run is the command as given.
        case dryRun = "dry-run"
        /// kubectl apply: the preview is `kubectl diff` of the same files (a server-side dry
        /// run diffed against the live objects); the approved run is the command as given.
        case kubectlDiff = "kubectl-diff"
    }

    /// The subcommand words: ["state", "rm"].
    public var command: [String]
    public var kind: Kind
    public var reason: String?
    /// A read after all when one of these is given (`--dry-run=client`); `--flag` matches any
    /// value, `--flag=value` only that one.
    public var readIf: [String] = []
    public var prepare: Prepare = .none
    /// Flags whose values are files the command reads (`-f`): pinned and copied.
    public var pinFlags: Set<String> = []
    /// Positional arguments after the subcommand are files to pin when they exist.
    public var pinPositionals = false
    /// by-method: the flags that set the method, the ones that make the default POST, and the
    /// methods that only read.
    public var methodFlags: Set<String> = []
    public var bodyFlags: Set<String> = []
    public var readMethods: Set<String> = ["GET", "HEAD"]
    /// by-destination: what a written-to argument starts with, which one counts, and flags
    /// of which one must be given for it to count (`--recursive`; none: always).
    public var destinationPrefix = ""
    public var anyPositional = false
    public var onlyWith: [String] = []
    /// dry-run: the flag that makes the command print what it would do.
    public var previewFlag: String?

    public init(command: [String], kind: Kind) {
        self.command = command
        self.kind = kind
    }
}
