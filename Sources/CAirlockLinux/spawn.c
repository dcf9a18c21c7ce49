// The sandbox's pid 1 and the agent it starts. Everything here runs in a child cloned from a
// multi-threaded process, so only async-signal-safe calls are made, nothing allocates, and a
// failure is reported to the launcher as (stage, errno, detail) over a close-on-exec pipe.
//
// Order (each step needs the privileges the previous ones still leave):
//   pid 1:  wait for uid/gid maps → drop supplementary groups → setresgid/setresuid(agent)
//           keeping capabilities → build the root and pivot → hostname, loopback up →
//           listeners → root read-only → pty → fork the agent → drop everything itself →
//           reap and forward signals
//   agent:  setsid + controlling tty → parent-death signal → default signals → close fds →
//           rlimits → capabilities (bounding, ambient, all sets) → no_new_privs → Landlock →
//           seccomp (last, so no setup call is filtered) → execve
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <termios.h>
#include <unistd.h>
#include <linux/limits.h>
#include <linux/seccomp.h>

#include "internal.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

const char *al_stage_name(int stage) {
    switch (stage) {
    case AL_STAGE_SYNC: return "waiting for the launcher";
    case AL_STAGE_SETGROUPS: return "setgroups";
    case AL_STAGE_SETGID: return "setresgid";
    case AL_STAGE_SETUID: return "setresuid";
    case AL_STAGE_CAPS_RAISE: return "capabilities for setup";
    case AL_STAGE_MOUNT_PRIVATE: return "making mounts private";
    case AL_STAGE_OPEN_TREE: return "open_tree (bind source)";
    case AL_STAGE_NEW_ROOT: return "new root tmpfs";
    case AL_STAGE_MKDIR: return "creating a mount point";
    case AL_STAGE_MOUNT: return "mount";
    case AL_STAGE_PIVOT_ROOT: return "pivot_root";
    case AL_STAGE_REMOUNT_ROOT: return "read-only root";
    case AL_STAGE_HOSTNAME: return "sethostname";
    case AL_STAGE_LOOPBACK: return "bringing up lo";
    case AL_STAGE_LISTEN: return "broker listener";
    case AL_STAGE_PTY: return "pseudo-terminal";
    case AL_STAGE_SEND_FD: return "handing a descriptor to the launcher";
    case AL_STAGE_CWD: return "chdir";
    case AL_STAGE_FORK: return "fork";
    case AL_STAGE_SETSID: return "setsid";
    case AL_STAGE_CONTROLLING_TTY: return "controlling terminal";
    case AL_STAGE_RLIMIT: return "setrlimit";
    case AL_STAGE_CLOSE_FDS: return "closing inherited descriptors";
    case AL_STAGE_CAPS_DROP: return "dropping capabilities";
    case AL_STAGE_NO_NEW_PRIVS: return "no_new_privs";
    case AL_STAGE_LANDLOCK: return "landlock";
    case AL_STAGE_SECCOMP: return "seccomp";
    case AL_STAGE_EXEC: return "execve";
    default: return "unknown stage";
    }
}

void al_fail(const struct al_spec *s, int stage, int err, const char *detail) {
    struct al_report report;
    memset(&report, 0, sizeof report);
    report.stage = stage;
    report.err = err;
    if (detail) al_strlcpy(report.detail, detail, sizeof report.detail);
    ssize_t ignored = write(s->report_fd, &report, sizeof report);
    (void)ignored;
    _exit(125);
}

