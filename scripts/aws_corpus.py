#!/usr/bin/env python3
"""Write a JSON-lines corpus of real SDK requests: one per operation in the AWS catalog.

For every operation of every service in profiles/aws/index.json, a real botocore client (endpoint
http://127.0.0.1:8181/svc/<service>, region us-east-1, dummy keys) serializes and SigV4-signs a
request with every required input member filled in; a `before-send` handler captures the final
request and answers with a fake response, so nothing leaves the process. Each line:

  {"service", "operation", "method", "host", "path", "headers", "body_base64"}

`path` is the raw path and query string exactly as sent; `headers` are lowercase names. Operations
botocore cannot serialize are reported (stderr, and with --failures FILE), never silently dropped.
By default the signing time and SDK-generated UUIDs are fixed so the corpus is reproducible
(X-Amz-Date 20260101T000000Z); --real-time keeps the clock and random UUIDs.
Run it with the pinned venv: source scripts/lib/python-env.sh && airlock_python_env.
See docs/aws-catalog.md.
"""

import argparse
import base64
import datetime
import json
import os
import sys
import time
import uuid
from urllib.parse import urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INDEX = os.path.join(ROOT, "profiles", "aws", "index.json")
BROKER = "http://127.0.0.1:8181/svc/{service}"
REGION = "us-east-1"
# Test dummies, not real keys: the corpus is signed with them and verified with them.
DUMMY_ACCESS_KEY = ACCESS_KEY = "AKIDAIRLOCKCORPUS000"
SECRET_KEY = "airlock-corpus-dummy-secret"
FIXED_TIME = datetime.datetime(2026, 1, 1, 0, 0, 0, tzinfo=datetime.timezone.utc)
S3_BUCKET = "amzn-s3-demo-bucket"
S3_KEY = "dir/object.txt"  # a key with a slash: greedy {Key+} labels must keep it
ACCOUNT_ID = "123456789012"
PAYLOAD = b"airlock corpus body\n"
TOKEN = "airlock-corpus-dummy-token"  # bearer-token services (codecatalyst)
# (ARN service, region, resource) where a service's endpoint rules check the ARN they are given.
ARN_SHAPE = {"cloudfront-keyvaluestore": ("cloudfront", "", "key-value-store/x")}
MAX_DEPTH = 12

# An SDK inside the sandbox runs with a clean environment: no host profile, endpoint or
# credential may leak into the corpus. Set before botocore reads anything.
for name in list(os.environ):
    if name.startswith("AWS_"):
        del os.environ[name]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"

import botocore.auth  # noqa: E402
import botocore.endpoint  # noqa: E402
import botocore.handlers  # noqa: E402
import botocore.session  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.tokens import FrozenAuthToken  # noqa: E402


class Captured(Exception):
    pass


class _FixedUUID:
    """Stands in for the `uuid` module inside botocore: deterministic uuid4() per operation."""

    def __init__(self):
        self.seed = "corpus"
        self.n = 0

    def reset(self, seed):
        self.seed, self.n = seed, 0

    def uuid4(self):
        self.n += 1
        return uuid.uuid5(uuid.NAMESPACE_URL, f"airlock-corpus:{self.seed}:{self.n}")

    def __getattr__(self, name):
        return getattr(uuid, name)


class _StaticTokenProvider:
    def load_token(self, **_):
        return FrozenAuthToken(TOKEN)


class _FixedTime:
    """Stands in for the `time` module inside botocore.auth: SigV2 (sdb) timestamps use gmtime()."""

    def gmtime(self, *_):
        return FIXED_TIME.timetuple()

    def __getattr__(self, name):
        return getattr(time, name)


class _FakeRaw:
    def __init__(self, body):
        self._body = body

    def stream(self, **_):
        if self._body:
            yield self._body

    def read(self, *_, **__):
        body, self._body = self._body, b""
        return body

    def close(self):
        pass


