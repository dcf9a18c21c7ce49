#!/usr/bin/env python3
"""scripts/bench gate: the team gate under load (docs/gate.md, "Team gate"; BENCHMARKS.md).

100 agent sessions (threads of airlock-bench gate-load, the Swift load generator, on kept-alive
connections) create proposals for BENCH_SECONDS against: one gate on SQLite, one on
PostgreSQL, two replicas on one PostgreSQL. Each created proposal is read back by its host
(what `airlock wait` does); then approvers approve BENCH_APPROVALS of them, each approval
returning once the gate has executed it on moto (decision-to-result), beside the same call
sent straight to moto. While the paced sessions propose, one real `airlock run --gate` session's
AWS reads are timed against the same reads sent straight to moto. pgbench on the same
PostgreSQL server gives the ceiling.

Run by scripts/bench with AIRLOCK_BIN_DIR (release binaries), AIRLOCK_VENV (moto), and a
PostgreSQL server from scripts/lib/postgres.sh (AIRLOCK_TEST_POSTGRES, AIRLOCK_POSTGRES_BIN)."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

bin_dir = os.environ["AIRLOCK_BIN_DIR"]
venv = os.environ["AIRLOCK_VENV"]
pg_url = os.environ["AIRLOCK_TEST_POSTGRES"]
pg_bin = os.environ["AIRLOCK_POSTGRES_BIN"]
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = os.environ.get("BENCH_SECONDS", "10")
SESSIONS = os.environ.get("BENCH_SESSIONS", "100")
APPROVALS = os.environ.get("BENCH_APPROVALS", "200")
PACED = os.environ.get("BENCH_PACED_RATE", "1")
m = re.match(r"postgres://([^@]+)@([^:/]+):(\d+)/(\w+)", pg_url)
pg_user, pg_host, pg_port, _ = m.groups()


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port)).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing listens on {port}")


os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
           AIRLOCK_PROFILE_PATH=f"{repo}/profiles")
work = tempfile.mkdtemp(prefix="airlock-bench-gate-")
moto_port = free_port()
moto = subprocess.Popen([f"{venv}/bin/moto_server", "-H", "127.0.0.1", "-p", str(moto_port)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
gates = []


def stop_all():
    for g in gates:
        if g.poll() is None:
            g.send_signal(signal.SIGTERM)
    for g in gates:
        try:
            g.wait(timeout=30)
        except subprocess.TimeoutExpired:
            g.kill()
    gates.clear()


def createdb(name):
    subprocess.run([f"{pg_bin}/createdb", "-h", pg_host, "-p", pg_port, "-U", pg_user, name], check=True)
    return f"postgres://{pg_user}@{pg_host}:{pg_port}/{name}"


def start_gate(name, store_line):
    port = free_port()
    config = f"{work}/{name}.yaml"
    with open(config, "w") as f:
        f.write(f"listen: 127.0.0.1:{port}\n{store_line}\nstate_dir: {work}/{name}-state\n"
                f"aws: {{upstream: \"http://127.0.0.1:{moto_port}\"}}\nreplica: {name}\nlog: {{format: json}}\n")
    log = open(f"{work}/{name}.log", "w")
    g = subprocess.Popen([f"{bin_dir}/airlock-gate", "serve", "--config", config], stdout=log, stderr=log, env=env)
    gates.append(g)
    wait_port(port)
    return config, f"http://127.0.0.1:{port}"


def enrol(config, kind, name):
    out = subprocess.run([f"{bin_dir}/airlock-gate", kind, "add", name, "--config", config], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def load(urls, host, user, queue, rate=None):
    extra = ["--rate", str(rate), "--approvals", "0"] if rate else \
        ["--approvals", APPROVALS, "--approvers", "8", "--upstream", f"http://127.0.0.1:{moto_port}"]
    out = subprocess.run([f"{bin_dir}/airlock-bench", "gate-load", "--urls", ",".join(urls), "--host-token", host,
                          "--user-token", user, "--queue-url", queue, "--sessions", SESSIONS, "--seconds", SECONDS] + extra,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


READS = int(os.environ.get("BENCH_READS", "300"))


def agent_reads(gate_url, host_token):
    """An agent's AWS reads while the gate is loaded: one warm boto3 client inside a real
    `airlock run --gate` session (its reads served by the session's own broker, which forwards
    them to moto with the host's keys) and one on the host calling moto directly take turns,
    call by call (the turn handed over through a file in the workspace), so both see the same
    load. Returns the two lists of milliseconds."""
    work_dir = tempfile.mkdtemp(prefix="airlock-bench-reads-", dir=work)
    with open(f"{work_dir}/agent.py", "w") as f:
        f.write(f"""
import boto3, os, time, json
client = boto3.client("sqs")
client.list_queues()  # warm: connection, credentials, endpoint resolution
samples = []
for i in range({READS}):
    while not os.path.exists(f"turn-{{i}}"): time.sleep(0.0002)
    start = time.perf_counter()
    client.list_queues()
    samples.append((time.perf_counter() - start) * 1000)
    open(f"done-{{i}}", "w").close()
json.dump(samples, open("agent.json", "w"))
""")
    with open(f"{work_dir}/profile.yaml", "w") as f:
        f.write(f"filesystem:\n  readonly: [{venv}]\n")
    with open(f"{work_dir}/host.token", "w") as f:
        f.write(host_token + "\n")
    os.chmod(f"{work_dir}/host.token", 0o600)
    import boto3
    direct = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1")
    sandbox = subprocess.Popen(
        [f"{bin_dir}/airlock", "run", "--workspace", work_dir, "--state-dir", f"{work_dir}/state",
         "--aws-endpoint", f"http://127.0.0.1:{moto_port}", "--gate", gate_url, "--gate-token-file", f"{work_dir}/host.token",
         "--profile", f"{work_dir}/profile.yaml", "--", f"{venv}/bin/python3", "agent.py"],
        cwd=work_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    direct.list_queues()
    samples = []
    for i in range(READS):
        start = time.perf_counter()
        direct.list_queues()
        samples.append((time.perf_counter() - start) * 1000)
        open(f"{work_dir}/turn-{i}", "w").close()
        while not os.path.exists(f"{work_dir}/done-{i}"):
            if sandbox.poll() is not None:
                raise SystemExit("bench: the sandboxed client ended early: " + sandbox.stderr.read().decode())
            time.sleep(0.0002)
    sandbox.wait(timeout=60)
    return samples, json.load(open(f"{work_dir}/agent.json"))


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def pgbench(database):
    base = [f"{pg_bin}/pgbench", "-h", pg_host, "-p", pg_port, "-U", pg_user]
    subprocess.run(base + ["-i", "-q", "-s", "10", database], check=True, capture_output=True)
    figures = {}
    for label, extra in (("tpcb", []), ("select", ["-S"])):
        out = subprocess.run(base + ["-c", SESSIONS, "-j", "2", "-T", SECONDS, "-n"] + extra + [database],
                             check=True, capture_output=True, text=True).stdout
        tps = re.search(r"tps = ([0-9.]+)", out)
        latency = re.search(r"latency average = ([0-9.]+) ms", out)
        figures[label] = (float(tps.group(1)), float(latency.group(1)) if latency else 0.0)
    return figures


try:
    wait_port(moto_port)
    import boto3  # the venv's (scripts/bench runs this with it)
    sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="bench-gate")["QueueUrl"]
    results = []
    for label, replicas, store in (("SQLite, 1 replica", 1, "sqlite"), ("PostgreSQL, 1 replica", 1, "postgres"),
                                   ("PostgreSQL, 2 replicas", 2, "postgres")):
        print(f"bench: gate with {label}: {SESSIONS} sessions for {SECONDS} s", file=sys.stderr)
        if store == "sqlite":
            line = f"store: {{sqlite: {work}/sqlite-store}}"
        else:
            line = f"store: {{postgres: \"{createdb('bench_' + str(len(results)) + '_' + str(os.getpid()))}\"}}"
        urls, config = [], None
        for n in range(replicas):
            config_n, url = start_gate(f"gate{len(results)}{chr(97 + n)}", line)
            config = config or config_n
            urls.append(url)
        host, user = enrol(config, "host", "bench-host"), enrol(config, "user", "bench-user")
        result = load(urls, host, user, queue)
        result["label"] = label
        # The same sessions paced at PACED proposals/s each: what one agent waits while 100 are
        # active; meanwhile one more agent's AWS reads, through its broker and directly.
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            paced_future = pool.submit(load, urls, host, user, queue, PACED)
            time.sleep(1.5)  # the sessions are proposing
            direct, through = agent_reads(urls[0], host)
            paced = paced_future.result()
        result["paced"] = paced
        result["agent_reads"] = {"direct": direct, "through": through}
        results.append(result)
        stop_all()
    print(f"bench: pgbench on the same server ({SESSIONS} clients, {SECONDS} s)", file=sys.stderr)
    pgbench_db = f"pgbench_{os.getpid()}"
    createdb(pgbench_db)
    figures = pgbench(pgbench_db)
    print()
    print(f"Team gate, {SESSIONS} agent sessions, {SECONDS} s of proposals each configuration, then {APPROVALS} approvals by 8 approvers")
    print(f"{'':24} {'created/s':>10} {'create p50/p99 ms':>18} {'read p50/p99 ms':>16} {'approve→result p50/p99 ms':>26} {'errors':>8}")
    for r in results:
        errors = sum(r["errors"].values())
        print(f"{r['label']:24} {r['created_per_second']:>10.0f} {r['create_p50_ms']:>8.2f} / {r['create_p99_ms']:<7.2f} "
              f"{r['read_p50_ms']:>6.2f} / {r['read_p99_ms']:<7.2f} {r['decide_p50_ms']:>12.2f} / {r['decide_p99_ms']:<10.2f} {errors:>8}")
    print(f"Paced: the same {SESSIONS} sessions, {PACED} proposal/s each (a proposal and a read-back per session per {1/float(PACED):g} s)")
    print(f"{'':24} {'created/s':>10} {'create p50/p99 ms':>18} {'read p50/p99 ms':>16}")
    for r in results:
        p = r["paced"]
        print(f"{r['label']:24} {p['created_per_second']:>10.0f} {p['create_p50_ms']:>8.2f} / {p['create_p99_ms']:<7.2f} "
              f"{p['read_p50_ms']:>6.2f} / {p['read_p99_ms']:<7.2f}")
    print(f"An agent's AWS reads (boto3 sqs ListQueues, {READS} warm calls) while the {SESSIONS} paced sessions propose, taking turns with a client calling moto directly")
    print(f"{'':24} {'direct p50/p99 ms':>18} {'through broker p50/p99 ms':>26} {'added p50/p99 ms':>18}")
    for r in results:
        d, t = r["agent_reads"]["direct"], r["agent_reads"]["through"]
        print(f"{r['label']:24} {pct(d, .5):>8.2f} / {pct(d, .99):<7.2f} {pct(t, .5):>12.2f} / {pct(t, .99):<11.2f} "
              f"{pct(t, .5) - pct(d, .5):>7.2f} / {pct(t, .99) - pct(d, .99):<7.2f}")
    up = results[-1]
    print(f"{'moto directly':24} {'':>10} {'':>18} {'':>16} {up['upstream_p50_ms']:>12.2f} / {up['upstream_p99_ms']:<10.2f}")
    tpcb, select = figures["tpcb"], figures["select"]
    print(f"pgbench (ceiling)        TPC-B-like {tpcb[0]:.0f} tps (avg {tpcb[1]:.2f} ms), select-only {select[0]:.0f} tps (avg {select[1]:.2f} ms)")
    for r in results:
        if "PostgreSQL" in r["label"]:
            print(f"ratio: {r['label']}: proposals created / pgbench TPC-B transactions = {r['created_per_second'] / tpcb[0]:.2f}")
    for r in results:
        print(f"ratio: {r['label']}: approve→result p50 / moto direct p50 = {r['decide_p50_ms'] / max(up['upstream_p50_ms'], 0.01):.1f}")
    print(json.dumps({"results": results, "pgbench": figures}), file=open(f"{work}/results.json", "w"))
    print(f"bench: raw results in {work}/results.json; gate logs in {work}/*.log", file=sys.stderr)
    failed = [r["label"] for r in results if r["errors"] or r["paced"]["errors"]]
    if failed:
        print(f"bench: errors in {failed}: see results.json", file=sys.stderr)
finally:
    stop_all()
    moto.kill()
