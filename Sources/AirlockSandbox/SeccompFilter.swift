import AirlockCore
import CAirlockLinux
import CSeccomp
import Glibc

/// The sandbox's seccomp policy (docs/design.md §3): a deny list on top of namespaces and dropped
/// capabilities, for the kernel interfaces that are the usual way out of a container or the
/// usual way into another process. Built in the launcher with libseccomp and loaded by the
/// child as its last step before exec; non-native architectures (int 0x80, x32) are killed.
public enum SeccompPolicy {
    public struct Rule: Sendable {
        public var syscall: String
        public var errno: Int32
        /// Conditions on arguments, all of which must hold (at most one per argument:
        /// libseccomp refuses two comparisons of the same argument in one rule).
        public var conditions: [Condition] = []
    }

    public enum Condition: Sendable {
        /// (argument & mask) == value
        case maskedEquals(argument: UInt32, mask: UInt64, value: UInt64)
        /// argument != value (all 64 bits)
        case notEquals(argument: UInt32, value: UInt64)
        /// argument == value (all 64 bits)
        case equals(argument: UInt32, value: UInt64)
        /// argument > value (all 64 bits, unsigned)
        case greaterThan(argument: UInt32, value: UInt64)
    }

    /// Refused outright: process inspection, mounts and namespaces, kernel keyrings, eBPF,
    /// perf, userfaultfd (a kernel-exploit staple), io_uring (bypasses seccomp for its ops),
    /// module and kexec loading, and host-wide administration.
    public static let refused: [String] = [
        "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd",
        "mount", "umount", "umount2", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
        "fspick", "mount_setattr", "pivot_root", "chroot", "unshare", "setns",
        "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
        "io_uring_setup", "io_uring_enter", "io_uring_register",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "create_module", "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl",
        "quotactl_fd", "lookup_dcookie", "vhangup", "nfsservctl", "uselib", "iopl", "ioperm",
        "open_by_handle_at", "name_to_handle_at", "fanotify_init",
        "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    ]

    static let namespaceFlags: [UInt64] = [
        0x0002_0000,  // CLONE_NEWNS
        0x0200_0000,  // CLONE_NEWCGROUP
        0x0400_0000,  // CLONE_NEWUTS
        0x0800_0000,  // CLONE_NEWIPC
        0x1000_0000,  // CLONE_NEWUSER
        0x2000_0000,  // CLONE_NEWPID
        0x4000_0000,  // CLONE_NEWNET
        0x0000_0080,  // CLONE_NEWTIME
    ]

    /// Socket families the agent may create: unix, IPv4, IPv6 (only loopback exists) and
    /// netlink (interface queries). Everything else (packet, vsock, bluetooth, …) is refused.
    public static let allowedSocketFamilies: Set<UInt64> = [1, 2, 10, 16]

    public static var rules: [Rule] {
        var rules = refused.map { Rule(syscall: $0, errno: EPERM) }
        // clone with any namespace flag; clone3 hides its flags behind a pointer, so it is
        // answered ENOSYS, which makes glibc fall back to clone (EPERM would break threads).
        rules += namespaceFlags.map {
            Rule(syscall: "clone", errno: EPERM, conditions: [.maskedEquals(argument: 0, mask: $0, value: $0)])
        }
        rules.append(Rule(syscall: "clone3", errno: ENOSYS))
        // The kernel reads ioctl's request and socket's family as 32-bit ints: a value with
        // high bits set must not slip past an exact comparison (CVE-2019-10063). ioctl's
        // request is masked; socket families with high bits set are refused outright.
        for request: UInt64 in [0x5412 /* TIOCSTI */, 0x541C /* TIOCLINUX */] {
            rules.append(Rule(syscall: "ioctl", errno: EPERM,
                              conditions: [.maskedEquals(argument: 1, mask: 0xFFFF_FFFF, value: request)]))
        }
        for call in ["socket", "socketpair"] {
            // Anything above AF_NETLINK (16), and anything with high bits set, is refused in
            // one comparison; the few low families not allowed are listed.
            rules.append(Rule(syscall: call, errno: EPERM, conditions: [.greaterThan(argument: 0, value: 16)]))
            for family: UInt64 in 0...16 where !allowedSocketFamilies.contains(family) {
                rules.append(Rule(syscall: call, errno: EPERM, conditions: [.equals(argument: 0, value: family)]))
            }
        }
        // personality: only the default (PER_LINUX, 0). READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE
        // and friends weaken exploit mitigations. (The 0xffffffff query is refused too.)
        rules.append(Rule(syscall: "personality", errno: EPERM, conditions: [.notEquals(argument: 0, value: 0)]))
        return rules
    }
}

/// A compiled seccomp program (classic BPF), ready for `PR_SET_SECCOMP`.
public final class SeccompProgram: @unchecked Sendable {
    public let instructions: UnsafeMutablePointer<sock_filter>
    public let count: Int
    public let program: UnsafeMutablePointer<sock_fprog>
    /// Rules naming syscalls this architecture does not have (skipped, harmlessly).
    public let unknownSyscalls: [String]