# ---------------------------------------------------------------- input values

def string_value(name, shape, service):
    if shape.enum:
        return shape.enum[0]
    lname = name.lower()
    if service in ("s3", "s3control"):
        if lname == "bucket":
            return S3_BUCKET
        if lname == "key":
            return S3_KEY
        if lname in ("copysource",):
            return f"{S3_BUCKET}/dir/source.txt"
    if lname in ("accountid", "expectedbucketowner"):
        return ACCOUNT_ID
    if lname == "predictendpoint":  # machinelearning:Predict sends to this host (botocore switches to it)
        return "http://127.0.0.1:8181"
    if lname.endswith("arn"):
        arn_service, region, resource = ARN_SHAPE.get(service, (service, REGION, "resource/x"))
        return f"arn:aws:{arn_service}:{region}:{ACCOUNT_ID}:{resource}"
    if shape.metadata.get("idempotencyToken") or lname in ("clienttoken", "idempotencytoken"):
        return "00000000-0000-4000-8000-000000000000"
    return "x"


def value_for(name, shape, service, depth, required_only=True):
    t = shape.type_name
    if depth > MAX_DEPTH:
        return None
    if t == "structure":
        if shape.metadata.get("document"):
            return {"key": "value"}
        members = shape.members
        if shape.is_tagged_union:
            if not members:
                return {}
            first = sorted(members)[0]
            return {first: value_for(first, members[first], service, depth + 1)}
        out = {}
        for member in shape.required_members:
            if member not in members:
                continue
            v = value_for(member, members[member], service, depth + 1)
            if v is not None:
                out[member] = v
        for member, ref in members.items():
            # Idempotency tokens are filled by botocore with a random UUID when missing; give a
            # fixed value so the corpus is reproducible.
            if member not in out and ref.metadata.get("idempotencyToken"):
                out[member] = "00000000-0000-4000-8000-000000000000"
        return out
    if t == "list":
        v = value_for(name, shape.member, service, depth + 1)
        return [] if v is None else [v]
    if t == "map":
        v = value_for(name, shape.value, service, depth + 1)
        return {} if v is None else {"key": v}
    if t == "string":
        return string_value(name, shape, service)
    if t in ("integer", "long"):
        return 1
    if t in ("float", "double"):
        return 1.0
    if t == "boolean":
        return True
    if t == "blob":
        return b"airlock"
    if t == "timestamp":
        return datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    if t == "bigdecimal":
        return "1"
    return "x"


def input_for(op_model, service):
    shape = op_model.input_shape
    if shape is None:
        return {}
    params = value_for(op_model.name, shape, service, 0) or {}
    # A blob or string HTTP payload (S3 PutObject's Body, Lambda Invoke's Payload, ...) is filled
    # even when optional, so the corpus carries real bodies and their payload hashes.
    payload = shape.serialization.get("payload")
    if payload and payload not in params and shape.members[payload].type_name in ("blob", "string"):
        params[payload] = PAYLOAD if shape.members[payload].type_name == "blob" else PAYLOAD.decode()
    return params


# ---------------------------------------------------------------- capture

def body_bytes(body):
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else data
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"unexpected request body type {type(body).__name__}")


def header_text(value):
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def make_client(session, service, captured):
    client = session.create_client(
        service,
        region_name=REGION,
        endpoint_url=BROKER.format(service=service),
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(parameter_validation=False, retries={"max_attempts": 0}),
    )

    def before_send(request, **_):
        url = urlsplit(request.url)
        path = url.path + (("?" + url.query) if url.query else "")
        captured.append({
            "method": request.method,
            "host": url.netloc,
            "path": path,
            "headers": {k.lower(): header_text(v) for k, v in request.headers.items()},
            "body_base64": base64.b64encode(body_bytes(request.body)).decode("ascii"),
        })
        return AWSResponse(request.url, 200, {}, _FakeRaw(b""))

    client.meta.events.register("before-send", before_send)
    return client


