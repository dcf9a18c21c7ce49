import Foundation
import Testing

/// Who starts `airlock run` in a test: root (the agent is then mapped to an unprivileged host
/// uid) or an ordinary user (unprivileged user namespaces).
enum Launch: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case root
    case unprivileged

    var testDescription: String { rawValue }

    /// The unprivileged identity: ourselves when not root, else the test user
    /// (`AIRLOCK_TEST_USER`, default `airlock-test`; scripts/test creates it).
    static let user: (name: String, uid: uid_t, gid: gid_t)? = {
        if getuid() != 0 { return (String(cString: getpwuid(getuid()).pointee.pw_name), getuid(), getgid()) }
        let name = ProcessInfo.processInfo.environment["AIRLOCK_TEST_USER"] ?? "airlock-test"
        guard let entry = getpwnam(name) else { return nil }
        return (name, entry.pointee.pw_uid, entry.pointee.pw_gid)
    }()

    /// Whether this machine can run the case; when it cannot, the test fails saying why.
    func available() -> Bool {
        let ok: Bool
        let reason: String
        switch self {
        case .root:
            ok = getuid() == 0
            reason = "root launches need the tests to run as root"
        case .unprivileged:
            ok = Launch.user != nil
            reason = "no unprivileged test user: run `useradd -m airlock-test` (scripts/test does) or set AIRLOCK_TEST_USER"
        }
        // Never a silent skip: a case this machine cannot run is a failure that says why.
        if !ok { Issue.record("cannot run the \(rawValue) case: \(reason)") }
        return ok
    }

    /// Whether this machine can launch at all (as root, or as the unprivileged test user);
    /// fails the test when it cannot.
    static func anyAvailable() -> Bool {
        if getuid() == 0 || Launch.user != nil { return true }
        Issue.record("cannot launch a sandbox: neither root nor an unprivileged test user is available")
        return false
    }

    var uid: uid_t { self == .root ? 0 : Launch.user!.uid }
    var gid: gid_t { self == .root ? 0 : Launch.user!.gid }

    /// The host uid the agent runs as.
    var agentHostUID: uid_t { self == .root ? 100_000 : Launch.user!.uid }
}

struct Outcome: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

/// Binaries and profiles staged where any user can run them (the checkout may be in /root).
enum Stage {
    static let repoRoot: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }()

    static let directory: String = {
        let fm = FileManager.default
        let binDir = ProcessInfo.processInfo.environment["AIRLOCK_BIN_DIR"] ?? repoRoot + "/.build/debug"
        let stage = makeTemporaryDirectory(prefix: "airlock-stage")
        for name in ["airlock", "airlock-try-syscall"] {
            let source = binDir + "/" + name
            precondition(fm.fileExists(atPath: source), "\(source) is missing: run `swift build` first")
            try! fm.copyItem(atPath: source, toPath: stage + "/" + name)
        }
        try! fm.copyItem(atPath: repoRoot + "/profiles", toPath: stage + "/profiles")
        chmodRecursive(stage, dirMode: 0o755, fileMode: 0o755)
        return stage
    }()

    static var airlock: String { directory + "/airlock" }
    static var trySyscall: String { directory + "/airlock-try-syscall" }

    static func chmodRecursive(_ path: String, dirMode: mode_t, fileMode: mode_t) {
        chmod(path, dirMode)
        guard let children = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
        for child in children {
            var isDir: ObjCBool = false
            let full = path + "/" + child
            _ = FileManager.default.fileExists(atPath: full, isDirectory: &isDir)
            if isDir.boolValue { chmodRecursive(full, dirMode: dirMode, fileMode: fileMode) } else { chmod(full, fileMode) }
        }
    }
}

/// A new folder under TMPDIR (scripts/test points it at one folder per run, removed at its end;
/// docs/building.md), or /tmp.
func makeTemporaryDirectory(prefix: String) -> String {
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    chmod(path, 0o755)
    return path
}

/// One test's world: a workspace, a fake home for the launcher (with planted credentials)
/// and a state directory, all owned by the launching identity.
struct Scene {
    let launch: Launch
    let root: String
    var workspace: String
    let home: String
    let stateDir: String

    init(_ launch: Launch) {
        self.launch = launch
        root = makeTemporaryDirectory(prefix: "airlock-test")
        workspace = root + "/workspace"
        home = root + "/home"
        stateDir = root + "/state"
        for dir in [workspace, home, stateDir] { mkdir(dir, 0o755) }
        chownTree()
    }

    /// Removes the scene's folder: for a test whose home holds large copies (ToolHomeTests'
    /// version managers), so a run's disk use stays low; the rest go with the run's folder.
    func remove() {
        _ = runProcess("/bin/rm", ["-rf", root], environment: ["PATH": "/usr/bin:/bin"], directory: "/", timeout: 120)
    }

