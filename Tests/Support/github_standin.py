#!/usr/bin/python3
"""A stand-in for GitHub's API, for the gh command-gate tests: the real GitHub cannot be
reached from here, so this answers, over TLS, the REST and GraphQL calls that gh makes for a
few commands, and records every request. Standard library only.

    github_standin.py LOG CERT KEY BIND
        listens on BIND (host:port; gh only talks to port 443), prints one JSON line
        {"port": N}, appends one JSON line per request to LOG, all strings: method, path,
        authorization header, body, and for GraphQL graphql_operation ("query
        PullRequestByNumber", "mutation PullRequestMerge", "query" for `{ ... }`)

Both path styles: a GitHub Enterprise host's (gh with GH_HOST=HOST uses https://HOST/api/v3/
and https://HOST/api/graphql) and api.github.com's (no /api/v3 prefix; /graphql).
The path is percent-decoded before it is routed, as GitHub's router decodes it
(/repos/o/r/actions/secret%73 is the secrets endpoint), and a POST carrying
X-HTTP-Method-Override is served as that method (as Rack::MethodOverride does).
GraphQL is also read from the URL's query string (a GET, or a POST with ?query=), which wins
over the body, as in many GraphQL servers.
REST: GET /user, GET /repos/OWNER/REPO, POST /repos/OWNER/REPO/issues, DELETE
/repos/OWNER/REPO; the secret-bearing reads GET /repos/OWNER/REPO/actions/secrets(/public-key),
/orgs/OWNER/actions/secrets, /user/keys answer values holding "GH-SECRET-MARKER" and are
logged with "sensitive": "1"; others 404.
GraphQL: a crude generic executor parses the query (fragments, aliases, $variables) and answers
each field from a small model (viewer "person"; every repository; every pull request number,
open and mergeable until merged), any other field with a harmless default (null, 0, false, []
for nodes, an object if it has a selection). Mutations mergePullRequest (the PR is MERGED
afterwards) and createIssue change the model; other mutations answer defaults.

Writes (REST POST/PATCH/PUT/DELETE, GraphQL mutations) need `Authorization: token
host-github-token` or `bearer host-github-token` (the human's), as GitHub would refuse an
agent; else 401 {"message": "Bad credentials"}. Reads are anonymous unless the environment
has GITHUB_STANDIN_REQUIRE_TOKEN=1, then they need the token too. GITHUB_STANDIN_TOKEN names
another writer's token; GITHUB_STANDIN_READ_TOKENS=a,b tokens that may only read.
"""
import http.server
import json
import os
import re
import socketserver
import ssl
import sys
import threading
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = os.environ.get("GITHUB_STANDIN_TOKEN", "host-github-token")
# Read-only tokens (a fine-grained token with read permissions): reads only.
READ_TOKENS = {t for t in os.environ.get("GITHUB_STANDIN_READ_TOKENS", "").split(",") if t}
REQUIRE_TOKEN = os.environ.get("GITHUB_STANDIN_REQUIRE_TOKEN") == "1"
LOCK = threading.Lock()
ISSUES = []    # REST and GraphQL issue fields, in creation order (number = index + 1)
MERGED = set()    # (owner, repo, number) of the pull requests merged here
STAMP = "2024-01-01T00:00:00Z"
USER = {"login": "person", "id": 1, "node_id": "U_person", "name": "Person", "type": "User", "site_admin": False}
VIEWER = {"__typename": "User", "login": "person", "id": "U_person", "name": "Person", "databaseId": 1}
LISTS = {"nodes", "edges", "fields", "reactionGroups", "issueTemplates", "pullRequestTemplates",
         "checkRunCountsByState", "statusContextCountsByState", "possibleTypes", "enumValues"}
SCALARS = {"totalCount": 0, "hasNextPage": False, "hasPreviousPage": False}
MISSING = object()   # a sentinel: the field is not in the model


class GraphQLError(Exception):
    pass


# --- GraphQL: a document becomes operations (kind, name, selections) and fragments; a selection
# is ("field", key, name, args, selections or None), ("spread", fragment) or ("inline", selections).
# Type conditions, directives and variable definitions are skipped, commas ignored.

LEXEME = re.compile(r'"""[\s\S]*?"""|"(?:\\.|[^"\\])*"|\.\.\.|[_A-Za-z]\w*|-?\d[\w.+-]*|[^\s,]')


