"""Latency a warm boto3 client pays for going through Airlock's broker.

One boto3 client inside `airlock run` (its EC2 calls go to the broker, which verifies,
classifies, re-signs and forwards them to moto) and one on the host calling moto directly
take turns, call by call (the sandbox cannot reach moto itself, so the two clients live on
either side and hand the turn over through a file in the workspace; each call is timed by
its own client). Reported: medians and the added latency.
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time

CALLS = int(os.environ.get("BENCH_CALLS", "200"))
airlock = os.environ["AIRLOCK_BIN"]
venv = os.environ["AIRLOCK_VENV"]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

port = free_port()
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true")
env = dict(os.environ)
moto = subprocess.Popen([f"{venv}/bin/moto_server", "-H", "127.0.0.1", "-p", str(port)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
try:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close(); break
        except OSError:
            time.sleep(0.05)
    import boto3  # from the venv (scripts/bench runs this with it)
    direct = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    direct.run_instances(ImageId="ami-12345678", MinCount=3, MaxCount=3)

    work = tempfile.mkdtemp(prefix="airlock-bench-broker-")
    with open(f"{work}/agent.py", "w") as f:
        f.write(f"""
import boto3, os, time, json
client = boto3.client("ec2")
client.describe_instances()  # warm: connection, credentials, endpoint resolution
samples = []
for i in range({CALLS}):
    while not os.path.exists(f"turn-{{i}}"): time.sleep(0.0002)
    start = time.perf_counter()
    client.describe_instances()
    samples.append((time.perf_counter() - start) * 1000)
    open(f"done-{{i}}", "w").close()
json.dump(samples, open("agent.json", "w"))
""")
    with open(f"{work}/profile.yaml", "w") as f:
        f.write(f"filesystem:\n  readonly: [{venv}]\n")
    sandbox = subprocess.Popen(
        [airlock, "run", "--workspace", work, "--state-dir", f"{work}/state", "--aws-endpoint", f"http://127.0.0.1:{port}",
         "--profile", f"{work}/profile.yaml", "--", f"{venv}/bin/python3", "agent.py"],
        cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    direct.describe_instances()
    samples = []
    for i in range(CALLS):
        start = time.perf_counter()
        direct.describe_instances()
        samples.append((time.perf_counter() - start) * 1000)
        open(f"{work}/turn-{i}", "w").close()
        while not os.path.exists(f"{work}/done-{i}"):
            if sandbox.poll() is not None:
                sys.exit("bench: the sandboxed client ended early: " + sandbox.stderr.read().decode())
            time.sleep(0.0002)
    sandbox.wait(timeout=60)
    through = json.load(open(f"{work}/agent.json"))
finally:
    moto.kill()

def pct(values, p):
    values = sorted(values); return values[min(len(values) - 1, int(len(values) * p))]

print(f"broker: {CALLS} warm boto3 ec2 DescribeInstances calls each, taking turns, against moto on loopback")
print(f"{'':22} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8}")
for name, s in [("direct to moto", samples), ("through the broker", through)]:
    print(f"{name:22} {statistics.median(s):10.2f} {pct(s, .1):8.2f} {pct(s, .9):8.2f}")
added = statistics.median(through) - statistics.median(samples)
print(f"added at the median: {added:.2f} ms (ratio {statistics.median(through) / statistics.median(samples):.2f})")
print(f"  goal ≤ +0.2 ms: {'met' if added <= 0.2 else 'NOT met'}")  # issue 27
