import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockStore
import Glibc

/// Runs an approved command proposal exactly once: claims it, checks that the payload and
/// every pinned file (the plan, the copies, the configuration in the workspace) are what was
/// proposed, then runs the apply step in an execution sandbox whose AWS endpoint sends this
/// proposal's calls, and stores terraform's (or kubectl's…) output and exit code.
struct CommandExecutor {
    let store: ProposalStore
    let environment: [String: String]
    let awsProfile: String?

    func execute(_ id: String, actor: String) throws(AirlockError) -> Proposal {
        let claimed = try store.apply(.startExecution, to: id, actor: actor, executor: Actor.processIdentity())
        let payload: JSON
        do {
            payload = try verify(claimed)
        } catch {
            return try store.apply(.fail, to: id, actor: actor, note: error.message,
                                   result: ExecutionResult(output: [], error: "not run: \(error.message)"))
        }
        let tool = payload["tool"]?.string ?? ""
        let apply = payload["apply"]?.array?.compactMap(\.string) ?? []
        let (status, output) = ExecutionRequest.run(
            .apply(proposalID: id), tool: tool, arguments: apply, directory: payload["directory"]?.string ?? "/",
            workspace: payload["workspace"]?.string ?? "/", stateDir: store.stateDir,
            artifact: store.stateDir + "/artifacts/" + (payload["artifact"]?.string ?? ""),
            awsEndpoint: payload["aws_endpoint"]?.string, awsProfile: awsProfile, environment: environment)
        // The provider cache is big and rebuilt from the registry next time; the plan stays.
        PinnedFiles.remove(store.stateDir + "/artifacts/" + (payload["artifact"]?.string ?? "") + "/tfdata")
        let result = ExecutionResult(exitCode: Int(status), contentType: "text/plain", output: Array(output.utf8))
        return try store.apply(status == 0 ? .succeed : .fail, to: id, actor: actor, result: result)
    }

    /// The payload, if it and everything it pins are unchanged.
    func verify(_ proposal: Proposal) throws(AirlockError) -> JSON {
        guard SigV4.hexSHA256(proposal.payload) == proposal.digest else {
            throw AirlockError("the payload does not match its digest \(proposal.digest): the store was changed")
        }
        let payload: JSON
        do {
            payload = try JSON.parse(bytes: proposal.payload)
        } catch {
            throw AirlockError("the payload is not JSON")
        }
        guard payload["type"]?.string == "command", let key = payload["artifact"]?.string, !key.contains("/"), !key.isEmpty,
              case .object(let pins)? = payload["pins"] else {
            throw AirlockError("the payload is not a command")
        }
        let artifact = store.stateDir + "/artifacts/" + key
        var changed: [String] = []
        for (name, expected) in pins {
            let path: String
            if name.hasPrefix("artifact:") {
                path = artifact + "/" + name.dropFirst("artifact:".count)
            } else if name.hasPrefix("workspace:") {
                path = String(name.dropFirst("workspace:".count))
            } else {
                throw AirlockError("unknown pin \(name)")
            }
            let actual = try? PinnedFiles.digest(path)
            if actual != expected.string { changed.append(actual == nil ? "\(path) (gone)" : path) }
        }
        // Configuration files that appeared since the proposal change the plan's meaning too.
        if let directory = payload["directory"]?.string, payload["preview"] != nil {
            let pinned = Set(pins.map(\.0))
            for path in PinnedFiles.matching(["*.tf", "*.tf.json", "*.tfvars", "*.tfvars.json"], in: workingDirectory(payload, directory))
            where !pinned.contains("workspace:" + path) {
                changed.append("\(path) (new)")
            }
        }
        guard changed.isEmpty else {
            throw AirlockError("changed since the proposal: \(changed.joined(separator: ", ")); nothing was applied. Make a new proposal")
        }
        return payload
    }

    /// terraform's -chdir, else where the command was started.
    func workingDirectory(_ payload: JSON, _ directory: String) -> String {
        for argument in payload["command"]?.array?.compactMap(\.string) ?? [] where argument.hasPrefix("-chdir=") || argument.hasPrefix("--chdir=") {
            let value = String(argument.split(separator: "=", maxSplits: 1).last ?? "")
            return PathResolution.absolute(value, from: directory)
        }
        return directory
    }
}