class Parser:
    def __init__(self, text, variables):
        self.tokens = LEXEME.findall(re.sub(r'#[^\n"]*\n', "\n", text + "\n"))[::-1]
        self.variables = variables                          # $name in arguments becomes its value

    def peek(self):
        return self.tokens[-1] if self.tokens else ""

    def take(self):
        return self.tokens.pop() if self.tokens else ""

    def document(self):
        operations, fragments = [], {}
        while self.peek():
            kind = "query" if self.peek() == "{" else self.take()
            name = self.take() if re.match(r"[_A-Za-z]", self.peek()) else ""
            if kind == "fragment":
                self.take(), self.take()                    # on Type
            self.skip_parentheses()                         # variable definitions
            self.directives()
            if kind == "fragment":
                fragments[name] = self.selections()
            else:
                operations.append((kind, name, self.selections()))
        return operations, fragments

    def selections(self):
        found = []
        if self.take() != "{":
            raise GraphQLError("Parse error: expected {")
        while self.peek() not in ("}", ""):
            if self.peek() == "...":
                self.take()
                if self.peek() == "on":
                    self.take(), self.take()
                elif self.peek() not in ("{", "@"):
                    found.append(("spread", self.take()))
                self.directives()
                if self.peek() == "{":
                    found.append(("inline", self.selections()))
                continue
            key = name = self.take()
            if self.peek() == ":":
                self.take()
                name = self.take()
            args = self.arguments() if self.peek() == "(" else {}
            self.directives()
            found.append(("field", key, name, args, self.selections() if self.peek() == "{" else None))
        self.take()
        return found

    def arguments(self):
        args, _ = {}, self.take()
        while self.peek() not in (")", ""):
            name, _ = self.take(), self.take()              # name ":"
            args[name] = self.value()
        self.take()
        return args

    def skip_parentheses(self):
        depth = 0
        while self.peek() == "(" or depth and self.peek():
            depth += {"(": 1, ")": -1}.get(self.take(), 0)

    def directives(self):
        while self.peek() == "@":
            self.take(), self.take(), self.skip_parentheses()

    def value(self):
        token = self.take()
        if token == "$":
            return self.variables.get(self.take())
        if token == "[":
            items = []
            while self.peek() not in ("]", ""):
                items.append(self.value())
            self.take()
            return items
        if token == "{":
            fields = {}
            while self.peek() not in ("}", ""):
                key, _ = self.take(), self.take()           # name ":"
                fields[key] = self.value()
            self.take()
            return fields
        if token.startswith('"'):
            return token[3:-3] if token.startswith('"""') else json.loads(token)
        if re.match(r"-?\d", token):
            return float(token) if re.search(r"[.eE]", token) else int(token)
        return {"true": True, "false": False, "null": None}.get(token, token)   # also enums


def merge(old, new):
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{key: merge(old.get(key), item) for key, item in new.items()}}
    return new


def execute(selections, model, request, path=()):
    """Answers selections from model: a dict whose values may be functions of the arguments."""
    answer = {}
    for selection in selections:
        if selection[0] != "field":
            inner = request.fragments.get(selection[1], []) if selection[0] == "spread" else selection[1]
            answer = merge(answer, execute(inner, model, request, path))
            continue
        _, key, name, args, inner = selection
        value = model.get(name, MISSING) if isinstance(model, dict) else None
        try:
            if callable(value):
                value = value(request, **args)
        except GraphQLError as error:
            request.errors.append({"type": "NOT_FOUND", "message": str(error), "path": list(path) + [key]})
            value = None
        if value is MISSING:
            value = SCALARS.get(name) if inner is None else [] if name in LISTS else {}
        if inner is not None and isinstance(value, list):
            value = [execute(inner, item, request, path + (key, n)) for n, item in enumerate(value)]
        elif inner is not None and isinstance(value, dict):
            value = execute(inner, value, request, path + (key,))
        answer[key] = merge(answer.get(key), value)
    return answer


# --- The model: the viewer, repositories, pull requests; functions of a field's arguments.

def web(request):
    host = request.handler.headers.get("Host", "github.com").split(":")[0]
    return "https://" + ("github.com" if host == "api.github.com" else host)


def repository(request, owner="", name="", **_):
    return {"__typename": "Repository", "id": f"R_{owner}/{name}", "name": name, "nameWithOwner": f"{owner}/{name}",
            "owner": {"__typename": "User", "login": owner, "id": f"U_{owner}"}, "url": f"{web(request)}/{owner}/{name}",
            "isPrivate": False, "visibility": "PUBLIC", "isFork": False, "isArchived": False, "parent": None,
            "hasIssuesEnabled": True, "hasWikiEnabled": True, "description": "", "viewerPermission": "ADMIN",
            "defaultBranchRef": {"name": "main", "target": {"oid": "0" * 40}}, "viewerDefaultMergeMethod": "MERGE",
            "mergeCommitAllowed": True, "rebaseMergeAllowed": True, "squashMergeAllowed": True,
            "autoMergeAllowed": False, "deleteBranchOnMerge": False, "createdAt": STAMP, "updatedAt": STAMP,
            "pullRequest": lambda request, number=0, **_: pull_request(request, owner, name, number),
            "issueOrPullRequest": lambda request, number=0, **_: pull_request(request, owner, name, number)}


