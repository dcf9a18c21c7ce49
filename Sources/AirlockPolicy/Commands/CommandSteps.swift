/// The commands a proposed change runs, built from the ruling (pure). The broker runs
/// `prepare` (each a read, in an execution sandbox) to make the artifact and `preview`; an
/// approval runs `apply`, which consumes only what was pinned.
public struct CommandSteps: Sendable, Equatable {
    /// argv without the tool's name, in order.
    public var prepare: [[String]]
    /// Its output is what the human reviews; nil when the command itself is the preview.
    public var preview: [String]?
    /// terraform: the plan as JSON, read for what `show` leaves out (provisioners).
    public var planJSON: [String]? = nil
    public var apply: [String]
    /// Files the command names (`-f x.yaml`, a chart directory): copied into the artifact
    /// directory at the name given here, the apply step reading the copy.
    public var copies: [(source: String, name: String)]
    /// A saved plan the agent made (`terraform apply tfplan`): copied as `plan.tfplan`.
    public var savedPlan: String?

    public static func == (a: CommandSteps, b: CommandSteps) -> Bool {
        a.prepare == b.prepare && a.preview == b.preview && a.apply == b.apply && a.savedPlan == b.savedPlan
            && a.copies.map(\.source) == b.copies.map(\.source) && a.copies.map(\.name) == b.copies.map(\.name)
    }

    /// Flags a plan must not get from `apply`: they belong to apply, or Airlock sets them.
    static let applyOnlyFlags: Set<String> = ["-auto-approve", "--auto-approve", "-input", "--input", "-no-color", "--no-color",
                                               "-out", "--out", "-json", "--json", "-chdir", "--chdir", "-compact-warnings",
                                               "--compact-warnings", "-show-sensitive", "--show-sensitive"]

    /// `artifact` is the artifact directory as the execution sandbox sees it.
    public static func make(_ ruling: CommandRuling, arguments: [String], artifact: String) -> CommandSteps {
        let chdir = ruling.tokens.compactMap { token -> String? in
            if case .flag(let name, let value, _) = token, name == "-chdir" || name == "--chdir", let value { return "-chdir=\(value)" }
            return nil
        }
        switch ruling.prepare {
        case .terraformPlan, .terraformPlanDestroy:
            let plan = artifact + "/plan.tfplan"
            // Positional arguments after the subcommand: a saved plan to apply.
            let positionals = ruling.tokens.compactMap { token -> String? in
                if case .positional(let word, _) = token { return word }
                return nil
            }.dropFirst(ruling.words.count)
            let show = chdir + ["show", "-no-color", plan]
            let json = chdir + ["show", "-json", plan]
            let apply = chdir + ["apply", "-input=false", "-no-color", plan]
            if let saved = positionals.first, ruling.prepare == .terraformPlan {
                return CommandSteps(prepare: [], preview: show, planJSON: json, apply: apply, copies: [],
                                    savedPlan: PathResolution.absolute(saved, from: ruling.workingDirectory))
            }
            var planFlags: [String] = []
            for token in ruling.tokens.dropFirst(0) {
                guard case .flag(let name, let value, _) = token, !applyOnlyFlags.contains(name) else { continue }
                planFlags.append(value.map { "\(name)=\($0)" } ?? name)
            }
            if ruling.prepare == .terraformPlanDestroy && !planFlags.contains("-destroy") { planFlags.append("-destroy") }
            return CommandSteps(
                prepare: [chdir + ["init", "-input=false", "-no-color"],
                          chdir + ["plan", "-input=false", "-no-color", "-out=\(plan)"] + planFlags],
                preview: show, planJSON: json, apply: apply, copies: [], savedPlan: nil)
        case .none:
            // The same command, reading copies of the files it names.
            var apply = arguments
            var copies: [(String, String)] = []
            for token in ruling.tokens {
                let (index, value, joined): (Int, String, String?)
                switch token {
                case .flag(let name, let flagValue?, let at) where ruling.pinnedPaths.contains(PathResolution.absolute(flagValue, from: ruling.workingDirectory)):
                    (index, value, joined) = (at, flagValue, arguments[at].contains("=") ? name : nil)
                case .positional(let word, let at) where ruling.pinnedPaths.contains(PathResolution.absolute(word, from: ruling.workingDirectory)):
                    (index, value, joined) = (at, word, nil)
                default:
                    continue
                }
                let source = PathResolution.absolute(value, from: ruling.workingDirectory)
                let name = "files/\(copies.count)-\(source.split(separator: "/").last.map(String.init) ?? "file")"
                copies.append((source, name))
                let copy = artifact + "/" + name
                if let joined {
                    apply[index] = "\(joined)=\(copy)"
                } else if case .flag = token {
                    apply[index + 1] = copy
                } else {
                    apply[index] = copy
                }
            }
            return CommandSteps(prepare: [], preview: nil, apply: apply, copies: copies, savedPlan: nil)
        }
    }
}
