#!/usr/bin/env python3
"""Writes the compatibility fixtures with the binaries of commit fc0b570 (make.sh builds them
in a worktree and runs this; docs/architecture.md, "Stores written before").

    make_fixtures.py OLD_WORKTREE POSTGRES_URL

Two passes, each a real `airlock run` session of fc0b570 whose agent proposes seven of every
kind (aws-request, s3-multipart, kubernetes-request, github-request, git-push, command) to
upstreams on fixed loopback addresses (the test starts them there again to execute):

    AWS (moto)               http://127.0.0.30:4566
    Kubernetes (stand-in)    https://kube.test:6443      kube.test = 127.0.0.31
    GitHub API (stand-in)    https://api.github.com      api.github.com = 127.0.0.32:443
    git (git http-backend)   https://github.com/acme/app github.com = 127.0.0.33:443

local: the developer's set-up, a state directory with its SQLite store (local-state/).
gate:  a team gate of fc0b570 on PostgreSQL, the session an agent host of it (gate.sql, a
       pg_dump, and gate-state/, the gate's blobs and artifacts). fc0b570's gate took only
       aws-request, s3-multipart and command proposals (its hosts refused the others), so
       those are the kinds its store can hold.

Then the proposals are moved into every state fc0b570 can leave them in, by index:
    1 pending     left alone
    2 denied      `airlock deny`
    3 succeeded   `airlock approve` with every upstream up
    4 failed      `airlock approve` with every upstream stopped (not sent)
    5 approved    the approver's process died between approval and claim
    6 executing   it died after claiming (locally: its process is gone; on the gate: a
                  replica's lease that runs out 30 s later)
    7 unknown     as 6, then fc0b570's own recovery marked it (the next `airlock` command
                  locally; the gate's recovery loop)
5 to 7 are states only a crash leaves: fixture_states.swift, built against fc0b570's store,
makes the calls fc0b570's approve and executor make before such a crash.

manifest.json says which proposal is which (kind, index, state), the bare repository's state
when the pushes were proposed (git-repositories.tar) and what else the test needs.
Run as root (the GitHub stand-ins listen on port 443)."""
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "../../.."))
OLD = os.path.abspath(sys.argv[1])
POSTGRES = sys.argv[2]
WORK = "/tmp/airlock-fc0b570-fixtures"
VENV = os.path.join(REPO, ".venv")
AIRLOCK = os.path.join(OLD, ".build/release/airlock")
GATE = os.path.join(OLD, ".build/release/airlock-gate")
STATES = os.path.join(OLD, ".build/release/fixture-states")
KINDS = ["aws-request", "s3-multipart", "kubernetes-request", "github-request", "git-push", "command"]
# fc0b570's gate takes no Kubernetes, GitHub or git proposals from its hosts (they are refused
# with "a team gate … does not hold a kubeconfig" and the like), so its store never holds them.
GATE_KINDS = ["aws-request", "s3-multipart", "command"]
STATE_BY_INDEX = {1: "pending", 2: "denied", 3: "succeeded", 4: "failed", 5: "approved", 6: "executing", 7: "unknown"}
RESOLVE = "kube.test=127.0.0.31;api.github.com=127.0.0.32;github.com=127.0.0.33"
BUCKET = "compat-bucket"


def log(message):
    print("fixtures: " + message, file=sys.stderr, flush=True)