    /// Writes a file (creating parents), owned by the launching identity.
    func write(_ path: String, _ contents: String, mode: mode_t = 0o644) {
        let dir = String(path[..<path.lastIndex(of: "/")!])
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: path, contents: Data(contents.utf8))
        chmod(path, mode)
        chownTree()
    }

    /// Gives the scene's files to the launching identity; the agents' persistent homes are
    /// theirs (a root launch's belong to the agent's host uid) and are left alone.
    func chownTree() {
        let homes = stateDir + "/homes"
        for path in [root] + ((FileManager.default.enumerator(atPath: root)?.allObjects as? [String]) ?? []).map({ root + "/" + $0 })
        where !(path == homes || path.hasPrefix(homes + "/")) {
            lchown(path, launch.uid, launch.gid)
        }
    }

    /// Plants credentials where a careless sandbox would expose them.
    func plantCredentials() {
        write(home + "/.aws/credentials", "[default]\naws_secret_access_key = PLANTED-AWS-SECRET\n", mode: 0o600)
        write(home + "/.ssh/id_rsa", "PLANTED-SSH-KEY\n", mode: 0o600)
        write(home + "/.kube/config", "PLANTED-KUBE\n", mode: 0o600)
        write(stateDir + "/planted-state", "PLANTED-STATE\n", mode: 0o600)
    }

    /// The launcher's environment: a few planted test dummies shaped like credentials (none is
    /// real), to make sure they do not pass.
    var environment: [String: String] {
        [
            "HOME": home, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM": "xterm", "LANG": "C.UTF-8",
            "AIRLOCK_PROFILE_PATH": Stage.directory + "/profiles",
            "AWS_ACCESS_KEY_ID": "AKIDPLANTEDLAUNCHER", "AWS_SECRET_ACCESS_KEY": "PLANTED-ENV-SECRET",
            "GITHUB_TOKEN": "PLANTED-GITHUB-TOKEN", "SSH_AUTH_SOCK": "/tmp/planted.sock",
        ]
    }

    /// `airlock run [options] -- command…` as the scene's identity.
    func run(_ command: [String], options: [String] = [], stdin: String? = nil, timeout: Double = 60,
             extraEnvironment: [String: String] = [:], whileRunning: ((Int32) -> Void)? = nil) -> Outcome {
        var arguments = ["run", "--workspace", workspace, "--state-dir", stateDir] + options + ["--"] + command
        var executable = Stage.airlock
        if launch == .unprivileged && getuid() == 0 {
            arguments = ["--reuid=\(launch.uid)", "--regid=\(launch.gid)", "--clear-groups", "--", Stage.airlock] + arguments
            executable = "/usr/bin/setpriv"
        }
        return runProcess(executable, arguments, environment: environment.merging(extraEnvironment) { $1 },
                          directory: workspace, stdin: stdin, timeout: timeout, whileRunning: whileRunning)
    }

    /// A shell command in the sandbox.
    func sh(_ script: String, options: [String] = [], timeout: Double = 60) -> Outcome {
        run(["/bin/sh", "-c", script], options: options, timeout: timeout)
    }

    /// airlock-try-syscall NAME inside the sandbox; returns its report line.
    func attempt(_ name: String, _ arguments: String...) -> Outcome {
        let local = workspace + "/try-syscall"
        if !FileManager.default.fileExists(atPath: local) {
            try? FileManager.default.copyItem(atPath: Stage.trySyscall, toPath: local)
            chownTree()
        }
        return run([local, name] + arguments)
    }
}

func runProcess(_ executable: String, _ arguments: [String], environment: [String: String], directory: String,
                stdin: String? = nil, timeout: Double = 60, whileRunning: ((Int32) -> Void)? = nil) -> Outcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = environment
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
    let collected = Collected()
    // One blocking reader per pipe, each until EOF: a readabilityHandler can still be
    // holding bytes it read when the process is reaped, and those were lost (a launcher's
    // last message, seen once in CI).
    let readers = DispatchGroup()
    for (handle, isOut) in [(out.fileHandleForReading, true), (err.fileHandleForReading, false)] {
        readers.enter()
        Thread.detachNewThread {
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                if isOut { collected.append(stdout: data) } else { collected.append(stderr: data) }
            }
            readers.leave()
        }
    }
    do { try process.run() } catch {
        try? out.fileHandleForWriting.close()
        try? err.fileHandleForWriting.close()
        return Outcome(status: -1, stdout: "", stderr: "cannot start: \(error)")
    }
    if let stdin {
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try? input.fileHandleForWriting.close()
    }
    whileRunning?(process.processIdentifier)
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        _ = readers.wait(timeout: .now() + 5)
        return Outcome(status: -9, stdout: collected.stdout, stderr: collected.stderr + "\n[test harness: timed out after \(timeout)s]")
    }
    process.waitUntilExit()
    // Everything the process wrote, up to EOF (bounded: a stray grandchild may hold a pipe).
    if readers.wait(timeout: .now() + 10) == .timedOut {
        collected.append(stderr: Data("\n[test harness: output still open 10 s after exit]".utf8))
    }
    let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    return Outcome(status: status, stdout: collected.stdout, stderr: collected.stderr)
}

final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var out = Data(), err = Data()
    func append(stdout data: Data) { lock.lock(); out.append(data); lock.unlock() }
    func append(stderr data: Data) { lock.lock(); err.append(data); lock.unlock() }
    var stdout: String { lock.lock(); defer { lock.unlock() }; return String(decoding: out, as: UTF8.self) }
    var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }
}

/// Host processes whose command line contains `marker`.
func hostProcesses(containing marker: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { name in
        guard let pid = Int32(name), pid != getpid(),
              let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
        let cmdline = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return cmdline.contains(marker) ? pid : nil
    }
}

func uniqueMarker() -> String { "airlock\(UInt32.random(in: 100_000...999_999))" }