def pull_request(request, owner, name, number):
    with LOCK:
        merged = (owner.lower(), name.lower(), number) in MERGED
    head = f"{number:040x}"
    return {"__typename": "PullRequest", "id": f"PR_{owner}/{name}#{number}", "number": number,
            "title": f"Pull request {number}", "body": "", "url": f"{web(request)}/{owner}/{name}/pull/{number}",
            "state": "MERGED" if merged else "OPEN", "closed": merged, "merged": merged, "isDraft": False,
            "mergeable": "MERGEABLE", "mergeStateStatus": "CLEAN",
            "reviewDecision": "APPROVED", "headRefName": "feature", "baseRefName": "main", "headRefOid": head,
            "headRepositoryOwner": {"__typename": "User", "login": owner, "id": f"U_{owner}"},
            "headRepository": {"id": f"R_{owner}/{name}", "name": name, "nameWithOwner": f"{owner}/{name}"},
            "isCrossRepository": False, "maintainerCanModify": False, "author": VIEWER,
            "viewerCanMergeAsAdmin": True, "viewerCanEnableAutoMerge": False, "viewerCanDisableAutoMerge": False,
            "isInMergeQueue": False, "isMergeQueueEnabled": False, "autoMergeRequest": None, "milestone": None,
            "mergedBy": VIEWER if merged else None, "mergedAt": STAMP if merged else None, "closedAt": None,
            "mergeCommit": {"oid": "f" * 40} if merged else None, "potentialMergeCommit": None,
            "additions": 1, "deletions": 0, "changedFiles": 1, "createdAt": STAMP, "updatedAt": STAMP,
            "commits": {"totalCount": 1, "nodes": [{"commit": {"oid": head, "statusCheckRollup": None}}]}}


def merge_pull_request(request, input=None, **_):
    input = input or {}
    owner, _, rest = str(input.get("pullRequestId", "")).removeprefix("PR_").partition("/")
    name, _, number = rest.partition("#")
    if not number.isdigit():
        raise GraphQLError(f"Could not resolve to a node with the global id of '{input.get('pullRequestId')}'")
    with LOCK:
        if (owner.lower(), name.lower(), int(number)) in MERGED:
            raise GraphQLError("Pull Request is not mergeable")
        MERGED.add((owner.lower(), name.lower(), int(number)))
    return {"clientMutationId": input.get("clientMutationId"),
            "pullRequest": pull_request(request, owner, name, int(number))}


def create_issue(request, input=None, **_):
    input = input or {}
    owner, _, name = str(input.get("repositoryId", "")).removeprefix("R_").partition("/")
    with LOCK:
        ISSUES.append({"title": input.get("title", ""), "body": input.get("body", "")})
        number = len(ISSUES)
    return {"clientMutationId": input.get("clientMutationId"), "issue": {
        "__typename": "Issue", "id": f"I_{owner}/{name}#{number}", "number": number, "state": "OPEN",
        "title": input.get("title", ""), "body": input.get("body", ""), "author": VIEWER, "createdAt": STAMP,
        "url": f"{web(request)}/{owner}/{name}/issues/{number}"}}


def type_info(request, name="", **_):
    """Introspection, as gh's feature detection asks (query PullRequest_fields): has every field it probes."""
    probed = ("isInMergeQueue isMergeQueueEnabled autoMergeAllowed visibility issueTemplates pullRequestTemplates "
              "checkRunCount checkRunCountsByState statusContextCount statusContextCountsByState").split()
    return {"__typename": "__Type", "name": name, "kind": "OBJECT", "fields": [{"name": f} for f in probed]}


QUERY = {"viewer": lambda request, **_: VIEWER, "repository": repository, "__type": type_info}
MUTATION = {"mergePullRequest": merge_pull_request, "createIssue": create_issue}


class GraphQLRequest:
    def __init__(self, handler, document):
        self.handler, self.errors = handler, []
        operations, self.fragments = Parser(document.get("query") or "", document.get("variables") or {}).document()
        wanted = document.get("operationName")
        chosen = [op for op in operations if op[1] == wanted] if wanted else operations
        if not chosen:
            raise GraphQLError("No operation found in the document")
        self.kind, self.name, self.selections = chosen[0]

    def run(self):
        data = execute(self.selections, MUTATION if self.kind == "mutation" else QUERY, self)
        return {"data": data, "errors": self.errors} if self.errors else {"data": data}


