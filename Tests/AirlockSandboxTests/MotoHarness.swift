import Foundation
import Testing

/// The pinned Python tools (scripts/requirements.txt) in the checkout's .venv, which
/// scripts/test creates: the real aws CLI, boto3 and moto.
enum PythonTools {
    static let venv = Stage.repoRoot + "/.venv"
    static var aws: String { venv + "/bin/aws" }
    static var python: String { venv + "/bin/python3" }
    static var motoServer: String { venv + "/bin/moto_server" }

    /// False (with a failure under CI) when the venv is missing.
    static func available() -> Bool {
        if FileManager.default.isExecutableFile(atPath: motoServer) && FileManager.default.isExecutableFile(atPath: aws) {
            return true
        }
        let message = "the Python test tools are missing (\(venv)): run scripts/test, which installs them"
        Issue.record(Comment(rawValue: message))
        return false
    }

    /// A profile that mounts the venv read-only, so the agent can run aws and boto3.
    static func profile(in scene: Scene) -> String {
        let path = scene.root + "/python-tools.yaml"
        scene.write(path, "filesystem:\n  readonly: [\(venv)]\n")
        return path
    }
}

/// A real moto server (AWS's API on loopback) for one test.
final class Moto: @unchecked Sendable {
    let host: String
    let port: Int
    let process: Process
    var url: String { "http://\(host):\(port)" }
    static let keys = ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]

    /// `host`, `port`: a fixed address (the compatibility fixtures' proposals name one);
    /// default a free port on 127.0.0.1.
    init(environment extra: [String: String] = [:], host: String = "127.0.0.1", port fixed: Int? = nil) throws {
        self.host = host
        port = fixed ?? Moto.freePort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: PythonTools.motoServer)
        process.arguments = ["-H", host, "-p", String(port)]
        process.environment = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()].merging(extra) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            if Moto.accepts(port, host: host) { return }
            usleep(50_000)
        }
        throw POSIXError(.ETIMEDOUT)
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The aws CLI run directly against moto (the human's view, no Airlock in between).
    func aws(_ arguments: [String], keys: [String: String] = Moto.keys) -> Outcome {
        runProcess(PythonTools.aws, ["--endpoint-url", url, "--output", "json"] + arguments,
                   environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "AWS_DEFAULT_REGION": "us-east-1",
                                 "AWS_EC2_METADATA_DISABLED": "true"].merging(keys) { $1 },
                   directory: "/tmp", timeout: 120)
    }

    func json(_ arguments: [String], keys: [String: String] = Moto.keys) -> Any? {
        let out = aws(arguments, keys: keys)
        return try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func accepts(_ port: Int, host: String = "127.0.0.1") -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(host)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

extension Scene {
    /// A shell script inside `airlock run` with the aws CLI on PATH, AWS going to `moto`.
    func agent(_ script: String, moto: Moto, options: [String] = [], hostKeys: [String: String] = Moto.keys,
               timeout: Double = 180, whileRunning: ((Int32) -> Void)? = nil) -> Outcome {
        run(["/bin/sh", "-c", "export PATH=\(PythonTools.venv)/bin:$PATH; \(script)"],
            options: ["--profile", PythonTools.profile(in: self), "--aws-endpoint", moto.url] + options,
            timeout: timeout, extraEnvironment: hostKeys.merging(["AWS_DEFAULT_REGION": "us-east-1"]) { $1 },
            whileRunning: whileRunning)
    }

    /// airlock's human commands (proposals, show, approve, …) on this scene's state dir.
    func airlock(_ arguments: [String], hostKeys: [String: String] = Moto.keys, timeout: Double = 120) -> Outcome {
        runProcess(Stage.airlock, arguments + ["--state-dir", stateDir],
                   environment: environment.merging(hostKeys) { $1 }, directory: workspace, timeout: timeout)
    }

    /// Proposal ids the agent was told about (AirlockProposalPending messages), in order.
    static func proposalIDs(in text: String) -> [String] {
        var ids: [String] = []
        var rest = Substring(text)
        while let range = rest.range(of: "Proposal ") {
            let id = rest[range.upperBound...].prefix(8)
            if id.count == 8, id.allSatisfy(\.isHexDigit), !ids.contains(String(id)) { ids.append(String(id)) }
            rest = rest[range.upperBound...]
        }
        return ids
    }
}
