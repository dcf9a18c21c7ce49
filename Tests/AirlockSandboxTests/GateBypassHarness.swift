import Foundation
import Testing

/// moto checking every signature once it is set up: the first calls create the IAM user whose
/// keys are the broker's real credentials, the rest of the unsigned allowance is spent, and
/// from then on a request moto acts on was signed with those keys (docs/gate.md, tests).
final class CheckedMoto: @unchecked Sendable {
    let moto: Moto
    /// The broker's (and the approver's) real credentials.
    let keys: [String: String]
    var url: String { moto.url }

    init() throws {
        moto = try Moto(environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "40"])
        // One boto3 process without retries: every request counts against the allowance.
        let setup = runProcess(PythonTools.python, ["-c", """
            import boto3, botocore.config, json, sys
            config = botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60)
            iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="testing",
                               aws_secret_access_key="testing", config=config)
            iam.create_user(UserName="broker")
            iam.put_user_policy(UserName="broker", PolicyName="all", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
            for _ in range(16):
                key = iam.create_access_key(UserName="broker")["AccessKey"]
                # moto rejects correct signatures made with a secret holding '+': draw another.
                if "+" not in key["SecretAccessKey"]: break
                iam.delete_access_key(UserName="broker", AccessKeyId=key["AccessKeyId"])
            # Spend what is left of the unsigned allowance, so every later call is checked.
            for _ in range(45):
                try: iam.list_users()
                except Exception: break
            print(json.dumps({"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}))
            """, moto.url], environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()], directory: "/tmp", timeout: 120)
        guard let found = (try? JSONSerialization.jsonObject(with: Data(setup.stdout.utf8))) as? [String: String],
              found["AWS_SECRET_ACCESS_KEY"]?.contains("+") == false else {
            throw TestUpstreamError("could not set up moto's signing user: \(setup)")
        }
        keys = found
        guard moto.aws(["iam", "list-users"], keys: ["AWS_ACCESS_KEY_ID": found["AWS_ACCESS_KEY_ID"]!, "AWS_SECRET_ACCESS_KEY": "wrong"]).status != 0 else {
            throw TestUpstreamError("moto does not check signatures")
        }
    }

    /// The aws CLI, directly, with the real keys (the human's view).
    func aws(_ arguments: [String]) -> Outcome { moto.aws(arguments, keys: keys) }

    func json(_ arguments: [String]) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(aws(arguments).stdout.utf8))
    }

    /// moto's whole state (`GET /moto-api/data.json`), without what every signed call
    /// changes (the access keys' last use).
    func state() -> NSObject {
        let fetched = runProcess("/usr/bin/curl", ["-sf", url + "/moto-api/data.json"], environment: [:], directory: "/", timeout: 60)
        guard fetched.status == 0, let parsed = try? JSONSerialization.jsonObject(with: Data(fetched.stdout.utf8)),
              (parsed as? [String: Any])?.isEmpty == false else {
            Issue.record("cannot read moto's state: \(fetched)")
            return ["unreadable": UUID().uuidString] as NSDictionary
        }
        return Self.normalized(parsed) as! NSObject
    }

    static func normalized(_ value: Any) -> Any {
        if let object = value as? [String: Any] {
            var out: [String: Any] = [:]
            for (key, item) in object where !key.lowercased().contains("last_used") && !key.lowercased().contains("lastused") {
                out[key] = normalized(item)
            }
            return out as NSDictionary
        }
        if let array = value as? [Any] { return array.map(normalized) as NSArray }
        return value
    }

    /// The IAM user names moto has.
    func users() -> Set<String> {
        let listed = (json(["iam", "list-users"]) as? [String: Any])?["Users"] as? [[String: Any]] ?? []
        return Set(listed.compactMap { $0["UserName"] as? String })
    }

    /// Sends hand-written requests signed with `keys` (Tests/Support/raw_aws.py) from the host.
    func raw(_ specs: [[String: Any]]) throws -> [(status: Int, body: String)] {
        let input = String(decoding: try JSONSerialization.data(withJSONObject: specs), as: UTF8.self)
        let out = runProcess(PythonTools.python, [Stage.repoRoot + "/Tests/Support/raw_aws.py"],
                             environment: ["PATH": "/usr/bin:/bin"].merging(keys) { $1 }, directory: "/tmp", stdin: input, timeout: 60)
        let results = (try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [[String: Any]] ?? []
        guard results.count == specs.count else { throw TestUpstreamError("raw_aws.py: \(out)") }
        return results.map { ($0["status"] as? Int ?? 0, $0["body"] as? String ?? "") }
    }
}

extension Scene {
    /// Everything the agent's run left where the agent could see it: its output and every
    /// file of the workspace. A planted secret must appear nowhere in it.
    func agentVisibleText(_ outcome: Outcome) -> String {
        var text = outcome.stdout + outcome.stderr
        if let enumerator = FileManager.default.enumerator(atPath: workspace) {
            for case let path as String in enumerator {
                // A symlink the agent made points wherever it likes; following it here would
                // read the host, not what the agent saw.
                var info = stat()
                guard lstat(workspace + "/" + path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
                if let data = FileManager.default.contents(atPath: workspace + "/" + path), data.count < 8 << 20 {
                    text += String(decoding: data, as: UTF8.self)
                }
            }
        }
        return text
    }

    /// Copies a support script into the workspace (so the agent, and snapshots, have it).
    func support(_ name: String) {
        try? FileManager.default.removeItem(atPath: workspace + "/" + name)
        try? FileManager.default.copyItem(atPath: Stage.repoRoot + "/Tests/Support/" + name, toPath: workspace + "/" + name)
        chownTree()
    }

    var latestProposalID: String? {
        let listed = airlock(["proposals", "--all", "--json"]).stdout
        guard let json = try? JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [String: Any],
              let proposals = json["proposals"] as? [[String: Any]] else { return nil }
        return proposals.first?["id"] as? String
    }
}

/// Fails the test with the install hint when a tool is missing: never a silent skip.
@discardableResult
func require(_ available: Bool, _ message: String) -> Bool {
    if !available { Issue.record(Comment(rawValue: message)) }
    return available
}

/// A plain HTTP server on a loopback address that answers 200 and records each request's
/// path: whether something reached it is the question.
final class RecordingHTTPServer: @unchecked Sendable {
    let process: Process
    let port: Int
    let log: String

    init(directory: String, address: String) throws {
        log = directory + "/recorded-\(address).log"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", """
            import http.server, sys
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    with open(sys.argv[2], "a") as f: f.write(self.path + "\\n")
                    self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
                def log_message(self, *a): pass
            s = http.server.ThreadingHTTPServer((sys.argv[1], 0), H)
            print(s.server_address[1], flush=True)
            s.serve_forever()
            """, address, log]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw TestUpstreamError("the recording server did not start on \(address)") }
            line.append(chunk)
        }
        port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var requests: [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}
