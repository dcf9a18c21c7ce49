"""Latency a warm boto3 client pays for going through Airlock's broker.

One boto3 client inside `airlock run` (its SQS ListQueues calls go to the broker, which verifies,
classifies, re-signs and forwards them to moto) and one on the host calling moto directly
take turns, call by call (the sandbox cannot reach moto itself, so the two clients live on
either side and hand the turn over through a file in the workspace; each call is timed by
its own client). The sandboxed client runs twice, in two sessions: with the broker's upstream
connections pooled (the default) and not (AIRLOCK_UPSTREAM_POOL=off).

moto is served with kept-alive connections, as AWS endpoints answer (Tests/Support/moto_keepalive.py):
moto_server's werkzeug closes the connection after every response, which would make both
the direct client and the broker open a new connection per call, so pooling could not show.
Reported: medians and the added latency, for each session.
"""
import os, socket, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from bench_sessions import report, take_turns  # noqa: E402

CALLS = int(os.environ.get("BENCH_CALLS", "200"))
airlock = os.environ["AIRLOCK_BIN"]
venv = os.environ["AIRLOCK_VENV"]
here = os.path.dirname(os.path.abspath(__file__))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

port = free_port()
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true")
env = dict(os.environ)
moto = subprocess.Popen([f"{venv}/bin/python3", f"{os.path.dirname(here)}/Tests/Support/moto_keepalive.py", "127.0.0.1", str(port)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
try:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close(); break
        except OSError:
            time.sleep(0.05)
    import boto3  # from the venv (scripts/bench runs this with it)
    # ListQueues: a read moto answers in about a millisecond, so the broker's share shows
    # (EC2 DescribeInstances, used before, takes moto about 10 ms and buried it in noise).
    direct = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    direct.create_queue(QueueName="bench")

    work = tempfile.mkdtemp(prefix="airlock-bench-broker-")
    with open(f"{work}/agent.py", "w") as f:
        f.write(f"""
import boto3, os, time, json
client = boto3.client("sqs")
client.list_queues()  # warm: connection, credentials, endpoint resolution
samples = []
for i in range({CALLS}):
    while not os.path.exists(f"turn-{{i}}"): time.sleep(0.0002)
    start = time.perf_counter()
    client.list_queues()
    samples.append((time.perf_counter() - start) * 1000)
    open(f"done-{{i}}", "w").close()
json.dump(samples, open("agent.json", "w"))
""")
    with open(f"{work}/profile.yaml", "w") as f:
        f.write(f"filesystem:\n  readonly: [{venv}]\n")
    direct.list_queues()
    def session(pool):
        """The sandboxed client's calls, taking turns with direct ones; AIRLOCK_UPSTREAM_POOL
        turns the broker's kept upstream connections on or off (docs/design.md §4.5)."""
        for name in os.listdir(work):
            if name.startswith(("turn-", "done-")): os.unlink(f"{work}/{name}")
        sandbox = subprocess.Popen(
            [airlock, "run", "--workspace", work, "--state-dir", f"{work}/state", "--aws-endpoint", f"http://127.0.0.1:{port}",
             "--profile", f"{work}/profile.yaml", "--", f"{venv}/bin/python3", "agent.py"],
            cwd=work, env={**env, "AIRLOCK_UPSTREAM_POOL": pool},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return take_turns(sandbox, direct.list_queues, work, CALLS)
    # BENCH_POOLS=on,off,on,off: more sessions, alternating, for a steadier comparison.
    runs = [(pool, session(pool)) for pool in os.environ.get("BENCH_POOLS", "on,off").split(",")]
finally:
    moto.kill()

print(f"broker: {CALLS} warm boto3 sqs ListQueues calls each, taking turns, against moto on loopback (kept alive, as AWS);")
print("  the broker's upstream connections pooled (the default) and, in a second session, not (AIRLOCK_UPSTREAM_POOL=off)")
report(runs, "direct to moto", 0.2, "a new connection to moto per request")