def operation(body):
    """The operation type and name, crudely from the query text: "query Name", or "query"."""
    try:
        query = json.loads(body or b"{}").get("query") or ""
    except (ValueError, AttributeError):
        return ""
    text = re.sub(r"#[^\n]*", "", query)      # the first operation, after any fragments
    match = re.search(r"(?:^|\})\s*(query|mutation|subscription)\b\s*([_A-Za-z]\w*)?", text)
    return " ".join(filter(None, match.groups())) if match else "query" if text.strip()[:1] == "{" else ""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def record(self, body, extra=None):
        with LOCK, open(LOG, "a") as log:
            log.write(json.dumps({"method": self.command, "path": self.path,
                                  "authorization": self.headers.get("Authorization", ""),
                                  "body": body.decode("utf-8", "replace"), **(extra or {})}) + "\n")

    def reply(self, status, document):
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Media-Type", "github.v3")
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        scheme, _, value = self.headers.get("Authorization", "").strip().partition(" ")
        return scheme.lower() in ("token", "bearer") and value.strip() == TOKEN

    def may_read(self):
        scheme, _, value = self.headers.get("Authorization", "").strip().partition(" ")
        return self.authorized() or (scheme.lower() in ("token", "bearer") and value.strip() in READ_TOKENS)

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or "0"))
        override = self.headers.get("X-HTTP-Method-Override", "").upper()
        if self.command == "POST" and override:
            self.command = override
        path = unquote(self.path.split("?")[0]).rstrip("/")
        path = path[len("/api/v3"):] if path == "/api/v3" or path.startswith("/api/v3/") else path
        if path in ("/graphql", "/api/graphql") and self.command in ("POST", "GET"):
            # GraphQL over HTTP also reads the document from the URL (a GET, or a POST whose
            # URL carries ?query=): that reading wins here, as in many servers.
            url_query = parse_qs(urlsplit(self.path).query)
            if "query" in url_query:
                body = json.dumps({"query": url_query["query"][0], "operationName": url_query.get("operationName", [None])[0]}).encode()
            return self.graphql(body)
        parts = path.strip("/").split("/")
        secret_reads = {("user", "keys"): [{"id": 1, "key": "ssh-ed25519 AAAA GH-SECRET-MARKER-user-key"}]}
        sensitive = self.command == "GET" and (tuple(parts) in secret_reads or parts[-2:] == ["actions", "secrets"]
                                               or parts[-3:] == ["actions", "secrets", "public-key"])
        self.record(body, {"sensitive": "1"} if sensitive else None)
        if (self.command != "GET" and not self.authorized()) or (REQUIRE_TOKEN and not self.may_read()):
            return self.reply(401, {"message": "Bad credentials"})
        if sensitive:
            if tuple(parts) in secret_reads:
                return self.reply(200, secret_reads[tuple(parts)])
            if parts[-1] == "public-key":
                return self.reply(200, {"key_id": "k1", "key": "GH-SECRET-MARKER-public-key"})
            return self.reply(200, {"total_count": 1, "secrets": [{"name": "GH-SECRET-MARKER-DEPLOY_KEY"}]})
        if self.command == "GET" and parts == ["user"]:
            return self.reply(200, USER)
        if parts[0] != "repos" or len(parts) < 3:
            return self.reply(404, {"message": "Not Found"})
        owner, name = parts[1], parts[2]
        if self.command == "GET" and len(parts) == 3:
            return self.reply(200, {"id": 1, "node_id": f"R_{owner}/{name}", "name": name,
                                    "full_name": f"{owner}/{name}", "owner": {"login": owner},
                                    "private": False, "default_branch": "main", "open_issues_count": len(ISSUES)})
        if self.command == "DELETE" and len(parts) == 3:
            return self.reply(204, {})
        if self.command == "POST" and parts[3:] == ["issues"]:
            fields = json.loads(body or b"{}")
            with LOCK:
                ISSUES.append(fields)
                number = len(ISSUES)
            return self.reply(201, {"number": number, "title": fields.get("title", ""), "state": "open"})
        self.reply(404, {"message": "Not Found"})

    def graphql(self, body):
        kind = operation(body)
        self.record(body, {"graphql_operation": kind})
        if (kind.startswith("mutation") and not self.authorized()) or (REQUIRE_TOKEN and not self.may_read()):
            return self.reply(401, {"message": "Bad credentials"})
        try:
            request = GraphQLRequest(self, json.loads(body or b"{}"))
        except (ValueError, AttributeError, GraphQLError) as error:
            return self.reply(200, {"errors": [{"message": f"Problem parsing the query: {error}"}]})
        if request.kind == "mutation" and not self.authorized():      # when the crude parse missed it
            return self.reply(401, {"message": "Bad credentials"})
        self.reply(200, request.run())

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any

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
