/// The rlimits a profile may set, applied to the agent as both soft and hard limit (so the
/// agent cannot raise them back).
public enum ResourceLimit: String, CaseIterable, Sendable, Comparable {
    case addressSpace = "as"
    case core
    case cpu
    case data
    case fsize
    case memlock
    case nofile
    case nproc
    case stack

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// Whether values are byte sizes (`8GiB`) rather than counts or seconds.
    public var isSize: Bool {
        switch self {
        case .addressSpace, .core, .data, .fsize, .memlock, .stack: return true
        case .cpu, .nofile, .nproc: return false
        }
    }

    public var meaning: String {
        switch self {
        case .addressSpace: return "virtual memory per process"
        case .core: return "core dump size"
        case .cpu: return "CPU seconds per process"
        case .data: return "data segment per process"
        case .fsize: return "largest file a process may write"
        case .memlock: return "locked memory"
        case .nofile: return "open files per process"
        case .nproc: return "processes in the sandbox"
        case .stack: return "stack size"
        }
    }

    /// Defaults that stop a fork bomb (nproc) and a runaway file (fsize) while leaving room
    /// for real builds; everything else is left as the launcher has it.
    public static let defaults: [ResourceLimit: LimitValue] = [
        .nproc: .limited(1024),
        .fsize: .limited(8 << 30),
        .core: .limited(0),
    ]
}

public enum LimitValue: Sendable, Equatable, CustomStringConvertible {
    case limited(UInt64)
    case unlimited

    /// Orders values by permissiveness: `unlimited` is the loosest.
    public func isLooser(than other: LimitValue) -> Bool {
        switch (self, other) {
        case (.unlimited, .unlimited): return false
        case (.unlimited, .limited): return true
        case (.limited, .unlimited): return false
        case let (.limited(a), .limited(b)): return a > b
        }
    }

    public var description: String {
        switch self {
        case .unlimited: return "unlimited"
        case .limited(let value): return String(value)
        }
    }

    public func formatted(for limit: ResourceLimit) -> String {
        switch self {
        case .unlimited: return "unlimited"
        case .limited(let value): return limit.isSize ? ByteSize.format(value) : String(value)
        }
    }
}
