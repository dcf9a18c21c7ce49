import AirlockCore
import AirlockPolicy
import AirlockSandbox
import ArgumentParser

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Work with sandbox profiles.",
        subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate profiles and print the sandbox they give, flagging every loosening.",
            discussion: """
                Each FILE (or profile name) is read strictly: unknown keys, bad values, anchors,
                and anything that would let a credential into the sandbox are errors, reported
                as FILE:LINE: message. For a valid profile, the effective sandbox is printed
                for this host and the current directory as workspace, followed by every way the
                profile is looser than Airlock's defaults. Exits 1 if any profile is invalid.
                """)

        @Argument(help: ArgumentHelp("Profile files or names.", valueName: "FILE"))
        var files: [String]

        @Flag(help: "Print one JSON document instead of text.")
        var json = false

        @OptionGroup var state: StateOptions

        func run() throws {
            let environment = currentEnvironment()
            let home = environment["HOME"] ?? "/"
            let library = ProfileLibrary(environment: environment, home: home)
            var reports: [JSON] = []
            var invalid = false
            for file in files {
                do throws(AirlockError) {
                    let stack = try library.loadStack([file])
                    let facts = try HostInspection.gather(
                        profiles: stack, workspace: nil, stateDir: state.stateDir, environment: environment,
                        createDirectories: false)
                    let layout = try SandboxLayout.make(profiles: stack, host: facts)
                    let loosenings = stack.layers.flatMap(Loosening.of)
                    let summary = SandboxSummary(stack: stack, layout: layout, loosenings: loosenings)
                    if json { reports.append(summary.json(file: file)) } else { print(summary.text(file: file)) }
                } catch {
                    invalid = true
                    if json {
                        reports.append(.object([("file", .string(file)), ("valid", .bool(false)),
                                                ("error", .string(error.message))]))
                    } else {
                        writeError("\(error.message)\n")
                        if let hint = error.hint { writeError("  hint: \(hint)\n") }
                    }
                }
            }
            if json { printJSON(JSON.object([("profiles", .array(reports))])) }
            if invalid { throw ExitCode(1) }
        }
    }
}

/// The effective sandbox, for people and for scripts.
struct SandboxSummary {
    var stack: ProfileStack
    var layout: SandboxLayout
    var loosenings: [Loosening]

    var readOnly: [String] { binds(writable: false) }
    var readWrite: [String] { binds(writable: true) }
    var masked: [String] {
        layout.mounts.compactMap {
            if case let .mask(target, cover) = $0, cover == SandboxLayout.emptyFile { return target }
            return nil
        }
    }

    func binds(writable: Bool) -> [String] {
        layout.mounts.compactMap {
            if case let .bind(source, target, w, _, role) = $0, w == writable, role != .device {
                return source == target ? target : "\(target) (from \(source))"
            }
            return nil
        }
    }

    func text(file: String) -> String {
        var lines = ["\(file): valid (profiles applied: \(stack.names.joined(separator: " → ")))"]
        lines.append("  read-only:  " + readOnly.joined(separator: ", "))
        lines.append("  read-write: " + (readWrite + ["/tmp, /var/tmp (tmpfs, \(ByteSize.format(stack.tmpSize)) each)"]).joined(separator: ", "))
        lines.append("  masked:     " + masked.joined(separator: ", ") + " (when present)")
        lines.append("  never mounted: credential paths (~/.aws, ~/.ssh, ~/.kube, …) and the state directory")
        let egress = stack.egressPolicy()
        if egress.allow.isEmpty {
            lines.append("  network:    loopback only; the egress proxy allows no host (AWS goes through the gate)")
        } else {
            lines.append("  network:    loopback only; the egress proxy allows " + egress.allow.map(\.description).joined(separator: ", "))
        }
        if !egress.deny.isEmpty { lines.append("  denied:     " + egress.deny.map(\.description).joined(separator: ", ")) }
        if !egress.allowedRanges.isEmpty { lines.append("  non-public ranges opened: " + egress.allowedRanges.map(\.description).joined(separator: ", ")) }
        lines.append("  tools:      " + (stack.tools.isEmpty ? "none intercepted"
            : stack.tools.joined(separator: ", ") + " (reads run; changes become proposals; profiles/tools/)"))
        lines.append("  environment passed: " + layout.environment.map(\.name).joined(separator: ", "))
        if !layout.withheldEnvironment.isEmpty {
            lines.append("  environment withheld: " + layout.withheldEnvironment.joined(separator: ", "))
        }
        lines.append("  rlimits:    " + layout.rlimits.map { "\($0.limit.rawValue) \($0.value.formatted(for: $0.limit))" }.joined(separator: ", "))
        lines.append("  privileges: uid 1000, no capabilities, no_new_privs, seccomp deny list")
        for warning in layout.warnings { lines.append("  warning: \(warning)") }
        if loosenings.isEmpty {
            lines.append("  loosenings: none")
        } else {
            lines.append("  loosenings (\(loosenings.count)):")
            lines += loosenings.map { "    LOOSER: \($0)" }
        }
        return lines.joined(separator: "\n")
    }

    func json(file: String) -> JSON {
        .object([
            ("file", .string(file)), ("valid", .bool(true)),
            ("profiles", .array(stack.names.map(JSON.string))),
            ("read_only", .array(readOnly.map(JSON.string))),
            ("read_write", .array(readWrite.map(JSON.string))),
            ("masked", .array(masked.map(JSON.string))),
            ("tools", .array(stack.tools.map(JSON.string))),
            ("tmp_size", .number(Double(stack.tmpSize))),
            ("egress_allow", .array(stack.egressPolicy().allow.map { .string($0.description) })),
            ("egress_deny", .array(stack.egressPolicy().deny.map { .string($0.description) })),
            ("egress_address_ranges", .array(stack.egressPolicy().allowedRanges.map { .string($0.description) })),
            ("environment", .array(layout.environment.map { .string($0.name) })),
            ("environment_withheld", .array(layout.withheldEnvironment.map(JSON.string))),
            ("rlimits", .object(layout.rlimits.map { ($0.limit.rawValue, .string($0.value.formatted(for: $0.limit))) })),
            ("warnings", .array(layout.warnings.map(JSON.string))),
            ("loosenings", .array(loosenings.map { .object([("profile", .string($0.profile)), ("what", .string($0.what))]) })),
        ])
    }
}
