/// One run of the tool in an execution sandbox, and what it may write: everything else in
/// the sandbox (the workspace snapshot included) is read-only for it.
public struct CommandStep: Sendable, Equatable {
    public enum Access: String, Sendable, CaseIterable {
        /// The workspace snapshot itself (terraform init writes the lock file there).
        case snapshot
        /// terraform's data directory (providers and modules `init` installs).
        case dataDirectory
        /// The directory the plan file is written to.
        case plan
        /// The tool's declared outputs (terraform's local state), bound one by one.
        case outputs
    }

    /// argv without the tool's name.
    public var arguments: [String]
    public var writes: Set<Access>
    /// Exit statuses that mean the step worked (`kubectl diff` exits 1 when there are differences).
    public var successStatuses: Set<Int32> = [0]

    public init(_ arguments: [String], writes: Set<Access> = [], successStatuses: Set<Int32> = [0]) {
        self.arguments = arguments
        self.writes = writes
        self.successStatuses = successStatuses
    }
}

/// The flags of a `kubectl apply` that `kubectl diff` shares (files, scope, server-side
/// apply): the others (`--wait`, `--record`, …) would make diff refuse to run.
let kubectlDiffShared: Set<String> = ["-f", "--filename", "-k", "--kustomize", "-R", "--recursive", "-n", "--namespace", "-l", "--selector",
                                      "--server-side", "--field-manager", "--force-conflicts", "--prune", "--context"]

func kubectlDiffFlags(_ ruling: CommandRuling) -> [String] {
    ruling.tokens.compactMap { token -> String? in
        guard case .flag(let name, let value, _) = token, kubectlDiffShared.contains(name) else { return nil }
        return value.map { "\(name)=\($0)" } ?? name
    }
}

/// The commands a proposed change runs, built from the ruling (pure). The broker runs `setup`
/// and `plan` (reads, in execution sandboxes on the workspace snapshot) to make the artifact,
/// then `preview` and `planJSON` with everything read-only; an approval runs `apply`, which
/// consumes only what was pinned. docs/commands.md describes the order and what each step may
/// write.
public struct CommandSteps: Sendable, Equatable {
    public var setup: [CommandStep] = []
    public var plan: CommandStep?
    /// Its output is what the human reviews; nil when the command itself is the preview.
    public var preview: CommandStep?
    /// terraform: the plan as JSON, read for what `show` leaves out (provisioners).
    public var planJSON: CommandStep?
    public var apply: CommandStep
    /// A saved plan the agent made (`terraform apply tfplan`), as an absolute workspace path:
    /// copied from the snapshot into the artifact.
    public var savedPlan: String?
    /// Why this command cannot be proposed at all.
    public var refusal: String?

    /// Where the artifact's parts are inside an execution sandbox.
    public static func planPath(_ artifact: String) -> String { artifact + "/plan/plan.tfplan" }
    public static func dataDirectory(_ artifact: String) -> String { artifact + "/tfdata" }

    /// Flags a plan must not get from `apply`: they belong to apply, or Airlock sets them.
    static let applyOnlyFlags: Set<String> = ["-auto-approve", "--auto-approve", "-input", "--input", "-no-color", "--no-color",
                                               "-out", "--out", "-json", "--json", "-chdir", "--chdir", "-compact-warnings",
                                               "--compact-warnings", "-show-sensitive", "--show-sensitive", "-lock", "--lock"]
    /// Legacy local-state flags: they would write beside the snapshot, which is read-only.
    static let stateFlags: Set<String> = ["-state", "--state", "-state-out", "--state-out", "-backup", "--backup"]

    /// `artifact` is the artifact directory as the execution sandbox sees it; `localState`
    /// whether terraform's backend keeps state beside the configuration (known after init):
    /// then plan and apply run with `-lock=false`, the snapshot being the execution's own.
    public static func make(_ ruling: CommandRuling, arguments: [String], artifact: String, localState: Bool = true) -> CommandSteps {
        let chdir = ruling.tokens.compactMap { token -> String? in
            if case .flag(let name, let value, _) = token, name == "-chdir" || name == "--chdir", let value { return "-chdir=\(value)" }
            return nil
        }
        switch ruling.prepare {
        case .terraformPlan, .terraformPlanDestroy:
            let plan = planPath(artifact)
            let lock = localState ? ["-lock=false"] : []
            var steps = CommandSteps(
                setup: [CommandStep(chdir + ["init", "-input=false", "-no-color"], writes: [.snapshot, .dataDirectory])],
                preview: CommandStep(chdir + ["show", "-no-color", plan]),
                planJSON: CommandStep(chdir + ["show", "-json", plan]),
                apply: CommandStep(chdir + ["apply", "-input=false", "-no-color"] + lock + [plan], writes: [.outputs]))
            if let flag = ruling.tokens.compactMap({ token -> String? in
                if case .flag(let name, _, _) = token, stateFlags.contains(name) { return name }
                return nil
            }).first {
                steps.refusal = "\(flag) is not supported for a gated change: the approved apply writes the state where the configuration's backend says (the default terraform.tfstate, or a backend block)"
                return steps
            }
            // Positional arguments after the subcommand: a saved plan to apply.
            let positionals = ruling.tokens.compactMap { token -> String? in
                if case .positional(let word, _) = token { return word }
                return nil
            }.dropFirst(ruling.words.count)
            if let saved = positionals.first, ruling.prepare == .terraformPlan {
                steps.savedPlan = PathResolution.absolute(saved, from: ruling.workingDirectory)
                return steps
            }
            var planFlags: [String] = []
            for token in ruling.tokens {
                guard case .flag(let name, let value, _) = token, !applyOnlyFlags.contains(name) else { continue }
                planFlags.append(value.map { "\(name)=\($0)" } ?? name)
            }
            if ruling.prepare == .terraformPlanDestroy && !planFlags.contains("-destroy") { planFlags.append("-destroy") }
            steps.plan = CommandStep(chdir + ["plan", "-input=false", "-no-color"] + lock + ["-out=\(plan)"] + planFlags, writes: [.plan])
            return steps
        case .none:
            // The same command, on the snapshot: the files it names are there, at the same
            // paths, as they were when it was proposed.
            return CommandSteps(apply: CommandStep(arguments, writes: [.outputs]))
        case .kubectlDiff:
            // `kubectl diff` of the same files and scope; exit 1 means "there are differences".
            var steps = CommandSteps(apply: CommandStep(arguments, writes: [.outputs]))
            steps.preview = CommandStep(["diff"] + kubectlDiffFlags(ruling), successStatuses: [0, 1])
            return steps
        case .dryRun where ruling.writesLocally:
            var steps = CommandSteps(apply: CommandStep(arguments))
            steps.refusal = "moving objects out of S3 into local files is not supported as a gated change (the approved run works on a read-only copy of the workspace): copy them (a read, it runs at once), then remove them from S3"
            return steps
        case .dryRun:
            // What the command would do, printed by the tool itself (AWS reads pass in the
            // prepare sandbox; `--dryrun` makes none of its changes), then the command itself.
            var steps = CommandSteps(apply: CommandStep(arguments, writes: [.outputs]))
            steps.preview = CommandStep(arguments + [ruling.previewFlag ?? "--dryrun"])
            return steps
        }
    }
}
