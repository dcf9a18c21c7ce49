#!/usr/bin/python3
"""A stand-in for a Kubernetes API server, for the kubectl command-gate tests: no real API
server can run here (it needs etcd, a control plane and more), so this one answers what real
kubectl asks about a few kinds, keeps the objects in memory and records every request.

    kube_standin.py LOG CERT KEY
        listens on 127.0.0.1 with TLS (a free port, printed as one JSON line {"port": N});
        appends one JSON line per request to LOG, all values strings: method, path (with its
        query), query, authorization, content_type, accept, body. (kubectl sends a bearer
        token only over TLS.) egress_server.py fixtures makes a test CA and a certificate
        for kube.test.
    KUBE_STANDIN_SEED=1: namespaces default and prod; in default a deployment prod (3
        replicas of nginx:1.25), a secret db-password (password: hunter2), a configmap settings,
        a service account deployer; in prod a secret db (password: prod-hunter2) and a
        service account deployer.
    KUBE_STANDIN_BIND=HOST:PORT: listen there instead (the compatibility fixtures' fixed address).
    KUBE_STANDIN_REQUIRE_TOKEN_FOR_READS=1: every request, discovery too, needs the token;
        otherwise reads may be anonymous. Writes need `Authorization: Bearer host-secret-token`
        (the human's kubeconfig; KUBE_STANDIN_TOKEN names another), as a real cluster would
        refuse an agent without credentials. KUBE_STANDIN_READ_TOKENS=a,b: tokens that may
        read and nothing else (403 on any other method, dry runs included, as RBAC decides).
    KUBE_STANDIN_CLIENT_CA=PEM: ask for a client certificate (optional) signed by it, as
        kube-apiserver's --client-ca-file; KUBE_STANDIN_CERT_USERS=a,b: the common names that
        may then read without a token (their credential is the TLS session's).
    Each logged request also has connection (a number per TCP connection, in accept order) and
    client_certificate (the common name the connection presented, or ""): what the pooling
    tests read to see which credential each connection carried.

Served: discovery (plain, not aggregated: kubectl falls back), and OpenAPI v3 without schemas
saying PATCH takes fieldValidation, so kubectl create/apply -f leave validation to the server
(/openapi/v2 is 404). The path is percent-decoded before it is routed, as Go's net/http
decodes req.URL.Path for kube-apiserver: /api/v1/namespaces/prod/secret%73 is the Secrets.
Kinds: configmaps, secrets, pods (pods/log is empty; exec, attach and portforward are 403),
namespaces, serviceaccounts (POST .../token answers a TokenRequest with a new token, as the
real server mints one), apps/v1 deployments with /scale and /status (reading as rolled out). get and list (field and label selectors k=v, k==v, k!=v, k, !k) answer plain
objects, which kubectl takes when it asks for a Table (it prints NAME and AGE). watch=1|true
streams chunked {"type", "object"} lines from resourceVersion (none or 0: the current objects
as ADDED), then each change as it is made, until the client goes away or timeoutSeconds.
pods/NAME/log?limitBytes=N answers N bytes (of any pod name), written in 1 MiB blocks with a
Content-Length: the large-body streaming tests. POST creates (JSON, or the protobuf of kubectl create configmap|secret|namespace|deployment),
PUT updates (resourceVersion checked), PATCH merges (merge-patch; strategic-merge-patch also
merges lists of objects by "name"; json-patch add/remove/replace/test; server-side apply,
application/apply-patch+yaml, merges the applied object, creating it when absent), DELETE
answers a Status (preconditions checked), DELETE of a collection deletes every object it
selects and answers their list. dryRun=All (query, or in DeleteOptions) answers what a real
request would (the resulting object, the object deleted, the list a DeleteCollection would
delete) but stores nothing and tells no watcher: as kube-apiserver does. One global resourceVersion; objects get uid,
creationTimestamp, resourceVersion and a generation raised when more than metadata or status
changes.
"""
import base64
import copy
import http.server
import json
import os
import queue
import re
import select
import socket
import socketserver
import ssl
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = "Bearer " + os.environ.get("KUBE_STANDIN_TOKEN", "host-secret-token")
# Read-only credentials (a viewer's RoleBinding): GETs only, as RBAC allows; a dry run is a
# write to RBAC, so it needs TOKEN like the real request.
READ_TOKENS = {"Bearer " + t for t in os.environ.get("KUBE_STANDIN_READ_TOKENS", "").split(",") if t}
READS_NEED_TOKEN = os.environ.get("KUBE_STANDIN_REQUIRE_TOKEN_FOR_READS") == "1"
CERT_USERS = {name for name in os.environ.get("KUBE_STANDIN_CERT_USERS", "").split(",") if name}
CONNECTIONS = [0]
LOCK = threading.Lock()
STORE = {}      # (group, resource, namespace or "", name) -> object
HISTORY = []    # (resourceVersion, key, event type, object), for watches from a resourceVersion
WATCHERS = []   # (in scope(key, object) -> bool, queue of (event type, object))
REVISION = [0]
LOG = None

