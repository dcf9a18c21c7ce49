@testable import AirlockExecution
import AirlockCore
import AirlockPolicy
import Foundation
import Glibc
import Testing

/// How the human's shell finds a tool (docs/tools.md), on laid-out homes: PATH order before
/// a profile's list, symlink chains, pyenv/tfenv/asdf version selection (variables, version
/// files here and above, global files, prefixes), and what is refused (mise shims, a runtime
/// that is the home or holds credentials, `env` interpreters the sandbox would not find).
/// The end-to-end runs inside `airlock run` are ToolHomeTests.
@Suite struct ToolResolverTests: FileFixtures {
    /// A home with a workspace, and a plain script tool in a PATH directory.
    struct Home {
        let root: String
        var home: String { root + "/home" }
        var workspace: String { root + "/home/src/app" }

        func resolver(path: [String], _ extra: [String: String] = [:]) -> ToolResolver {
            ToolResolver(environment: ["HOME": home, "PATH": path.joined(separator: ":")].merging(extra) { $1 }, home: home, directory: workspace)
        }
    }

    func home() throws -> Home {
        let home = Home(root: try directory("home"))
        try FileManager.default.createDirectory(atPath: home.workspace, withIntermediateDirectories: true)
        return home
    }

    func script(_ path: String, interpreter: String = "/bin/sh", body: String = "exit 0") throws {
        try write(path, "#!\(interpreter)\n\(body)\n", mode: 0o755)
    }

    func resolved(_ outcome: ToolResolver.Outcome, sourceLocation: SourceLocation = #_sourceLocation) -> ToolResolution? {
        guard case .resolved(let resolution) = outcome else {
            Issue.record("not resolved: \(outcome)", sourceLocation: sourceLocation)
            return nil
        }
        return resolution
    }

    func failure(_ outcome: ToolResolver.Outcome, sourceLocation: SourceLocation = #_sourceLocation) -> ToolResolutionFailure? {
        guard case .failed(let failure) = outcome else {
            Issue.record("not refused: \(outcome)", sourceLocation: sourceLocation)
            return nil
        }
        return failure
    }

    @Test func pathOrderComesBeforeTheProfilesList() throws {
        let h = try home()
        try script(h.home + "/bin/aws")
        try script(h.root + "/opt/aws")
        try script(h.root + "/later/aws")
        let resolver = h.resolver(path: ["relative/bin", "/run/airlock/bin", h.home + "/bin", h.root + "/later"])
        #expect(resolved(resolver.resolve("aws", fallbacks: [h.root + "/opt/aws", "$PATH"]))?.binary == h.home + "/bin/aws")
        // Nothing on PATH: the profile's list.
        #expect(resolved(h.resolver(path: ["/nonexistent"]).resolve("aws", fallbacks: [h.root + "/opt/aws"]))?.binary == h.root + "/opt/aws")
        #expect(h.resolver(path: ["/nonexistent"]).resolve("aws", fallbacks: ["$PATH"]) == .notInstalled)
        // A directory or a file without the execute bit is not a program.
        try FileManager.default.createDirectory(atPath: h.root + "/dir/aws", withIntermediateDirectories: true)
        try write(h.root + "/plain/aws", "#!/bin/sh\n", mode: 0o644)
        #expect(resolved(h.resolver(path: [h.root + "/dir", h.root + "/plain", h.root + "/later"]).resolve("aws"))?.binary == h.root + "/later/aws")
    }

    @Test func symlinkChainsLeadToTheProgram() throws {
        let h = try home()
        try script(h.root + "/real/tool-1.2/kubectl")
        try FileManager.default.createDirectory(atPath: h.root + "/links", withIntermediateDirectories: true)
        symlink(h.root + "/real/tool-1.2/kubectl", h.root + "/links/second")
        symlink("second", h.root + "/links/first")
        try FileManager.default.createDirectory(atPath: h.home + "/.local/bin", withIntermediateDirectories: true)
        symlink(h.root + "/links/first", h.home + "/.local/bin/kubectl")
        let resolution = resolved(h.resolver(path: [h.home + "/.local/bin"]).resolve("kubectl"))
        #expect(resolution?.found == h.home + "/.local/bin/kubectl")
        #expect(resolution?.binary == h.root + "/real/tool-1.2/kubectl")
        #expect(resolution?.runtime == [])
    }