int al_send_fd(int socket_fd, int fd) {
    char byte = 'F';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    ssize_t n;
    do { n = sendmsg(socket_fd, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

int al_recv_fd(int socket_fd) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    ssize_t n;
    do { n = recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    if (n == 0) { errno = EPIPE; return -1; }
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    if (!cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
        errno = EPROTO;
        return -1;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
    return fd;
}

int al_memfd(const char *name) {
    return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

int al_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int al_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

long al_filesystem_type(const char *path) {
    struct statfs fs;
    return statfs(path, &fs) == 0 ? (long)fs.f_type : -1;
}

static void al_reset_signals(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &dfl, NULL); // fails harmlessly for the few reserved numbers
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void al_loopback_up(const struct al_spec *s) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) al_fail(s, AL_STAGE_LOOPBACK, errno, "socket");
    struct ifreq req;
    memset(&req, 0, sizeof req);
    al_strlcpy(req.ifr_name, "lo", sizeof req.ifr_name);
    if (ioctl(fd, SIOCGIFFLAGS, &req)) al_fail(s, AL_STAGE_LOOPBACK, errno, "SIOCGIFFLAGS");
    req.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &req)) al_fail(s, AL_STAGE_LOOPBACK, errno, "SIOCSIFFLAGS");
    close(fd);
}

static void al_make_listeners(const struct al_spec *s) {
    for (size_t i = 0; i < s->listener_count; i++) {
        const struct al_listener *l = &s->listeners[i];
        int fd;
        if (l->kind == AL_LISTEN_TCP4) {
            fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in addr;
            memset(&addr, 0, sizeof addr);
            addr.sin_family = AF_INET;
            addr.sin_port = htons(l->port);
            addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            int one = 1;
            if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
                bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 511))
                al_fail(s, AL_STAGE_LISTEN, errno, "127.0.0.1");
        } else {
            fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_un addr;
            memset(&addr, 0, sizeof addr);
            addr.sun_family = AF_UNIX;
            if (al_strlcpy(addr.sun_path, l->path, sizeof addr.sun_path) >= sizeof addr.sun_path)
                al_fail(s, AL_STAGE_LISTEN, ENAMETOOLONG, l->path);
            if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 511))
                al_fail(s, AL_STAGE_LISTEN, errno, l->path);
        }
        if (al_send_fd(s->control_fd, fd)) al_fail(s, AL_STAGE_SEND_FD, errno, "listener");
        close(fd);
    }
}

// Opens a pty in the sandbox's own devpts, so the agent's terminal exists inside (ttyname,
// /dev/tty work) and TIOCSTI on it could only ever reach the agent itself.
static int al_open_pty(const struct al_spec *s) {
    int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) al_fail(s, AL_STAGE_PTY, errno, "/dev/pts/ptmx");
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock)) al_fail(s, AL_STAGE_PTY, errno, "unlock");
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) al_fail(s, AL_STAGE_PTY, errno, "TIOCGPTPEER");
    struct winsize ws;
    memset(&ws, 0, sizeof ws);
    ws.ws_row = s->rows;
    ws.ws_col = s->cols;
    ioctl(slave, TIOCSWINSZ, &ws);
    if (al_send_fd(s->control_fd, master)) al_fail(s, AL_STAGE_SEND_FD, errno, "pty master");
    close(master);
    return slave;
}

// Drops every capability from every set, then sets no_new_privs: after this neither the
// process nor anything it executes can gain privilege.
static void al_drop_privileges(const struct al_spec *s) {
    for (int cap = 0; cap <= s->cap_last; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL)
            al_fail(s, AL_STAGE_CAPS_DROP, errno, "bounding set");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
        al_fail(s, AL_STAGE_CAPS_DROP, errno, "ambient set");
    if (cap_set_proc(s->caps_empty)) al_fail(s, AL_STAGE_CAPS_DROP, errno, "capset");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) al_fail(s, AL_STAGE_NO_NEW_PRIVS, errno, NULL);
}

static void al_load_seccomp(const struct al_spec *s) {
    if (!s->seccomp) return;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, s->seccomp, 0, 0))
        al_fail(s, AL_STAGE_SECCOMP, errno, NULL);
}

