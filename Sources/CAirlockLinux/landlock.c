// Landlock on top of the mount layout: even if a mount were writable by mistake, the agent
// may write only beneath the spec's writable paths. Async-signal-safe.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

// The ABI as the kernel defines it (linux/landlock.h of older distributions lacks the later
// fields, so the layout is spelled out here).
struct al_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};
struct al_path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#define AL_LL_CREATE_RULESET 444
#define AL_LL_ADD_RULE 445
#define AL_LL_RESTRICT_SELF 446
#define AL_LL_RULESET_VERSION (1U << 0)
#define AL_LL_RULE_PATH_BENEATH 1

#define AL_FS_EXECUTE (1ULL << 0)
#define AL_FS_WRITE_FILE (1ULL << 1)
#define AL_FS_READ_FILE (1ULL << 2)
#define AL_FS_READ_DIR (1ULL << 3)
#define AL_FS_REMOVE_DIR (1ULL << 4)
#define AL_FS_REMOVE_FILE (1ULL << 5)
#define AL_FS_MAKE_CHAR (1ULL << 6)
#define AL_FS_MAKE_DIR (1ULL << 7)
#define AL_FS_MAKE_REG (1ULL << 8)
#define AL_FS_MAKE_SOCK (1ULL << 9)
#define AL_FS_MAKE_FIFO (1ULL << 10)
#define AL_FS_MAKE_BLOCK (1ULL << 11)
#define AL_FS_MAKE_SYM (1ULL << 12)
#define AL_FS_REFER (1ULL << 13)    /* ABI 2 */
#define AL_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#define AL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define AL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* ABI 6 */
#define AL_SCOPE_SIGNAL (1ULL << 1)        /* ABI 6 */

int al_landlock_abi(void) {
    return (int)syscall(AL_LL_CREATE_RULESET, NULL, 0, AL_LL_RULESET_VERSION);
}

static uint64_t al_fs_rights(int abi) {
    uint64_t all = (AL_FS_MAKE_SYM << 1) - 1;
    if (abi >= 2) all |= AL_FS_REFER;
    if (abi >= 3) all |= AL_FS_TRUNCATE;
    if (abi >= 5) all |= AL_FS_IOCTL_DEV;
    return all;
}

// Rights that apply to a file (not a directory): a rule on a file may grant only these.
#define AL_FS_FILE_RIGHTS (AL_FS_EXECUTE | AL_FS_WRITE_FILE | AL_FS_READ_FILE | AL_FS_TRUNCATE | AL_FS_IOCTL_DEV)

static int al_allow(int ruleset, const char *path, uint64_t access) {
    struct al_path_beneath rule;
    rule.parent_fd = open(path, O_PATH | O_CLOEXEC);
    if (rule.parent_fd < 0) return errno == ENOENT ? 0 : -1;
    // A writable file bound into a read-only tree (an execution's terraform.tfstate): only
    // file rights, or the kernel refuses the rule.
    struct stat st;
    if (fstat(rule.parent_fd, &st) == 0 && !S_ISDIR(st.st_mode)) access &= AL_FS_FILE_RIGHTS;
    rule.allowed_access = access;
    int rc = (int)syscall(AL_LL_ADD_RULE, ruleset, AL_LL_RULE_PATH_BENEATH, &rule, 0);
    int saved = errno;
    close(rule.parent_fd);
    errno = saved;
    return rc;
}

int al_apply_landlock(const struct al_spec *s, const char **failed_path) {
    int abi = s->landlock_abi;
    uint64_t all = al_fs_rights(abi);
    struct al_ruleset_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.handled_access_fs = all;
    // ABI 6: no signals to, and no abstract sockets of, processes outside the sandbox's domain
    // (its init and anything else the agent might find).
    if (abi >= 6) attr.scoped = AL_SCOPE_ABSTRACT_UNIX | AL_SCOPE_SIGNAL;
    size_t size = abi >= 6 ? sizeof attr : abi >= 4 ? 16 : 8;
    int ruleset = (int)syscall(AL_LL_CREATE_RULESET, &attr, size, 0);
    *failed_path = "ruleset";
    if (ruleset < 0) return -1;

    const uint64_t read_only = AL_FS_EXECUTE | AL_FS_READ_FILE | AL_FS_READ_DIR;
    const uint64_t devices = read_only | AL_FS_WRITE_FILE | (all & (AL_FS_TRUNCATE | AL_FS_IOCTL_DEV));
    const uint64_t writable = all & ~(AL_FS_MAKE_CHAR | AL_FS_MAKE_BLOCK);
    int rc = 0;
    *failed_path = "/";
    if ((rc = al_allow(ruleset, "/", read_only)) == 0) {
        *failed_path = "/dev";
        rc = al_allow(ruleset, "/dev", devices);
    }
    if (rc == 0) {
        *failed_path = "/proc";
        rc = al_allow(ruleset, "/proc", read_only | AL_FS_WRITE_FILE);
    }
    for (size_t i = 0; rc == 0 && i < s->writable_count; i++) {
        *failed_path = s->writable[i];
        rc = al_allow(ruleset, s->writable[i], writable);
    }
    if (rc == 0) {
        *failed_path = "restrict_self";
        rc = (int)syscall(AL_LL_RESTRICT_SELF, ruleset, 0);
    }
    int saved = errno;
    close(ruleset);
    errno = saved;
    return rc;
}
