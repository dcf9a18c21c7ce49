import Foundation
import Testing

/// A human's home laid out as version managers leave it, for ToolHomeTests. The programs are
/// real: a whole Python installation copied from the system's (interpreter, standard library,
/// lib-dynload: what `pyenv install` builds, without compiling one), the aws CLI's packages
/// copied into it from the test venv, terraform copied from the machine. The managers' own
/// scripts are stand-ins written here (pyenv's `libexec/pyenv exec`, tfenv's `tfenv-exec`,
/// asdf's `asdf exec`): they select a version by the same files and variables the real ones
/// read, so the home also works from the human's shell outside the sandbox (the tests check),
/// and Airlock must never run them.
struct HumanHome {
    let scene: Scene
    var home: String { scene.home }

    /// Packages `import awscli` and `aws s3` need, as top-level names in site-packages.
    static let awsPackages = ["awscli", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "docutils", "yaml", "_yaml",
                              "colorama", "rsa", "pyasn1", "six.py"]

    /// The system's Python: its version ("3.11.2") and the `python3.X` name.
    static let python: (version: String, name: String) = {
        let out = runProcess("/usr/bin/python3", ["-c", "import platform, sys; print(platform.python_version(), 'python%d.%d' % sys.version_info[:2])"],
                             environment: ["PATH": "/usr/bin:/bin"], directory: "/", timeout: 30)
        let words = out.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        return words.count == 2 ? (words[0], words[1]) : ("3", "python3")
    }()

    /// terraform's own version string ("1.11.4").
    static let terraformVersion: String = {
        guard let binary = Terraform.binary else { return "" }
        let out = runProcess(binary, ["version", "-json"], environment: ["PATH": "/usr/bin:/bin", "CHECKPOINT_DISABLE": "1", "HOME": "/nonexistent"],
                             directory: "/", timeout: 30)
        let json = try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
        return json?["terraform_version"] as? String ?? ""
    }()

    func copy(_ source: String, _ target: String) {
        try? FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let out = runProcess("/bin/cp", ["-a", source, target], environment: ["PATH": "/usr/bin:/bin"], directory: "/", timeout: 120)
        if out.status != 0 { Issue.record("cp \(source) \(target): \(out)") }
    }

    func write(_ path: String, _ text: String, mode: mode_t = 0o644) { scene.write(path, text, mode: mode) }

    func link(_ target: String, at path: String) {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        symlink(target, path)
    }

    /// The aws CLI's script with its interpreter line pointing at `python`, as pip writes it.
    func awsScript(at path: String, python: String) {
        let venvScript = (try? String(contentsOfFile: PythonTools.aws, encoding: .utf8)) ?? ""
        let body = venvScript.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first.map(String.init) ?? ""
        write(path, "#!\(python)\n" + body, mode: 0o755)
    }

    func copyAWSPackages(into siteDirectory: String) {
        let source = PythonTools.venv + "/lib/" + Self.python.name + "/site-packages/"
        for name in Self.awsPackages where FileManager.default.fileExists(atPath: source + name) {
            copy(source + name, siteDirectory + "/" + name)
        }
    }

    /// Planted in the home, outside every tool's tree: nothing inside may read them.
    static let canaries = ["HOME-NOTES-CANARY", "PYENV-ROOT-CANARY", "TFENV-ROOT-CANARY", "ASDF-ROOT-CANARY", "PIPX-ROOT-CANARY"]

    func plantCanaries() {
        write(home + "/notes.txt", "HOME-NOTES-CANARY\n")
        write(home + "/.aws/credentials", "[default]\naws_secret_access_key = HOME-NOTES-CANARY\n", mode: 0o600)
    }

    var canaryPaths: [String] {
        [home + "/notes.txt", home + "/.aws/credentials", home + "/.pyenv/canary", home + "/.pyenv/version", home + "/.tfenv/canary",
         home + "/.tfenv/version", home + "/.asdf/canary", home + "/.local/share/pipx/canary", home + "/.tool-versions"]
    }

