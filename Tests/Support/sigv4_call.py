#!/usr/bin/env python3
"""A SigV4-signed AWS query-protocol call with nothing but Python's standard library.

  sigv4_call.py SERVICE ACTION [Name=Value ...]

Reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL (Airlock's broker inside a
sandbox) and AWS_REGION. The gate-bypass tests run it from places where no AWS SDK is
installed (a provisioner's script, a `data "external"` program in an execution sandbox):
what an agent-written script could do there with the execution's credentials. Prints the
HTTP status and body; exits 0 on 2xx.
"""
import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse

VERSIONS = {"iam": "2010-05-08", "sts": "2011-06-15", "ec2": "2016-11-15", "sqs": "2012-11-05"}


def main():
    service, action = sys.argv[1], sys.argv[2]
    params = [("Action", action), ("Version", VERSIONS.get(service, "2010-05-08"))]
    params += [tuple(arg.split("=", 1)) for arg in sys.argv[3:]]
    body = urllib.parse.urlencode(params).encode()
    endpoint = urllib.parse.urlsplit(os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:8181"))
    path = "/svc/%s/" % service
    region = os.environ.get("AWS_REGION", "us-east-1")
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    host = endpoint.netloc
    content_type = "application/x-www-form-urlencoded; charset=utf-8"
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical_path = urllib.parse.quote(urllib.parse.quote(path, safe="/~"), safe="/~")
    canonical = "\n".join(["POST", canonical_path, "", "content-type:%s" % content_type, "host:%s" % host,
                           "x-amz-date:%s" % amz_date, "", "content-type;host;x-amz-date", payload_hash])
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": content_type, "X-Amz-Date": amz_date, "Host": host,
        "Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=content-type;host;x-amz-date, Signature=%s"
        % (os.environ["AWS_ACCESS_KEY_ID"], scope, signature),
    }
    connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port or 80, timeout=60)
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    text = response.read().decode(errors="replace")
    print(response.status, text.replace("\n", " ")[:2000])
    sys.exit(0 if 200 <= response.status < 300 else 1)


if __name__ == "__main__":
    main()
