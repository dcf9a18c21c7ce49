"""moto's WSGI app served over HTTP/1.1 with kept-alive connections, as AWS endpoints answer.

moto_server runs on werkzeug's development server, which forces `Connection: close` on every
response (werkzeug/serving.py), so no client can keep a connection to it alive: each call
pays a new TCP connection, direct or through the broker. Real AWS keeps connections alive,
and the broker keeps its upstream connections alive and reuses them (pooled upstreams), so a
benchmark against moto_server cannot show what a client sees against AWS. This serves the
same app (moto's DomainDispatcherApplication, as moto_server does) on Python's
ThreadingHTTPServer: HTTP/1.1, a connection kept until the client closes it or asks to
(`Connection: close`, HTTP/1.0 without keep-alive), TCP_NODELAY on each connection (without
it Nagle and delayed ACKs add 40 ms to a response written after its request), request bodies
by Content-Length or chunked, responses buffered whole and framed by Content-Length.

Used by scripts/bench (scripts/bench_broker.py) and by the pooled-upstream tests
(UpstreamPoolTests), which need a kept-alive AWS endpoint; the other tests use moto_server.
Usage: python moto_keepalive.py HOST PORT
    MOTO_KEEPALIVE_LOG=FILE: one JSON line a request: connection (a number per TCP
    connection, in accept order), access_key (from the SigV4 Authorization's Credential=),
    method, path, target (X-Amz-Target).
"""
import io
import itertools
import json
import os
import re
import threading
import socket
import sys
import traceback
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_to_bytes, urlsplit

# Headers about the connection, not the message (RFC 9110 §7.6.1); this server frames and
# keeps its connections itself. Content-Length is set from the buffered body.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
              "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
MAX_LINE = 65536
LOG = os.environ.get("MOTO_KEEPALIVE_LOG")
LOG_LOCK = threading.Lock()
CONNECTIONS = itertools.count(1)


