#!/usr/bin/env bash
# Remakes the compatibility fixtures of this directory with the binaries of commit fc0b570
# (see make_fixtures.py for what they hold). Run as root from anywhere:
#   Tests/Fixtures/fc0b570/make.sh [WORKTREE]     (default /tmp/airlock-fc0b570)
# It builds fc0b570 in a git worktree (about 10 minutes the first time), with one extra
# executable, fixture-states (fixture_states.swift here), compiled against that commit's store.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
tree=${1:-/tmp/airlock-fc0b570}
cd "$repo"
source scripts/lib/deps.sh
airlock_build_deps
airlock_apt postgresql git openssl
source scripts/lib/python-env.sh
airlock_python_env
if [ ! -d "$tree" ]; then
  echo "fixtures: a worktree of fc0b570 in $tree" >&2
  git worktree add --detach "$tree" fc0b570
fi
mkdir -p "$tree/FixtureStates"
cp "$here/fixture_states.swift" "$tree/FixtureStates/main.swift"
if ! grep -q FixtureStates "$tree/Package.swift"; then
  cat >> "$tree/Package.swift" <<'SWIFT'

// Added by Tests/Fixtures/fc0b570/make.sh (never committed to fc0b570).
package.products.append(.executable(name: "fixture-states", targets: ["FixtureStates"]))
package.targets.append(.executableTarget(name: "FixtureStates", dependencies: ["AirlockStore", "AirlockStorePostgres"],
                                         path: "FixtureStates", swiftSettings: [.swiftLanguageMode(.v6)]))
SWIFT
fi
echo "fixtures: building fc0b570 (release) in $tree" >&2
for product in airlock airlock-gate fixture-states; do
  (cd "$tree" && swift build -c release --product "$product" 2>&1 | { grep -E 'error|Compiling|Build' || true; } | tail -3) >&2
done
source scripts/lib/postgres.sh
airlock_postgres_start
trap airlock_postgres_stop EXIT
"$AIRLOCK_PYTHON" "$here/make_fixtures.py" "$tree" "$AIRLOCK_TEST_POSTGRES"
echo "fixtures: written to $here" >&2