    /// pyenv's layout: shims that exec pyenv, versions/V with bin/ and lib/.
    func pyenv(_ h: Home, versions: [String], global: String?) throws -> String {
        let root = h.home + "/.pyenv"
        try write(root + "/shims/aws", """
            #!/usr/bin/env bash
            set -e
            program="${0##*/}"
            export PYENV_ROOT="\(root)"
            exec "\(root)/libexec/pyenv" exec "$program" "$@"
            """, mode: 0o755)
        for version in versions {
            let prefix = root + "/versions/" + version
            try write(prefix + "/bin/python3.11", "not really python", mode: 0o755)
            try FileManager.default.createDirectory(atPath: prefix + "/lib/python3.11", withIntermediateDirectories: true)
            try script(prefix + "/bin/aws", interpreter: prefix + "/bin/python3.11", body: "from awscli.clidriver import main")
        }
        if let global { try write(root + "/version", global + "\n") }
        return root
    }

    @Test func pyenvSelectsAsPyenvDoes() throws {
        let h = try home()
        let root = try pyenv(h, versions: ["3.10.4", "3.11.7", "3.11.12"], global: "3.11.7")
        let path = [root + "/shims", "/usr/bin", "/bin"]
        let global = resolved(h.resolver(path: path).resolve("aws"))
        #expect(global?.found == root + "/shims/aws")
        #expect(global?.binary == root + "/versions/3.11.7/bin/aws")
        #expect(global?.via == "pyenv 3.11.7")
        #expect(global?.runtime == [root + "/versions/3.11.7"])
        // A .python-version in a parent of the workspace, a prefix naming the newest 3.11.
        try write(h.home + "/src/.python-version", "# project\n3.11\n")
        #expect(resolved(h.resolver(path: path).resolve("aws"))?.binary == root + "/versions/3.11.12/bin/aws")
        // PYENV_VERSION wins over files.
        #expect(resolved(h.resolver(path: path, ["PYENV_VERSION": "3.10.4"]).resolve("aws"))?.via == "pyenv 3.10.4")
        // A version without the tool, then one with it: the first that has it.
        try FileManager.default.createDirectory(atPath: root + "/versions/3.12.1/bin", withIntermediateDirectories: true)
        #expect(resolved(h.resolver(path: path, ["PYENV_VERSION": "3.12.1:3.10.4"]).resolve("aws"))?.via == "pyenv 3.10.4")
        let missing = failure(h.resolver(path: path, ["PYENV_VERSION": "3.12.1"]).resolve("aws"))
        #expect(missing?.why.contains("3.12.1") == true && missing?.why.contains("has no aws") == true, "\(String(describing: missing))")
        // A FIFO planted as .python-version does not hang the resolution (it is no version file).
        try? FileManager.default.removeItem(atPath: h.home + "/src/.python-version")
        #expect(mkfifo(h.workspace + "/.python-version", 0o644) == 0)
        #expect(resolved(h.resolver(path: path).resolve("aws"))?.via == "pyenv 3.11.7")
        unlink(h.workspace + "/.python-version")
        // A name that is a path is no version.
        let climbing = failure(h.resolver(path: path, ["PYENV_VERSION": "../../../usr"]).resolve("aws"))
        #expect(climbing?.why.contains("not a version name") == true)
        // "system": the next aws in PATH past the shims.
        try script(h.root + "/system/aws")
        let system = resolved(h.resolver(path: [root + "/shims", h.root + "/system"], ["PYENV_VERSION": "system"]).resolve("aws"))
        #expect(system?.binary == h.root + "/system/aws")
    }

