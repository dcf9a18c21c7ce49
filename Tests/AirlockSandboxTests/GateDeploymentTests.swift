import Foundation
import Testing

/// The systemd unit operators install (`deploy/systemd/airlock-gate.service`; docs/gate.md,
/// "Running the gate (operators)"), checked by systemd's own verifier with the built
/// `airlock-gate` in place of `/usr/local/bin/airlock-gate`: every directive known to this
/// systemd and well formed, the binary there and executable.
@Suite struct GateDeploymentTests {
    static let unit = "airlock-gate.service"
    static let installedBinary = "/usr/local/bin/airlock-gate"

    static var source: String { Stage.repoRoot + "/deploy/systemd/" + unit }

    /// The unit's directives (`Key=value`), comments and blank lines left out.
    static func directives(_ text: String) -> [String] {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") && !$0.hasPrefix(";") && !$0.hasPrefix("[") }
    }

    @Test func systemdAnalyzeVerifiesTheUnit() throws {
        guard let analyzer = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            // Never a silent skip: the unit would go unchecked.
            Issue.record("systemd-analyze is not installed (apt-get install systemd; scripts/test does): the gate's unit is checked with it")
            return
        }
        let binary = TeamGate.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "\(binary) is missing: run `swift build` first")
        let text = try String(contentsOfFile: Self.source, encoding: .utf8)
        try #require(text.contains("ExecStart=\(Self.installedBinary) serve --config /etc/airlock/gate.yaml"),
                     "the unit no longer starts \(Self.installedBinary) serve --config /etc/airlock/gate.yaml")

        let directory = makeTemporaryDirectory(prefix: "airlock-unit")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let copy = directory + "/" + Self.unit
        // systemd splits ExecStart= on spaces unless the path is quoted.
        let executable = binary.contains(" ") ? "\"\(binary)\"" : binary
        try text.replacingOccurrences(of: Self.installedBinary, with: executable).write(toFile: copy, atomically: true, encoding: .utf8)

        let outcome = runProcess(analyzer, ["verify", copy], environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": directory],
                                 directory: directory, timeout: 120)
        // verify exits 0 after an unknown key or a value it cannot parse ("…, ignoring"):
        // those are lines naming the unit, and any such line fails the check.
        let complaints = (outcome.stdout + outcome.stderr).split(separator: "\n")
            .filter { $0.contains(Self.unit) || $0.contains(directory) }
        #expect(outcome.status == 0, "systemd-analyze verify \(copy): \(outcome)")
        #expect(complaints.isEmpty, "systemd-analyze verify complains about the unit:\n\(complaints.joined(separator: "\n"))\n\(outcome)")
    }

    /// Options that break the execution sandboxes the gate runs command proposals in
    /// (namespaces of every kind, mounts, its own /proc and devpts; the unit's comment says
    /// why each is absent) must not creep in.
    @Test func unitLeavesTheExecutionSandboxesWorking() throws {
        let lines = Self.directives(try String(contentsOfFile: Self.source, encoding: .utf8))
        let breaking = ["RestrictNamespaces=", "PrivateUsers=", "ProtectKernelTunables=", "ProtectKernelLogs=", "ProcSubset=",
                        "PrivateDevices=", "DevicePolicy=", "DeviceAllow=", "ProtectClock=", "MemoryDenyWriteExecute="]
        for option in breaking {
            #expect(!lines.contains(where: { $0.hasPrefix(option) }), "\(Self.unit) sets \(option)")
        }
        // A system-call filter may only deny, and nothing the sandbox needs.
        for filter in lines where filter.hasPrefix("SystemCallFilter=") {
            let value = filter.dropFirst("SystemCallFilter=".count)
            #expect(value.hasPrefix("~"), "\(filter) is an allow-list: the sandbox needs @mount, @privileged and unshare")
            let names = value.split(separator: " ").map { $0.hasPrefix("~") ? String($0.dropFirst()) : String($0) }
            for needed in ["@mount", "@privileged", "@process", "@sandbox", "@resources", "unshare", "clone3", "pivot_root", "setns"] {
                #expect(!names.contains(needed), "\(filter) denies \(needed)")
            }
        }
        #expect(lines.contains("LimitNOFILE=65536"))
        #expect(lines.contains("KillMode=mixed"), "SIGTERM must reach the gate alone, which lets executions finish")
        // Above executions.shutdown_grace_seconds' default (60): systemd must not kill the
        // gate while it still lets executions finish.
        let stop = lines.first(where: { $0.hasPrefix("TimeoutStopSec=") }).flatMap { Int($0.dropFirst("TimeoutStopSec=".count)) }
        #expect((stop ?? 0) > 60, "TimeoutStopSec must exceed the default shutdown grace of 60 s")
    }
}
