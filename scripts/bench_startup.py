"""Start-up of `airlock run -- /bin/true` against bubblewrap with equivalent isolation:
the sandbox alone (`airlock run --no-broker`) and the full session (broker, egress proxy,
shims for the installed tools), each against bubblewrap.

Both run interleaved (A, B, A, B, ...) in one process so that machine noise hits both alike.
bubblewrap gets what Airlock gives every agent: all namespaces, a new session, no
capabilities, a read-only system root (/usr, /etc, /opt and the merged-/usr symlinks), a
fresh /proc, a minimal /dev, a tmpfs /tmp and the workspace read-write. (bubblewrap adds
no seccomp filter, Landlock or rlimits here; Airlock always does: that work is in its time.)
"""
import os, statistics, subprocess, sys, tempfile, time

RUNS = int(os.environ.get("BENCH_RUNS", "200"))
airlock = os.environ["AIRLOCK_BIN"]
workspace = tempfile.mkdtemp(prefix="airlock-bench-")
state = tempfile.mkdtemp(prefix="airlock-bench-state-")

def bwrap_command():
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for d in ["/usr", "/etc", "/opt"]:
        if os.path.isdir(d) and not os.path.islink(d):
            cmd += ["--ro-bind", d, d]
    for d in ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]:
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", workspace, workspace,
            "--chdir", workspace, "--", "/bin/true"]
    return cmd

commands = {
    "airlock --no-broker": [airlock, "run", "--no-broker", "--workspace", workspace, "--state-dir", state, "--", "/bin/true"],
    "airlock run": [airlock, "run", "--workspace", workspace, "--state-dir", state, "--", "/bin/true"],
    "bwrap": bwrap_command(),
}
# AIRLOCK_BASELINE=/path/to/an/older/airlock: that build's full session too, interleaved with
# the others, and the ratio of this one to it (a change's own cost, side by side).
baseline = os.environ.get("AIRLOCK_BASELINE")
if baseline:
    baseline_state = tempfile.mkdtemp(prefix="airlock-bench-state-")
    commands["baseline run"] = [baseline, "run", "--workspace", workspace, "--state-dir", baseline_state, "--", "/bin/true"]
# AIRLOCK_AB_ENV="NAME=VALUE …": this build's full session with these variables too, and the
# ratio to it without: a change switched inside one build (BENCHMARKS.md, start-up items).
ab_variables = dict(item.split("=", 1) for item in os.environ.get("AIRLOCK_AB_ENV", "").split())
environments = {name: os.environ for name in commands}
if ab_variables:
    ab_state = tempfile.mkdtemp(prefix="airlock-bench-state-")
    commands["run with env"] = [airlock, "run", "--workspace", workspace, "--state-dir", ab_state, "--", "/bin/true"]
    environments["run with env"] = {**os.environ, **ab_variables}

if len(sys.argv) > 1 and sys.argv[1] == "trace":
    # Where the time goes: AIRLOCK_TRACE_STARTUP marks (CLOCK_MONOTONIC, the clock of
    # time.monotonic_ns) against the moment of the spawn, median of RUNS runs.
    marks = {}
    env = dict(os.environ, AIRLOCK_TRACE_STARTUP="1")
    for _ in range(RUNS):
        for name in ("airlock --no-broker", "airlock run"):
            start = time.monotonic_ns()
            out = subprocess.run(commands[name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True, env=env)
            end = time.monotonic_ns()
            seen = marks.setdefault(name, {})
            for line in out.stderr.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[0] == "airlock-trace":
                    seen.setdefault(parts[1], []).append((int(parts[2]) - start) / 1e6)
            seen.setdefault("(process gone)", []).append((end - start) / 1e6)
    for name, seen in marks.items():
        print(f"{name}: median ms since spawn, {RUNS} runs")
        ordered = sorted(seen.items(), key=lambda item: statistics.median(item[1]))
        previous = 0.0
        for label, values in ordered:
            at = statistics.median(values)
            print(f"  {label:16} {at:7.2f}  (+{at - previous:5.2f})")
            previous = at
    sys.exit(0)

devnull = os.open(os.devnull, os.O_RDWR)

def once(cmd, env=os.environ):
    start = time.perf_counter_ns()
    pid = os.posix_spawnp(cmd[0], cmd, env,
                          file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)])
    _, status, _ = os.wait4(pid, 0)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if status != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed (status {status})")
    return elapsed

def peak_rss_kb(cmd, env=os.environ):
    """Peak RSS of the command's process tree, through GNU time (a small parent: the kernel
    charges a child the parent's RSS at fork, so Python cannot measure this itself)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdin=subprocess.DEVNULL, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    return int(out.stderr.strip().splitlines()[-1])

samples = {name: [] for name in commands}
for name, cmd in commands.items():  # warm caches
    for _ in range(5): once(cmd, environments[name])
order = list(commands)
for index in range(RUNS):
    # The order reverses every round: a contender that always ran after another would pay
    # (or gain) what that one left behind, a bias of a few percent between equal builds.
    for name in order if index % 2 == 0 else order[::-1]:
        samples[name].append(once(commands[name], environments[name]))
peaks = {name: max(peak_rss_kb(cmd, environments[name]) for _ in range(10)) for name, cmd in commands.items()}

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]

who = "root" if os.geteuid() == 0 else "unprivileged user"
print(f"startup: {RUNS} interleaved runs of each, as {who}, on {os.cpu_count()} cores")
print(f"{'':14} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8} {'peak RSS':>10}")
for name in commands:
    s = samples[name]
    print(f"{name:14} {statistics.median(s):10.2f} {pct(s, .1):8.2f} {pct(s, .9):8.2f} {peaks[name] / 1024:8.1f}MB")
goals = {"airlock --no-broker": 1.0, "airlock run": 1.3}  # issue 27: the sandbox alone, the full session
for name in ("airlock --no-broker", "airlock run"):
    ratio = statistics.median(samples[name]) / statistics.median(samples["bwrap"])
    print(f"ratio {name} / bwrap (median): {ratio:.2f}")
    print(f"  goal ≤ {goals[name]:.1f}×: {'met' if ratio <= goals[name] else 'NOT met'}")
if baseline:
    ratio = statistics.median(samples["airlock run"]) / statistics.median(samples["baseline run"])
    print(f"ratio airlock run / baseline run (median): {ratio:.3f}")
if ab_variables:
    ratio = statistics.median(samples["run with env"]) / statistics.median(samples["airlock run"])
    print(f"ratio airlock run with {' '.join(ab_variables)} / without (median): {ratio:.3f}")
