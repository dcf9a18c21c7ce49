#ifndef AIRLOCK_LINUX_H
#define AIRLOCK_LINUX_H

// What belongs in C: only the code that runs between clone() and execve(), where no Swift may
// run (no allocation, no locks, no runtime: the launcher is multi-threaded and the child is a
// copy of one of its threads), plus the few kernel interfaces Swift's Glibc module cannot
// express (CMSG macros, the new mount API, Landlock). Everything else is in Swift.
// Every symbol is prefixed al_.

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/capability.h>
#include <linux/filter.h>

// ---- The mount plan: built in Swift, executed in order by the sandbox's pid 1. ----
enum al_mount_kind {
    AL_MOUNT_TREE = 1,   // attach `fd` (a detached tree from al_open_tree) at target
    AL_MOUNT_BIND_PATH,  // unprivileged launch: al_open_tree(source) in the child, then attach
    AL_MOUNT_TMPFS,      // tmpfs at target; options in `source`
    AL_MOUNT_PROC,       // a fresh proc for the sandbox's pid namespace
    AL_MOUNT_DEVPTS,     // a new devpts instance
    AL_MOUNT_SYMLINK,    // symlink at target pointing to `source`
    AL_MOUNT_FILE,       // regular file at target holding source[0..length)
    AL_MOUNT_MASK,       // hide what is at target (if anything) under an empty read-only node
    AL_MOUNT_REMOUNT_RO, // make the mount at target read-only (after it is populated)
};

enum {
    AL_MOUNT_READONLY = 1 << 0,
    AL_MOUNT_NOSUID = 1 << 1,
    AL_MOUNT_NODEV = 1 << 2,
    AL_MOUNT_NOEXEC = 1 << 3,
    AL_MOUNT_DIRECTORY = 1 << 4, // the mount point is a directory (else a file)
};

struct al_mount {
    int kind;
    int flags;
    const char *target; // absolute path inside the sandbox
    const char *source;
    size_t length;      // AL_MOUNT_FILE: content length
    int fd;             // AL_MOUNT_TREE
    int mode;           // AL_MOUNT_FILE: permission bits
};

struct al_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

// A listening socket created inside the sandbox's network namespace (so the agent reaches it
// on its own loopback) and handed to the launcher's broker over the control socket.
struct al_listener {
    int kind;            // AL_LISTEN_TCP4 or AL_LISTEN_UNIX
    uint16_t port;       // TCP: port on 127.0.0.1
    const char *path;    // UNIX: path inside the sandbox
};
enum { AL_LISTEN_TCP4 = 1, AL_LISTEN_UNIX = 2 };

struct al_spec {
    // Identity inside the sandbox, after the launcher has written uid_map/gid_map.
    uid_t uid;
    gid_t gid;
    int drop_groups;      // setgroups(0): possible and needed only when launched by root
    // Descriptors. All other descriptors are closed before exec.
    int sync_fd;          // read end: one byte = maps written; EOF = the launcher died
    int report_fd;        // write end, close-on-exec: a struct al_report on failure, EOF = exec'd
    int status_fd;        // write end: the agent's wait status (int32) when it ends
    int control_fd;       // unix socket to the launcher: pty master and listeners (SCM_RIGHTS)
    // Filesystem.
    const struct al_mount *mounts;
    size_t mount_count;
    const char *hostname;
    const char *cwd;
    // Network: listeners to create inside the namespace, in order.
    const struct al_listener *listeners;
    size_t listener_count;
    // Terminal: allocate a pty inside the sandbox and send its master to the launcher.
    int use_pty;
    unsigned short rows, cols;
    // The program.
    const char *const *argv;
    const char *const *envp;
    const char *path;     // PATH used to find argv[0]
    // Limits and privileges.
    const struct al_rlimit *rlimits;
    size_t rlimit_count;
    int cap_last;         // highest capability number this kernel knows
    cap_t caps_empty;     // prepared by the launcher (libcap allocates): applied in the child
    cap_t caps_full;
    const struct sock_fprog *seccomp;
    // Landlock, applied when landlock_abi > 0: read everywhere, write only beneath these.
    int landlock_abi;
    const char *const *writable;
    size_t writable_count;
};

// Setup stages, reported with errno when one fails.
enum al_stage {
    AL_STAGE_SYNC = 1, AL_STAGE_SETGROUPS, AL_STAGE_SETGID, AL_STAGE_SETUID, AL_STAGE_CAPS_RAISE,
    AL_STAGE_MOUNT_PRIVATE, AL_STAGE_OPEN_TREE, AL_STAGE_NEW_ROOT, AL_STAGE_MKDIR, AL_STAGE_MOUNT,
    AL_STAGE_PIVOT_ROOT, AL_STAGE_REMOUNT_ROOT, AL_STAGE_HOSTNAME, AL_STAGE_LOOPBACK,
    AL_STAGE_LISTEN, AL_STAGE_PTY, AL_STAGE_SEND_FD, AL_STAGE_CWD, AL_STAGE_FORK,
    AL_STAGE_SETSID, AL_STAGE_CONTROLLING_TTY, AL_STAGE_RLIMIT, AL_STAGE_CLOSE_FDS,
    AL_STAGE_CAPS_DROP, AL_STAGE_NO_NEW_PRIVS, AL_STAGE_LANDLOCK, AL_STAGE_SECCOMP,
    AL_STAGE_EXEC,
};

struct al_report {
    int32_t stage;
    int32_t err;
    char detail[240]; // the path or name the stage was working on
};

const char *al_stage_name(int stage);

// Clones the sandbox's pid 1 into new user, mount, pid, net, ipc, uts and cgroup namespaces.
// Returns its pid (and a pidfd) or -1 with errno.
pid_t al_spawn(const struct al_spec *spec, int *pidfd);

// Detached copy of the tree at `path` (open_tree(OPEN_TREE_CLONE)), with mount attributes set
// and, when idmap_userns_fd >= 0, idmapped through that user namespace. -1 with errno.
int al_open_tree(const char *path, int flags, int idmap_userns_fd);

// A user namespace fd whose map sends `disk_uid` to `host_uid` (and gids alike), for idmapped
// mounts. Root only. -1 with errno.
int al_idmap_userns(uid_t disk_uid, uid_t host_uid, gid_t disk_gid, gid_t host_gid);

// Receives one descriptor sent with SCM_RIGHTS; -1 with errno (0 on EOF sets errno to EPIPE).
int al_recv_fd(int socket_fd);
// Sends one descriptor with SCM_RIGHTS.
int al_send_fd(int socket_fd, int fd);

// Thin wrappers for calls Swift's Glibc module does not declare.
int al_memfd(const char *name);
int al_pidfd_send_signal(int pidfd, int sig);
int al_pipe_cloexec(int fds[2]);
long al_filesystem_type(const char *path); // statfs f_type, or -1

// openat2(dirfd, path, flags | O_CLOEXEC) resolving beneath dirfd with no symlinks at all
// (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a symlink swapped into
// the path, `..` or an absolute path fails instead of leading elsewhere. glibc has no wrapper.
// -1 with errno; ENOSYS on kernels before 5.6 (the caller walks component by component then).
int al_openat2_beneath(int dirfd, const char *path, int flags, int mode);

// Landlock ABI version this kernel offers, or <= 0 when it has none.
int al_landlock_abi(void);

#endif