    // MARK: pyenv

    var pyenvRoot: String { home + "/.pyenv" }
    var pyenvPrefix: String { pyenvRoot + "/versions/" + Self.python.version }

    /// `~/.pyenv/versions/X.Y.Z`: the interpreter, the standard library, the aws CLI in its
    /// site directory; `~/.pyenv/shims/aws` as pyenv writes shims; `~/.pyenv/version`.
    func layOutPyenv() {
        let prefix = pyenvPrefix
        copy("/usr/bin/" + Self.python.name, prefix + "/bin/" + Self.python.name)
        link(Self.python.name, at: prefix + "/bin/python3")
        copy("/usr/lib/" + Self.python.name, prefix + "/lib/" + Self.python.name)
        // Where this interpreter looks for packages (Debian's build: lib/pythonX.Y/dist-packages;
        // one built by pyenv: site-packages): asked of the copy itself.
        let asked = runProcess(prefix + "/bin/" + Self.python.name, ["-c", "import site; print(site.getsitepackages()[-1])"],
                               environment: ["PATH": "/usr/bin:/bin"], directory: "/", timeout: 30)
        let site = asked.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(site.hasPrefix(prefix + "/"), "the copied interpreter's site directory: \(asked)")
        copyAWSPackages(into: site)
        awsScript(at: prefix + "/bin/aws", python: prefix + "/bin/" + Self.python.name)
        write(pyenvRoot + "/shims/aws", """
            #!/usr/bin/env bash
            set -e
            [ -n "$PYENV_DEBUG" ] && set -x

            program="${0##*/}"

            export PYENV_ROOT="\(pyenvRoot)"
            exec "\(pyenvRoot)/libexec/pyenv" exec "$program" "$@"

            """, mode: 0o755)
        // Stand-in for pyenv's `pyenv exec`: the version from PYENV_VERSION, .python-version
        // here or above, or $PYENV_ROOT/version.
        write(pyenvRoot + "/libexec/pyenv", """
            #!/usr/bin/env bash
            set -e
            [ "$1" = exec ] || { echo "pyenv (test stand-in): only exec" >&2; exit 1; }
            program=$2; shift 2
            version=${PYENV_VERSION:-}
            dir=$PWD
            while [ -z "$version" ] && [ -n "$dir" ]; do
              [ -f "$dir/.python-version" ] && version=$(head -n1 "$dir/.python-version")
              dir=${dir%/*}
            done
            [ -n "$version" ] || version=$(head -n1 "$PYENV_ROOT/version")
            exec "$PYENV_ROOT/versions/$version/bin/$program" "$@"

            """, mode: 0o755)
        write(pyenvRoot + "/version", Self.python.version + "\n")
        write(pyenvRoot + "/canary", "PYENV-ROOT-CANARY\n")
    }

    // MARK: tfenv

    /// A terraform 1.0.0 that says it is the decoy and leaves a mark where it ran.
    static let decoy = """
        #!/bin/sh
        echo "Terraform v1.0.0 (the decoy: not the pinned terraform)"
        touch "$PWD/DECOY-TERRAFORM-RAN" 2>/dev/null
        exit 1

        """

    var tfenvRoot: String { home + "/.tfenv" }