# (group, resource) -> kind, namespaced, short names, subresources
KINDS = {("", "configmaps"): ("ConfigMap", True, ["cm"], []),
         ("", "secrets"): ("Secret", True, [], []),
         ("", "pods"): ("Pod", True, ["po"], ["exec", "log", "attach", "portforward"]),
         ("", "namespaces"): ("Namespace", False, ["ns"], []),
         ("", "serviceaccounts"): ("ServiceAccount", True, ["sa"], ["token"]),
         ("apps", "deployments"): ("Deployment", True, ["deploy"], ["scale", "status"])}
SUBRESOURCES = {"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions",
                "log": "Pod", "scale": "Scale", "status": "Deployment", "token": "TokenRequest"}
REFUSED = ("exec", "attach", "portforward")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def group_version(group):
    return group + "/v1" if group else "v1"


def resource_list(group):
    resources = []
    for (g, name), (kind, namespaced, short, subresources) in KINDS.items():
        if g == group:
            resources.append({"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                              "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": short}
                             | ({"categories": ["all"]} if subresources else {}))
            resources += [{"name": f"{name}/{sub}", "singularName": "", "namespaced": namespaced, "kind": SUBRESOURCES[sub],
                           "verbs": ["create", "get"] if sub in REFUSED + ("token",) else ["get", "patch", "update"]} for sub in subresources]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group), "resources": resources}


def openapi(group):
    """OpenAPI v3 without schemas: only PATCH operations that take fieldValidation, which is
    what kubectl looks for before it leaves validation to the server."""
    paths = {}
    for (g, resource), (kind, namespaced, _, _) in KINDS.items():
        if g == group:
            scope = ("/apis/apps/v1" if group else "/api/v1") + ("/namespaces/{namespace}" if namespaced else "")
            paths[f"{scope}/{resource}/{{name}}"] = {"patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": "v1", "kind": kind}, "responses": {},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes stand-in", "version": "v1.32.4"}, "paths": paths,
            "components": {"schemas": {}}}


DISCOVERY = {
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.4", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "kube.test"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]},
    "/api/v1": resource_list(""),
    "/apis/apps/v1": resource_list("apps"),
    "/openapi/v3": {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=standin"},
                              "apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=standin"}}},
    "/openapi/v3/api/v1": openapi(""),
    "/openapi/v3/apis/apps/v1": openapi("apps"),
}


def route(path):
    """(group, resource, namespace or None, name or None, subresource or None) of an API path."""
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:3] == ["apis", "apps", "v1"]:
        group, rest = "apps", parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, rest[2]) in KINDS:
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3 or (group, rest[0]) not in KINDS:
        return None
    _, namespaced, _, subresources = KINDS[(group, rest[0])]
    if (namespace is not None and not namespaced) or (namespace is None and namespaced and len(rest) > 1):
        return None  # a namespaced resource outside a namespace: only the list of all of them
    if len(rest) == 3 and rest[2] not in subresources:
        return None
    return group, rest[0], namespace, (rest + [None, None])[1], (rest + [None, None])[2]


