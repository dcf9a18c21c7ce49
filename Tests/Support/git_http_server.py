#!/usr/bin/python3
"""A real git smart-HTTP server for the tests: every request is handed to `git http-backend`
(git's own CGI program), so clone, fetch and push speak the genuine protocol against real bare
repositories. It sits behind HTTP Basic auth because the repositories it stands in for are
private: a request without the right credentials gets 401, as GitHub answers for a private one.

    git_http_server.py ROOT USER PASSWORD LOG [--cert CERT --key KEY] [--bind 127.0.0.1:0] [--reader U:P]...
        serves the repositories under ROOT (http://HOST:PORT/NAME.git), over TLS with
        --cert/--key; prints one JSON line {"port": N} once listening; appends one JSON line
        per request to LOG: method, path, query, authorization (raw header), status, service
    git_http_server.py init ROOT NAME
        creates the bare repository ROOT/NAME.git with one commit (a README) on main, pushes
        allowed (http.receivepack), and prints the commit id

Request bodies may come with Content-Length or `Transfer-Encoding: chunked` (git chunks large
pushes); chunked ones are de-chunked so the CGI gets a CONTENT_LENGTH. A gzip body (git gzips
upload-pack requests) is passed through as is with HTTP_CONTENT_ENCODING: http-backend inflates.
"""
import argparse
import base64
import http.server
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.parse

LOCK = threading.Lock()
BACKEND = os.path.join(subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                                      check=True).stdout.strip(), "git-http-backend")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, status):
        path, _, query = self.path.partition("?")
        service = urllib.parse.parse_qs(query).get("service", [""])[0]
        if not service and path.rsplit("/", 1)[-1] in ("git-upload-pack", "git-receive-pack"):
            service = path.rsplit("/", 1)[-1]
        with LOCK, open(ARGS.log, "a") as log:
            log.write(json.dumps({"method": self.command, "path": path, "query": query,
                                  "authorization": self.headers.get("Authorization", ""),
                                  "status": status, "service": service}) + "\n")

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_any(self):
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic" and value.strip() in READERS and (
                "git-receive-pack" in self.path.partition("?")[0] or "service=git-receive-pack" in self.path):
            # A reader's credentials: fetches only, as a read-only token's (403, as GitHub answers).
            self.record(403)
            self.send_response(403)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "10")
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            self.wfile.write(b"Forbidden\n")
            return
        if scheme.lower() != "basic" or (value.strip() != EXPECTED and value.strip() not in READERS):
            self.record(401)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "13")
            if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
                self.send_header("Connection", "close")  # the unread body would spoil the connection
                self.close_connection = True
            self.end_headers()
            self.wfile.write(b"Unauthorized\n")
            return
        body = self.read_body()
        path, _, query = self.path.partition("?")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GIT_PROJECT_ROOT=ARGS.root, GIT_HTTP_EXPORT_ALL="1", REMOTE_USER=ARGS.user,
                   REMOTE_ADDR=self.client_address[0], GATEWAY_INTERFACE="CGI/1.1",
                   SERVER_PROTOCOL=self.request_version, REQUEST_METHOD=self.command,
                   PATH_INFO=urllib.parse.unquote(path), QUERY_STRING=query,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)))
        for name, value in self.headers.items():
            if name.lower() not in ("content-type", "content-length", "transfer-encoding", "authorization"):
                env["HTTP_" + name.upper().replace("-", "_")] = value  # incl. Content-Encoding, Git-Protocol
        cgi = subprocess.Popen([BACKEND], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        threading.Thread(target=feed, args=(cgi.stdin, body), daemon=True).start()
        status, headers = 200, []
        for line in iter(cgi.stdout.readline, b""):
            line = line.decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value.strip()))
        self.record(status)
        self.send_response(status)
        sized = any(name.lower() == "content-length" for name, _ in headers)
        chunked = not sized and self.request_version == "HTTP/1.1"
        for name, value in headers:
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not sized:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            while data := cgi.stdout.read1(65536):  # stream as http-backend writes
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        finally:
            cgi.stdout.close()
            cgi.wait()

    do_GET = do_POST = handle_any


def feed(pipe, body):
    try:
        pipe.write(body)
        pipe.close()
    except OSError:
        pass  # the CGI stopped reading (e.g. it refused the request)


def git(*args, cwd=None):
    return subprocess.run(["git", "-c", "user.name=Airlock Test", "-c", "user.email=test@airlock.invalid",
                           "-c", "commit.gpgsign=false", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def init(root, name):
    bare = os.path.join(os.path.abspath(root), name + ".git")
    git("init", "--quiet", "--bare", "--initial-branch=main", bare)
    git("-C", bare, "config", "http.receivepack", "true")
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "README"), "w") as readme:
            readme.write(f"# {name}\n")
        tree = ["--git-dir", bare, "--work-tree", work]
        git(*tree, "add", "README")
        git(*tree, "commit", "--quiet", "-m", "Initial commit")
    print(git("--git-dir", bare, "rev-parse", "refs/heads/main"), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["init"] and len(sys.argv) == 4:
        init(sys.argv[2], sys.argv[3])
        sys.exit(0)
    parser = argparse.ArgumentParser(description="git smart-HTTP server behind Basic auth")
    for arg in ("root", "user", "password", "log"):
        parser.add_argument(arg)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--bind", default="127.0.0.1:0")
    parser.add_argument("--reader", action="append", default=[], help="USER:PASSWORD that may fetch and not push")
    ARGS = parser.parse_args()
    READERS = {base64.b64encode(reader.encode()).decode() for reader in ARGS.reader}
    ARGS.root = os.path.abspath(ARGS.root)
    EXPECTED = base64.b64encode(f"{ARGS.user}:{ARGS.password}".encode()).decode()
    host, _, port = ARGS.bind.rpartition(":")
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    if ARGS.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ARGS.cert, ARGS.key)
        # handshake in the request's thread, so a stalled client cannot hold up accept()
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()
