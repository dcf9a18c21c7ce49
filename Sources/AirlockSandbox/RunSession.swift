import AirlockCore
import Glibc

/// One `airlock run`: start the sandbox, relay the terminal, forward signals, and return the
/// agent's exit code. Signals are blocked in every thread and taken by one sigwait thread,
/// so they are handled in ordinary code (never in a signal handler).
public enum RunSession {
    static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    /// Call first thing, before any thread exists, so every thread inherits the mask.
    public static func blockSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in forwardedSignals + [SIGWINCH] { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Runs the request to completion. `serve` runs as soon as the sandbox's listeners exist
    /// (the broker attaches to them there, while init finishes setting up).
    public static func run(_ request: LaunchRequest, environment: [String: String],
                           serve: (RunningSandbox) throws(AirlockError) -> Void = { _ throws(AirlockError) in }) throws(AirlockError) -> AgentExit {
        var request = request
        let interactive = isatty(0) == 1 && isatty(1) == 1
        let saved = interactive ? TerminalMode.makeRaw(0) : nil
        defer { if let saved { TerminalMode.restore(0, saved) } }
        if interactive {
            let size = TerminalMode.size(1)
            request.terminal = (size.rows, size.columns)
        }
        let target = SignalTarget(savedTerminal: saved)
        startSignalThread(target: target)
        let sandbox = try Launcher.start(request, environment: environment, onListeners: serve)
        target.set(sandbox)
        let relay = sandbox.terminal.map { TerminalRelay(master: $0) }
        relay?.start()
        let result = sandbox.wait()
        relay?.finish()
        return try result.get()
    }

    private static func startSignalThread(target: SignalTarget) {
        spawnThread {
            var set = sigset_t()
            sigemptyset(&set)
            for signal in forwardedSignals + [SIGWINCH] { sigaddset(&set, signal) }
            var interrupts = 0
            while true {
                var signal: Int32 = 0
                guard sigwait(&set, &signal) == 0 else { continue }
                guard let sandbox = target.sandbox else {
                    // Still setting up: nothing to forward to; stop here.
                    target.restoreTerminal()
                    if signal != SIGWINCH { _exit(128 + signal) }
                    continue
                }
                if signal == SIGWINCH {
                    if let master = sandbox.terminal { TerminalMode.copySize(from: 1, to: master) }
                    continue
                }
                if signal == SIGINT || signal == SIGTERM {
                    interrupts += 1
                    // An agent that ignores three requests to stop is stopped for it.
                    if interrupts >= 3 {
                        writeStderr("airlock: the agent ignored \(interrupts) signals; killing the sandbox\n")
                        sandbox.kill()
                        continue
                    }
                }
                sandbox.signal(signal)
            }
        }
    }
}

/// The sandbox signals go to, once it exists.
final class SignalTarget: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var current: RunningSandbox?
    private let savedTerminal: termios?

    init(savedTerminal: termios?) {
        self.savedTerminal = savedTerminal
        pthread_mutex_init(&mutex, nil)
    }

    func set(_ sandbox: RunningSandbox) {
        pthread_mutex_lock(&mutex)
        current = sandbox
        pthread_mutex_unlock(&mutex)
    }

    var sandbox: RunningSandbox? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return current
    }

    func restoreTerminal() {
        if let savedTerminal { TerminalMode.restore(0, savedTerminal) }
    }
}

func writeStderr(_ text: String) {
    text.withCString { _ = write(2, $0, strlen($0)) }
}

/// A value computed on another thread while the caller gets on with other work (the seccomp
/// filter compiles while profiles are read: start-up time matters).
public final class Background<T: Sendable>: @unchecked Sendable {
    private var result: T?
    private let done = Semaphore()

    public init(_ work: @escaping @Sendable () -> T) {
        spawnThread { [self] in
            result = work()
            done.signal()
        }
    }

    /// Waits for the value.
    public var value: T {
        done.wait()
        done.signal()  // later readers do not block
        return result!
    }
}

/// Starts a detached thread running `body`.
func spawnThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    pthread_detach(thread)
}