def selector(query):
    """A predicate for fieldSelector and labelSelector terms: k=v, k==v, k!=v, k, !k."""
    def field(obj, path):
        for part in path.split("."):
            obj = obj.get(part) if isinstance(obj, dict) else None
        return obj
    tests = []
    for text, value in ((query.get("fieldSelector", ""), field),
                        (query.get("labelSelector", ""), lambda obj, key: obj["metadata"].get("labels", {}).get(key))):
        for term in filter(None, (term.strip() for term in text.split(","))):
            key, op, wanted = re.match(r"^(.*?)\s*(!=|==|=|$)\s*(.*)$", term).groups()
            if op:
                tests.append(lambda obj, k=key, w=wanted, f=value, equal=op != "!=": (f(obj, k) == w) == equal)
            else:
                tests.append(lambda obj, k=key.lstrip("!"), absent=key.startswith("!"), f=value: (f(obj, k) is None) == absent)
    return lambda obj: all(test(obj) for test in tests)


def merge(base, patch, strategic=False):
    """RFC 7386 merge patch; strategic: lists of objects are merged by their "name",
    {"$patch": "delete"|"replace"} is honoured and other $-directives of kubectl apply dropped."""
    if isinstance(patch, list) and isinstance(base, list) and strategic and \
            all(isinstance(item, dict) and "name" in item for item in base + patch):
        merged = {item["name"]: item for item in base}
        for item in patch:
            merged[item["name"]] = merge(merged.get(item["name"], {}), item, True)
        return [item for item in merged.values() if item is not None]
    if not isinstance(patch, dict):
        return patch
    if strategic and patch.get("$patch") == "delete":
        return None
    result = dict(base) if isinstance(base, dict) and not (strategic and patch.get("$patch") == "replace") else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif not (strategic and key.startswith("$")):
            result[key] = merge(result.get(key), value, strategic)
    return result


# Enough of Kubernetes' protobuf to read what kubectl's typed clients send (kubectl create
# configmap|secret|namespace|deployment): message -> {field: (name, type)}; "[" marks a
# repeated field; s string, i integer, b bool, map string map, bmap bytes map, else a message.
PROTO = {
    "ObjectMeta": {1: ("name", "s"), 2: ("generateName", "s"), 3: ("namespace", "s"), 11: ("labels", "map"),
                   12: ("annotations", "map"), 14: ("finalizers", "[s")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map"), 3: ("binaryData", "bmap"), 4: ("immutable", "b")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "bmap"), 3: ("type", "s"), 4: ("stringData", "map"),
               5: ("immutable", "b")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "[s")},
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec")},
    "DeploymentSpec": {1: ("replicas", "i"), 2: ("selector", "LabelSelector"), 3: ("template", "PodTemplateSpec")},
    "LabelSelector": {1: ("matchLabels", "map")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {2: ("containers", "[Container")},
    "Container": {1: ("name", "s"), 2: ("image", "s"), 3: ("command", "[s"), 4: ("args", "[s"),
                  6: ("ports", "[ContainerPort"), 7: ("env", "[EnvVar")},
    "ContainerPort": {1: ("name", "s"), 3: ("containerPort", "i"), 4: ("protocol", "s")},
    "EnvVar": {1: ("name", "s"), 2: ("value", "s")},
}


def proto_fields(data):
    """(field number, value) pairs of a protobuf message: varints as int, the rest as bytes."""
    def varint(at):
        value = shift = 0
        while True:
            value, shift, at = value | (data[at] & 0x7F) << shift, shift + 7, at + 1
            if data[at - 1] < 0x80:
                return value, at
    at = 0
    while at < len(data):
        key, at = varint(at)
        if key & 7 not in (0, 2):
            raise ValueError(f"protobuf wire type {key & 7}")
        value, at = varint(at)
        if key & 7 == 2:
            value, at = data[at:at + value], at + value
        yield key >> 3, value


def proto_zero(value):
    """Whether a field holds only the zero values the encoder writes for every unset field."""
    try:
        return not value or isinstance(value, bytes) and all(proto_zero(v) for _, v in proto_fields(value))
    except (ValueError, IndexError):
        return False


def proto_decode(message, data):
    obj = {}
    for number, value in proto_fields(data):
        name, kind = PROTO[message].get(number, (None, None))
        if name is None and not proto_zero(value):
            raise ValueError(f"the stand-in does not read field {number} of a {message}")
        if name is None:
            continue
        if kind.endswith("map"):
            entry = dict(proto_fields(value))
            text = base64.b64encode(entry.get(2, b"")) if kind == "bmap" else entry.get(2, b"")
            obj.setdefault(name, {})[entry.get(1, b"").decode()] = text.decode()
            continue
        item = {"s": bytes.decode, "i": int, "b": bool}.get(kind.lstrip("["), lambda v: proto_decode(kind.lstrip("["), v))(value)
        if kind.startswith("["):
            obj.setdefault(name, []).append(item)
        elif item not in ("", {}, False):
            obj[name] = item
    return obj


