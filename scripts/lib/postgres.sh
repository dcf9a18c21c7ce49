# Sourced by scripts/test: a throwaway PostgreSQL server for the store's tests (Debian's
# postgresql: initdb + pg_ctl on loopback, as an unprivileged user, trust authentication for
# that one local user), removed when the script exits. Exports AIRLOCK_TEST_POSTGRES (a
# postgres:// URL the tests connect to).
airlock_postgres_start() {
  local bin user dir port
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "airlock: PostgreSQL's server is needed for the store tests; on Debian/Ubuntu: apt-get install postgresql" >&2
    return 1
  fi
  dir=$(mktemp -d /tmp/airlock-postgres.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # initdb refuses to run as root: as root the server runs as the unprivileged test user.
  user=$(id -un)
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    user=${AIRLOCK_TEST_USER:-airlock-test}
    chown "$user" "$dir"
    as=(setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups --)
  fi
  echo "airlock: starting PostgreSQL ($bin) on 127.0.0.1:$port for the store tests, data in $dir" >&2
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U airlock --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || {
    echo "airlock: initdb failed:" >&2; cat "$dir/initdb.log" >&2; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c max_connections=300" start >/dev/null || {
    echo "airlock: PostgreSQL did not start:" >&2; cat "$dir/server.log" >&2; return 1; }
  "${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U airlock airlock_test || return 1
  AIRLOCK_POSTGRES_DIR=$dir AIRLOCK_POSTGRES_BIN=$bin
  AIRLOCK_POSTGRES_AS=("${as[@]}")
  export AIRLOCK_TEST_POSTGRES="postgres://airlock@127.0.0.1:$port/airlock_test"
}

airlock_postgres_stop() {
  [ -n "${AIRLOCK_POSTGRES_DIR:-}" ] || return 0
  "${AIRLOCK_POSTGRES_AS[@]}" "$AIRLOCK_POSTGRES_BIN/pg_ctl" -D "$AIRLOCK_POSTGRES_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$AIRLOCK_POSTGRES_DIR"
  AIRLOCK_POSTGRES_DIR=
}