def run(arguments, env=None, cwd=None, check=True, timeout=600):
    done = subprocess.run(arguments, env=env, cwd=cwd or WORK, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        sys.exit(f"fixtures: {' '.join(arguments)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def wait_port(host, port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"fixtures: nothing listens on {host}:{port}")


def human_env():
    return {
        "PATH": VENV + "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": WORK + "/home", "LANG": "C.UTF-8", "TERM": "xterm",
        "AIRLOCK_PROFILE_PATH": OLD + "/profiles",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "KUBECONFIG": WORK + "/kubeconfig", "GH_TOKEN": "host-github-token",
        "AIRLOCK_EGRESS_RESOLVE": RESOLVE, "SSL_CERT_FILE": WORK + "/tls/ca.pem",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


class Upstreams:
    """moto, the Kubernetes and GitHub stand-ins and the git server on their fixed addresses."""

    def __init__(self):
        self.processes = []

    def start(self):
        env = {"PATH": "/usr/bin:/bin", "HOME": WORK + "/home"}
        self.processes = [
            subprocess.Popen([VENV + "/bin/moto_server", "-H", "127.0.0.30", "-p", "4566"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            subprocess.Popen([sys.executable, REPO + "/Tests/Support/kube_standin.py", WORK + "/kube.jsonl",
                              WORK + "/tls/server.pem", WORK + "/tls/server.key"],
                             env=dict(env, KUBE_STANDIN_BIND="127.0.0.31:6443"), stdout=subprocess.DEVNULL),
            subprocess.Popen([sys.executable, REPO + "/Tests/Support/github_standin.py", WORK + "/github.jsonl",
                              WORK + "/tls/github.pem", WORK + "/tls/github.key", "127.0.0.32:443"], env=env, stdout=subprocess.DEVNULL),
            subprocess.Popen([sys.executable, REPO + "/Tests/Support/git_http_server.py", WORK + "/repositories", "alice", "s3cret",
                              WORK + "/git.jsonl", "--cert", WORK + "/tls/github.pem", "--key", WORK + "/tls/github.key",
                              "--bind", "127.0.0.33:443"], env=env, stdout=subprocess.DEVNULL),
        ]
        for host, port in [("127.0.0.30", 4566), ("127.0.0.31", 6443), ("127.0.0.32", 443), ("127.0.0.33", 443)]:
            wait_port(host, port)

    def stop(self):
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes = []


def prepare():
    shutil.rmtree(WORK, ignore_errors=True)
    for directory in ["home", "tls", "repositories"]:
        os.makedirs(os.path.join(WORK, directory))
    run([sys.executable, REPO + "/Tests/Support/egress_server.py", "fixtures", WORK + "/tls"])
    with open(WORK + "/tls/github.ext", "w") as f:
        f.write("subjectAltName=DNS:github.com,DNS:api.github.com\n")
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=github.com", "-keyout", WORK + "/tls/github.key",
         "-out", WORK + "/tls/github.csr"])
    run(["openssl", "x509", "-req", "-in", WORK + "/tls/github.csr", "-CA", WORK + "/tls/ca.pem", "-CAkey", WORK + "/tls/ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", WORK + "/tls/github.ext", "-out", WORK + "/tls/github.pem"])
    with open(WORK + "/tls/ca.pem") as f:
        import base64
        ca = base64.b64encode(f.read().encode()).decode()
    with open(WORK + "/kubeconfig", "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: standin
  cluster:
    server: https://kube.test:6443
    certificate-authority-data: {ca}
contexts:
- name: standin
  context: {{cluster: standin, user: person, namespace: default}}
current-context: standin
users:
- name: person
  user: {{token: host-secret-token}}
""")
    os.chmod(WORK + "/kubeconfig", 0o600)
    with open(WORK + "/home/.gitconfig", "w") as f:
        f.write("[credential]\n\thelper = store\n")
    with open(WORK + "/home/.git-credentials", "w") as f:
        f.write("https://alice:s3cret@github.com\n")
    os.chmod(WORK + "/home/.git-credentials", 0o600)
    run([sys.executable, REPO + "/Tests/Support/git_http_server.py", "init", WORK + "/repositories", "acme/app"])
    with open(WORK + "/profile.yaml", "w") as f:
        f.write(f"network:\n  allow: [github.com, api.github.com, kube.test:6443]\n  allow_addresses: [127.0.0.31/32]\n"
                f"github:\n  repos: [acme/app]\nfilesystem:\n  readonly: [{VENV}]\n")


AGENT = r"""
set -u
export PATH=VENV/bin:$PATH GIT_CONFIG_NOSYSTEM=1
ids() { grep -o 'Proposal [0-9a-f]\{8\}' "$1" | head -1 | cut -d' ' -f2; }
head -c 9437184 /dev/zero > big.bin
git clone -q https://github.com/acme/app.git app > clone.out 2>&1 || { cat clone.out; exit 1; }
cat > kube.py <<'EOF'
import http.client, json, os, re, ssl, sys
context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
token = re.search(r'token: "?([^"\s]+)', open(os.environ["KUBECONFIG"]).read()).group(1)
conn = http.client.HTTPSConnection("127.0.0.1", 6443, context=context, timeout=120)
body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "compat-kube-" + sys.argv[1]}, "data": {"n": sys.argv[1]}})
conn.request("POST", "/contexts/0/api/v1/namespaces/default/configmaps", body=body,
             headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
print(conn.getresponse().read().decode())
EOF
cat > gh.py <<'EOF'
import http.client, json, os, ssl, sys
context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
conn = http.client.HTTPSConnection("127.0.0.1", 3128, context=context, timeout=120)
conn.set_tunnel("api.github.com", 443)
conn.request("POST", "/repos/acme/app/issues", body=json.dumps({"title": "compat-github-" + sys.argv[1]}),
             headers={"Content-Type": "application/json", "Accept": "application/vnd.github+json"})
print(conn.getresponse().read().decode())
EOF
cd app
git -c user.name=Agent -c user.email=agent@example.com commit -q --allow-empty -m "Compatibility fixture commit"
cd ..
# Past the aws CLI's 8 MiB multipart threshold: two parts (8 MiB, 1 MiB) of zeros, which git
# stores in a few kilobytes.
for i in 1 2 3 4 5 6 7; do
  aws sqs create-queue --queue-name compat-aws-$i > out 2>&1; echo "aws-request $i $(ids out)" >> ids.txt
  aws s3 cp big.bin s3://BUCKET/multipart-$i.bin > out 2>&1; echo "s3-multipart $i $(ids out)" >> ids.txt
done
rm big.bin  # not in the command proposals' workspace snapshots
for i in 1 2 3 4 5 6 7; do
  python3 kube.py $i > out 2>&1; echo "kubernetes-request $i $(ids out)" >> ids.txt
  python3 gh.py $i > out 2>&1; echo "github-request $i $(ids out)" >> ids.txt
  (cd app && git push origin HEAD:refs/heads/compat-$PASS-$i) > out 2>&1; echo "git-push $i $(ids out)" >> ids.txt
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: compat-command-%s\ndata:\n  n: "%s"\n' $i $i > cm-$i.yaml
  kubectl create -f cm-$i.yaml --validate=false > out 2>&1; echo "command $i $(ids out)" >> ids.txt
done
""".replace("VENV", VENV).replace("BUCKET", BUCKET)


def session(name, options, kinds):
    """One `airlock run` of fc0b570 whose agent tries seven proposals of every kind; returns
    {(kind, i): id} for `kinds`, the ones this set-up of fc0b570 takes (the others must have
    been refused)."""
    workspace = f"{WORK}/{name}-workspace"
    os.makedirs(workspace)
    done = run([AIRLOCK, "run", "--workspace", workspace, "--profile", WORK + "/profile.yaml",
                "--aws-endpoint", "http://127.0.0.30:4566"] + options + ["--", "/bin/sh", "-c", AGENT.replace("$PASS", name)],
               env=human_env(), cwd=workspace, timeout=1800, check=False)
    ids = {}
    for line in open(workspace + "/ids.txt"):
        kind, index, *rest = line.split()
        if (kind in kinds) != bool(rest):
            sys.exit(f"fixtures: {kind} {index} {'made no' if not rest else 'made a'} proposal in the {name} session:\n"
                     f"{done.stdout}\n{done.stderr}")
        if rest:
            ids[(kind, int(index))] = rest[0]
    if len(ids) != 7 * len(kinds):
        sys.exit(f"fixtures: {len(ids)} proposals in the {name} session, not {7 * len(kinds)}:\n{done.stdout}\n{done.stderr}")
    log(f"{name}: {len(ids)} proposals made")
    return ids


def tar_repositories():
    out = os.path.join(HERE, "git-repositories.tar")
    # As the server held it when the pushes were proposed: their packs build on these objects.
    run(["tar", "-C", WORK + "/repositories", "--sort=name", "--owner=0", "--group=0", "--numeric-owner",
         "--mtime=2026-12-06 00:00:00", "-cf", out, "."])


def decide(ids, index, verb, options, expect_status):
    """`airlock deny|approve` of fc0b570 on fixture `index` of every kind; an exit status other
    than `expect_status` (0: decided and, for approve, succeeded; 1: approved, failed) stops."""
    for kind in sorted({kind for kind, _ in ids}):
        done = run([AIRLOCK, verb, ids[(kind, index)], "--reason", "fixture"] + options, env=human_env(), check=False, timeout=900)
        if done.returncode != expect_status:
            sys.exit(f"fixtures: {verb} of {kind} {index} exited {done.returncode}, not {expect_status}:\n{done.stdout}\n{done.stderr}")


def local_pass(upstreams):
    state = WORK + "/local-state"
    options = ["--state-dir", state]
    ids = session("local", options, KINDS)
    tar_repositories()
    run([VENV + "/bin/aws", "--endpoint-url", "http://127.0.0.30:4566", "s3", "mb", "s3://" + BUCKET], env=human_env())
    decide(ids, 2, "deny", options, 0)
    decide(ids, 3, "approve", options, 0)
    upstreams.stop()
    decide(ids, 4, "approve", options, 1)
    for kind in KINDS:  # 7: claimed by a process that is gone; fc0b570's next command marks it
        run([STATES, "--sqlite", state, "approve", ids[(kind, 7)], "user:root(uid 0)"])
        run([STATES, "--sqlite", state, "claim", ids[(kind, 7)], "user:root(uid 0)"])
    run([AIRLOCK, "proposals", "--all"] + options, env=human_env())
    for kind in KINDS:
        for index in (5, 6):
            run([STATES, "--sqlite", state, "approve", ids[(kind, index)], "user:root(uid 0)"])
        run([STATES, "--sqlite", state, "claim", ids[(kind, 6)], "user:root(uid 0)"])
    database = sqlite3.connect(state + "/airlock.db")
    states = {pid: s for pid, s in database.execute("SELECT id, state FROM proposals")}
    for (kind, index), pid in ids.items():
        (payload,) = database.execute("SELECT payload FROM proposals WHERE id = ?", (pid,)).fetchone()
        if json.loads(payload)["type"] != kind:
            sys.exit(f"fixtures: proposal {pid} ({kind} {index}) is a {json.loads(payload)['type']}")
    database.close()
    destination = os.path.join(HERE, "local-state")
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(state, destination, ignore=shutil.ignore_patterns("*.sock", "*.lock", "cache", "homes"))
    return ids, states


def psql(url, sql):
    return run(["psql", "-At", url, "-c", sql]).stdout


def gate_pass(upstreams):
    base, _, _ = POSTGRES.rpartition("/")
    database = "airlock_fc0b570"
    psql(POSTGRES, f"DROP DATABASE IF EXISTS {database}")
    psql(POSTGRES, f"CREATE DATABASE {database}")
    url = base + "/" + database
    directory = WORK + "/gate"
    os.makedirs(directory + "/home")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(directory + "/gate.yaml", "w") as f:
        f.write(f"listen: 127.0.0.1:{port}\nstore: {{postgres: \"{url}\"}}\nstate_dir: {directory}/state\n"
                f"aws: {{upstream: \"http://127.0.0.30:4566\"}}\nreplica: gate-a\n")
    env = dict(human_env(), HOME=directory + "/home")
    config = ["--config", directory + "/gate.yaml"]
    host = run([GATE, "host", "add", "fixture-host"] + config, env=env).stdout.strip()
    user = run([GATE, "user", "add", "fixture-approver"] + config, env=env).stdout.strip()
    for name, token in [("host", host), ("user", user)]:
        with open(f"{directory}/{name}.token", "w") as f:
            f.write(token + "\n")
        os.chmod(f"{directory}/{name}.token", 0o600)
    upstreams.start()
    run([VENV + "/bin/aws", "--endpoint-url", "http://127.0.0.30:4566", "s3", "mb", "s3://" + BUCKET], env=human_env())
    gate = subprocess.Popen([GATE, "serve"] + config, env=env, stdout=subprocess.DEVNULL, stderr=open(directory + "/gate.log", "w"))
    wait_port("127.0.0.1", port)
    gate_url = f"http://127.0.0.1:{port}"
    ids = session("gate", ["--state-dir", WORK + "/host-state", "--gate", gate_url, "--gate-token-file", directory + "/host.token"],
                  GATE_KINDS)
    approver = ["--gate", gate_url, "--gate-token-file", directory + "/user.token"]
    decide(ids, 2, "deny", approver, 0)
    decide(ids, 3, "approve", approver, 0)
    upstreams.stop()
    decide(ids, 4, "approve", approver, 1)
    for kind in GATE_KINDS:  # 7: a replica's lease that has run out; the gate's recovery loop marks it
        run([STATES, "--postgres", url, "approve", ids[(kind, 7)], "user:fixture-approver"])
        run([STATES, "--postgres", url, "claim", ids[(kind, 7)], "user:fixture-approver", "gate-b", "-1000"])
    deadline = time.time() + 60
    while psql(url, "SELECT count(*) FROM airlock.proposals WHERE state = 'executing'").strip() != "0":
        if time.time() > deadline:
            sys.exit("fixtures: the gate of fc0b570 did not recover the lapsed executions")
        time.sleep(0.5)
    gate.send_signal(signal.SIGTERM)
    gate.wait(timeout=120)
    for kind in GATE_KINDS:
        for index in (5, 6):
            run([STATES, "--postgres", url, "approve", ids[(kind, index)], "user:fixture-approver"])
        run([STATES, "--postgres", url, "claim", ids[(kind, 6)], "user:fixture-approver", "gate-b", "30000"])
    states = dict(line.split("|") for line in psql(url, "SELECT id, state FROM airlock.proposals").split())
    dump = run(["pg_dump", "--no-owner", "--no-privileges", "--schema", "airlock", url]).stdout
    with open(os.path.join(HERE, "gate.sql"), "w") as f:
        f.write(dump)
    destination = os.path.join(HERE, "gate-state")
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(directory + "/state", destination, ignore=shutil.ignore_patterns("*.sock", "*.lock", "cache", "homes"))
    with open(os.path.join(HERE, "gate-tokens.json"), "w") as f:
        json.dump({"host": host, "approver": user}, f, indent=1)
    return ids, states


def main():
    if os.getuid() != 0:
        sys.exit("fixtures: run as root (the GitHub stand-ins listen on port 443)")
    prepare()
    upstreams = Upstreams()
    upstreams.start()
    try:
        manifest = {"commit": "fc0b570", "bucket": BUCKET, "resolve": RESOLVE, "workdir": WORK, "stores": {}}
        for name, make in [("local", local_pass), ("gate", gate_pass)]:
            ids, states = make(upstreams)
            manifest["stores"][name] = [{"kind": kind, "index": index, "id": ids[(kind, index)], "state": states[ids[(kind, index)]]}
                                        for kind in KINDS for index in range(1, 8) if (kind, index) in ids]
            log(f"{name}: " + ", ".join(f"{e['kind']} {e['index']} {e['state']}" for e in manifest["stores"][name]))
        with open(os.path.join(HERE, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
    finally:
        upstreams.stop()


main()
