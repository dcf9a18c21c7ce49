# Sourced by scripts/test: a throwaway PostgreSQL server for the store's tests (Debian's
# postgresql: initdb + pg_ctl on loopback, as an unprivileged user, trust authentication for
# that one local user), removed when the script exits. Exports AIRLOCK_TEST_POSTGRES (a
# postgres:// URL the tests connect to) and AIRLOCK_TEST_POSTGRES_CA: the server also speaks
# TLS, with a certificate for localhost and 127.0.0.1 from a test CA made here with openssl.
airlock_postgres_start() {
  local bin user dir port
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "airlock: PostgreSQL's server is needed for the store tests; on Debian/Ubuntu: apt-get install postgresql" >&2
    return 1
  fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/airlock-postgres.XXXXXX")
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
  ( set -e; cd "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=airlock-test-postgres-ca 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf 2>/dev/null
    chmod 600 server.key; chmod 644 ca.pem server.crt
    if [ "$(id -u)" -eq 0 ]; then chown "$user" server.key server.crt; fi ) || {
    echo "airlock: openssl could not make the test certificates (apt-get install openssl)" >&2; return 1; }
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U airlock --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || {
    echo "airlock: initdb failed:" >&2; cat "$dir/initdb.log" >&2; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c max_connections=300 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" start >/dev/null || {
    echo "airlock: PostgreSQL did not start:" >&2; cat "$dir/server.log" >&2; return 1; }
  "${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U airlock airlock_test || return 1
  AIRLOCK_POSTGRES_DIR=$dir AIRLOCK_POSTGRES_BIN=$bin
  AIRLOCK_POSTGRES_AS=("${as[@]}")
  export AIRLOCK_TEST_POSTGRES="postgres://airlock@127.0.0.1:$port/airlock_test"
  export AIRLOCK_TEST_POSTGRES_CA="$dir/ca.pem"
}

airlock_postgres_stop() {
  [ -n "${AIRLOCK_POSTGRES_DIR:-}" ] || return 0
  "${AIRLOCK_POSTGRES_AS[@]}" "$AIRLOCK_POSTGRES_BIN/pg_ctl" -D "$AIRLOCK_POSTGRES_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$AIRLOCK_POSTGRES_DIR"
  AIRLOCK_POSTGRES_DIR=
}
