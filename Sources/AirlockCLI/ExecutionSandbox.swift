import AirlockBroker
import AirlockCore
import AirlockPolicy
import AirlockSandbox
import AirlockStore
import Glibc

/// What an `airlock run` is for, besides an agent: running a command proposal's steps.
enum ExecutionMode: Sendable, Equatable {
    /// Making a proposal's plan and preview: AWS mutations are refused.
    case prepare
    /// Running an approved command proposal: AWS mutations from this sandbox are sent,
    /// audited under the proposal.
    case apply(proposalID: String)

    init?(argument: String) {
        if argument == "prepare" {
            self = .prepare
        } else if argument.hasPrefix("apply:"), case let id = String(argument.dropFirst(6)), !id.isEmpty, id.count <= 64,
                  id.allSatisfy({ $0.isLetter || $0.isNumber }) {
            self = .apply(proposalID: id)
        } else {
            return nil
        }
    }

    var argument: String {
        switch self {
        case .prepare: return "prepare"
        case .apply(let id): return "apply:\(id)"
        }
    }
}

/// The hidden part of `airlock run` that makes an execution sandbox: the same launcher, the
/// workspace read-write, no shims, the proposal's artifact directory at /run/airlock/artifact,
/// and the tool's execution settings (profiles/tools/NAME.yaml: variables, configuration
/// files copied from the host, hosts its proxy allows).
struct ExecutionRequest: Sendable {
    var mode: ExecutionMode
    var tool: String
    /// On the host: `<state>/artifacts/<key>`.
    var artifact: String

    static let mount = SandboxLayout.runDirectory + "/artifact"
    /// Copies of host files for one run (a kubeconfig): removed when the run ends.
    static let scratch = "exec"

    /// Checks the request against the state directory before anything runs.
    func validate(stateDir: String, store: () throws(AirlockError) -> ProposalStore) throws(AirlockError) {
        let root = stateDir + "/artifacts/"
        guard artifact.hasPrefix(root), !artifact.dropFirst(root.count).contains("/"), !artifact.contains(".."),
              PinnedFiles.realPath(artifact) == artifact else {
            throw AirlockError("--artifact must be a directory in \(root)")
        }
        if case .apply(let id) = mode {
            let proposal = try store().proposal(id: id)
            guard let proposal, proposal.kind == .command, proposal.state == .executing else {
                throw AirlockError("proposal \(id) is not an approved command being executed; nothing runs")
            }
        }
    }

    /// The hosts the execution's proxy allows: the tool's, and the API servers of the
    /// kubeconfig it gets.
    func hosts(tool: InterceptedTool, environment: [String: String], home: String) -> [String] {
        var hosts = tool.profile.executionHosts
        for name in tool.profile.executionHostVariables {
            if let host = environment[name], !host.isEmpty, EgressRule.parse(host, source: name) != nil { hosts.append(host) }
        }
        for (name, candidates) in tool.profile.executionFiles where name == "KUBECONFIG" {
            if let source = Self.firstExisting(candidates, environment: environment, home: home) { hosts += Self.kubeconfigServers(source) }
        }
        return hosts
    }

    /// Sets up the sandbox for the step: the artifact, the real binary, the variables and
    /// copied files.
    func prepare(_ layout: inout SandboxLayout, tool: InterceptedTool, environment: [String: String], home: String) throws(AirlockError) {
        layout.addWritableBind(source: artifact, target: Self.mount)
        tool.addBinary(to: &layout)
        var variables: [String: String] = [:]
        for (name, value) in tool.profile.executionEnvironment {
            variables[name] = value.replacingOccurrences(of: "{artifact}", with: Self.mount)
        }
        for name in tool.profile.executionPass {
            if let value = environment[name] { variables[name] = value }
        }
        PinnedFiles.remove(artifact + "/" + Self.scratch)
        for (name, candidates) in tool.profile.executionFiles {
            guard let source = Self.firstExisting(candidates, environment: environment, home: home) else { continue }
            let copy = Self.scratch + "/" + name
            do {
                _ = try PinnedFiles.copyAny(source, to: artifact + "/" + copy, budget: PinnedFiles.copyLimit)
            } catch {
                throw AirlockError("cannot copy \(source) for the execution: \(error)")
            }
            variables[name] = Self.mount + "/" + copy
        }
        layout.setEnvironment(variables)
    }

    /// Removes what must not outlive the run (copied credentials, provider caches).
    func cleanUp() {
        PinnedFiles.remove(artifact + "/" + Self.scratch)
    }

    static func firstExisting(_ candidates: [String], environment: [String: String], home: String) -> String? {
        for candidate in candidates {
            var path = candidate
            if candidate.hasPrefix("$") {
                guard let value = environment[String(candidate.dropFirst())], value.hasPrefix("/") else { continue }
                path = value
            } else {
                path = HostPath.expandingTilde(candidate, home: home)
            }
            if access(path, R_OK) == 0 { return path }
        }
        return nil
    }

    /// The API servers a kubeconfig names (`server: https://host:port`), as proxy rules.
    static func kubeconfigServers(_ path: String) -> [String] {
        guard let text = try? readTextFile(path, limit: 1 << 20) else { return [] }
        var hosts: [String] = []
        for line in text.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " || $0 == "\t" || $0 == "-" }
            guard trimmed.hasPrefix("server:") else { continue }
            var url = String(trimmed.dropFirst(7).filter { $0 != " " && $0 != "\t" && $0 != "\"" && $0 != "'" })
            guard let scheme = url.range(ofText: "://") else { continue }
            let secure = url.hasPrefix("https")
            url = String(url[scheme.upperBound...])
            let authority = url.split(separator: "/").first.map(String.init) ?? url
            hosts.append(authority.contains(":") ? authority : authority + (secure ? ":443" : ":80"))
        }
        return hosts
    }

    /// Runs one step (argv without the tool's name) as a child `airlock run`, output merged.
    static func run(_ mode: ExecutionMode, tool: String, arguments: [String], directory: String, workspace: String, stateDir: String,
                    artifact: String, awsEndpoint: String?, awsProfile: String?, environment: [String: String]) -> (status: Int32, output: String) {
        guard let binary = HostInspection.realPath("/proc/self/exe") else { return (125, "airlock: cannot find its own binary") }
        var argv = [binary, "run", "--workspace", workspace, "--state-dir", stateDir, "--execution", mode.argument,
                    "--artifact", artifact, "--tool", tool]
        if let awsEndpoint { argv += ["--aws-endpoint", awsEndpoint] }
        if let awsProfile { argv += ["--aws-profile", awsProfile] }
        argv += ["--", InterceptedTool.directory + "/" + tool] + arguments
        do {
            let output = try ChildProcess.run(argv, environment: environment, directory: directory, mergeOutput: true,
                                              outputLimit: 4 * ExecutionResult.outputLimit)
            return (output.status, output.stdout)
        } catch {
            return (125, "airlock: \(error.message)")
        }
    }
}
