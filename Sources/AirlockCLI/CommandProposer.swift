import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import Glibc

/// The broker's side of a shim: classifies the command again (the shim runs in the agent's
/// sandbox and proves nothing), and for a change prepares one proposal: copies and digests
/// what the command reads, runs the tool's prepare steps (terraform init and plan) in an
/// execution sandbox, keeps the preview, and stores the proposal.
final class CommandProposer: @unchecked Sendable {
    let sessionID: String
    let stateDir: String
    let workspace: String
    let tools: [String: InterceptedTool]
    let store: () throws(AirlockError) -> ProposalStore
    let log: BrokerLog
    let environment: [String: String]
    let awsEndpoint: String?
    let awsProfile: String?
    let upstream: String

    init(session: AgentSession) {
        sessionID = session.id
        stateDir = session.stateDir
        workspace = session.record.workspace
        tools = Dictionary(session.tools.map { ($0.profile.tool, $0) }, uniquingKeysWith: { first, _ in first })
        store = { () throws(AirlockError) in try session.store() }
        log = session.log
        environment = session.environment
        awsEndpoint = session.awsEndpoint
        awsProfile = session.awsProfile
        upstream = session.upstream.description
    }

    static func failure(_ message: String, decision: String? = nil, exitCode: Int? = nil, output: String? = nil) -> JSON {
        var fields: [(String, JSON)] = [("ok", .bool(false)), ("error", .string(message))]
        if let decision { fields.append(("decision", .string(decision))) }
        if let exitCode { fields.append(("exit_code", .number(Double(exitCode)))) }
        if let output { fields.append(("output", .string(output))) }
        return .object(fields)
    }

    func propose(_ request: JSON) -> JSON {
        guard let name = request["tool"]?.string, let tool = tools[name] else {
            return Self.failure("this session does not intercept \(request["tool"]?.string ?? "that tool")")
        }
        guard case .array(let items)? = request["argv"], items.count <= 4096 else { return Self.failure("argv must be a list of strings") }
        let arguments = items.compactMap(\.string)
        guard arguments.count == items.count else { return Self.failure("argv must be a list of strings") }
        guard let directory = request["cwd"]?.string, directory.hasPrefix("/"),
              PathResolution.isInside(PathResolution.normalize(directory), workspace) else {
            return Self.failure("\(name) changes run from inside the workspace (\(workspace)); cd there first", decision: "deny")
        }
        let ruling = CommandClassifier.classify(arguments, profile: tool.profile, context: CommandContext(workspace: workspace, directory: directory))
        let command = ([name] + arguments).joined(separator: " ")
        log.write("command \(command): \(ruling.decision.rawValue) (\(ruling.rule))")
        switch ruling.decision {
        case .read:
            return .object([("ok", .bool(true)), ("decision", .string("read"))])
        case .deny:
            try? store().recordRefusal(sessionID: sessionID, summary: command, rule: ruling.rule + ": " + ruling.reason)
            return Self.failure("\(ruling.reason) (\(ruling.rule))", decision: "deny")
        case .mutation, .sensitive:
            return prepare(tool: tool, arguments: arguments, directory: directory, ruling: ruling, command: command)
        }
    }

