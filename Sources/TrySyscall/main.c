// airlock-try-syscall: tries one thing a sandboxed agent must not be able to do, with harmless
// arguments, and prints what happened as `NAME: ok` or `NAME: EPERM (1)`. Exit status: 0 when
// the call succeeded, else the errno (or 2 for usage errors). Escape tests run it inside
// `airlock run` and assert the exact errno.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

static int report(const char *name, long rc) {
    if (rc >= 0) {
        printf("%s: ok\n", name);
        return 0;
    }
    int err = errno;
    const char *e = strerrorname_np(err);
    printf("%s: %s (%d)\n", name, e ? e : "?", err);
    return err;
}

static long try_clone3_newuser(void) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}

static long try_clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}

static long try_connect(const char *host, const char *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    return connect(fd, (struct sockaddr *)&addr, sizeof addr);
}

// A syscall through the 32-bit entry point (int 0x80): getpid is 20 there. The sandbox's
// filter kills the process for a non-native architecture, so this normally never returns.
static long try_int80(void) {
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    if (ret < 0) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
#else
    errno = ENOSYS;
    return -1;
#endif
}

// The x32 ABI shares the x86_64 architecture token; its syscall numbers carry bit 30.
static long try_x32(void) {
#if defined(__x86_64__)
    return syscall(0x40000000L | SYS_getpid);
#else
    errno = ENOSYS;
    return -1;
#endif
}

static long try_tiocsti(void) {
    char c = 'x';
    int fd = open("/dev/tty", O_RDWR);
    if (fd < 0) fd = 0;
    return ioctl(fd, TIOCSTI, &c);
}