// execvp without allocation: try each PATH entry; remember EACCES like the shell does.
static void al_exec(const struct al_spec *s) {
    const char *file = s->argv[0];
    char *const *argv = (char *const *)s->argv;
    char *const *envp = (char *const *)s->envp;
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        return;
    }
    char buf[PATH_MAX];
    size_t flen = strlen(file);
    int saw_eacces = 0;
    const char *p = s->path ? s->path : "/usr/bin:/bin";
    while (*p) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) { buf[0] = '.'; len = 1; } else if (len < sizeof buf) memcpy(buf, p, len);
        if (len + 1 + flen < sizeof buf) {
            buf[len] = '/';
            memcpy(buf + len + 1, file, flen + 1);
            execve(buf, argv, envp);
            if (errno == EACCES) saw_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR) return;
        }
        if (!end) break;
        p = end + 1;
    }
    errno = saw_eacces ? EACCES : ENOENT;
}

static void al_agent(const struct al_spec *s, int tty) {
    if (setsid() < 0) al_fail(s, AL_STAGE_SETSID, errno, NULL);
    if (tty >= 0) {
        if (ioctl(tty, TIOCSCTTY, 0)) al_fail(s, AL_STAGE_CONTROLLING_TTY, errno, NULL);
        for (int fd = 0; fd < 3; fd++)
            if (dup2(tty, fd) < 0) al_fail(s, AL_STAGE_CONTROLLING_TTY, errno, "dup2");
        if (tty > 2) close(tty);
    }
    // The agent dies with its init; its init dies with the launcher.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) al_fail(s, AL_STAGE_FORK, errno, "pdeathsig");
    if (getppid() != 1) _exit(125);
    al_reset_signals();
    // Every inherited descriptor but stdio closes at exec (the report pipe included, which
    // is how the launcher learns exec succeeded).
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC)) {
        for (int fd = 3; fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (size_t i = 0; i < s->rlimit_count; i++) {
        struct rlimit lim = {.rlim_cur = s->rlimits[i].soft, .rlim_max = s->rlimits[i].hard};
        if (setrlimit(s->rlimits[i].resource, &lim)) al_fail(s, AL_STAGE_RLIMIT, errno, NULL);
    }
    al_drop_privileges(s);
    if (s->landlock_abi > 0) {
        const char *where = NULL;
        if (al_apply_landlock(s, &where)) al_fail(s, AL_STAGE_LANDLOCK, errno, where);
    }
    al_load_seccomp(s);
    al_exec(s);
    al_fail(s, AL_STAGE_EXEC, errno, s->argv[0]);
}

static volatile pid_t al_agent_pid;

static void al_forward_signal(int sig) {
    pid_t pid = al_agent_pid;
    if (pid > 0) kill(pid, sig);
}

// pid 1 of the sandbox: forwards the launcher's signals to the agent and reaps orphans. When
// the agent ends, init ends, and the kernel kills whatever the agent left behind.
__attribute__((noreturn)) static void al_init_loop(const struct al_spec *s) {
    static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = al_forward_signal;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaction(forwarded[i], &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) _exit(125);
        if (pid == al_agent_pid) {
            int32_t st = status;
            ssize_t ignored = write(s->status_fd, &st, sizeof st);
            (void)ignored;
            _exit(0);
        }
    }
}

// Keeps stdio and the descriptors the spec names; closes everything else the launcher had
// open (its state database, the broker's sockets): init is a copy of the launcher and must
// not hold what the agent may never reach.
static void al_close_unlisted_fds(const struct al_spec *s) {
    int keep[8 + 256];
    size_t n = 0;
    int fixed[] = {s->sync_fd, s->report_fd, s->status_fd, s->control_fd};
    for (size_t i = 0; i < 4; i++) keep[n++] = fixed[i];
    for (size_t i = 0; i < s->mount_count && n < sizeof keep / sizeof keep[0]; i++)
        if (s->mounts[i].kind == AL_MOUNT_TREE) keep[n++] = s->mounts[i].fd;
    for (size_t i = 1; i < n; i++) { // insertion sort: n is small
        int v = keep[i];
        size_t j = i;
        while (j > 0 && keep[j - 1] > v) { keep[j] = keep[j - 1]; j--; }
        keep[j] = v;
    }
    unsigned int next = 3;
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < 3 || (unsigned int)keep[i] < next) continue;
        if ((unsigned int)keep[i] > next) syscall(SYS_close_range, next, (unsigned int)keep[i] - 1, 0);
        next = (unsigned int)keep[i] + 1;
    }
    syscall(SYS_close_range, next, ~0U, 0);
}

