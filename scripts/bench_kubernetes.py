"""Latency a Kubernetes read pays for going through Airlock's broker.

One HTTPS client inside `airlock run` (GET of a ConfigMap list through the broker's
Kubernetes endpoint, which checks the session token, classifies the request and forwards it
with the human's token) and one on the host calling the API server directly take turns, call
by call; both keep their connection alive. The API server is the test stand-in
(Tests/Support/kube_standin.py: no real one can run here), so absolute numbers are the
stand-in's; the difference is the broker's. Reported: medians, p90 and the added latency.
"""
import base64, json, os, ssl, subprocess, sys, tempfile
import http.client
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from bench_sessions import report, take_turns  # noqa: E402

CALLS = int(os.environ.get("BENCH_CALLS", "200"))
airlock = os.environ["AIRLOCK_BIN"]
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

work = tempfile.mkdtemp(prefix="airlock-bench-kube-")
subprocess.run([sys.executable, f"{here}/Tests/Support/egress_server.py", "fixtures", f"{work}/tls"], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
server = subprocess.Popen([sys.executable, f"{here}/Tests/Support/kube_standin.py", f"{work}/requests.jsonl",
                           f"{work}/tls/server.pem", f"{work}/tls/server.key"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "KUBE_STANDIN_SEED": "1"})
try:
    port = json.loads(server.stdout.readline())["port"]
    ca = base64.b64encode(open(f"{work}/tls/ca.pem", "rb").read()).decode()
    with open(f"{work}/kubeconfig", "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: standin
  cluster: {{server: "https://127.0.0.1:{port}", certificate-authority-data: {ca}, tls-server-name: kube.test}}
contexts:
- name: bench
  context: {{cluster: standin, user: person, namespace: default}}
current-context: bench
users:
- name: person
  user: {{token: host-secret-token}}
""")
    path = "/api/v1/namespaces/default/configmaps"
    os.makedirs(f"{work}/workspace")
    with open(f"{work}/workspace/agent.py", "w") as f:
        f.write(f"""
import http.client, json, os, re, ssl, time
token = re.search(r'token: "([^"]+)"', open(os.environ["KUBECONFIG"]).read()).group(1)
conn = http.client.HTTPSConnection("127.0.0.1", 6443, context=ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"]))
def get():
    conn.request("GET", "/contexts/0{path}", headers={{"Authorization": "Bearer " + token}})
    response = conn.getresponse(); response.read()
    assert response.status == 200, response.status
get()  # warm: the connection, the broker's first TLS context
samples = []
for i in range({CALLS}):
    while not os.path.exists(f"turn-{{i}}"): time.sleep(0.0002)
    start = time.perf_counter(); get(); samples.append((time.perf_counter() - start) * 1000)
    open(f"done-{{i}}", "w").close()
json.dump(samples, open("agent.json", "w"))
""")
    context = ssl.create_default_context(cafile=f"{work}/tls/ca.pem")
    context.check_hostname = False  # the stand-in's certificate names kube.test; 127.0.0.1 is dialled
    direct = http.client.HTTPSConnection("127.0.0.1", port, context=context)
    def get_direct():
        direct.request("GET", path, headers={"Authorization": "Bearer host-secret-token"})
        response = direct.getresponse(); response.read()
        assert response.status == 200, response.status
    get_direct()
    def session(pool):
        """The sandboxed client's calls, taking turns with direct ones; AIRLOCK_UPSTREAM_POOL
        turns the broker's kept upstream connections on or off (docs/design.md §4.5)."""
        for name in os.listdir(f"{work}/workspace"):
            if name.startswith(("turn-", "done-")): os.unlink(f"{work}/workspace/{name}")
        sandbox = subprocess.Popen([airlock, "run", "--workspace", f"{work}/workspace", "--state-dir", f"{work}/state", "--",
                                    "/usr/bin/python3", "agent.py"],
                                   cwd=f"{work}/workspace", env={**os.environ, "KUBECONFIG": f"{work}/kubeconfig",
                                                                 "AIRLOCK_UPSTREAM_POOL": pool},
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return take_turns(sandbox, get_direct, f"{work}/workspace", CALLS)
    # BENCH_POOLS=on,off,on,off: more sessions, alternating, for a steadier comparison.
    runs = [(pool, session(pool)) for pool in os.environ.get("BENCH_POOLS", "on,off").split(",")]
finally:
    server.kill()

print(f"kubernetes: {CALLS} kept-alive GETs of a ConfigMap list each, taking turns, against the stand-in API server on loopback;")
print("  the broker's upstream connections pooled (the default) and, in a second session, not (AIRLOCK_UPSTREAM_POOL=off)")
report(runs, "direct to the API server", 0.3, "a new TLS connection to the API server per request")
