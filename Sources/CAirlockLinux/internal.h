#ifndef AIRLOCK_LINUX_INTERNAL_H
#define AIRLOCK_LINUX_INTERNAL_H

// Shared by the C files of this target; not part of the module's interface.
// Everything declared here is async-signal-safe: it may run in the cloned child.

#include "airlock_linux.h"

// Reports a failed stage to the launcher and exits. Never returns.
__attribute__((noreturn)) void al_fail(const struct al_spec *s, int stage, int err, const char *detail);

// Mounting the new root (mounts.c), then making it read-only once the listeners (whose unix
// sockets live on it) exist.
void al_build_root(const struct al_spec *s);
void al_seal_root(const struct al_spec *s);

// Landlock (landlock.c): restrict the calling process to the spec's writable paths.
int al_apply_landlock(const struct al_spec *s, const char **failed_path);

// Small string helpers that do not allocate.
size_t al_strlcpy(char *dst, const char *src, size_t size);

#endif