    @Test func tfenvSelectsAnExactInstalledVersion() throws {
        let h = try home()
        let root = h.home + "/.tfenv"
        try script(root + "/bin/terraform", interpreter: "/usr/bin/env bash", body: "exec \"$TFENV_ROOT/libexec/tfenv-exec\" \"$@\"")
        try script(root + "/libexec/tfenv-exec", interpreter: "/usr/bin/env bash")
        for version in ["1.5.7", "1.6.0"] { try script(root + "/versions/\(version)/terraform", body: "echo Terraform v\(version)") }
        try write(root + "/version", "1.6.0\n")
        // Found through a symlink in /usr/local/bin, as tfenv's install suggests.
        try FileManager.default.createDirectory(atPath: h.root + "/usr-local-bin", withIntermediateDirectories: true)
        symlink(root + "/bin/terraform", h.root + "/usr-local-bin/terraform")
        let path = [h.root + "/usr-local-bin", "/usr/bin"]
        let global = resolved(h.resolver(path: path).resolve("terraform"))
        #expect(global?.binary == root + "/versions/1.6.0/terraform")
        #expect(global?.via == "tfenv 1.6.0")
        #expect(global?.runtime == [root + "/versions/1.6.0"])
        try write(h.workspace + "/.terraform-version", "v1.5.7\n")
        #expect(resolved(h.resolver(path: path).resolve("terraform"))?.via == "tfenv 1.5.7")
        #expect(resolved(h.resolver(path: path, ["TFENV_TERRAFORM_VERSION": "1.6.0"]).resolve("terraform"))?.via == "tfenv 1.6.0")
        // Versions tfenv chooses anew at each run are refused, with what to do.
        for value in ["latest", "latest:^1.5", "min-required"] {
            try write(h.workspace + "/.terraform-version", value + "\n")
            let refused = failure(h.resolver(path: path).resolve("terraform"))
            #expect(refused?.why.contains("chosen anew") == true && refused?.fix.contains("tfenv use") == true, "\(value): \(String(describing: refused))")
        }
        try write(h.workspace + "/.terraform-version", "1.9.9\n")
        let absent = failure(h.resolver(path: path).resolve("terraform"))
        #expect(absent?.why.contains("1.9.9") == true && absent?.fix == "run `tfenv install 1.9.9`", "\(String(describing: absent))")
    }

    @Test func asdfReadsToolVersions() throws {
        let h = try home()
        let data = h.home + "/.asdf"
        try write(data + "/shims/terraform", """
            #!/usr/bin/env bash
            # asdf-plugin: terraform 1.5.7
            # asdf-plugin: terraform 1.6.0
            exec \(data)/bin/asdf exec "terraform" "$@" # asdf_allow: ' asdf '
            """, mode: 0o755)
        for version in ["1.5.7", "1.6.0"] { try script(data + "/installs/terraform/\(version)/bin/terraform") }
        try write(h.home + "/.tool-versions", "python 3.11.7\nterraform 1.6.0\n")
        let path = [data + "/shims", "/usr/bin"]
        let global = resolved(h.resolver(path: path).resolve("terraform"))
        #expect(global?.binary == data + "/installs/terraform/1.6.0/bin/terraform")
        #expect(global?.via == "asdf terraform 1.6.0")
        #expect(global?.runtime == [data + "/installs/terraform/1.6.0"])
        try write(h.workspace + "/.tool-versions", "terraform 2.0.0 1.5.7\n")
        #expect(resolved(h.resolver(path: path).resolve("terraform"))?.via == "asdf terraform 1.5.7")
        #expect(resolved(h.resolver(path: path, ["ASDF_TERRAFORM_VERSION": "1.6.0"]).resolve("terraform"))?.via == "asdf terraform 1.6.0")
        try write(h.workspace + "/.tool-versions", "terraform 2.0.0\n")
        #expect(failure(h.resolver(path: path).resolve("terraform"))?.fix == "run `asdf install`")
        // `path:DIR` names any directory, from a file the agent may have written: refused.
        try write(h.workspace + "/.tool-versions", "terraform path:\(h.home)\n")
        #expect(failure(h.resolver(path: path).resolve("terraform"))?.why.contains("path:") == true)
    }

    @Test func miseShimsAreRefusedWithWhatToDo() throws {
        let h = try home()
        try write(h.root + "/bin/mise", "\u{7F}ELF not really", mode: 0o755)
        try FileManager.default.createDirectory(atPath: h.home + "/.local/share/mise/shims", withIntermediateDirectories: true)
        symlink(h.root + "/bin/mise", h.home + "/.local/share/mise/shims/terraform")
        let refused = failure(h.resolver(path: [h.home + "/.local/share/mise/shims"]).resolve("terraform"))
        #expect(refused?.fix.contains("mise activate") == true, "\(String(describing: refused))")
    }

    @Test func pipxVenvIsTheRuntime() throws {
        let h = try home()
        let venv = h.home + "/.local/share/pipx/venvs/awscli"
        try FileManager.default.createDirectory(atPath: venv + "/bin", withIntermediateDirectories: true)
        try write(venv + "/pyvenv.cfg", "home = /usr/bin\n")
        symlink("/usr/bin/python3", venv + "/bin/python")
        try script(venv + "/bin/aws", interpreter: venv + "/bin/python")
        try FileManager.default.createDirectory(atPath: h.home + "/.local/bin", withIntermediateDirectories: true)
        symlink(venv + "/bin/aws", h.home + "/.local/bin/aws")
        let resolution = resolved(h.resolver(path: [h.home + "/.local/bin", "/usr/bin"]).resolve("aws"))
        #expect(resolution?.binary == venv + "/bin/aws")
        #expect(resolution?.via == "pipx")
        #expect(resolution?.runtime == [venv])
    }