def run(services, out, fixed, failures_out):
    ids = _FixedUUID()
    if fixed:
        botocore.auth.get_current_datetime = lambda *a, **k: FIXED_TIME
        botocore.auth.time = _FixedTime()
        botocore.endpoint.uuid = ids
        botocore.handlers.uuid = ids
    session = botocore.session.get_session()
    session.register_component("token_provider", _StaticTokenProvider())
    written, failed = 0, []
    for service in services:
        captured = []
        try:
            client = make_client(session, service, captured)
        except Exception as e:  # a client botocore cannot build: every operation fails
            ops = session.get_service_model(service).operation_names
            failed += [(service, op, f"client: {type(e).__name__}: {e}") for op in ops]
            continue
        model = client.meta.service_model
        methods = {api: py for py, api in client.meta.method_to_api_mapping.items()}
        for op_name in sorted(model.operation_names):
            op_model = model.operation_model(op_name)
            ids.reset(f"{service}:{op_name}")
            captured.clear()
            error = None
            if not hasattr(client, methods.get(op_name, "")):
                why = "no client method"
                if op_model.get_event_stream_input() is not None:
                    why = "input event stream: botocore cannot send it (no client method)"
                failed.append((service, op_name, why))
                continue
            try:
                params = input_for(op_model, service)
                getattr(client, methods[op_name])(**params)
            except Exception as e:  # parsing the fake response may fail; capture already happened
                error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            if not captured:
                failed.append((service, op_name, error or "no request was sent"))
                continue
            line = {"service": service, "operation": op_name, **captured[-1]}
            out.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
            written += 1
    for service, op, why in failed:
        print(f"aws-corpus: not serialized: {service}:{op}: {why}", file=sys.stderr)
        if failures_out:
            failures_out.write(json.dumps({"service": service, "operation": op, "error": why}) + "\n")
    return written, failed


def known_limitation(why):
    """Operations botocore itself cannot send here: input event streams, SigV4a without awscrt."""
    return why.startswith("input event stream") or why.startswith("MissingDependencyException")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="scripts/aws_corpus.py",
        description="Write one botocore-serialized, SigV4-signed request per catalog operation (JSON lines).")
    parser.add_argument("--out", required=True, help="output file (JSON lines)")
    parser.add_argument("--services", help="comma-separated botocore service names (default: all in the catalog)")
    parser.add_argument("--failures", help="also write the operations that could not be serialized here")
    parser.add_argument("--real-time", action="store_true",
                        help="sign with the current time and random SDK UUIDs (default: fixed, reproducible)")
    args = parser.parse_args(argv)
    if not args.real_time and os.environ.get("PYTHONHASHSEED") != "0":
        # botocore lists user-agent feature ids from a set: fix the hash seed so the corpus is
        # byte-for-byte reproducible.
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:])

    with open(INDEX, encoding="utf-8") as f:
        catalog = [s["name"] for s in json.load(f)["services"]]
    if args.services:
        wanted = [s.strip() for s in args.services.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in catalog]
        if unknown:
            print(f"aws-corpus: not in the catalog: {', '.join(unknown)}", file=sys.stderr)
            return 2
        services = wanted
    else:
        services = catalog

    start = time.monotonic()
    failures_out = open(args.failures, "w", encoding="utf-8") if args.failures else None
    try:
        with open(args.out, "w", encoding="utf-8") as out:
            written, failed = run(services, out, not args.real_time, failures_out)
    finally:
        if failures_out:
            failures_out.close()
    elapsed = time.monotonic() - start
    unexpected = [f for f in failed if not known_limitation(f[2])]
    print(f"aws-corpus: {len(services)} services, {written} requests written to {args.out}, "
          f"{len(failed)} operations not serialized ({len(failed) - len(unexpected)} known botocore "
          f"limitations, {len(unexpected)} unexpected), {elapsed:.1f} s", file=sys.stderr)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