    /// `~/.tfenv/bin/terraform` (the wrapper), `libexec/tfenv-exec`, the machine's terraform as
    /// its own version, and a decoy 1.0.0 that says so and leaves a mark.
    func layOutTfenv() {
        guard let terraform = Terraform.binary else { return }
        copy(terraform, tfenvRoot + "/versions/" + Self.terraformVersion + "/terraform")
        write(tfenvRoot + "/versions/1.0.0/terraform", Self.decoy, mode: 0o755)
        write(tfenvRoot + "/bin/terraform", """
            #!/usr/bin/env bash
            set -uo pipefail
            TFENV_ROOT="${TFENV_ROOT:-$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)}"
            export TFENV_ROOT
            exec "${TFENV_ROOT}/libexec/tfenv-exec" "$@"

            """, mode: 0o755)
        // Stand-in for tfenv-exec: TFENV_TERRAFORM_VERSION, .terraform-version here or above,
        // then in the home, then $TFENV_ROOT/version.
        write(tfenvRoot + "/libexec/tfenv-exec", """
            #!/usr/bin/env bash
            set -e
            version=${TFENV_TERRAFORM_VERSION:-}
            for start in "$PWD" "$HOME"; do
              dir=$start
              while [ -z "$version" ] && [ -n "$dir" ]; do
                [ -f "$dir/.terraform-version" ] && version=$(head -n1 "$dir/.terraform-version")
                dir=${dir%/*}
              done
            done
            [ -n "$version" ] || version=$(head -n1 "$TFENV_ROOT/version")
            exec "$TFENV_ROOT/versions/${version#v}/terraform" "$@"

            """, mode: 0o755)
        write(tfenvRoot + "/version", Self.terraformVersion + "\n")
        write(tfenvRoot + "/canary", "TFENV-ROOT-CANARY\n")
    }

    // MARK: pipx

    var pipxVenv: String { home + "/.local/share/pipx/venvs/awscli" }

    /// `pipx install awscli`: a venv of the system's Python under ~/.local/share/pipx, the
    /// command linked from ~/.local/bin.
    func layOutPipx() {
        let made = runProcess("/usr/bin/python3", ["-m", "venv", "--without-pip", pipxVenv], environment: ["PATH": "/usr/bin:/bin"],
                              directory: "/", timeout: 60)
        #expect(made.status == 0, "\(made)")
        copyAWSPackages(into: pipxVenv + "/lib/" + Self.python.name + "/site-packages")
        awsScript(at: pipxVenv + "/bin/aws", python: pipxVenv + "/bin/python")
        link(pipxVenv + "/bin/aws", at: home + "/.local/bin/aws")
        write(home + "/.local/share/pipx/canary", "PIPX-ROOT-CANARY\n")
    }

    // MARK: asdf

    var asdfData: String { home + "/.asdf" }

    /// asdf's shim for terraform (its `# asdf-plugin:` lines), `installs/terraform/VERSION`,
    /// the decoy 1.0.0, and a stand-in `asdf exec` reading .tool-versions.
    func layOutAsdf() {
        guard let terraform = Terraform.binary else { return }
        let version = Self.terraformVersion
        copy(terraform, asdfData + "/installs/terraform/\(version)/bin/terraform")
        write(asdfData + "/installs/terraform/1.0.0/bin/terraform", Self.decoy, mode: 0o755)
        write(asdfData + "/shims/terraform", """
            #!/usr/bin/env bash
            # asdf-plugin: terraform \(version)
            # asdf-plugin: terraform 1.0.0
            exec \(asdfData)/bin/asdf exec "terraform" "$@" # asdf_allow: ' asdf '

            """, mode: 0o755)
        write(asdfData + "/bin/asdf", """
            #!/usr/bin/env bash
            set -e
            [ "$1" = exec ] || { echo "asdf (test stand-in): only exec" >&2; exit 1; }
            program=$2; shift 2
            dir=$PWD
            version=
            while [ -z "$version" ] && [ -n "$dir" ]; do
              [ -f "$dir/.tool-versions" ] && version=$(awk -v p="$program" '$1 == p { print $2 }' "$dir/.tool-versions")
              dir=${dir%/*}
            done
            [ -n "$version" ] || version=$(awk -v p="$program" '$1 == p { print $2 }' "$HOME/.tool-versions")
            exec "\(asdfData)/installs/$program/$version/bin/$program" "$@"

            """, mode: 0o755)
        write(home + "/.tool-versions", "terraform \(version)\n")
        write(asdfData + "/canary", "ASDF-ROOT-CANARY\n")
    }
}