// The kernel reads ioctl's request as 32 bits: a filter comparing all 64 would miss this.
static long try_tiocsti_high_bits(void) {
    char c = 'x';
    int fd = open("/dev/tty", O_RDWR);
    if (fd < 0) fd = 0;
    return syscall(SYS_ioctl, fd, 0x100000000UL | TIOCSTI, &c);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: airlock-try-syscall NAME [ARG...]\n");
        return 2;
    }
    const char *n = argv[1];
    const char *a1 = argc > 2 ? argv[2] : "1";
    const char *a2 = argc > 3 ? argv[3] : "0";
    long rc;
    if (!strcmp(n, "ptrace-attach")) rc = ptrace(PTRACE_ATTACH, (pid_t)atoi(a1), 0, 0);
    else if (!strcmp(n, "ptrace-traceme")) rc = ptrace(PTRACE_TRACEME, 0, 0, 0);
    else if (!strcmp(n, "process_vm_readv")) {
        char buf[8];
        struct iovec local = {buf, sizeof buf}, remote = {(void *)0x1000, sizeof buf};
        rc = process_vm_readv((pid_t)atoi(a1), &local, 1, &remote, 1, 0);
    } else if (!strcmp(n, "process_vm_writev")) {
        char buf[8] = {0};
        struct iovec local = {buf, sizeof buf}, remote = {(void *)0x1000, sizeof buf};
        rc = process_vm_writev((pid_t)atoi(a1), &local, 1, &remote, 1, 0);
    } else if (!strcmp(n, "mount")) rc = mount("none", "/tmp", "tmpfs", 0, NULL);
    else if (!strcmp(n, "umount2")) rc = umount2("/tmp", MNT_DETACH);
    else if (!strcmp(n, "open_tree")) rc = syscall(SYS_open_tree, AT_FDCWD, "/tmp", 1);
    else if (!strcmp(n, "move_mount")) rc = syscall(SYS_move_mount, -1, "", AT_FDCWD, "/tmp", 4);
    else if (!strcmp(n, "fsopen")) rc = syscall(SYS_fsopen, "tmpfs", 0);
    else if (!strcmp(n, "fsmount")) rc = syscall(SYS_fsmount, -1, 0, 0);
    else if (!strcmp(n, "fspick")) rc = syscall(SYS_fspick, AT_FDCWD, "/", 0);
    else if (!strcmp(n, "mount_setattr")) rc = syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, NULL, 0);
    else if (!strcmp(n, "pivot_root")) rc = syscall(SYS_pivot_root, "/tmp", "/tmp");
    else if (!strcmp(n, "chroot")) rc = chroot("/tmp");
    else if (!strcmp(n, "unshare-user")) rc = unshare(CLONE_NEWUSER);
    else if (!strcmp(n, "unshare-mount")) rc = unshare(CLONE_NEWNS);
    else if (!strcmp(n, "unshare-net")) rc = unshare(CLONE_NEWNET);
    else if (!strcmp(n, "clone-newuser")) rc = try_clone_newuser();
    else if (!strcmp(n, "clone3-newuser")) rc = try_clone3_newuser();
    else if (!strcmp(n, "setns")) {
        int fd = open(a1[0] == '/' ? a1 : "/proc/1/ns/net", O_RDONLY);
        rc = setns(fd, 0);
    } else if (!strcmp(n, "keyctl")) rc = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
    else if (!strcmp(n, "add_key")) rc = syscall(SYS_add_key, "user", "airlock", "x", 1, -3);
    else if (!strcmp(n, "request_key")) rc = syscall(SYS_request_key, "user", "airlock", NULL, 0);
    else if (!strcmp(n, "bpf")) rc = syscall(SYS_bpf, 0, NULL, 0);
    else if (!strcmp(n, "io_uring_setup")) {
        char params[120];
        memset(params, 0, sizeof params);
        rc = syscall(SYS_io_uring_setup, 1, params);
    } else if (!strcmp(n, "perf_event_open")) {
        char attr[128];
        memset(attr, 0, sizeof attr);
        rc = syscall(SYS_perf_event_open, attr, 0, -1, -1, 0);
    } else if (!strcmp(n, "userfaultfd")) rc = syscall(SYS_userfaultfd, 0);
    else if (!strcmp(n, "kexec_load")) rc = syscall(SYS_kexec_load, 0, 0, NULL, 0);
    else if (!strcmp(n, "kexec_file_load")) rc = syscall(SYS_kexec_file_load, -1, -1, 0, "", 0);
    else if (!strcmp(n, "init_module")) rc = syscall(SYS_init_module, NULL, 0, "");
    else if (!strcmp(n, "finit_module")) rc = syscall(SYS_finit_module, -1, "", 0);
    else if (!strcmp(n, "delete_module")) rc = syscall(SYS_delete_module, "airlock_none", 0);
    else if (!strcmp(n, "reboot")) rc = syscall(SYS_reboot, 0, 0, 0, NULL);
    else if (!strcmp(n, "swapon")) rc = syscall(SYS_swapon, "/tmp/none", 0);
    else if (!strcmp(n, "acct")) rc = syscall(SYS_acct, NULL);
    else if (!strcmp(n, "syslog")) rc = syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
    else if (!strcmp(n, "personality")) rc = personality(READ_IMPLIES_EXEC);
    else if (!strcmp(n, "personality-query")) rc = personality(0xffffffff);
    else if (!strcmp(n, "open_by_handle_at")) rc = syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0);
    else if (!strcmp(n, "name_to_handle_at")) rc = syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0);
    else if (!strcmp(n, "pidfd_getfd")) rc = syscall(SYS_pidfd_getfd, -1, 0, 0);
    else if (!strcmp(n, "tiocsti")) rc = try_tiocsti();
    else if (!strcmp(n, "tiocsti-high-bits")) rc = try_tiocsti_high_bits();
    else if (!strcmp(n, "raw-socket")) rc = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    else if (!strcmp(n, "packet-socket")) rc = socket(AF_PACKET, SOCK_RAW, 0);
    else if (!strcmp(n, "vsock-socket")) rc = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
    else if (!strcmp(n, "unix-socket")) rc = socket(AF_UNIX, SOCK_STREAM, 0);
    else if (!strcmp(n, "connect")) rc = try_connect(a1, a2);
    else if (!strcmp(n, "int80")) rc = try_int80();
    else if (!strcmp(n, "x32")) rc = try_x32();
    else if (!strcmp(n, "setuid-root")) rc = setuid(0);
    else if (!strcmp(n, "kill")) rc = kill((pid_t)atoi(a1), 0);
    else if (!strcmp(n, "fork")) {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, NULL, 0);
        rc = pid;
    } else {
        fprintf(stderr, "airlock-try-syscall: unknown name %s\n", n);
        return 2;
    }
    return report(n, rc);
}