class BadRequest(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "moto-keepalive"
    disable_nagle_algorithm = True  # StreamRequestHandler.setup sets TCP_NODELAY
    timeout = 120  # an idle kept-alive connection's thread ends after this long

    def log_request(self, code="-", size="-"):
        pass  # one line a request on stderr costs the benchmark time; errors still go there

    def setup(self):
        super().setup()
        self.connection_number = next(CONNECTIONS)

    def record(self):
        if not LOG:
            return
        found = re.search(r"Credential=([^/,\s]+)/", self.headers.get("Authorization", ""))
        with LOG_LOCK, open(LOG, "a") as log:
            log.write(json.dumps({"connection": str(self.connection_number), "access_key": found.group(1) if found else "",
                                  "method": self.command, "path": self.path,
                                  "target": self.headers.get("X-Amz-Target", "")}) + "\n")

    def do_request(self):
        self.record()
        try:
            body, length = self.read_body()
        except BadRequest as error:
            return self.send_simple(400, str(error))
        except NotImplementedError as error:
            return self.send_simple(501, str(error))
        environ = self.make_environ(body, length)
        status, headers, chunks = "500 Internal Server Error", [], []
        started = []

        def start_response(status_, headers_, exc_info=None):
            # Nothing is sent before the app returns, so a second call (with exc_info) may
            # always replace the status and headers (PEP 3333).
            nonlocal status, headers
            status, headers = status_, headers_
            started.append(True)
            return chunks.append  # the legacy write()

        try:
            result = self.server.app(environ, start_response)
            try:
                for chunk in result:
                    if chunk:
                        chunks.append(chunk)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return self.send_simple(500, "the app raised; see the server's stderr")
        if not started:
            return self.send_simple(500, "the app did not call start_response")
        self.send_whole(status, headers, b"".join(chunks))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_request

    def read_body(self):
        """The request body, whole, and the Content-Length to give the app (None: no body)."""
        encodings = [e.strip().lower() for e in ",".join(self.headers.get_all("Transfer-Encoding", [])).split(",") if e.strip()]
        if encodings:
            if encodings != ["chunked"]:
                self.close_connection = True
                raise NotImplementedError("Transfer-Encoding " + ", ".join(encodings) + " is not supported")
            return self.read_chunked(), None
        lengths = self.headers.get_all("Content-Length", [])
        if not lengths:
            return b"", None
        if len(set(v.strip() for v in lengths)) != 1 or not lengths[0].strip().isdigit():
            self.close_connection = True
            raise BadRequest("bad Content-Length")
        length = int(lengths[0])
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise BadRequest("the body ended early")
        return body, length

    def read_chunked(self):
        parts = []
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line.endswith(b"\n") or len(line) > MAX_LINE:
                self.close_connection = True
                raise BadRequest("bad chunk size line")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise BadRequest("bad chunk size")
            if size == 0:
                break
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                self.close_connection = True
                raise BadRequest("bad chunk")
            parts.append(data)
        while True:  # trailer fields, dropped
            line = self.rfile.readline(MAX_LINE + 1)
            if not line.endswith(b"\n") or len(line) > MAX_LINE:
                self.close_connection = True
                raise BadRequest("bad trailer")
            if line in (b"\r\n", b"\n"):
                return b"".join(parts)

    def make_environ(self, body, length):
        # self.path is the request target as sent, each byte one latin-1 character.
        url = urlsplit(self.path)
        path = f"/{url.netloc}{url.path}" if not url.scheme and url.netloc else url.path  # "//x/y" as werkzeug reads it
        environ = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            # PEP 3333: the percent-decoded bytes, each one latin-1 character.
            "PATH_INFO": unquote_to_bytes(path.encode("latin-1")).decode("latin-1"),
            "QUERY_STRING": url.query,
            "REQUEST_URI": self.path,  # werkzeug's (mod_wsgi's, uWSGI's)
            "RAW_URI": self.path,  # werkzeug's (gunicorn's); moto reads the raw path from it
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "SERVER_SOFTWARE": self.server_version,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for key, value in self.headers.items():
            if "_" in key:
                continue  # as werkzeug: X_Foo would pass for X-Foo
            key = key.upper().replace("-", "_")
            value = value.replace("\r\n", "")
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue  # the body is read whole: its length is set below
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
                if key in environ:
                    value = f"{environ[key]},{value}"
            environ[key] = value
        if length is not None or body:
            environ["CONTENT_LENGTH"] = str(len(body))
        if url.scheme and url.netloc:  # absolute-form target: its authority is the host
            environ["HTTP_HOST"] = url.netloc
        return environ

    def send_whole(self, status, headers, body):
        code = int(status.split(None, 1)[0])
        bodiless = self.command == "HEAD" or code in (204, 304) or 100 <= code < 200
        names, lines, declared = set(), [], None
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length":
                declared = value.strip()
                continue
            if lower in HOP_BY_HOP:
                continue
            names.add(lower)
            lines.append(f"{name}: {value}\r\n")
        if "server" not in names:
            lines.append(f"Server: {self.version_string()}\r\n")
        if "date" not in names:
            lines.append(f"Date: {formatdate(usegmt=True)}\r\n")
        if self.command == "HEAD" or code == 304:
            # The length a GET would have had: the app's, if it said (S3's HeadObject does).
            if declared is not None:
                lines.append(f"Content-Length: {declared}\r\n")
            elif self.command == "HEAD" and code not in (204, 304) and not 100 <= code < 200:
                lines.append(f"Content-Length: {len(body)}\r\n")
        elif not bodiless:
            lines.append(f"Content-Length: {len(body)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive\r\n")
        head = f"{self.protocol_version} {status}\r\n" + "".join(lines) + "\r\n"
        self.wfile.write(head.encode("latin-1") + (b"" if bodiless else body))  # one write, one segment when small

    def send_simple(self, code, message):
        self.close_connection = True
        body = (message + "\n").encode()
        self.send_whole(f"{code} {self.responses.get(code, ('',))[0]}", [("Content-Type", "text/plain")], body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: moto_keepalive.py HOST PORT")
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))  # as moto_server: moto names its own URLs with it
    server = Server((host, port), Handler)  # listening from here: connections queue while moto loads
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto_server
    server.app = app
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