def from_protobuf(body):
    """The JSON form of a protobuf body: "k8s\\0" and a runtime.Unknown{typeMeta, raw}."""
    envelope = dict(proto_fields(body[4:])) if body.startswith(b"k8s\0") else {}
    type_meta = dict(proto_fields(envelope.get(1, b"")))
    api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
    if kind not in PROTO:
        raise ValueError(f"the stand-in does not read a {kind or 'body like this'} in protobuf")
    return {"kind": kind, "apiVersion": api_version} | proto_decode(kind, envelope.get(2, b""))


class Failure(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.details = code, reason, details


def named(group, resource, name):
    """How the real server names an object in messages, and its Status details."""
    return f'{resource}{"." + group if group else ""} "{name}"', {"name": name, "group": group, "kind": resource}


def prepare(group, resource, obj, old, dry):
    """Checks and completes a new version of an object (old: None on create) as the real
    server's validation and, unless dry, its controllers would."""
    kind, version = KINDS[(group, resource)][0], group_version(group)
    if obj.get("kind", kind) != kind or obj.get("apiVersion", version) != version:
        raise Failure(400, "BadRequest", f"{obj.get('apiVersion')}, {obj.get('kind')} is not {version}, {kind}")
    obj["kind"], obj["apiVersion"] = kind, version
    metadata, spec = obj.setdefault("metadata", {}), obj.get("spec") or {}
    name, invalid = metadata.get("name", ""), {"name": metadata.get("name", ""), "group": group, "kind": kind}
    if not NAME.match(name):
        raise Failure(422, "Invalid", f'{kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase '
                      "RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'", invalid)
    if kind == "Deployment" and not (spec.get("selector") and spec.get("template")):
        raise Failure(422, "Invalid", f'Deployment.apps "{name}" is invalid: spec.selector, spec.template: Required value', invalid)
    if kind == "Secret":
        for key, value in obj.pop("stringData", {}).items():
            obj.setdefault("data", {})[key] = base64.b64encode(value.encode()).decode()
        obj.setdefault("type", "Opaque")
    if kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
    if old is None:
        metadata.update({"uid": str(uuid.uuid4()), "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "generation": 1})
    else:
        metadata.update({field: old["metadata"][field] for field in ("uid", "creationTimestamp", "namespace", "generation")
                         if field in old["metadata"]})
        spec_of = lambda o: {key: value for key, value in o.items() if key not in ("metadata", "status")}
        metadata["generation"] += spec_of(obj) != spec_of(old)
    if kind == "Pod" and old is None and not dry:
        obj["status"] = {"phase": "Running"}
    if kind == "Deployment" and not dry and (old is None or metadata["generation"] != old["metadata"]["generation"]):
        replicas = spec.setdefault("replicas", 1)
        obj["status"] = {"observedGeneration": metadata["generation"], "replicas": replicas, "updatedReplicas": replicas,
                         "readyReplicas": replicas, "availableReplicas": replicas}
    return obj


def commit(key, event, obj):
    """Stores a change (under LOCK) with the next resourceVersion and tells the watches."""
    REVISION[0] += 1
    obj["metadata"]["resourceVersion"] = str(REVISION[0])
    STORE.pop(key) if event == "DELETED" else STORE.__setitem__(key, obj)
    HISTORY.append((REVISION[0], key, event, obj))
    for in_scope, events in WATCHERS:
        if in_scope(key, obj):
            events.put((event, obj))


def existing(group, resource, namespace, name):
    obj = STORE.get((group, resource, namespace or "", name))
    if obj is None:
        what, details = named(group, resource, name)
        raise Failure(404, "NotFound", what + " not found", details)
    return obj


def create(group, resource, namespace, obj, dry):
    if not isinstance(obj, dict):
        raise Failure(400, "BadRequest", "the body is not an object")
    metadata = obj.setdefault("metadata", {})
    metadata.pop("resourceVersion", None)
    if not metadata.get("name") and metadata.get("generateName"):
        metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
    if KINDS[(group, resource)][1] and metadata.setdefault("namespace", namespace) != namespace:
        raise Failure(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
    obj = prepare(group, resource, obj, None, dry)
    key = (group, resource, namespace or "", metadata["name"])
    with LOCK:
        if key in STORE:
            what, details = named(group, resource, metadata["name"])
            raise Failure(409, "AlreadyExists", what + " already exists", details)
        if not dry:
            commit(key, "ADDED", obj)
    return 201, obj


def update(group, resource, namespace, name, change, dry):
    """change(a copy of the object) gives its new version, stored unless dry or unchanged."""
    with LOCK:
        old = existing(group, resource, namespace, name)
        obj = change(copy.deepcopy(old))
        if not isinstance(obj, dict) or obj.setdefault("metadata", {}).setdefault("name", name) != name:
            raise Failure(400, "BadRequest", "the name of the object does not match the name on the URL")
        if obj["metadata"].get("resourceVersion") not in (None, "", old["metadata"]["resourceVersion"]):
            what, details = named(group, resource, name)
            raise Failure(409, "Conflict", f"Operation cannot be fulfilled on {what}: the object has been modified; "
                          "please apply your changes to the latest version and try again", details)
        obj = prepare(group, resource, obj, old, dry)
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if obj != old and not dry:
            commit((group, resource, namespace or "", name), "MODIFIED", obj)
    return 200, obj


def delete(group, resource, namespace, name, options, dry):
    with LOCK:
        obj = existing(group, resource, namespace, name)
        what, details = named(group, resource, name)
        for field, wanted in (options.get("preconditions") or {}).items():
            if wanted and obj["metadata"].get(field) != wanted:
                raise Failure(409, "Conflict", f"Precondition failed for {what}: {field} is not {wanted}", details)
        if dry:
            return 200, obj
        commit((group, resource, namespace or "", name), "DELETED", copy.deepcopy(obj))
    return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                 "details": details | {"uid": obj["metadata"]["uid"]}}


def delete_collection(group, resource, namespace, query, dry):
    """DeleteCollection: every object the selectors pick, deleted unless dry; the answer is
    their list either way (as kube-apiserver answers)."""
    keep = selector(query)
    with LOCK:
        chosen = [(key, obj) for key, obj in sorted(STORE.items())
                  if key[:2] == (group, resource) and namespace in (None, key[2]) and keep(obj)]
        if not dry:
            for key, obj in chosen:
                commit(key, "DELETED", copy.deepcopy(obj))
    return 200, {"kind": KINDS[(group, resource)][0] + "List", "apiVersion": group_version(group),
                 "metadata": {"resourceVersion": str(REVISION[0])}, "items": [obj for _, obj in chosen]}


def json_patch(base, operations):
    """RFC 6902 add, remove, replace and test on JSON pointers (enough for the tests)."""
    doc = copy.deepcopy(base)
    for op in operations if isinstance(operations, list) else []:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op.get("path", "").split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1] if parts else None
        kind = op.get("op")
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise Failure(422, "Invalid", f"the test of {op.get('path')} failed")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op.get("value"))
            else:
                parent[last] = op.get("value")
        elif kind == "remove":
            parent.pop(int(last) if isinstance(parent, list) else last, None)
        else:
            raise Failure(422, "Invalid", f"the stand-in does not do json-patch {kind}")
    return doc


def scale_of(obj):
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {key: obj["metadata"].get(key) for key in ("name", "namespace", "uid", "resourceVersion")},
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"].get("matchLabels", {}).items())}}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Head and body go out in separate writes: without this, Nagle and delayed ACKs add
        # 40 ms to every kept-alive request (and would swamp what the benchmark measures).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with LOCK:
            CONNECTIONS[0] += 1
            self.connection_number = CONNECTIONS[0]

    def client_name(self):
        """The common name of the client certificate this connection presented (verified against
        KUBE_STANDIN_CLIENT_CA), or ""."""
        try:
            certificate = self.connection.getpeercert() or {}
        except (ValueError, AttributeError):
            return ""
        for part in certificate.get("subject", ()):
            for key, value in part:
                if key == "commonName":
                    return value
        return ""

    def do_GET(self):
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        client = self.client_name()
        with LOCK, open(LOG, "a") as log:
            log.write(json.dumps({"method": self.command, "path": self.path, "query": url.query, "decoded_path": unquote(url.path),
                                  "connection": str(self.connection_number), "client_certificate": client,
                                  "authorization": self.headers.get("Authorization", ""),
                                  "content_type": self.headers.get("Content-Type", ""), "accept": self.headers.get("Accept", ""),
                                  "body": body.decode("utf-8", "replace")}) + "\n")
        try:
            presented = self.headers.get("Authorization", "")
            # A certificate user may read, as a read token may; a token sent beside it wins.
            reader = presented in READ_TOKENS or (not presented and client in CERT_USERS)
            if reader and self.command != "GET":
                raise Failure(403, "Forbidden", "the read-only credential may not " + self.command)
            if presented != TOKEN and (self.command != "GET" or (READS_NEED_TOKEN and not reader)):
                raise Failure(401, "Unauthorized", "Unauthorized")
            answer = self.serve(unquote(url.path).rstrip("/") or "/", query, body)
            if answer is not None:  # None: a watch, already streamed
                self.reply(*answer)
        except Exception as error:  # a Failure, or a bug in the stand-in: either answers a Status
            failure = error if isinstance(error, Failure) else Failure(500, "InternalError", f"stand-in error: {error!r}")
            self.reply(failure.code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                      "message": str(failure), "reason": failure.reason, "code": failure.code}
                       | ({"details": failure.details} if failure.details else {}))

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def reply(self, code, document, content_type="application/json"):
        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def serve(self, path, query, body):
        if self.command == "GET" and path in DISCOVERY:
            return 200, DISCOVERY[path]
        target = route(path)
        if target is None:
            raise Failure(404, "NotFound", "the server could not find the requested resource")
        group, resource, namespace, name, sub = target
        method, dry = self.command, query.get("dryRun") == "All"
        if sub in REFUSED:
            raise Failure(403, "Forbidden", f"pods/{sub} is not served by the stand-in API server")
        if method == "GET" and sub == "log" and query.get("limitBytes"):
            return self.stream(int(query["limitBytes"]))
        if method == "GET" and name is None and query.get("watch") in ("1", "true"):
            return self.watch(group, resource, namespace, query)
        if method == "GET":
            keep = selector(query)
            with LOCK:
                if name is not None:
                    obj = existing(group, resource, namespace, name)
                    return (200, b"", "text/plain") if sub == "log" else (200, scale_of(obj) if sub == "scale" else obj)
                return 200, {"kind": KINDS[(group, resource)][0] + "List", "apiVersion": group_version(group),
                             "metadata": {"resourceVersion": str(REVISION[0])},
                             "items": [obj for (g, r, ns, _), obj in sorted(STORE.items())
                                       if (g, r) == (group, resource) and namespace in (None, ns) and keep(obj)]}
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        patches = ("application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json",
                   "application/apply-patch+yaml")
        if method == "PATCH" and content_type not in patches:
            raise Failure(415, "UnsupportedMediaType", f"the stand-in does not take {content_type} patches")
        try:
            protobuf = content_type == "application/vnd.kubernetes.protobuf"
            if protobuf:
                document = from_protobuf(body)
            elif content_type == "application/apply-patch+yaml":
                import yaml  # apply bodies are YAML (kubectl sends JSON, which YAML reads too)
                document = yaml.safe_load(body or b"{}")
            else:
                document = json.loads(body or b"{}")
        except (ValueError, KeyError, IndexError) as error:
            raise Failure(415, "UnsupportedMediaType", f"the stand-in cannot read this body: {error}")
        if method == "POST" and sub == "token" and name is not None:
            existing(group, resource, namespace, name)
            return 201, {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {"name": name},
                         "spec": (document or {}).get("spec", {}),
                         "status": {"token": f"minted-token-{uuid.uuid4().hex}", "expirationTimestamp": "2030-01-01T00:00:00Z"}}
        if method == "POST" and name is None:
            return create(group, resource, namespace, document, dry)
        options = document if isinstance(document, dict) else {}
        if method == "DELETE" and name is not None and sub is None:
            return delete(group, resource, namespace, name, options, dry or "All" in (options.get("dryRun") or []))
        if method == "DELETE" and name is None:
            return delete_collection(group, resource, namespace, query, dry or "All" in (options.get("dryRun") or []))
        if method == "PATCH" and content_type == "application/apply-patch+yaml" and sub is None:
            with LOCK:
                absent = (group, resource, namespace or "", name) not in STORE
            if absent:
                return create(group, resource, namespace, dict(document, metadata=dict(document.get("metadata") or {}, name=name)), dry)
        if method not in ("PUT", "PATCH") or name is None:
            raise Failure(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        def apply(base):
            if method != "PATCH":
                return document
            if content_type == "application/json-patch+json":
                return json_patch(base, document)
            return merge(base, document, content_type == patches[1])
        if sub == "scale":  # a Scale in, a Scale out; only its spec.replicas reaches the deployment
            replicas = lambda obj: ((apply(scale_of(obj)) or {}).get("spec") or {}).get("replicas", 1)
            change = lambda obj: merge(obj, {"spec": {"replicas": replicas(obj)}})
            return 200, scale_of(update(group, resource, namespace, name, change, dry)[1])
        if sub == "status":  # only the status changes
            change = lambda obj: obj | {"status": (apply(obj) or {}).get("status", obj.get("status"))}
            return update(group, resource, namespace, name, change, dry)
        return update(group, resource, namespace, name, apply, dry)

    def watch(self, group, resource, namespace, query):
        """Streams what changed after resourceVersion (or the current objects, as ADDED), then
        each change as it is made."""
        keep, events, since = selector(query), queue.Queue(), query.get("resourceVersion", "")
        in_scope = lambda key, obj: key[:2] == (group, resource) and namespace in (None, key[2]) and keep(obj)
        with LOCK:
            if since in ("", "0"):
                [events.put(("ADDED", obj)) for key, obj in sorted(STORE.items()) if in_scope(key, obj)]
            else:
                [events.put((event, obj)) for revision, key, event, obj in HISTORY
                 if revision > int(since) and in_scope(key, obj)]
            WATCHERS.append((in_scope, events))
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            deadline = time.time() + float(query.get("timeoutSeconds") or 1e9)
            while time.time() < deadline:
                try:
                    event, obj = events.get(timeout=0.5)
                except queue.Empty:
                    if select.select([self.connection], [], [], 0)[0]:
                        break  # the client closed the connection: it sends nothing else on it
                    continue
                line = json.dumps({"type": event, "object": obj}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            else:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # ssl.SSLError is one
            pass
        finally:
            with LOCK:
                WATCHERS.remove((in_scope, events))
            self.close_connection = True

    def stream(self, size):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        block = (b"0123456789abcdef" * 65536)
        try:
            while size > 0:
                self.wfile.write(block[:min(size, len(block))])
                size -= len(block)
        except OSError:  # the client went away mid-body
            self.close_connection = True

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def seed():
    for namespace in ("default", "prod"):
        create("", "namespaces", None, {"metadata": {"name": namespace}}, False)
    labels = {"app": "prod"}
    create("apps", "deployments", "default", {"metadata": {"name": "prod", "labels": labels}, "spec": {
        "replicas": 3, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}}}, False)
    create("", "secrets", "default", {"metadata": {"name": "db-password"}, "type": "Opaque",
                                      "data": {"password": base64.b64encode(b"hunter2").decode()}}, False)
    create("", "configmaps", "default", {"metadata": {"name": "settings"}, "data": {"mode": "blue"}}, False)
    create("", "secrets", "prod", {"metadata": {"name": "db"}, "type": "Opaque",
                                   "data": {"password": base64.b64encode(b"prod-hunter2").decode()}}, False)
    for namespace in ("default", "prod"):
        create("", "serviceaccounts", namespace, {"metadata": {"name": "deployer"}}, False)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    LOG = sys.argv[1]
    if os.environ.get("KUBE_STANDIN_SEED") == "1":
        seed()
    host, _, port = os.environ.get("KUBE_STANDIN_BIND", "127.0.0.1:0").rpartition(":")
    server = Server((host, int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[2], sys.argv[3])
    if os.environ.get("KUBE_STANDIN_CLIENT_CA"):
        context.load_verify_locations(os.environ["KUBE_STANDIN_CLIENT_CA"])
        context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()
