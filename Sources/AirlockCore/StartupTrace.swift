import Glibc

/// `AIRLOCK_TRACE_STARTUP=1 airlock run …` prints `airlock-trace LABEL NANOSECONDS` (CLOCK_MONOTONIC)
/// to stderr at each step of a launch: `scripts/bench startup-trace` subtracts the time it
/// spawned the process to show where start-up goes. Off, a mark is one load and a branch.
public enum StartupTrace {
    public static let enabled = getenv("AIRLOCK_TRACE_STARTUP") != nil

    @inline(__always)
    public static func mark(_ label: StaticString) {
        guard enabled else { return }
        write(label)
    }

    static func write(_ label: StaticString) {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        let nanoseconds = Int(time.tv_sec) * 1_000_000_000 + Int(time.tv_nsec)
        let line = "airlock-trace \(label) \(nanoseconds)\n"
        line.withCString { _ = Glibc.write(2, $0, strlen($0)) }
    }
}
