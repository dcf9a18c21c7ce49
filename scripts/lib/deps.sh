# Sourced by scripts: install what Airlock needs to build and test, saying what is done.

# airlock_apt PACKAGE...: installs missing Debian/Ubuntu packages (as root, or via sudo).
airlock_apt() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      echo "airlock: missing packages: ${missing[*]}; install them with: apt-get install ${missing[*]}" >&2
      return 1
    fi
  fi
  echo "airlock: installing ${missing[*]} (apt-get)" >&2
  $sudo apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null || {
    echo "airlock: apt-get install ${missing[*]} failed" >&2; return 1; }
}

# airlock_build_deps: the C libraries Airlock links (libseccomp, libcap) and its tools.
airlock_build_deps() {
  command -v swift >/dev/null || {
    echo "airlock: Swift 6 is needed (https://www.swift.org/install/linux/); 'swift' is not on PATH" >&2
    return 1
  }
  airlock_apt libseccomp-dev libcap-dev libsqlite3-dev pkg-config
}