    @Test func runtimesThatExposeTheHomeOrCredentialsAreRefused() throws {
        let h = try home()
        // An "installation" that is the home itself (~/bin/python with ~/lib).
        try write(h.home + "/bin/python3", "x", mode: 0o755)
        try FileManager.default.createDirectory(atPath: h.home + "/lib", withIntermediateDirectories: true)
        try script(h.home + "/tools/aws", interpreter: h.home + "/bin/python3")
        let whole = failure(h.resolver(path: [h.home + "/tools"]).resolve("aws"))
        #expect(whole?.why.contains("whole home") == true, "\(String(describing: whole))")
        // A venv inside a credential directory.
        let venv = h.home + "/.aws/venv"
        try FileManager.default.createDirectory(atPath: venv + "/bin", withIntermediateDirectories: true)
        try write(venv + "/pyvenv.cfg", "home = /usr/bin\n")
        symlink("/usr/bin/python3", venv + "/bin/python")
        try script(h.home + "/other/aws", interpreter: venv + "/bin/python")
        let credential = failure(h.resolver(path: [h.home + "/other"]).resolve("aws"))
        #expect(credential?.why.contains(".aws") == true, "\(String(describing: credential))")
        // `#!/usr/bin/env python3` with a python3 of the home first in PATH: inside, env would
        // find the system's.
        try write(h.home + "/py/bin/python3", "x", mode: 0o755)
        try script(h.home + "/envtool/aws", interpreter: "/usr/bin/env python3")
        let env = failure(h.resolver(path: [h.home + "/envtool", h.home + "/py/bin", "/usr/bin"]).resolve("aws"))
        #expect(env?.why.contains("env python3") == true, "\(String(describing: env))")
        // With the system's python3 first, it is fine.
        #expect(resolved(h.resolver(path: [h.home + "/envtool", "/usr/bin"]).resolve("aws"))?.runtime == [])
    }

    /// What an execution runs: the pinned path, if its bytes are the pinned ones; never a
    /// shim (which would choose again); its version directory found from the path alone.
    @Test func aPinnedProgramRunsOnlyUnchanged() throws {
        let h = try home()
        let program = h.home + "/.tfenv/versions/1.5.7/terraform"
        try script(program, body: "echo Terraform v1.5.7")
        let profile = ToolProfile(tool: "terraform", source: "test")
        let environment = ["HOME": h.home, "PATH": "/usr/bin:/bin"]
        let state = h.root + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let first = try InterceptedTool.pinned(profile, text: "", binary: program, digest: nil, environment: environment, stateDir: state)
        #expect(first.runtime == [h.home + "/.tfenv/versions/1.5.7"])
        #expect(try InterceptedTool.pinned(profile, text: "", binary: program, digest: first.digest, environment: environment, stateDir: state).binary == program)
        // Changed after it was pinned (the cache keyed by the file's times does not hide it).
        try script(program, body: "echo something else")
        #expect(throws: AirlockError.self) {
            try InterceptedTool.pinned(profile, text: "", binary: program, digest: first.digest, environment: environment, stateDir: state)
        }
        do {
            _ = try InterceptedTool.pinned(profile, text: "", binary: program, digest: first.digest, environment: environment, stateDir: state)
        } catch {
            #expect(error.message.contains("changed since it was pinned"), "\(error.message)")
        }
        // Not absolute, gone, or a shim: refused.
        for bad in ["terraform", h.home + "/.tfenv/versions/9.9.9/terraform"] {
            #expect(throws: AirlockError.self) { try InterceptedTool.pinned(profile, text: "", binary: bad, digest: nil, environment: environment, stateDir: state) }
        }
        let root = try pyenv(h, versions: ["3.11.7"], global: "3.11.7")
        #expect(throws: AirlockError.self) {
            try InterceptedTool.pinned(profile, text: "", binary: root + "/shims/aws", digest: nil, environment: environment, stateDir: state)
        }
    }

    @Test func elfInterpreterIsRead() {
        #expect(ELFInterpreter.of("/bin/true")?.hasPrefix("/lib") == true)
        #expect(ELFInterpreter.of("/etc/passwd") == nil)
    }
}
