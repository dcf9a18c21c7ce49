"""The report of a broker benchmark whose sandboxed client ran in sessions with the broker's
upstream pooling on or off (AIRLOCK_UPSTREAM_POOL), each taking turns with a direct client:
shared by scripts/bench_broker.py and scripts/bench_kubernetes.py."""
import json, os, statistics, sys, time


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def report(runs, direct, goal_ms, unpooled):
    """`runs`: [(pool, (direct samples, through samples))]; `direct`: what the direct client
    calls; `goal_ms`: the added latency a pooled session should stay under; `unpooled`: what
    a session without pooling pays per request."""
    width = max(len(f"{direct} (pool {pool} run)") for pool, _ in runs) + 2
    print(f"{'':{width}} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8}")
    for pool, (samples, through) in runs:
        for name, values in [(f"{direct} (pool {pool} run)", samples), (f"through the broker, pool {pool}", through)]:
            print(f"{name:{width}} {statistics.median(values):10.2f} {pct(values, .1):8.2f} {pct(values, .9):8.2f}")
        added = statistics.median(through) - statistics.median(samples)
        print(f"  added at the median, pool {pool}: {added:.2f} ms (ratio {statistics.median(through) / statistics.median(samples):.2f})"
              + ("" if pool == "on" else f"; {unpooled}"))
        if pool == "on":
            print(f"  goal ≤ +{goal_ms} ms: {'met' if added <= goal_ms else 'NOT met'}")  # issue 27


def take_turns(sandbox, direct_call, folder, calls):
    """Times `direct_call` `calls` times, each followed by the sandboxed client's turn: it waits
    for folder/turn-I, makes its request and writes folder/done-I, and at the end its own
    samples in folder/agent.json. Returns (direct samples, the client's samples), in ms."""
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        direct_call()
        samples.append((time.perf_counter() - start) * 1000)
        open(f"{folder}/turn-{i}", "w").close()
        while not os.path.exists(f"{folder}/done-{i}"):
            if sandbox.poll() is not None:
                sys.exit("bench: the sandboxed client ended early: " + sandbox.stderr.read().decode())
            time.sleep(0.0002)
    sandbox.wait(timeout=60)
    return samples, json.load(open(f"{folder}/agent.json"))