static int al_pid1(void *arg) {
    const struct al_spec *s = arg;
    al_close_unlisted_fds(s);
    // Hold the launcher's signals until the forwarding handlers are in place, and forget the
    // launcher's dispositions (an ignored SIGCHLD would break reaping).
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) al_fail(s, AL_STAGE_SYNC, errno, "pdeathsig");
    char go;
    ssize_t n;
    do { n = read(s->sync_fd, &go, 1); } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125); // the launcher is gone

    // Identity. Supplementary groups are the launcher's (root's when run as root): drop them
    // while that is still allowed. Capabilities in the new namespace are kept for setup.
    // Raw syscalls, not glibc's wrappers: those broadcast the change to every thread glibc
    // believes exists, and in this copy of a multi-threaded launcher the others never answer.
    if (s->drop_groups && syscall(SYS_setgroups, 0, NULL)) al_fail(s, AL_STAGE_SETGROUPS, errno, NULL);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)) al_fail(s, AL_STAGE_CAPS_RAISE, errno, "keepcaps");
    if (syscall(SYS_setresgid, s->gid, s->gid, s->gid)) al_fail(s, AL_STAGE_SETGID, errno, NULL);
    if (syscall(SYS_setresuid, s->uid, s->uid, s->uid)) al_fail(s, AL_STAGE_SETUID, errno, NULL);
    if (cap_set_proc(s->caps_full)) al_fail(s, AL_STAGE_CAPS_RAISE, errno, NULL);
    // Changing uid cleared the parent-death signal: arm it again, then make sure the launcher
    // did not die in between (it holds the sync pipe open for the whole session).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) al_fail(s, AL_STAGE_SYNC, errno, "pdeathsig");
    struct pollfd alive = {.fd = s->sync_fd, .events = POLLIN};
    if (poll(&alive, 1, 0) != 0) _exit(125);
    close(s->sync_fd);

    al_build_root(s);
    if (s->hostname && sethostname(s->hostname, strlen(s->hostname)))
        al_fail(s, AL_STAGE_HOSTNAME, errno, s->hostname);
    al_loopback_up(s);
    al_make_listeners(s);
    al_seal_root(s);
    int tty = s->use_pty ? al_open_pty(s) : -1;
    close(s->control_fd);
    if (chdir(s->cwd)) al_fail(s, AL_STAGE_CWD, errno, s->cwd);

    // Init's memory is a copy of the launcher's: not dumpable, so the agent (same uid) cannot
    // open /proc/1/mem or /proc/1/fd. The agent's own exec makes it dumpable again.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    // The raw syscall, not glibc's fork(): that takes malloc's and stdio's locks for its
    // atfork handlers, and in this copy of a multi-threaded launcher a lock another thread
    // held at clone time is held forever.
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
    if (pid < 0) al_fail(s, AL_STAGE_FORK, errno, NULL);
    if (pid == 0) al_agent(s, tty);
    al_agent_pid = pid;

    // Only the agent holds the report pipe now: its EOF means the exec happened.
    close(s->report_fd);
    if (tty >= 0) close(tty);
    // init needs no privilege to wait and forward signals.
    for (int cap = 0; cap <= s->cap_last; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    cap_set_proc(s->caps_empty);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (s->seccomp) prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, s->seccomp, 0, 0);
    al_init_loop(s);
}

static char al_pid1_stack[256 * 1024] __attribute__((aligned(16)));

pid_t al_spawn(const struct al_spec *spec, int *pidfd) {
    // The child gets a copy of the address space (no CLONE_VM), so this stack is its own
    // from the moment of the clone: concurrent spawns do not share it.
    int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_PIDFD | SIGCHLD;
    return clone(al_pid1, al_pid1_stack + sizeof al_pid1_stack, flags, (void *)spec, pidfd);
}
