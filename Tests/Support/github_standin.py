#!/usr/bin/python3
"""A stand-in for a GitHub Enterprise API, for the gh command-gate test: the real GitHub
cannot be reached from here, so this answers the few REST calls the test makes, over TLS,
and records every request.

    github_standin.py LOG CERT KEY BIND
        listens on BIND (host:port; gh talks to https://HOST/api/v3/, so port 443), prints
        one JSON line {"port": N}, appends one JSON line per request to LOG: method, path,
        authorization header, body

GET /api/v3/repos/OWNER/REPO answers anyone; POST /api/v3/repos/OWNER/REPO/issues needs
`Authorization: token host-github-token` (the human's), as GitHub would refuse an agent.
"""
import http.server
import json
import socketserver
import ssl
import sys
import threading

TOKENS = {"token host-github-token", "bearer host-github-token"}
LOCK = threading.Lock()
ISSUES = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def record(self, body):
        with LOCK, open(LOG, "a") as log:
            log.write(json.dumps({"method": self.command, "path": self.path,
                                  "authorization": self.headers.get("Authorization", ""),
                                  "body": body.decode("utf-8", "replace")}) + "\n")

    def reply(self, status, document):
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Media-Type", "github.v3")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.record(b"")
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:3] == ["api", "v3", "repos"] and len(parts) == 5:
            return self.reply(200, {"id": 1, "name": parts[4], "full_name": f"{parts[3]}/{parts[4]}",
                                    "private": False, "open_issues_count": len(ISSUES)})
        self.reply(404, {"message": "Not Found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.record(body)
        if self.headers.get("Authorization", "").lower() not in TOKENS:
            return self.reply(401, {"message": "Bad credentials"})
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:3] == ["api", "v3", "repos"] and len(parts) == 6 and parts[5] == "issues":
            fields = json.loads(body or b"{}")
            with LOCK:
                ISSUES.append(fields)
                number = len(ISSUES)
            return self.reply(201, {"number": number, "title": fields.get("title", ""), "state": "open"})
        self.reply(404, {"message": "Not Found"})

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    LOG = sys.argv[1]
    host, port = sys.argv[4].rsplit(":", 1)
    server = Server((host, int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()
