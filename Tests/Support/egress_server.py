#!/usr/bin/python3
"""Test upstreams for the egress proxy tests and benchmarks (standard library only).

    egress_server.py fixtures DIR          build a test CA, a server certificate for the
                                           *.test names, a PEP 503 index with one wheel and
                                           a git repository served over dumb HTTP, in DIR
    egress_server.py serve DIR [--bind IP] [--https-port N]
                                           serve DIR over HTTP and HTTPS; prints one JSON line
                                           {"http": PORT, "https": PORT} once listening
    egress_server.py digest N              sha256 of GET /bytes/N

GET /bytes/N answers N bytes of a fixed pattern, generated as it is sent (no file, no
buffering), for the large-download tests.
"""
import hashlib
import http.server
import json
import os
import resource
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import zipfile

NAMES = ["web.test", "secure.test", "pypi.test", "git.test", "mirror.wild.test", "denied.wild.test", "api.anthropic.com", "kube.test", "gh.test"]
BLOCK = bytes((i * 2654435761 >> 11) & 0xFF for i in range(1 << 16))


def pattern(count):
    """Yields `count` bytes of the /bytes pattern in blocks of at most 64 KiB."""
    while count > 0:
        piece = BLOCK if count >= len(BLOCK) else BLOCK[:count]
        count -= len(piece)
        yield piece


def run(*command, cwd=None):
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certificates(directory):
    ca_key, ca_pem = f"{directory}/ca.key", f"{directory}/ca.pem"
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Airlock Test CA",
        "-keyout", ca_key, "-out", ca_pem)
    with open(f"{directory}/server.ext", "w") as ext:
        ext.write("subjectAltName=" + ",".join(f"DNS:{name}" for name in NAMES) + "\n")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=web.test",
        "-keyout", f"{directory}/server.key", "-out", f"{directory}/server.csr")
    run("openssl", "x509", "-req", "-in", f"{directory}/server.csr", "-CA", ca_pem, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "2", "-extfile", f"{directory}/server.ext", "-out", f"{directory}/server.pem")


def make_package_index(root):
    """A one-package PEP 503 index: /simple/airlock-probe/ → airlock_probe-1.0-py3-none-any.whl."""
    wheel_name = "airlock_probe-1.0-py3-none-any.whl"
    os.makedirs(f"{root}/packages", exist_ok=True)
    files = {
        "airlock_probe/__init__.py": "GREETING = 'fetched through the Airlock proxy'\n",
        "airlock_probe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: airlock-probe\nVersion: 1.0\n",
        "airlock_probe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: airlock-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + "airlock_probe-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(f"{root}/packages/{wheel_name}", "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr("airlock_probe-1.0.dist-info/RECORD", record)
    with open(f"{root}/packages/{wheel_name}", "rb") as wheel:
        digest = hashlib.sha256(wheel.read()).hexdigest()
    os.makedirs(f"{root}/simple/airlock-probe", exist_ok=True)
    with open(f"{root}/simple/index.html", "w") as index:
        index.write('<!DOCTYPE html><html><body><a href="airlock-probe/">airlock-probe</a></body></html>\n')
    with open(f"{root}/simple/airlock-probe/index.html", "w") as index:
        index.write(f'<!DOCTYPE html><html><body><a href="../../packages/{wheel_name}#sha256={digest}">{wheel_name}</a></body></html>\n')


def make_git_repository(root, scratch):
    """A bare repository with one commit, prepared for git's dumb HTTP protocol."""
    work = f"{scratch}/git-work"
    os.makedirs(work, exist_ok=True)
    with open(f"{work}/README", "w") as readme:
        readme.write("cloned through the Airlock proxy\n")
    identity = ["-c", "user.name=Airlock Tests", "-c", "user.email=tests@airlock.invalid", "-c", "init.defaultBranch=main"]
    run("git", *identity, "init", "-q", cwd=work)
    run("git", *identity, "add", "README", cwd=work)
    run("git", *identity, "commit", "-q", "-m", "first", cwd=work)
    run("git", "clone", "-q", "--bare", work, f"{root}/repo.git")
    run("git", "update-server-info", cwd=f"{root}/repo.git")


def fixtures(directory):
    root = f"{directory}/www"
    os.makedirs(root, exist_ok=True)
    with open(f"{root}/hello.txt", "w") as hello:
        hello.write("hello from the test upstream\n")
    make_certificates(directory)
    make_package_index(root)
    make_git_repository(root, directory)


PATTERN_FILE = None


def send_pattern(connection, count):
    """The /bytes pattern with sendfile(2) from a 64 MiB file of it: the upstream should not
    be what limits a throughput benchmark."""
    with open(PATTERN_FILE, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        offset = 0
        while count > 0:
            sent = os.sendfile(connection.fileno(), source.fileno(), offset, min(count, size - offset))
            if sent <= 0:
                raise ConnectionError("sendfile sent nothing")
            count -= sent
            offset = (offset + sent) % size


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Head and body go out in separate writes: without this, Nagle and delayed ACKs add
        # 40 ms to every kept-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        if self.path.startswith("/bytes/"):
            count = int(self.path[len("/bytes/"):])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(count))
            self.end_headers()
            self.wfile.flush()
            if isinstance(self.connection, ssl.SSLSocket):
                for piece in pattern(count):
                    self.wfile.write(piece)
            else:
                send_pattern(self.connection, count)
            return
        if self.path.startswith("/echo-host"):
            text = (self.headers.get("Host", "") + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 2048
    allow_reuse_address = True


def serve(directory, bind, https_port):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    global PATTERN_FILE
    PATTERN_FILE = f"{directory}/pattern.bin"
    with open(PATTERN_FILE, "wb") as out:
        for _ in range(1024):
            out.write(BLOCK)
    root = f"{directory}/www"
    handler = lambda *args, **kwargs: Handler(*args, directory=root, **kwargs)
    plain = Server((bind, 0), handler)
    secure = Server((bind, https_port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(f"{directory}/server.pem", f"{directory}/server.key")
    # The handshake happens in the handler's thread, so one silent client cannot stall accept().
    secure.socket = context.wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=False)
    for server in (plain, secure):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"http": plain.server_address[1], "https": secure.server_address[1]}), flush=True)
    threading.Event().wait()


def main(argv):
    if len(argv) >= 2 and argv[0] == "fixtures":
        fixtures(argv[1])
    elif len(argv) >= 2 and argv[0] == "serve":
        bind, https_port = "127.0.0.1", 0
        rest = argv[2:]
        while rest:
            if rest[0] == "--bind":
                bind = rest[1]
            elif rest[0] == "--https-port":
                https_port = int(rest[1])
            rest = rest[2:]
        serve(argv[1], bind, https_port)
    elif len(argv) == 2 and argv[0] == "digest":
        digest = hashlib.sha256()
        for piece in pattern(int(argv[1])):
            digest.update(piece)
        print(digest.hexdigest())
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
