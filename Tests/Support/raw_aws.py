#!/usr/bin/env python3
"""Sends one hand-written AWS request, SigV4-signed, exactly as given: what an agent that
writes its own bytes sends (the gate-bypass tests). Reads a JSON list of requests on stdin:

  {"url": "http://127.0.0.1:8181", "method": "POST", "path": "/svc/ssm/", "service": "ssm",
   "region": "us-east-1", "headers": [["Content-Type", "…"]], "body": "…",
   "extra_headers": [["X-Amz-Target", "…"]]}

`headers` are signed (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment),
repeated names included (SigV4 signs them joined with commas); `extra_headers` are added
after signing. Prints one JSON list of
{"status", "body"} (body cut at 4 KiB). Needs botocore (the test venv).
"""
import http.client
import json
import os
import sys
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def send(spec):
    base = urllib.parse.urlsplit(spec["url"])
    body = spec.get("body", "").encode()
    credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    request = AWSRequest(method=spec["method"], url=spec["url"] + spec["path"], data=body)
    for name, value in spec.get("headers", []):
        request.headers[name] = value  # an email.message header set: a repeated name is added
    SigV4Auth(credentials, spec["service"], spec.get("region", "us-east-1")).add_auth(request)
    connection = http.client.HTTPConnection(base.hostname, base.port, timeout=60)
    connection.putrequest(spec["method"], spec["path"], skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", base.netloc)
    for name, value in request.headers.items():
        connection.putheader(name, value)
    for name, value in spec.get("extra_headers", []):
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    return {"status": response.status, "body": response.read().decode(errors="replace")[:4096]}


def main():
    print(json.dumps([send(spec) for spec in json.load(sys.stdin)]))


if __name__ == "__main__":
    main()
