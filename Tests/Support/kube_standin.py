#!/usr/bin/python3
"""A stand-in for a Kubernetes API server, for the kubectl command-gate tests: no real API
server can run here (it needs etcd, certificates and more), so this answers the handful of
requests kubectl makes for ConfigMaps, and records every request.

    kube_standin.py LOG CERT KEY
        listens on 127.0.0.1 with TLS (a free port, printed as one JSON line {"port": N});
        appends one JSON line per request to LOG: method, path, authorization header, body.
        (kubectl sends a bearer token only over TLS.) egress_server.py fixtures makes a
        test CA and a certificate for kube.test.

Discovery (/api, /apis, /api/v1), and list/get/create/delete of ConfigMaps in any namespace.
Anonymous reads are allowed; writes need `Authorization: Bearer host-secret-token` (the
human's kubeconfig), as a real cluster would refuse an agent without credentials.
"""
import http.server
import json
import socketserver
import ssl
import sys
import threading
import time

TOKEN = "Bearer host-secret-token"
STORE = {}
LOCK = threading.Lock()

API_VERSIONS = {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "kube.test"}]}
GROUPS = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
RESOURCES = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
    {"name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": ["cm"]}]}


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
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def status(self, code, reason, message):
        self.reply(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason, "code": code})

    def parts(self):
        path = self.path.split("?")[0].rstrip("/")
        return path, path.split("/")

    def do_GET(self):
        self.record(b"")
        path, parts = self.parts()
        if path == "/api":
            return self.reply(200, API_VERSIONS)
        if path == "/apis":
            return self.reply(200, GROUPS)
        if path == "/api/v1":
            return self.reply(200, RESOURCES)
        # /api/v1/namespaces/NS/configmaps[/NAME]
        if len(parts) >= 6 and parts[1:3] == ["api", "v1"] and parts[3] == "namespaces" and parts[5] == "configmaps":
            namespace = parts[4]
            with LOCK:
                items = [obj for (ns, _), obj in sorted(STORE.items()) if ns == namespace]
            if len(parts) == 7:
                with LOCK:
                    obj = STORE.get((namespace, parts[6]))
                if obj is None:
                    return self.status(404, "NotFound", f'configmaps "{parts[6]}" not found')
                return self.reply(200, obj)
            return self.reply(200, {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
        self.status(404, "NotFound", "the stand-in does not serve " + path)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.record(body)
        if self.headers.get("Authorization", "") != TOKEN:
            return self.status(401, "Unauthorized", "Unauthorized")
        path, parts = self.parts()
        if len(parts) == 6 and parts[5] == "configmaps":
            obj = json.loads(body)
            name = obj["metadata"]["name"]
            with LOCK:
                if (parts[4], name) in STORE:
                    return self.status(409, "AlreadyExists", f'configmaps "{name}" already exists')
                obj["metadata"].update({"namespace": parts[4], "uid": f"uid-{len(STORE) + 1}", "resourceVersion": str(len(STORE) + 1),
                                        "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                STORE[(parts[4], name)] = obj
            return self.reply(201, obj)
        self.status(404, "NotFound", "the stand-in does not serve POST " + path)

    def do_DELETE(self):
        self.record(b"")
        if self.headers.get("Authorization", "") != TOKEN:
            return self.status(401, "Unauthorized", "Unauthorized")
        path, parts = self.parts()
        with LOCK:
            obj = STORE.pop((parts[4], parts[6]), None) if len(parts) == 7 else None
        if obj is None:
            return self.status(404, "NotFound", "not found")
        self.reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    LOG = sys.argv[1]
    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()