    public static func build(_ rules: [SeccompPolicy.Rule] = SeccompPolicy.rules) throws(AirlockError) -> SeccompProgram {
        guard let context = seccomp_init(SCMP_ACT_ALLOW) else {
            throw AirlockError("libseccomp could not create a filter", hint: "is libseccomp installed? apt-get install libseccomp2")
        }
        defer { seccomp_release(context) }
        // Any other architecture (the i386 int 0x80 entry, x32) is killed, not allowed.
        seccomp_attr_set(context, SCMP_FLTATR_ACT_BADARCH, UInt32(0x8000_0000) /* KILL_PROCESS */)
        var unknown: [String] = []
        for rule in rules {
            let number = seccomp_syscall_resolve_name(rule.syscall)
            if number == __NR_SCMP_ERROR {
                unknown.append(rule.syscall)
                continue
            }
            let action = UInt32(0x0005_0000) | UInt32(rule.errno & 0xFFFF)  // SCMP_ACT_ERRNO
            var comparisons = rule.conditions.map { condition -> scmp_arg_cmp in
                switch condition {
                case let .maskedEquals(argument, mask, value):
                    return scmp_arg_cmp(arg: argument, op: SCMP_CMP_MASKED_EQ, datum_a: mask, datum_b: value)
                case let .notEquals(argument, value):
                    return scmp_arg_cmp(arg: argument, op: SCMP_CMP_NE, datum_a: value, datum_b: 0)
                case let .equals(argument, value):
                    return scmp_arg_cmp(arg: argument, op: SCMP_CMP_EQ, datum_a: value, datum_b: 0)
                case let .greaterThan(argument, value):
                    return scmp_arg_cmp(arg: argument, op: SCMP_CMP_GT, datum_a: value, datum_b: 0)
                }
            }
            let rc = seccomp_rule_add_array(context, action, number, UInt32(comparisons.count), &comparisons)
            if rc != 0 {
                throw AirlockError("libseccomp refused the rule for \(rule.syscall): \(String(cString: strerror(-rc)))")
            }
        }
        // libseccomp 2.5 exports to a descriptor only: a memfd keeps it in memory.
        let fd = al_memfd("airlock-seccomp")
        guard fd >= 0 else { throw AirlockError("memfd_create failed: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let rc = seccomp_export_bpf(context, fd)
        guard rc == 0 else { throw AirlockError("libseccomp could not export the filter: \(String(cString: strerror(-rc)))") }
        let size = Int(lseek(fd, 0, SEEK_END))
        lseek(fd, 0, SEEK_SET)
        let count = size / MemoryLayout<sock_filter>.stride
        let instructions = UnsafeMutablePointer<sock_filter>.allocate(capacity: max(count, 1))
        let read = pread(fd, instructions, size, 0)
        guard read == size, count > 0 else {
            instructions.deallocate()
            throw AirlockError("could not read the exported seccomp filter")
        }
        return SeccompProgram(instructions: instructions, count: count, unknown: unknown)
    }

    private init(instructions: UnsafeMutablePointer<sock_filter>, count: Int, unknown: [String]) {
        self.instructions = instructions
        self.count = count
        self.unknownSyscalls = unknown
        self.program = .allocate(capacity: 1)
        program.initialize(to: sock_fprog(len: UInt16(count), filter: instructions))
    }

    deinit {
        program.deallocate()
        instructions.deallocate()
    }
}
