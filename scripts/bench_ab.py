#!/usr/bin/env python3
"""Start-up A/B: `airlock run -- /bin/true` of two contenders, 200 interleaved launches each
(BENCH_RUNS), each contender with its own state directory and the order alternating.

    AIRLOCK_BASELINE=/path/to/another/airlock   the release build vs that build
    AIRLOCK_AB_ENV="NAME=VALUE[ NAME=VALUE…]"   one build with and without these variables

Two builds of nearly the same source can differ by a few percent for reasons outside the
change (code layout): an item that can be switched inside one build is best measured so
(BENCHMARKS.md, "Issue 27's planned start-up items").
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

AIRLOCK = os.path.abspath(os.environ.get("AIRLOCK_BIN", os.path.join(os.path.dirname(__file__), "..", ".build", "release", "airlock")))
RUNS = int(os.environ.get("BENCH_RUNS", "200"))
baseline = os.environ.get("AIRLOCK_BASELINE")
variables = dict(item.split("=", 1) for item in os.environ.get("AIRLOCK_AB_ENV", "").split())
if bool(baseline) == bool(variables):
    sys.exit("bench ab: set AIRLOCK_BASELINE=/path/to/airlock or AIRLOCK_AB_ENV='NAME=VALUE', one of them")
contenders = {"this build": (AIRLOCK, {}),
              "baseline": (baseline, {})} if baseline else {"without": (AIRLOCK, {}), "with " + " ".join(variables): (AIRLOCK, variables)}
workspace = tempfile.mkdtemp(prefix="airlock-bench-ab-")
states = {name: tempfile.mkdtemp(prefix="airlock-bench-ab-state-") for name in contenders}


def launch(name):
    binary, extra = contenders[name]
    started = time.perf_counter()
    out = subprocess.run([binary, "run", "--workspace", workspace, "--state-dir", states[name], "--", "/bin/true"],
                         env={**os.environ, **extra}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if out.returncode != 0:
        sys.exit(f"bench ab: {binary} failed: {out.stderr.decode()[:400]}")
    return (time.perf_counter() - started) * 1000


for name in contenders:  # warm: state directories, caches, page cache
    for _ in range(3):
        launch(name)
samples = {name: [] for name in contenders}
names = list(contenders)
for index in range(RUNS):
    for name in names if index % 2 else names[::-1]:
        samples[name].append(launch(name))
medians = {name: statistics.median(values) for name, values in samples.items()}
print(f"start-up A/B: {RUNS} interleaved launches of `airlock run -- /bin/true` each, on {os.cpu_count()} cores")
for name, median in medians.items():
    print(f"  {name:30} median {median:6.2f} ms")
first, second = names
print(f"  ratio {second} / {first}: {medians[second] / medians[first]:.3f}")
