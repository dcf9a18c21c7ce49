#!/usr/bin/env python3
"""Seed corpora for scripts/fuzz, from the botocore-signed request corpus and the profiles.

  fuzz_seeds.py CORPUS.jsonl OUTDIR

Writes OUTDIR/aws-request/ and OUTDIR/sigv4/ (each request of the corpus as the fuzz targets
read raw HTTP: `METHOD TARGET`, header lines, a blank line, the body), OUTDIR/json/ (the JSON
bodies) and OUTDIR/profile/ (every profile in profiles/). See docs/fuzzing.md.
"""
import base64
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    for name in ("aws-request", "sigv4", "json", "profile"):
        os.makedirs(os.path.join(out, name), exist_ok=True)
    counts = {"aws-request": 0, "json": 0, "profile": 0}
    with open(corpus) as lines:
        for index, line in enumerate(lines):
            entry = json.loads(line)
            body = base64.b64decode(entry["body_base64"])
            head = "%s %s\n" % (entry["method"], entry["path"])
            head += "".join("%s: %s\n" % (k, v) for k, v in entry["headers"].items())
            raw = head.encode() + b"\n" + body
            if len(raw) > 16384:
                continue
            for name in ("aws-request", "sigv4"):
                with open(os.path.join(out, name, "%05d" % index), "wb") as f:
                    f.write(raw)
            counts["aws-request"] += 1
            if body[:1] in (b"{", b"["):
                with open(os.path.join(out, "json", "%05d" % index), "wb") as f:
                    f.write(body)
                counts["json"] += 1
    for path in sorted(glob.glob(os.path.join(ROOT, "profiles", "**", "*.yaml"), recursive=True)):
        if os.path.getsize(path) > 200_000:
            continue
        name = os.path.relpath(path, ROOT).replace("/", "_")
        with open(path, "rb") as src, open(os.path.join(out, "profile", name), "wb") as dst:
            dst.write(src.read())
        counts["profile"] += 1
    write_api_seeds(out)
    print("seeds: %d requests, %d JSON bodies, %d profiles" % (counts["aws-request"], counts["json"], counts["profile"]), file=sys.stderr)


KUBERNETES = [
    "GET /api/v1/namespaces/prod/pods", "GET /apis/apps/v1/namespaces/prod/deployments/web", "GET /api/v1/secrets?watch=true",
    "DELETE /apis/apps/v1/namespaces/prod/deployments/prod", "POST /api/v1/namespaces/prod/pods/web/exec?command=sh",
    "PATCH /api/v1/namespaces/prod/configmaps/c?dryRun=All", "GET /api/v1/watch/namespaces/prod/pods/",
    "PUT /api/v1/namespaces/prod/finalize", "GET /api/v1/nodes/n1/proxy/stats\nImpersonate-User: admin",
    "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "GET /api", "GET /openapi/v3",
    "GET /api/v1/namespaces/prod/secret%73/db", "GET /api/v1/namespaces/prod/configmaps/my%2Dcm",
    "DELETE /api/v1/namespaces/prod/secrets?dryRun=All", "PATCH /api/v1/namespaces/prod/secrets/db?dry%52un=All",
]
GITHUB_PATHS = [
    "GET /repos/o/r", "GET /repos/o/r/actions/secrets/public-key", "GET /repos/o/r/actions/secret%73",
    "GET /repos/o/r/contents/docs%20guide.md?ref=main", "POST /repos/o/r/issues", "GET /graphql/", "GET /user/keys",
    "POST /o/r.git/git-receive-pack", "PUT /repos/o/r/actions/secrets/A%20B",
]
GRAPHQL = [
    "query { viewer { login } }", "{ repository(owner: \"a\", name: \"b\") { id } }",
    "mutation M { addStar(input: {starrableId: \"x\"}) { clientMutationId } }",
    "query Q($n: Int = 3) @cached { viewer { repositories(first: $n) { nodes { name } } } }",
    "fragment F on User { login } query { viewer { ...F } }", 'query { a(b: """block "" string""") { c } } # comment',
]


def pkt(text):
    data = text.encode()
    return b"%04x" % (len(data) + 4) + data


def write_api_seeds(out):
    """Seeds for the kubernetes, graphql and git-push targets (docs/fuzzing.md)."""
    for name in ("kubernetes", "github-path", "graphql", "git-push"):
        os.makedirs(os.path.join(out, name), exist_ok=True)
    for index, request in enumerate(GITHUB_PATHS):
        with open(os.path.join(out, "github-path", "%02d" % index), "w") as f:
            f.write(request)
    for index, request in enumerate(KUBERNETES):
        with open(os.path.join(out, "kubernetes", "%02d" % index), "w") as f:
            f.write(request.replace("\\n", "\n"))
    for index, document in enumerate(GRAPHQL):
        with open(os.path.join(out, "graphql", "%02d" % index), "w") as f:
            f.write(document)
    zero, a, b = "0" * 40, "a" * 40, "b" * 40
    pack = b"PACK\x00\x00\x00\x02\x00\x00\x00\x01objects"
    pushes = [
        pkt(f"{a} {b} refs/heads/main\0report-status side-band-64k\n") + b"0000" + pack,
        pkt(f"{zero} {b} refs/heads/new\0report-status push-options\n") + pkt(f"{a} {zero} refs/tags/old\n") + b"0000"
        + pkt("ci.skip\n") + b"0000" + pack,
        pkt(f"shallow {a}\n") + pkt(f"{a} {zero} refs/heads/gone\0report-status\n") + b"0000",
    ]
    for index, body in enumerate(pushes):
        with open(os.path.join(out, "git-push", "%02d" % index), "wb") as f:
            f.write(body)


if __name__ == "__main__":
    main()
