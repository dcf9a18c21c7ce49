// Building the sandbox's root filesystem. Runs in the cloned child: async-signal-safe calls
// only, no allocation, paths on the stack.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/limits.h>

#include "internal.h"

// glibc < 2.36 lacks the new mount API's declarations; the kernel (>= 5.12) has the calls.
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#define MOUNT_ATTR_IDMAP 0x00100000
struct mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

#define AL_MAX_MOUNTS 256

size_t al_strlcpy(char *dst, const char *src, size_t size) {
    size_t n = strlen(src);
    if (size > 0) {
        size_t c = n < size - 1 ? n : size - 1;
        memcpy(dst, src, c);
        dst[c] = 0;
    }
    return n;
}

int al_open_tree(const char *path, int flags, int idmap_userns_fd) {
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0) return -1;
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    if (flags & AL_MOUNT_READONLY) attr.attr_set |= MOUNT_ATTR_RDONLY;
    if (flags & AL_MOUNT_NOSUID) attr.attr_set |= MOUNT_ATTR_NOSUID;
    if (flags & AL_MOUNT_NODEV) attr.attr_set |= MOUNT_ATTR_NODEV;
    if (flags & AL_MOUNT_NOEXEC) attr.attr_set |= MOUNT_ATTR_NOEXEC;
    if (idmap_userns_fd >= 0) {
        attr.attr_set |= MOUNT_ATTR_IDMAP;
        attr.userns_fd = (uint64_t)idmap_userns_fd;
    }
    if (attr.attr_set != 0 &&
        syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int al_write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static char al_idmap_stack[16384] __attribute__((aligned(16)));

static int al_idmap_child(void *arg) {
    int *hold = arg;
    char byte;
    // Holds the namespace open until the launcher has its fd (and closes the pipe), then
    // exits. It has its own descriptor table (no CLONE_FILES): its copy of the write end
    // goes first, or the read would never see EOF.
    close(hold[1]);
    while (read(hold[0], &byte, 1) < 0 && errno == EINTR) {}
    _exit(0);
}

// The helper shares the launcher's memory (CLONE_VM: no page tables to copy, which was most
// of its cost) and runs only close/read/_exit on its own stack. Callers serialize calls: the
// stack is static.
int al_idmap_userns(uid_t disk_uid, uid_t host_uid, gid_t disk_gid, gid_t host_gid) {
    static int hold[2];
    if (pipe2(hold, O_CLOEXEC)) return -1;
    pid_t pid = clone(al_idmap_child, al_idmap_stack + sizeof al_idmap_stack,
                      CLONE_NEWUSER | CLONE_VM | SIGCHLD, hold);
    if (pid < 0) {
        int saved = errno;
        close(hold[0]);
        close(hold[1]);
        errno = saved;
        return -1;
    }
    close(hold[0]);
    char path[64], map[64];
    int result = -1, saved = 0;
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)disk_uid, (unsigned)host_uid);
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    if (al_write_file(path, map) == 0) {
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)disk_gid, (unsigned)host_gid);
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
        if (al_write_file(path, map) == 0) {
            snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
            result = open(path, O_RDONLY | O_CLOEXEC);
        }
    }
    saved = errno;
    close(hold[1]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    errno = saved;
    return result;
}

// Plan targets are absolute; the child works relative to the new root (its cwd), so no path
// ever has to be assembled.
static const char *al_relative(const char *target) {
    while (*target == '/') target++;
    return *target ? target : ".";
}

