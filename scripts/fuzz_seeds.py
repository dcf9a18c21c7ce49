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
    print("seeds: %d requests, %d JSON bodies, %d profiles" % (counts["aws-request"], counts["json"], counts["profile"]), file=sys.stderr)


if __name__ == "__main__":
    main()
