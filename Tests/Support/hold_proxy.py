#!/usr/bin/env python3
"""An HTTP forwarder in front of a test upstream (moto) that holds chosen requests, so a
test can act while an execution is in flight (kill -9 a gate replica, SIGTERM one).

    hold_proxy.py TARGET_URL MARKER HOLD_SECONDS LOG

Requests whose body contains MARKER are held HOLD_SECONDS before being forwarded; if the
client hangs up meanwhile, the request is dropped and never forwarded. LOG gets one line
per event: "held", "forwarded", "dropped" (marked requests) or "passed" (others).
Prints {"port": N} once listening."""
import http.client
import http.server
import json
import select
import sys
import threading
import time
import urllib.parse

TARGET = urllib.parse.urlsplit(sys.argv[1])
MARKER = sys.argv[2].encode()
HOLD = float(sys.argv[3])
LOG = sys.argv[4]
lock = threading.Lock()


def log(event):
    with lock, open(LOG, "a") as f:
        f.write(event + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if MARKER in body:
            log("held")
            deadline = time.time() + HOLD
            while time.time() < deadline:
                readable, _, _ = select.select([self.connection], [], [], 0.05)
                if readable and not self.connection.recv(1, 2):  # MSG_PEEK: EOF means hung up
                    log("dropped")
                    return
            log("forwarded")
        else:
            log("passed")
        upstream = http.client.HTTPConnection(TARGET.hostname, TARGET.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