// mkdir -p of `buf`, deepest first: most mount points' parents exist already (the plan
// goes parents before children), so this is one mkdir where walking down from the root
// was one per component (89 per launch, ~0.3 ms).
static int al_mkdir_p(char *buf) {
    if (mkdir(buf, 0755) == 0 || errno == EEXIST) return 0;
    if (errno != ENOENT) return -1;
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return -1;
    *slash = 0;
    int rc = al_mkdir_p(buf);
    *slash = '/';
    if (rc) return -1;
    return mkdir(buf, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

// mkdir -p of every parent of `rel` (and of `rel` itself when `self` is set).
static int al_make_parents(const char *rel, int self) {
    char buf[PATH_MAX];
    if (al_strlcpy(buf, rel, sizeof buf) >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (!self) {
        char *slash = strrchr(buf, '/');
        if (!slash) return 0;  // directly in the root
        *slash = 0;
    }
    return al_mkdir_p(buf);
}

static int al_make_mount_point(const char *rel, int directory) {
    struct stat st;
    if (lstat(rel, &st) == 0) return 0;
    if (directory) return al_make_parents(rel, 1);
    if (al_make_parents(rel, 0)) return -1;
    int fd = open(rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}

static unsigned long al_ms_flags(int flags) {
    unsigned long ms = 0;
    if (flags & AL_MOUNT_READONLY) ms |= MS_RDONLY;
    if (flags & AL_MOUNT_NOSUID) ms |= MS_NOSUID;
    if (flags & AL_MOUNT_NODEV) ms |= MS_NODEV;
    if (flags & AL_MOUNT_NOEXEC) ms |= MS_NOEXEC;
    return ms;
}

static int al_write_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

static void al_mount_one(const struct al_spec *s, const struct al_mount *m, int tree_fd) {
    const char *rel = al_relative(m->target);
    int is_dir = (m->flags & AL_MOUNT_DIRECTORY) != 0;
    switch (m->kind) {
    case AL_MOUNT_TREE:
    case AL_MOUNT_BIND_PATH:
        if (al_make_mount_point(rel, is_dir)) al_fail(s, AL_STAGE_MKDIR, errno, m->target);
        if (syscall(SYS_move_mount, tree_fd, "", AT_FDCWD, rel, MOVE_MOUNT_F_EMPTY_PATH))
            al_fail(s, AL_STAGE_MOUNT, errno, m->target);
        close(tree_fd);
        return;
    case AL_MOUNT_TMPFS:
        if (al_make_mount_point(rel, 1)) al_fail(s, AL_STAGE_MKDIR, errno, m->target);
        if (mount("tmpfs", rel, "tmpfs", al_ms_flags(m->flags), m->source))
            al_fail(s, AL_STAGE_MOUNT, errno, m->target);
        return;
    case AL_MOUNT_PROC:
        if (al_make_mount_point(rel, 1)) al_fail(s, AL_STAGE_MKDIR, errno, m->target);
        if (mount("proc", rel, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
            al_fail(s, AL_STAGE_MOUNT, errno, m->target);
        return;
    case AL_MOUNT_DEVPTS:
        if (al_make_mount_point(rel, 1)) al_fail(s, AL_STAGE_MKDIR, errno, m->target);
        if (mount("devpts", rel, "devpts", MS_NOSUID | MS_NOEXEC,
                  "newinstance,ptmxmode=0666,mode=0620"))
            al_fail(s, AL_STAGE_MOUNT, errno, m->target);
        return;
    case AL_MOUNT_SYMLINK:
        if (al_make_parents(rel, 0)) al_fail(s, AL_STAGE_MKDIR, errno, m->target);
        if (symlink(m->source, rel) && errno != EEXIST) al_fail(s, AL_STAGE_MOUNT, errno, m->target);
        return;
    case AL_MOUNT_FILE: {
        if (al_make_parents(rel, 0)) al_fail(s, AL_STAGE_MKDIR, errno, m->target);
        int fd = open(rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, m->mode);
        if (fd < 0 || al_write_all(fd, m->source, m->length) || fchmod(fd, m->mode))
            al_fail(s, AL_STAGE_MOUNT, errno, m->target);
        close(fd);
        return;
    }
    case AL_MOUNT_MASK: {
        // Symlinks are left alone: mounting would follow them. The launcher masks the real
        // path a credential symlink resolves to as well.
        struct stat st;
        if (lstat(rel, &st) != 0 || S_ISLNK(st.st_mode)) return;
        if (S_ISDIR(st.st_mode)) {
            if (mount("tmpfs", rel, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "size=4k,nr_inodes=1,mode=0555"))
                al_fail(s, AL_STAGE_MOUNT, errno, m->target);
            return;
        }
        if (mount(al_relative(m->source), rel, NULL, MS_BIND, NULL) ||
            mount(NULL, rel, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  NULL))
            al_fail(s, AL_STAGE_MOUNT, errno, m->target);
        return;
    }
    case AL_MOUNT_REMOUNT_RO:
        if (mount(NULL, rel, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | al_ms_flags(m->flags), NULL))
            al_fail(s, AL_STAGE_MOUNT, errno, m->target);
        return;
    default:
        al_fail(s, AL_STAGE_MOUNT, EINVAL, m->target);
    }
}

void al_build_root(const struct al_spec *s) {
    int trees[AL_MAX_MOUNTS];
    if (s->mount_count > AL_MAX_MOUNTS) al_fail(s, AL_STAGE_NEW_ROOT, E2BIG, "mount plan");

    // Nothing mounted from here on may propagate back to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
        al_fail(s, AL_STAGE_MOUNT_PRIVATE, errno, "/");

    // Unprivileged launch: clone the host trees now, while every host path is still visible.
    // (A root launch passes trees it cloned itself, idmapped where needed.)
    for (size_t i = 0; i < s->mount_count; i++) {
        const struct al_mount *m = &s->mounts[i];
        trees[i] = -1;
        if (m->kind == AL_MOUNT_TREE) {
            trees[i] = m->fd;
        } else if (m->kind == AL_MOUNT_BIND_PATH) {
            trees[i] = al_open_tree(m->source, m->flags, -1);
            if (trees[i] < 0) al_fail(s, AL_STAGE_OPEN_TREE, errno, m->source);
        }
    }

    // The new root: a tmpfs over /tmp of this private mount namespace (the host's /tmp is
    // untouched), populated in plan order, then pivoted into.
    if (mount("airlock-root", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m"))
        al_fail(s, AL_STAGE_NEW_ROOT, errno, "tmpfs");
    if (chdir("/tmp")) al_fail(s, AL_STAGE_NEW_ROOT, errno, "chdir");
    for (size_t i = 0; i < s->mount_count; i++) al_mount_one(s, &s->mounts[i], trees[i]);

    if (syscall(SYS_pivot_root, ".", ".")) al_fail(s, AL_STAGE_PIVOT_ROOT, errno, "pivot_root");
    if (umount2(".", MNT_DETACH)) al_fail(s, AL_STAGE_PIVOT_ROOT, errno, "umount old root");
    if (chdir("/")) al_fail(s, AL_STAGE_PIVOT_ROOT, errno, "chdir /");
}

void al_seal_root(const struct al_spec *s) {
    // The skeleton (mount points, generated /etc files, /run/airlock with the broker's
    // socket) is the agent's by uid: read-only keeps it from replacing any of it.
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL))
        al_fail(s, AL_STAGE_REMOUNT_ROOT, errno, "/");
}
