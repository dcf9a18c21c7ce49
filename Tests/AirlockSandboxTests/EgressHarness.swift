import Foundation
import Testing

/// Test upstreams on the host (Tests/Support/egress_server.py, Python's standard library):
/// HTTP and HTTPS with a test CA whose certificate names web.test, secure.test, pypi.test,
/// git.test and api.anthropic.com. The broker is told where those names live with
/// AIRLOCK_EGRESS_RESOLVE, the way /etc/hosts would; no real DNS or internet is involved.
final class TestUpstream: @unchecked Sendable {
    static let script = Stage.repoRoot + "/Tests/Support/egress_server.py"
    let directory: String
    let process: Process
    let http: Int
    let https: Int
    var caPath: String { directory + "/ca.pem" }

    init(bind: String = "127.0.0.1", httpsPort: Int = 0) throws {
        directory = makeTemporaryDirectory(prefix: "airlock-test-upstream")
        let fixtures = runProcess("/usr/bin/python3", [Self.script, "fixtures", directory],
                                  environment: ["PATH": "/usr/bin:/bin", "HOME": directory], directory: directory, timeout: 60)
        guard fixtures.status == 0 else { throw TestUpstreamError("cannot make fixtures: \(fixtures)") }
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [Self.script, "serve", directory, "--bind", bind, "--https-port", String(httpsPort)]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw TestUpstreamError("the test upstream did not start on \(bind):\(httpsPort)") }
            line.append(chunk)
        }
        let ports = try JSONSerialization.jsonObject(with: line) as? [String: Int]
        guard let http = ports?["http"], let https = ports?["https"] else { throw TestUpstreamError("bad port line") }
        self.http = http
        self.https = https
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The broker's name pins: each name → its address.
    static func pins(_ names: [String: String]) -> [String: String] {
        ["AIRLOCK_EGRESS_RESOLVE": names.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")]
    }

    /// sha256 of GET /bytes/N.
    static func digest(ofBytes count: Int) -> String {
        runProcess("/usr/bin/python3", [script, "digest", String(count)], environment: ["PATH": "/usr/bin:/bin"],
                   directory: "/tmp", timeout: 120).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct TestUpstreamError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What /proc says about the broker (the `airlock run` process) while it runs.
enum BrokerProcess {
    static func descriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count ?? -1
    }

    /// A field of /proc/PID/status in KiB (VmHWM, VmRSS), nil once the process is gone.
    static func statusKiB(_ pid: Int32, _ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    /// Samples VmHWM until the process ends; the last value seen is its peak.
    static func peakResidentKiB(_ pid: Int32) -> Int {
        var peak = 0
        while let value = statusKiB(pid, "VmHWM") {
            peak = max(peak, value)
            usleep(20_000)
        }
        return peak
    }

    static func waitForFile(_ path: String, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: path) { return true }
            usleep(20_000)
        }
        return false
    }
}

extension Scene {
    /// A profile (written into the scene) for the egress tests.
    func egressProfile(_ yaml: String, name: String = "egress.yaml") -> String {
        let path = root + "/" + name
        write(path, yaml)
        return path
    }

    /// Every session's log, one after another.
    var allSessionLogs: String {
        let directory = stateDir + "/sessions"
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".log") }
            .compactMap { try? String(contentsOfFile: directory + "/" + $0, encoding: .utf8) }.joined()
    }

    /// The session log of the newest session.
    var latestSessionLog: String {
        let directory = stateDir + "/sessions"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".log") }
        let newest = names.max { (modified(directory + "/" + $0)) < (modified(directory + "/" + $1)) }
        return newest.flatMap { try? String(contentsOfFile: directory + "/" + $0, encoding: .utf8) } ?? ""
    }

    private func modified(_ path: String) -> Double {
        var info = stat()
        stat(path, &info)
        return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
    }

    func file(_ name: String) -> String {
        (try? String(contentsOfFile: workspace + "/" + name, encoding: .utf8)) ?? ""
    }
}