    private func prepare(tool: InterceptedTool, arguments: [String], directory: String, ruling: CommandRuling, command: String) -> JSON {
        let key = RandomID.make(16)
        let artifact = stateDir + "/artifacts/" + key
        do {
            try PinnedFiles.makeParents(of: artifact + "/x")
        } catch {
            return Self.failure("cannot make the artifact directory: \(error)")
        }
        var keep = false
        defer { if !keep { PinnedFiles.remove(artifact) } }
        let steps = CommandSteps.make(ruling, arguments: arguments, artifact: ExecutionRequest.mount)
        var pins: [(String, JSON)] = []
        do {
            // What the command names, copied: the approved run reads these copies.
            var budget = PinnedFiles.copyLimit
            for copy in steps.copies {
                budget -= try PinnedFiles.copy(copy.source, to: artifact + "/" + copy.name, workspace: workspace, budget: budget)
                pins.append(("artifact:" + copy.name, .string(try PinnedFiles.digest(artifact + "/" + copy.name))))
            }
            if let saved = steps.savedPlan {
                _ = try PinnedFiles.copy(saved, to: artifact + "/plan.tfplan", workspace: workspace, budget: budget)
            }
            // What the working directory's configuration is now (the plan was made from it).
            for path in PinnedFiles.matching(tool.profile.pinGlobs, in: ruling.workingDirectory) {
                pins.append(("workspace:" + path, .string(try PinnedFiles.digest(path))))
            }
            for path in ruling.pinnedPaths where !steps.copies.contains(where: { $0.source == path }) {
                pins.append(("workspace:" + path, .string(try PinnedFiles.digest(path))))
            }
        } catch {
            return Self.failure("cannot pin what \(command) reads: \(error)")
        }
        var transcript = ""
        for step in steps.prepare {
            let (status, output) = run(tool, step, directory: directory, artifact: artifact)
            transcript += output
            guard status == 0 else {
                log.write("command \(command): preparing with \(tool.profile.tool) \(step.joined(separator: " ")) failed (exit \(status))")
                return Self.failure("preparing the proposal failed: `\(tool.profile.tool) \(step.joined(separator: " "))` exited \(status); nothing was proposed",
                                    exitCode: Int(status), output: transcript)
            }
        }
        var preview: String?
        if let show = steps.preview {
            let (status, output) = run(tool, show, directory: directory, artifact: artifact)
            guard status == 0 else {
                return Self.failure("the preview (`\(tool.profile.tool) \(show.joined(separator: " "))`) failed with exit \(status)",
                                    exitCode: Int(status), output: output)
            }
            preview = output
            if let planJSON = steps.planJSON {
                // Provisioners run commands at apply that `show` does not print: the human
                // must see them (they run with the execution's AWS rights).
                let (status, json) = run(tool, planJSON, directory: directory, artifact: artifact)
                guard status == 0, let parsed = try? JSON.parse(json) else {
                    return Self.failure("reading the plan as JSON failed (exit \(status)); nothing was proposed", exitCode: Int(status))
                }
                preview = output + TerraformPlanFacts.describe(TerraformPlanFacts.provisioners(parsed))
            }
            if PlanSummary.hasNoChanges(output) {
                return .object([("ok", .bool(true)), ("decision", .string("unchanged")),
                                ("output", .string("airlock: \(command): the plan has no changes; nothing to approve.\n" + output))])
            }
        }
        do {
            for name in ["plan.tfplan"] where access(artifact + "/" + name, R_OK) == 0 {
                pins.append(("artifact:" + name, .string(try PinnedFiles.digest(artifact + "/" + name))))
            }
        } catch {
            return Self.failure("cannot pin the plan: \(error)")
        }
        let relative = ruling.workingDirectory == workspace ? "." : String(ruling.workingDirectory.dropFirst(workspace.count + 1))
        var summary = "\(tool.profile.tool) \(ruling.words.joined(separator: " ")) in \(relative)"
        if let preview, let counts = PlanSummary.counts(preview) { summary += " (\(counts))" }
        var fields: [(String, JSON)] = [
            ("type", .string("command")), ("tool", .string(tool.profile.tool)), ("binary", .string(tool.binary)),
            ("command", .array(([tool.profile.tool] + arguments).map { .string($0) })),
            ("apply", .array(steps.apply.map { .string($0) })),
            ("workspace", .string(workspace)), ("directory", .string(directory)), ("artifact", .string(key)),
            ("pins", .object(pins)), ("reason", .string(ruling.reason)),
        ]
        if let awsEndpoint { fields.append(("aws_endpoint", .string(awsEndpoint))) }
        // The pinned copies' text, for `airlock show` (the human reviews what will be applied).
        var shown: [(String, JSON)] = []
        var shownBytes = 0
        for copy in steps.copies {
            guard let text = try? readTextFile(artifact + "/" + copy.name, limit: 256 << 10), shownBytes + text.utf8.count <= 256 << 10 else { continue }
            shownBytes += text.utf8.count
            shown.append((copy.name, .string(text)))
        }
        if !shown.isEmpty { fields.append(("files", .object(shown))) }
        if let preview { fields.append(("preview", .string(preview))) }
        let payload = Array(JSON.object(fields).serialized().utf8)
        do {
            let proposal = try store().propose(ProposalDraft(
                sessionID: sessionID, kind: .command, summary: summary, ruling: Ruling(.mutation, ruling.rule),
                payload: payload, upstream: upstream))
            keep = true
            log.write("proposal \(proposal.id): \(summary) is pending approval")
            return .object([("ok", .bool(true)), ("decision", .string("mutation")), ("proposal", ProposalJSON.agentView(proposal))])
        } catch {
            return Self.failure("cannot store the proposal: \(error.message)")
        }
    }

    private func run(_ tool: InterceptedTool, _ step: [String], directory: String, artifact: String) -> (Int32, String) {
        ExecutionRequest.run(.prepare, tool: tool.profile.tool, arguments: step, directory: directory, workspace: workspace,
                             stateDir: stateDir, artifact: artifact, awsEndpoint: awsEndpoint, awsProfile: awsProfile,
                             environment: environment)
    }
}

/// Reads terraform's plan text (pure).
enum PlanSummary {
    /// "Plan: 1 to add, 0 to change, 0 to destroy."
    static func counts(_ text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("Plan: ") {
            return String(line.dropLast(line.hasSuffix(".") ? 1 : 0))
        }
        return nil
    }

    static func hasNoChanges(_ text: String) -> Bool {
        text.split(separator: "\n").contains { $0.hasPrefix("No changes.") }
    }
}
