# Sourced by scripts/test and scripts/bench: one folder for every temporary file of a run (the
# tests' scenes and fake homes, the servers' folders, PostgreSQL's data, the benchmarks'
# workspaces), exported as TMPDIR and removed when the script exits, pass or fail.
#
# Why: the tests make hundreds of folders (a version-manager home copies a Python and terraform,
# 218 MB), and a run that left them in /tmp filled the disk after enough runs: the next CI run
# on that machine died in pip with "No space left on device" (docs/building.md).
# AIRLOCK_KEEP_SCRATCH=1 keeps the folder and says where it is, to read a failed test's files.

# airlock_disk_check NEED_GIB WHAT: fails, saying what to free, when the checkout's filesystem or
# the temporary one has less than NEED_GIB free.
airlock_disk_check() {
  local need=$1 what=$2 dir free
  for dir in "$PWD" "${TMPDIR:-/tmp}"; do
    free=$(df --output=avail -B1G "$dir" 2>/dev/null | tail -1 | tr -d ' ')
    [ -n "$free" ] || continue
    if [ "$free" -lt "$need" ]; then
      echo "airlock: only $free GiB free on the filesystem of $dir; $what needs about $need GiB." >&2
      echo "airlock: free some space first: folders an earlier run left, such as ${TMPDIR:-/tmp}/airlock-*, are safe to remove when no run is going" >&2
      return 1
    fi
  done
}

# airlock_scratch_start NAME: makes the run's folder (TMPDIR/airlock-NAME.XXXXXX) and exports it
# as TMPDIR. Mode 1777, as /tmp: the unprivileged test user and the servers it runs write there too.
airlock_scratch_start() {
  AIRLOCK_SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/airlock-$1.XXXXXX")
  chmod 1777 "$AIRLOCK_SCRATCH"
  export TMPDIR=$AIRLOCK_SCRATCH
}

airlock_scratch_stop() {
  [ -n "${AIRLOCK_SCRATCH:-}" ] && [ -d "$AIRLOCK_SCRATCH" ] || return 0
  if [ "${AIRLOCK_KEEP_SCRATCH:-0}" = 1 ]; then
    echo "airlock: AIRLOCK_KEEP_SCRATCH=1: this run's temporary files are kept in $AIRLOCK_SCRATCH" >&2
  else
    rm -rf "$AIRLOCK_SCRATCH"
  fi
  AIRLOCK_SCRATCH=
}
