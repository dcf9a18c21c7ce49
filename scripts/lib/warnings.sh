# Sourced by scripts/test: airlock_check_warnings LOG fails when a build's output has a
# `warning:` line (docs/building.md). One diagnostic is let through, by its exact shape:
# SwiftPM 6.3's "found N file(s) which are unhandled" about a *dependency's* manifest
# (swift-distributed-tracing's CMakeLists.txt files), which the depending package cannot fix;
# SwiftPM stopped printing it for dependencies upstream (swiftlang/swift-package-manager#10182,
# fixed by #10183). The same diagnostic about this package fails like any other.
airlock_check_warnings() {
  local log=$1 line name found=0
  while IFS= read -r line; do
    if [[ $line =~ ^warning:\ \'([^\']+)\':\ found\ [0-9]+\ file\(s\)\ which\ are\ unhandled ]]; then
      name=${BASH_REMATCH[1]}
      if [ -d ".build/checkouts/$name" ]; then continue; fi
    fi
    if [ $found -eq 0 ]; then echo "airlock: the build printed warnings (CI fails on any; docs/building.md):" >&2; fi
    found=1
    echo "  $line" >&2
  done < <(grep -E '(^|[^A-Za-z])warning:' "$log" | sort -u)
  return $found
}

# airlock_build_quietly ARGS…: `swift build ARGS…` with its output on stderr, less the one
# SwiftPM diagnostic about a dependency's manifest described above (and the path line under
# it): scripts/demo, scripts/bench and scripts/sandbox-shell show everything else.
airlock_build_quietly() {
  local line skip=0
  swift build "$@" 2>&1 | while IFS= read -r line; do
    if [[ $line =~ ^warning:\ \'([^\']+)\':\ found\ [0-9]+\ file\(s\)\ which\ are\ unhandled ]] && [ -d ".build/checkouts/${BASH_REMATCH[1]}" ]; then
      skip=1
      continue
    fi
    if [ $skip -eq 1 ] && [[ $line == "    "*".build/checkouts/"* ]]; then continue; fi
    skip=0
    printf '%s\n' "$line" >&2
  done
  return "${PIPESTATUS[0]}"
}
