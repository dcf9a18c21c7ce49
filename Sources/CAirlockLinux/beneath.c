// openat2 with RESOLVE_BENEATH: the broker reads workspace files (pinned snapshots) that the
// agent can rewrite at any moment, so a path must never leave the workspace, whatever is
// swapped into it mid-walk. glibc (2.36) declares no openat2.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "airlock_linux.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct al_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

#define AL_RESOLVE_NO_MAGICLINKS 0x02
#define AL_RESOLVE_NO_SYMLINKS 0x04
#define AL_RESOLVE_BENEATH 0x08

int al_openat2_beneath(int dirfd, const char *path, int flags, int mode) {
    struct al_open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(unsigned)(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? (uint64_t)mode : 0;
    how.resolve = AL_RESOLVE_BENEATH | AL_RESOLVE_NO_SYMLINKS | AL_RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}
