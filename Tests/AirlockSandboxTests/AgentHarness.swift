import Foundation
import Testing

/// The scripted model server (Tests/Support/model_server.py) for one test: no model API is
/// reachable here, so this stands in for Anthropic's and OpenAI's APIs and hands the real
/// agent the test's shell commands, one per turn, logging every request.
final class ModelServer: @unchecked Sendable {
    let process: Process
    let port: Int
    let log: String

    init(directory: String, commands: [String], final: String = "All steps are done.") throws {
        let script = directory + "/model-script-\(UUID().uuidString).json"
        log = directory + "/model-requests-\(UUID().uuidString).jsonl"
        try JSONSerialization.data(withJSONObject: ["commands": commands, "final": final]).write(to: URL(fileURLWithPath: script))
        (process, port) = try launchListeningHelper("model_server.py", [script, log])
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Every request as logged: path, headers, body.
    var requests: [[String: Any]] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// Everything the model received, headers included.
    var receivedText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// The requests of the agent's main conversation (those offering a shell tool), in order,
    /// each as its JSON text: request N+1 carries what command N printed.
    var conversation: [String] {
        requests.filter { request in
            guard let body = request["body"] as? [String: Any], let tools = body["tools"] as? [[String: Any]] else { return false }
            return tools.contains { ["Bash", "exec_command", "shell"].contains(($0["name"] as? String) ?? "") }
        }.map { String(decoding: (try? JSONSerialization.data(withJSONObject: $0)) ?? Data(), as: UTF8.self) }
    }

    /// aider's conversation: its Chat Completions requests, in order (aider offers no tools;
    /// it runs the ```bash blocks of the answers and sends their output with the next message).
    var chatConversation: [String] {
        requests.filter { ($0["path"] as? String)?.hasSuffix("/chat/completions") ?? false }
            .map { String(decoding: (try? JSONSerialization.data(withJSONObject: $0)) ?? Data(), as: UTF8.self) }
    }

    /// The base URL an agent in the sandbox uses: through the egress proxy, by a name the
    /// broker resolves to this server (`AIRLOCK_EGRESS_RESOLVE`).
    static let host = "model.test"
    var sandboxURL: String { "http://\(Self.host):\(port)" }
}

/// The real agents scripts/test installs from PyPI into .venv-agents.
enum Agents {
    static let venv = Stage.repoRoot + "/.venv-agents"

    static func sitePackages() -> String? {
        let lib = venv + "/lib"
        guard let python = (try? FileManager.default.contentsOfDirectory(atPath: lib))?.first(where: { $0.hasPrefix("python") }) else { return nil }
        return lib + "/" + python + "/site-packages"
    }

    static var claude: String? { sitePackages().map { $0 + "/claude_agent_sdk/_bundled/claude" } }
    static var codex: String? { sitePackages().map { $0 + "/codex_cli_bin/bin/codex" } }
    static var aider: String { venv + "/bin/aider" }

    /// False, and a failure naming the fix, when the agent is not installed.
    static func available(_ path: String?, _ name: String) -> Bool {
        require(path.map { FileManager.default.isExecutableFile(atPath: $0) } ?? false,
                "\(name) is not installed in \(venv): scripts/test installs it from PyPI (scripts/agents-requirements.txt)")
    }

    /// Host credentials that must never reach the model, the agent's output or its files.
    static let canaries = ["AWS_SECRET_ACCESS_KEY": "PLANTED-AWS-CANARY-SECRET", "GH_TOKEN": "PLANTED-GH-CANARY-TOKEN",
                           "GITHUB_TOKEN": "PLANTED-GH-CANARY-TOKEN"]
    static let canaryValues = ["PLANTED-AWS-CANARY-SECRET", "PLANTED-GH-CANARY-TOKEN", "PLANTED-KUBE-CANARY-TOKEN",
                               "PLANTED-AWS-SECRET", "PLANTED-SSH-KEY", "PLANTED-KUBE", "PLANTED-ENV-SECRET"]
}

extension Scene {
    /// A profile for agent tests: the test tools read-only (the aws CLI on PATH), the model
    /// server reachable through the proxy.
    func agentTestProfile(_ model: ModelServer) -> String {
        egressProfile("""
            filesystem:
              readonly: [\(PythonTools.venv), \(Agents.venv)]
            environment:
              path: [\(PythonTools.venv)/bin]
            network:
              allow: ["\(ModelServer.host):\(model.port)"]
              allow_addresses: [127.0.0.1/32]

            """, name: "agent-test.yaml")
    }

    /// Plants the host's kube token too (the other canaries are in the launcher's environment).
    func plantAgentCanaries() {
        plantCredentials()
        write(home + "/.kube/config", "users:\n- name: me\n  user: {token: PLANTED-KUBE-CANARY-TOKEN}\n", mode: 0o600)
    }

    /// The canaries found in `text`.
    func canaries(in text: String) -> [String] {
        Agents.canaryValues.filter { text.contains($0) }
    }
}
