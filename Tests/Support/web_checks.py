#!/usr/bin/env python3
"""Checks of the approver web page (/ui/ on a team gate, and `airlock ui` locally), from the
outside: over HTTP with requests, and in headless Chromium with Selenium. Each check prints
one line, `ok NAME` or `FAIL NAME: detail` (notes go on their own `note NAME: ...` lines);
the exit status is 1 when any check failed, else 0. A check that needs what an earlier one
failed to make prints `FAIL NAME: not run (...)`; independent checks always run.
Imports: the standard library, requests, boto3 and selenium.

  web_checks.py signin-failures --gate URL --idp URL --host-token T --pending ID --link URL
                --used-link URL --revoked-link URL --revoke-command JSON_ARRAY --proxy-user NAME
      requests only. OIDC through the stand-in provider (oidc_standin.py, switched between its
      modes by POST IDP/control): oidc-good, oidc-es256, oidc-MODE-refused for wrong_iss,
      wrong_aud, expired, alg_none, unknown_kid, bad_nonce, bad_signature and hs256,
      oidc-state-mismatch, oidc-pkce-mismatch, oidc-code-reuse, no-groups-refused; then
      proxy-from-elsewhere, proxy-from-proxy (curl from 127.0.0.2), link-reused, link-unknown,
      revoked-cookie (runs the revoke command), nothing-decided (PENDING is still pending).
      --link is a spare one-time link and is not used.

  web_checks.py browser --gate-a URL --gate-b URL --idp URL --host-token T --moto URL
                --bob-link URL --artifacts DIR
      two headless Chromiums: signin-oidc-browser (alice on gate B), live-across-replicas
      (a proposal made through A appears on B's open queue without a reload),
      proposal-page, csrf-refused, digest-refused, approve-executes (SQS CreateQueue in moto),
      same-person-twice, two-approvers (DeleteQueue needs alice and bob, who signs in with
      --bob-link), xss-rendered-as-text, audit-view. Screenshots queue.png, queue-phone.png,
      proposal.png, audit.png in DIR.

  web_checks.py local-ui --link URL --pid PID --artifacts DIR --summary TEXT
      `airlock ui`'s one-time link: local-queue (a pending proposal whose summary contains
      TEXT; local-queue.png), local-approve, local-link-reused, loopback-only (every listening
      socket of process PID is on 127.0.0.1 or ::1, from /proc/PID/fd and /proc/net/tcp*).

Cookies are Secure, and requests never sends a Secure cookie over http://, so the requests
side keeps its own cookies (path-matched, from the raw Set-Cookie headers) and sends them as
a Cookie header; POSTs carry the Origin header a browser would send.
"""
import argparse
import base64
import email.utils
import http.cookiejar
import json
import os
import re
import secrets
import subprocess
import sys
import time
import traceback
from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import requests

FAILURES = []
REFUSED_MODES = ["wrong_iss", "wrong_aud", "expired", "alg_none", "unknown_kid", "bad_nonce",
                 "bad_signature", "hs256"]
TERMINAL = {"succeeded", "failed", "denied", "rejected", "expired", "cancelled", "canceled", "error"}


class Fail(Exception):
    pass


def short(text, limit=300):
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[:limit] + "..."


def check(name, function, *args):
    """Runs one check; a Fail or any other exception is its FAIL line."""
    try:
        note = function(*args)
    except Fail as error:
        FAILURES.append(name)
        print("FAIL %s: %s" % (name, short(error)), flush=True)
        return False
    except Exception as error:    # a bug here or a surprise there: still one line, and go on
        FAILURES.append(name)
        here = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == __file__]
        where = " (web_checks.py line %d)" % here[-1].lineno if here else ""
        message = str(error).split("Stacktrace:")[0]    # Selenium's messages end in a native stack
        hint = ""
        if "receiving message from renderer" in message:
            hint = (" -- a page load hung; HTTP/1.1 Chrome opens at most 6 connections to one host:port,"
                    " and pages kept in the back/forward cache hold theirs (an EventSource left open:"
                    " app.js should close it on pagehide)")
        print("FAIL %s: %s: %s%s%s" % (name, type(error).__name__, short(message, 200), where, hint), flush=True)
        return False
    print("ok " + name, flush=True)
    if note:
        print("note %s: %s" % (name, short(note, 400)), flush=True)
    return True


def not_run(name, why):
    FAILURES.append(name)
    print("FAIL %s: not run (%s)" % (name, why), flush=True)


def origin_of(url):
    parts = urlsplit(url)
    return "%s://%s" % (parts.scheme, parts.netloc)


# --- a small HTML tree for the requests side (Selenium has the browser's own) ---

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SELF_CLOSING_SIBLINGS = {"p", "li", "tr", "td", "th", "option", "dt", "dd"}


class Node:
    def __init__(self, tag, attrs):
        self.tag, self.attrs, self.children = tag, dict(attrs), []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find_all(self, tag=None, **attrs):
        """Descendants by tag and attributes; cls= matches one class among several."""
        cls = attrs.pop("cls", None)
        found = []
        for node in self.walk():
            if node is self or (tag and node.tag != tag):
                continue
            if cls and cls not in (node.attrs.get("class") or "").split():
                continue
            if all(node.attrs.get(k) == v for k, v in attrs.items()):
                found.append(node)
        return found

    def find(self, tag=None, **attrs):
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def by_id(self, ident):
        return self.find(id=ident)


class TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        if tag in SELF_CLOSING_SIBLINGS and self.stack[-1].tag == tag:
            self.stack.pop()
        node = Node(tag, [(k, v if v is not None else "") for k, v in attrs])
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, [(k, v if v is not None else "") for k, v in attrs]))

    def handle_endtag(self, tag):
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse_html(text):
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def form_fields(form):
    """The name -> value of a form's inputs (and textareas), as a browser would submit them."""
    fields = {}
    for node in form.walk():
        if node.tag == "input" and node.attrs.get("name") and node.attrs.get("type", "text") not in ("submit", "button"):
            fields[node.attrs["name"]] = node.attrs.get("value", "")
        elif node.tag == "textarea" and node.attrs.get("name"):
            fields[node.attrs["name"]] = node.text()
    return fields


# --- cookies by hand ---

def parse_set_cookie(line):
    parts = [p.strip() for p in line.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        attrs[key.strip().lower()] = val.strip()
    deleting = value.strip() in ("", '""')
    if "max-age" in attrs:
        try:
            deleting = deleting or int(attrs["max-age"]) <= 0
        except ValueError:
            pass
    if "expires" in attrs:
        try:
            deleting = deleting or email.utils.parsedate_to_datetime(attrs["expires"]).timestamp() < time.time()
        except (TypeError, ValueError):
            pass
    return {"name": name.strip(), "value": value.strip(), "attrs": attrs, "deleting": deleting, "line": line}


def path_matches(request_path, cookie_path):
    cookie_path = cookie_path or "/"
    if request_path == cookie_path or cookie_path == "/":
        return True
    return request_path.startswith(cookie_path) and (cookie_path.endswith("/") or request_path[len(cookie_path)] == "/")


class Answer:
    def __init__(self, response):
        self.response = response
        self.status = response.status_code
        self.text = response.text
        self.location = response.headers.get("Location")
        try:
            lines = response.raw.headers.getlist("Set-Cookie")
        except AttributeError:
            lines = [response.headers["Set-Cookie"]] if "Set-Cookie" in response.headers else []
        self.set_cookies = [parse_set_cookie(line) for line in lines]
        self._doc = None

    @property
    def doc(self):
        if self._doc is None:
            self._doc = parse_html(self.text)
        return self._doc

    def sets(self, name):
        """The Set-Cookie of NAME giving it a value (not clearing it), or None."""
        for cookie in self.set_cookies:
            if cookie["name"] == name and not cookie["deleting"]:
                return cookie
        return None

    def error_text(self):
        node = self.doc.by_id("error") if "html" in self.response.headers.get("Content-Type", "html") else None
        return short(node.text(), 120) if node is not None else None

    def describe(self):
        detail = "%d" % self.status
        if self.location:
            detail += " -> " + self.location
        error = self.error_text()
        if error:
            detail += " #error: " + error
        elif self.status >= 400 and not error:
            detail += " " + short(self.text, 120)
        return detail

    def location_path(self):
        return urlsplit(self.location or "").path


class Web:
    """A user agent for one gate: its own cookies, no redirects followed, no proxies."""

    def __init__(self, base, cookies=None):
        self.base = base.rstrip("/")
        self.cookies = dict(cookies or {})    # name -> (value, path)
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    def url(self, path):
        return path if "://" in path else self.base + path

    def has(self, name):
        return name in self.cookies

    def request(self, method, path, data=None, headers=None):
        url = self.url(path)
        request_path = urlsplit(url).path or "/"
        all_headers = dict(headers or {})
        pairs = ["%s=%s" % (n, v) for n, (v, p) in self.cookies.items() if path_matches(request_path, p)]
        if pairs:
            all_headers["Cookie"] = "; ".join(pairs)
        if method == "POST":
            all_headers.setdefault("Origin", origin_of(url))
        response = self.http.request(method, url, data=data, headers=all_headers, allow_redirects=False, timeout=30)
        answer = Answer(response)
        for cookie in answer.set_cookies:
            if cookie["deleting"]:
                self.cookies.pop(cookie["name"], None)
            else:
                self.cookies[cookie["name"]] = (cookie["value"], cookie["attrs"].get("path", "/"))
        return answer

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, data, headers=None):
        return self.request("POST", path, data=data, headers=headers)


def plain_session():
    session = requests.Session()
    session.trust_env = False
    return session


# --- gate API and payloads ---

def api(base, token, method, path, body=None):
    response = plain_session().request(method, base.rstrip("/") + path, json=body, timeout=30,
                                       headers={"Authorization": "Bearer " + token})
    try:
        value = response.json()
    except ValueError:
        value = None
    return response.status_code, value, response.text


def record_session(gate, token, session_id):
    status, _, text = api(gate, token, "POST", "/v1/sessions", {"id": session_id, "workspace": "/w"})
    if status not in (200, 201):
        raise Fail("POST /v1/sessions -> %d %s" % (status, short(text, 200)))


def propose(gate, token, session_id, payload):
    body = {"session_id": session_id,
            "payload_base64": base64.b64encode(json.dumps(payload).encode()).decode()}
    status, value, text = api(gate, token, "POST", "/v1/proposals", body)
    if status != 201 or not isinstance(value, dict) or not value.get("id"):
        raise Fail("proposing %s %s -> %d %s" % (payload["service"], payload["operation"], status, short(text, 240)))
    return value["id"]


def host_state(gate, token, proposal_id):
    status, value, text = api(gate, token, "GET", "/v1/proposals/" + quote(proposal_id, safe=""))
    if status != 200 or not isinstance(value, dict):
        raise Fail("GET /v1/proposals/%s -> %d %s" % (proposal_id, status, short(text, 160)))
    return value.get("state")


def b64(data):
    return base64.b64encode(data).decode()


def sqs_payload(operation, body):
    return {"type": "aws-request", "service": "sqs", "signing_name": "sqs", "region": "us-east-1",
            "operation": operation, "method": "POST", "path": "/", "query": "",
            "headers": [["Content-Type", "application/x-amz-json-1.0"], ["X-Amz-Target", "AmazonSQS." + operation]],
            "body_base64": b64(json.dumps(body).encode())}


def delete_stack_payload(stack_name):
    body = "Action=DeleteStack&Version=2010-05-15&StackName=" + quote(stack_name, safe="")
    return {"type": "aws-request", "service": "cloudformation", "signing_name": "cloudformation",
            "region": "us-east-1", "operation": "DeleteStack", "method": "POST", "path": "/", "query": "",
            "headers": [["Content-Type", "application/x-www-form-urlencoded; charset=utf-8"]],
            "body_base64": b64(body.encode())}


def put_object_payload(bucket, key):
    return {"type": "aws-request", "service": "s3", "signing_name": "s3", "region": "us-east-1",
            "operation": "PutObject", "method": "PUT", "path": "/" + bucket + "/" + quote(key, safe=""),
            "query": "", "headers": [["Content-Type", "text/plain"]],
            "body_base64": b64(b"hello")}


# --- signin-failures ---

def set_mode(idp, mode):
    response = plain_session().post(idp.rstrip("/") + "/control", json={"mode": mode}, timeout=10)
    if response.status_code != 200:
        raise Fail("IdP /control mode %s -> %d" % (mode, response.status_code))


def idp_control(idp):
    return plain_session().get(idp.rstrip("/") + "/control", timeout=10).json()


def oidc_start(gate, idp):
    """A fresh agent's GET /ui/oidc/start: (web, authorize URL)."""
    web = Web(gate)
    answer = web.get("/ui/oidc/start")
    if answer.status not in (302, 303, 307) or not answer.location:
        raise Fail("/ui/oidc/start -> " + answer.describe())
    if not answer.sets("airlock_oidc"):
        raise Fail("/ui/oidc/start set no airlock_oidc cookie")
    authorize = urljoin(web.url("/ui/oidc/start"), answer.location)
    if not authorize.startswith(idp.rstrip("/") + "/authorize"):
        raise Fail("/ui/oidc/start redirects to %s, not the IdP's authorize endpoint" % authorize)
    query = parse_qs(urlsplit(authorize).query)
    missing = [k for k in ("state", "nonce", "code_challenge") if not query.get(k, [""])[0]]
    if missing or query.get("code_challenge_method") != ["S256"]:
        raise Fail("authorize URL lacks %s / code_challenge_method=S256: %s" % (missing, authorize))
    return web, authorize


def idp_login(authorize, username, groups):
    """Logs in on the stand-in's form: the callback URL it redirects to."""
    session = plain_session()
    page = session.get(authorize, timeout=10)
    if page.status_code != 200:
        raise Fail("IdP authorize -> %d %s" % (page.status_code, short(page.text, 160)))
    form = parse_html(page.text).by_id("idp-login")
    if form is None:
        raise Fail("IdP authorize page has no #idp-login")
    fields = form_fields(form)
    fields.update(username=username, groups=groups)
    answer = session.post(urljoin(authorize, form.attrs.get("action", "")), data=fields,
                          allow_redirects=False, timeout=10)
    if answer.status_code != 302:
        raise Fail("IdP login -> %d %s" % (answer.status_code, short(answer.text, 160)))
    return answer.headers["Location"]


def oidc_flow(gate, idp, username="dave", groups="airlock-approvers"):
    """start, IdP login, callback: (web, callback URL, cookies before the callback, answer)."""
    web, authorize = oidc_start(gate, idp)
    callback = idp_login(authorize, username, groups)
    before = dict(web.cookies)
    return web, callback, before, web.get(callback)


def expect_signed_in(web, answer, name):
    problems = []
    if answer.status != 200:
        problems.append("callback " + answer.describe())
    if not answer.sets("airlock_session"):
        problems.append("no airlock_session cookie")
    refresh = [m for m in answer.doc.find_all("meta") if m.attrs.get("http-equiv", "").lower() == "refresh"]
    if answer.status == 200 and not any("/ui/" in m.attrs.get("content", "") for m in refresh):
        problems.append("no meta refresh to /ui/")
    if problems:
        raise Fail("; ".join(problems))
    queue = web.get("/ui/")
    whoami = queue.doc.by_id("whoami") if queue.status == 200 else None
    if whoami is None or name not in whoami.text():
        raise Fail("GET /ui/ after sign-in -> %s, #whoami %r" % (queue.describe(), whoami.text() if whoami else None))


def expect_refused(web, answer, what="callback"):
    problems = []
    if answer.status not in (400, 401, 403):
        problems.append("%s %s" % (what, answer.describe()))
    if answer.sets("airlock_session"):
        problems.append("airlock_session was set")
    if answer.status in (400, 401, 403) and answer.doc.by_id("error") is None:
        problems.append("no #error on the %d page" % answer.status)
    follow = web.get("/ui/")
    if follow.status != 303 or follow.location_path() != "/ui/signin":
        problems.append("then GET /ui/ -> " + follow.describe())
    if problems:
        raise Fail("; ".join(problems))
    return "%s %d: %s" % (what, answer.status, answer.error_text())


def alter_state(url):
    """The callback URL with its state changed in one character."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    state = query["state"][0]
    last = state[-1]
    query["state"] = [state[:-1] + ("B" if last == "A" else "A")]
    return parts._replace(query=urlencode({k: v[0] for k, v in query.items()})).geturl()


def link_sign_in(link):
    """GET a one-time link, POST its form: (web, token, login page answer, POST answer)."""
    web = Web(origin_of(link))
    page = web.get(link)
    form = page.doc.by_id("login-form") if page.status == 200 else None
    if form is None:
        raise Fail("GET link -> %s, no #login-form" % page.describe())
    token = form_fields(form).get("token")
    if not token:
        raise Fail("#login-form has no token input")
    return web, token, page, web.post(urljoin(link, form.attrs.get("action") or "/ui/login"), {"token": token})


def signin_failures(args):
    gate, idp = args.gate.rstrip("/"), args.idp.rstrip("/")

    def good():
        set_mode(idp, "ok")
        web, _, _, answer = oidc_flow(gate, idp)
        expect_signed_in(web, answer, "dave")

    def es256():
        set_mode(idp, "es256")
        try:
            web, _, _, answer = oidc_flow(gate, idp)
            expect_signed_in(web, answer, "dave")
        finally:
            set_mode(idp, "ok")

    def refused_mode(mode):
        set_mode(idp, mode)
        try:
            issued = idp_control(idp).get("tokens_issued", 0)
            web, _, _, answer = oidc_flow(gate, idp)
            note = expect_refused(web, answer)
            if idp_control(idp).get("tokens_issued", 0) == issued:
                note += " (the gate never redeemed the code at the IdP)"
            return note
        finally:
            set_mode(idp, "ok")

    def state_mismatch():
        set_mode(idp, "ok")
        web, authorize = oidc_start(gate, idp)
        callback = alter_state(idp_login(authorize, "dave", "airlock-approvers"))
        return expect_refused(web, web.get(callback))

    def pkce_mismatch():
        set_mode(idp, "ok")    # also clears the stand-in's last_token_error
        web_a, authorize_a = oidc_start(gate, idp)
        web_b, authorize_b = oidc_start(gate, idp)
        callback_a = idp_login(authorize_a, "dave", "airlock-approvers")
        state_b = parse_qs(urlsplit(authorize_b).query)["state"][0]
        parts = urlsplit(callback_a)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        query["state"] = state_b
        note = expect_refused(web_b, web_b.get(parts._replace(query=urlencode(query)).geturl()))
        reason = idp_control(idp).get("last_token_error")
        if reason != "pkce":
            raise Fail("refused, but the IdP's last_token_error is %r, not 'pkce'" % reason)
        return note

    def code_reuse():
        set_mode(idp, "ok")
        web, callback, before, answer = oidc_flow(gate, idp)
        if answer.status != 200 or not answer.sets("airlock_session"):
            raise Fail("the first callback did not sign in: " + answer.describe())
        replay = Web(gate, before)
        return expect_refused(replay, replay.get(callback), "replayed callback")

    def no_groups():
        set_mode(idp, "no_groups")
        try:
            web, _, _, answer = oidc_flow(gate, idp)
            return expect_refused(web, answer)
        finally:
            set_mode(idp, "ok")

    proxy_headers = {"X-Forwarded-User": args.proxy_user, "X-Forwarded-Groups": "airlock-admins"}

    def proxy_elsewhere():
        answer = Web(gate).get("/ui/", proxy_headers)
        if answer.status != 303 or answer.location_path() != "/ui/signin":
            raise Fail("GET /ui/ with X-Forwarded-User from 127.0.0.1 -> " + answer.describe())
        if answer.sets("airlock_session"):
            raise Fail("airlock_session was set")

    def proxy_from_proxy():
        command = ["curl", "-s", "-i", "--max-time", "20", "--noproxy", "*", "--interface", "127.0.0.2",
                   "-H", "X-Forwarded-User: " + args.proxy_user, "-H", "X-Forwarded-Groups: airlock-admins",
                   gate + "/ui/"]
        result = subprocess.run(command, capture_output=True, timeout=30)
        if result.returncode != 0:
            raise Fail("curl exit %d: %s" % (result.returncode, short(result.stderr.decode("utf-8", "replace"), 160)))
        raw = result.stdout.decode("utf-8", "replace")
        head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
        status_line = head.split("\n", 1)[0]
        status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
        whoami = parse_html(body).by_id("whoami")
        if status != 200 or whoami is None or args.proxy_user not in whoami.text():
            raise Fail("from 127.0.0.2: %s, #whoami %r" % (status_line, whoami.text() if whoami else None))
        cookies = [parse_set_cookie(line.split(":", 1)[1]) for line in head.split("\n") if line.lower().startswith("set-cookie:")]
        if not any(c["name"] == "airlock_session" and not c["deleting"] for c in cookies):
            raise Fail("signed in from the proxy, but no airlock_session cookie was set")
        return None

    def unbound_refused():
        # This gate enrols people by an admin's binding only (web.enrol: admin): an account
        # of the provider nobody bound is refused, and the page says what the admin runs.
        set_mode(idp, "ok")
        web, _, _, answer = oidc_flow(gate, idp, username="erin")
        note = expect_refused(web, answer)
        node = answer.doc.by_id("error")
        text = node.text() if node is not None else ""
        if "airlock gate user bind erin --subject sub-erin" not in text:
            raise Fail("the refusal does not say how to bind: " + short(text, 300))
        return note

    def takeover_refused():
        # A provider account claiming the name of an approver enrolled with a token (and
        # never bound to it) does not become them, on a gate that trusts the provider's names.
        set_mode(idp, "ok")
        web, _, _, answer = oidc_flow(args.provider_gate.rstrip("/"), idp, username=args.token_user)
        return expect_refused(web, answer)

    def proxy_repeated_header():
        # A second X-Forwarded-Groups (a proxy that appends instead of replacing) is refused.
        command = ["curl", "-s", "-i", "--max-time", "20", "--noproxy", "*", "--interface", "127.0.0.2",
                   "-H", "X-Forwarded-User: " + args.proxy_user, "-H", "X-Forwarded-Groups: engineering",
                   "-H", "X-Forwarded-Groups: airlock-admins", gate + "/ui/"]
        result = subprocess.run(command, capture_output=True, timeout=30)
        raw = result.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
        status_line = raw.split("\n", 1)[0]
        if " 200 " in status_line + " " or "airlock_session=" in raw.partition("\n\n")[0].replace("airlock_session=;", ""):
            raise Fail("two X-Forwarded-Groups headers from the proxy -> " + status_line)
        return status_line

    def link_reused():
        web, token, _, first = link_sign_in(args.used_link)
        if first.status != 200 or not first.sets("airlock_session"):
            raise Fail("first POST /ui/login -> %s, session cookie %s" % (first.describe(), bool(first.sets("airlock_session"))))
        again = Web(origin_of(args.used_link)).post("/ui/login", {"token": token})
        if again.status != 401 or again.sets("airlock_session"):
            raise Fail("second POST /ui/login -> %s, session cookie %s" % (again.describe(), bool(again.sets("airlock_session"))))

    def link_unknown():
        answer = Web(gate).post("/ui/login", {"token": secrets.token_urlsafe(32)})
        if answer.status != 401 or answer.sets("airlock_session"):
            raise Fail("POST /ui/login with a made-up token -> " + answer.describe())

    def revoked_cookie():
        web, _, _, login = link_sign_in(args.revoked_link)
        if login.status != 200 or not login.sets("airlock_session"):
            raise Fail("signing carol in -> " + login.describe())
        queue = web.get("/ui/")
        if queue.status != 200:
            raise Fail("GET /ui/ before revoking -> " + queue.describe())
        proposal_path = "/ui/proposals/" + quote(args.pending, safe="")
        page = web.get(proposal_path)
        if page.status != 200:
            raise Fail("GET %s before revoking -> %s" % (proposal_path, page.describe()))
        form = page.doc.by_id("decide")
        fields = form_fields(form) if form is not None else {}
        if not fields.get("csrf"):
            fields = {k: v for k, v in form_fields(page.doc).items() if k in ("csrf", "digest")}
        command = json.loads(args.revoke_command)
        result = subprocess.run(command, capture_output=True, timeout=120)
        if result.returncode != 0:
            raise Fail("revoke command exit %d: %s" % (result.returncode, short(result.stderr.decode("utf-8", "replace"), 200)))
        after = web.get("/ui/")
        # Not signed in any more: sent to sign in, or told why (401 naming the revocation).
        signed_out = after.status == 303 and after.location_path() == "/ui/signin"
        told = after.status == 401 and "revoked" in after.describe()
        if not (signed_out or told):
            raise Fail("GET /ui/ after revoking -> " + after.describe())
        decide = web.post(proposal_path + "/decide", {"csrf": fields.get("csrf", ""), "digest": fields.get("digest", ""),
                                                     "reason": "revoked", "decision": "approve"})
        if 200 <= decide.status < 300 or decide.status not in (401, 403, 303) or "done=" in (decide.location or ""):
            raise Fail("POST decide after revoking -> " + decide.describe())
        if not fields.get("csrf"):
            raise Fail("carol's page had no csrf input before the revocation (-> %d)" % decide.status)
        return "decide after revoking -> %d" % decide.status

    def nothing_decided():
        state = host_state(gate, args.host_token, args.pending)
        if state != "pending":
            raise Fail("proposal %s is %r" % (args.pending, state))

    check("oidc-good", good)
    check("oidc-es256", es256)
    for mode in REFUSED_MODES:
        check("oidc-%s-refused" % mode, refused_mode, mode)
    check("oidc-state-mismatch", state_mismatch)
    check("oidc-pkce-mismatch", pkce_mismatch)
    check("oidc-code-reuse", code_reuse)
    check("no-groups-refused", no_groups)
    check("proxy-from-elsewhere", proxy_elsewhere)
    check("proxy-from-proxy", proxy_from_proxy)
    check("proxy-repeated-header", proxy_repeated_header)
    check("oidc-unbound-refused", unbound_refused)
    check("oidc-takeover-refused", takeover_refused)
    check("link-reused", link_reused)
    check("link-unknown", link_unknown)
    check("revoked-cookie", revoked_cookie)
    check("nothing-decided", nothing_decided)
    try:
        set_mode(idp, "ok")
    except Exception:
        pass


# --- the browser ---

# Notes when the page's EventSource opens, so a check can wait for the stream before it
# makes the change it expects to see (app.js is not changed by this).
TRACK_EVENTSOURCE = """
(() => {
  const Original = window.EventSource;
  if (!Original || Original.__airlockTracked) return;
  const Tracked = function (url, init) {
    const source = new Original(url, init);
    source.addEventListener('open', () => { window.__airlockStreamOpen = (window.__airlockStreamOpen || 0) + 1; });
    return source;
  };
  Tracked.prototype = Original.prototype;
  Tracked.CONNECTING = Original.CONNECTING; Tracked.OPEN = Original.OPEN; Tracked.CLOSED = Original.CLOSED;
  Tracked.__airlockTracked = true;
  window.EventSource = Tracked;
})();
"""


def new_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    # An alert stays open (and every other command fails) until a check looks at it.
    options.unhandled_prompt_behavior = "ignore"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": TRACK_EVENTSOURCE})
    except Exception:
        pass
    return driver


def by_css(driver, selector):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, selector)


def page_error(driver):
    try:
        found = by_css(driver, "#error")
        return " #error: " + short(found[0].text, 120) if found else ""
    except Exception:
        return ""


def wait_until(driver, condition, timeout, what):
    """Polls CONDITION(driver) until it is truthy; a timeout is a Fail naming WHAT and the page."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        # A page replaced while it is read (a navigation, the live queue swapping its table)
        # is read again: "stale" or "does not belong to the document".
        return WebDriverWait(driver, timeout, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException, WebDriverException)).until(condition)
    except TimeoutException:
        raise Fail("%s not seen within %ss (at %s%s)" % (what, timeout, driver.current_url, page_error(driver)))


def element_text(driver, selector):
    found = by_css(driver, selector)
    return found[0].text.strip() if found else None


def wait_text(driver, selector, needle, timeout, what=None):
    def seen(d):
        text = element_text(d, selector)
        return text if text is not None and needle in text else False
    return wait_until(driver, seen, timeout, what or "%s containing %r" % (selector, needle))


def click_and_wait_load(driver, selector, timeout=30):
    """Clicks and waits until the page it was on is gone (a form submission's navigation)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    old = driver.find_element(By.TAG_NAME, "html")
    elements = by_css(driver, selector)
    if not elements:
        raise Fail("no %s on %s%s" % (selector, driver.current_url, page_error(driver)))
    elements[0].click()
    wait_until(driver, expected_conditions.staleness_of(old), timeout, "the page after clicking " + selector)
    wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete", timeout, "page load")


def fill(driver, selector, text):
    elements = by_css(driver, selector)
    if not elements:
        raise Fail("no %s on %s" % (selector, driver.current_url))
    elements[0].clear()
    elements[0].send_keys(text)


def wait_state(driver, want, timeout, url):
    """Waits for #state == WANT, reloading URL every 3 s (execution may finish after the answer)."""
    deadline = time.monotonic() + timeout
    next_reload = time.monotonic() + 3
    last = None
    while time.monotonic() < deadline:
        last = element_text(driver, "#state")
        if last is not None and last.lower() == want:
            return
        if last is not None and last.lower() in TERMINAL:
            raise Fail("#state is %r, not %r%s" % (last, want, page_error(driver)))
        if time.monotonic() >= next_reload:
            driver.get(url)
            next_reload = time.monotonic() + 3
        time.sleep(0.25)
    raise Fail("#state still %r after %ss, not %r%s" % (last, timeout, want, page_error(driver)))


def dismiss_alerts(driver):
    from selenium.common.exceptions import NoAlertPresentException
    try:
        driver.switch_to.alert.dismiss()
    except NoAlertPresentException:
        pass
    except Exception:
        pass


def session_cookie(driver):
    cookie = driver.get_cookie("airlock_session")
    if not cookie:
        raise Fail("the browser holds no airlock_session cookie")
    return cookie["value"]


def decide_fields(driver):
    """csrf, digest and the preview's digest from the page's #decide form."""
    fields = {}
    for name in ("csrf", "digest", "preview"):
        found = by_css(driver, '#decide input[name="%s"]' % name)
        fields[name] = found[0].get_attribute("value") if found else None
    return fields


def row_selector(proposal_id):
    return 'tr.proposal[data-id="%s"]' % proposal_id.replace("\\", "\\\\").replace('"', '\\"')


def screenshot(driver, directory, name):
    os.makedirs(directory, exist_ok=True)
    driver.save_screenshot(os.path.join(directory, name))


def xss_problems(driver, literal=None):
    """What on the current page shows script ran or markup was injected."""
    from selenium.common.exceptions import NoAlertPresentException, UnexpectedAlertPresentException
    from selenium.webdriver.common.by import By
    problems = []
    deadline = time.monotonic() + 1.5    # an <img onerror> fires once the load of "x" fails
    while time.monotonic() < deadline:
        try:
            alert = driver.switch_to.alert
            problems.append("an alert is open: %r" % alert.text)
            alert.accept()
            break
        except NoAlertPresentException:
            time.sleep(0.1)
    try:
        found = driver.execute_script("""
            return {
              imgs: Array.from(document.querySelectorAll('img')).map(i => [i.getAttribute('src') || '', i.src || '']),
              scripts: Array.from(document.scripts).map(s => s.textContent || ''),
              handlers: document.querySelectorAll('[onerror],[onload]').length
            };""")
        body_text = driver.find_element(By.TAG_NAME, "body").text
    except UnexpectedAlertPresentException as error:
        dismiss_alerts(driver)
        return problems + ["an alert was open: %s" % short(error.alert_text or "", 60)]
    for raw, resolved in found["imgs"]:
        if raw == "x" or raw.endswith("/x") or resolved.endswith("/x"):
            problems.append("an <img src=%r> is in the DOM" % raw)
    if any("alert(1)" in text for text in found["scripts"]):
        problems.append("a <script> holding alert(1) is in the DOM")
    if found["handlers"]:
        problems.append("%d elements with onerror/onload attributes" % found["handlers"])
    if literal is not None and literal not in body_text:
        encoded = quote(literal, safe="")
        problems.append("the literal %r is not in the visible text%s" % (
            literal, " (only its percent-encoding is)" if encoded in body_text else ""))
    return problems


def browser(args):
    import boto3
    gate_a, gate_b, idp = args.gate_a.rstrip("/"), args.gate_b.rstrip("/"), args.idp.rstrip("/")
    artifacts = args.artifacts
    os.makedirs(artifacts, exist_ok=True)
    tag = secrets.token_hex(4)
    session_id = "web-" + secrets.token_hex(6)
    queue_name = "web-q-" + tag
    sqs = boto3.client("sqs", endpoint_url=args.moto, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    known = {}    # what earlier checks made: proposal ids, csrf
    drivers = []

    def queue_urls():
        return sqs.list_queues(QueueNamePrefix=queue_name).get("QueueUrls", [])

    def queue_exists():
        return any(url.rstrip("/").endswith("/" + queue_name) for url in queue_urls())

    def proposal_url(base, proposal_id):
        return base + "/ui/proposals/" + quote(proposal_id, safe="")

    def record():
        record_session(gate_a, args.host_token, session_id)

    def signin():
        set_mode(idp, "ok")
        driver = known["alice"] = new_driver()
        drivers.append(driver)
        driver.get(gate_b + "/ui/")
        wait_until(driver, lambda d: by_css(d, "#signin-oidc"), 15, "#signin-oidc on the sign-in page")
        if urlsplit(driver.current_url).path != "/ui/signin":
            raise Fail("GET /ui/ signed out landed on %s, not /ui/signin" % driver.current_url)
        by_css(driver, "#signin-oidc")[0].click()
        wait_until(driver, lambda d: by_css(d, "#username"), 15, "the IdP's #username")
        fill(driver, "#username", "alice")
        fill(driver, "#groups", "airlock-approvers")
        by_css(driver, "#idp-submit")[0].click()
        wait_text(driver, "#whoami", "alice", 20)

    def live():
        driver = known["alice"]
        if urlsplit(driver.current_url).path != "/ui/" or not by_css(driver, "#queue"):
            driver.get(gate_b + "/ui/")
        wait_until(driver, lambda d: by_css(d, "#queue"), 15, "#queue")
        wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete", 15, "page load")
        note = []
        try:
            wait_until(driver, lambda d: d.execute_script("return window.__airlockStreamOpen || 0") > 0, 5,
                       "the page's EventSource open")
        except Fail:
            note.append("no EventSource open event seen within 5 s (proposing anyway)")
        driver.execute_script("window.__airlockMarker = 'kept';")
        proposal_id = known["create"] = propose(gate_a, args.host_token, session_id,
                                                sqs_payload("CreateQueue", {"QueueName": queue_name}))
        wait_until(driver, lambda d: by_css(d, row_selector(proposal_id)), 15,
                   "row %s on gate B's queue" % proposal_id)
        marker = driver.execute_script("return window.__airlockMarker")
        if marker != "kept":
            raise Fail("the row appeared but the page was reloaded (marker %r)" % marker)
        updates = driver.execute_script("return document.body.dataset.updates")
        if not updates:
            note.append("document.body.dataset.updates is not set")
        screenshot(driver, artifacts, "queue.png")
        try:
            driver.set_window_size(390, 844)
            screenshot(driver, artifacts, "queue-phone.png")
        except Exception as error:
            note.append("no phone screenshot: " + short(error, 80))
        finally:
            driver.set_window_size(1280, 1000)
        return "; ".join(note)

    def proposal_page():
        driver, proposal_id = known["alice"], known["create"]
        note = None
        links = by_css(driver, row_selector(proposal_id) + " a.proposal-link")
        if links:
            links[0].click()
        else:
            note = "no row link on the page; opened the proposal by URL"
            driver.get(proposal_url(gate_b, proposal_id))
        summary = wait_until(driver, lambda d: element_text(d, "#summary"), 15, "#summary")
        problems = []
        if "CreateQueue" not in summary:
            problems.append("#summary is %r" % summary)
        request_text = element_text(driver, "#request")
        if request_text is None or queue_name not in request_text:
            problems.append("#request %s" % ("missing" if request_text is None else "lacks " + queue_name))
        for selector in ("#preview", "#decide"):
            if not by_css(driver, selector):
                problems.append("no " + selector)
        screenshot(driver, artifacts, "proposal.png")
        if problems:
            raise Fail("; ".join(problems))
        return note

    def decide_by_hand(fields):
        web = Web(gate_b, {"airlock_session": (session_cookie(known["alice"]), "/")})
        return web.post("/ui/proposals/" + quote(known["create"], safe="") + "/decide", fields)

    def csrf_refused():
        driver = known["alice"]
        driver.get(proposal_url(gate_b, known["create"]))
        wait_until(driver, lambda d: by_css(d, "#decide"), 15, "#decide")
        fields = decide_fields(driver)
        if not fields["csrf"] or not fields["digest"]:
            raise Fail("#decide lacks a csrf or digest input value: %s" % fields)
        known["csrf"], known["digest"], known["preview"] = fields["csrf"], fields["digest"], fields["preview"]
        answer = decide_by_hand({"digest": fields["digest"], "reason": "no csrf", "decision": "approve"})
        if answer.status != 403:
            raise Fail("POST decide without csrf -> " + answer.describe())
        if "csrf" not in (answer.error_text() or "").lower():
            raise Fail("the 403 page's #error does not mention CSRF: %r" % answer.error_text())
        state = host_state(gate_a, args.host_token, known["create"])
        if state != "pending":
            raise Fail("the proposal is %r after the refused POST" % state)

    def digest_refused():
        if "csrf" not in known:
            raise Fail("not run (csrf-refused did not read the form)")
        answer = decide_by_hand({"csrf": known["csrf"], "digest": "0" * 64, "reason": "wrong digest",
                                 "decision": "approve"})
        if answer.status != 409:
            raise Fail("POST decide with digest 0*64 -> " + answer.describe())
        if "digest" not in (answer.error_text() or "").lower():
            raise Fail("the 409 page's #error does not mention the digest: %r" % answer.error_text())
        # The payload's digest right, the preview's not: a page showing another preview (the
        # target changed since) decides nothing either.
        if not known.get("preview"):
            raise Fail("#decide has no preview digest input")
        stale = decide_by_hand({"csrf": known["csrf"], "digest": known["digest"], "preview": "0" * 64,
                                "reason": "stale preview", "decision": "approve"})
        if stale.status != 409 or "preview" not in (stale.error_text() or "").lower():
            raise Fail("POST decide with the preview digest 0*64 -> " + stale.describe())
        state = host_state(gate_a, args.host_token, known["create"])
        if state != "pending":
            raise Fail("the proposal is %r after the refused POSTs" % state)

    def approve_executes():
        driver = known["alice"]
        url = proposal_url(gate_b, known["create"])
        driver.get(url)
        wait_until(driver, lambda d: by_css(d, "#approve"), 15, "#approve")
        fill(driver, "#reason", "web check: create the queue")
        click_and_wait_load(driver, "#approve")
        flash = element_text(driver, "#flash")
        wait_state(driver, "succeeded", 60, url)
        if not queue_exists():
            raise Fail("#state succeeded but moto has no queue %s" % queue_name)
        if flash is None:
            return "no #flash after the decision (at %s)" % driver.current_url

    def alice_first_approval():
        driver = known["alice"]
        queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        proposal_id = known["delete"] = propose(gate_a, args.host_token, session_id,
                                                sqs_payload("DeleteQueue", {"QueueUrl": queue_url}))
        url = proposal_url(gate_b, proposal_id)
        driver.get(url)
        wait_until(driver, lambda d: by_css(d, "#approve"), 15, "#approve on the DeleteQueue proposal")
        known["delete_fields"] = decide_fields(driver)
        fill(driver, "#reason", "web check: first of two")
        click_and_wait_load(driver, "#approve")
        wait_until(driver, lambda d: element_text(d, "#state") is not None, 15, "#state")
        state, rules = element_text(driver, "#state"), element_text(driver, "#rules") or ""
        if state != "pending" or "1 of 2" not in rules:
            raise Fail("after alice's approval #state %r, #rules %r%s" % (state, short(rules, 120), page_error(driver)))
        if not queue_exists():
            raise Fail("the queue is gone after one approval")

    def same_person_twice():
        driver = known["alice"]
        url = proposal_url(gate_b, known["delete"])
        driver.get(url)
        wait_until(driver, lambda d: by_css(d, "#state"), 15, "#state")
        notes = []
        if by_css(driver, "#decide #approve"):
            fill(driver, "#reason", "web check: again")
            click_and_wait_load(driver, "#approve")
            wait_until(driver, lambda d: by_css(d, "#state"), 15, "#state")
            if not by_css(driver, "#error") and not by_css(driver, "#flash"):
                raise Fail("a second approval by alice showed neither #error nor #flash")
            notes.append("form shown again; second click answered: " + (element_text(driver, "#error") or element_text(driver, "#flash")))
        else:
            notes.append("the form is not shown to her again")
        fields = known.get("delete_fields") or {}
        if fields.get("csrf"):    # and by hand, with what the form held before her first approval
            web = Web(gate_b, {"airlock_session": (session_cookie(driver), "/")})
            answer = web.post("/ui/proposals/" + quote(known["delete"], safe="") + "/decide",
                              {"csrf": fields["csrf"], "digest": fields.get("digest") or "", "reason": "again",
                               "decision": "approve"})
            notes.append("a hand-made second POST -> %d" % answer.status)
        state = host_state(gate_a, args.host_token, known["delete"])
        if state != "pending":
            raise Fail("after alice approved twice the proposal is %r" % state)
        driver.get(url)
        rules = wait_until(driver, lambda d: element_text(d, "#rules"), 15, "#rules")
        if "1 of 2" not in rules:
            raise Fail("after alice approved twice #rules is %r" % short(rules, 120))
        if not queue_exists():
            raise Fail("the queue is gone")
        return "; ".join(notes)

    def bob_approves():
        driver = known["bob"] = new_driver()
        drivers.append(driver)
        driver.get(args.bob_link)
        wait_until(driver, lambda d: by_css(d, "#login-continue"), 15, "#login-continue")
        by_css(driver, "#login-continue")[0].click()
        wait_text(driver, "#whoami", "bob", 20)
        url = proposal_url(origin_of(args.bob_link), known["delete"])
        driver.get(url)
        wait_until(driver, lambda d: by_css(d, "#approve"), 15, "#approve for bob")
        fill(driver, "#reason", "web check: second of two")
        click_and_wait_load(driver, "#approve")
        wait_state(driver, "succeeded", 60, url)
        if queue_exists():
            raise Fail("#state succeeded but the queue %s is still in moto" % queue_name)

    def xss():
        from selenium.common.exceptions import UnexpectedAlertPresentException
        driver = known["alice"]
        stack = "<script>alert(1)</script>"
        key = '"><img src=x onerror=alert(1)>'
        stack_id = propose(gate_a, args.host_token, session_id, delete_stack_payload(stack))
        key_id = propose(gate_a, args.host_token, session_id, put_object_payload("web-xss", key))
        problems = []

        def inspect(what, url, ready, literal):
            try:
                driver.get(url)
                wait_until(driver, ready, 15, what)
            except Fail as error:
                problems.append(str(error))
            except UnexpectedAlertPresentException as error:
                problems.append("%s: an alert opened while loading: %r" % (what, error.alert_text))
                dismiss_alerts(driver)
            problems.extend(what + ": " + p for p in xss_problems(driver, literal))

        inspect("the queue", gate_b + "/ui/",
                lambda d: by_css(d, row_selector(stack_id)) and by_css(d, row_selector(key_id)), None)
        inspect("DeleteStack", proposal_url(gate_b, stack_id), lambda d: by_css(d, "#summary"), stack)
        inspect("PutObject", proposal_url(gate_b, key_id), lambda d: by_css(d, "#summary"), key)
        if problems:
            raise Fail("; ".join(problems))

    def audit():
        driver = known["alice"]
        driver.get(gate_b + "/ui/audit?" + urlencode({"proposal": known["create"]}))
        wait_until(driver, lambda d: by_css(d, "#audit"), 15, "#audit")
        events = []
        for row in by_css(driver, "#audit tr.entry"):
            cells = row.find_elements("css selector", "td")
            if len(cells) >= 3:
                events.append(cells[2].text.strip())
        screenshot(driver, artifacts, "audit.png")
        lowered = [e.lower() for e in events]
        if not any("proposed" in e for e in lowered) or not any("approved" in e or "succeeded" in e for e in lowered):
            raise Fail("#audit events are %s" % events)

    def run(name, function, needs=(), driver_key="alice"):
        missing = [n for n in needs if n not in known]
        if missing:
            not_run(name, "needs " + ", ".join(missing) + " from an earlier check")
            return False
        try:
            return check(name, function)
        finally:
            if driver_key in known:
                dismiss_alerts(known[driver_key])

    try:
        if check("record-session", record):
            known["session"] = session_id
        run("signin-oidc-browser", signin)
        run("live-across-replicas", live, ("alice", "session"))
        run("proposal-page", proposal_page, ("alice", "create"))
        run("csrf-refused", csrf_refused, ("alice", "create"))
        run("digest-refused", digest_refused, ("alice", "create"))
        run("approve-executes", approve_executes, ("alice", "create"))
        first_failure = None
        if "alice" in known and "create" in known and "session" in known:
            try:
                alice_first_approval()
            except Fail as error:
                first_failure = str(error)
            except Exception as error:
                first_failure = "%s: %s" % (type(error).__name__, error)
            finally:
                dismiss_alerts(known["alice"])
        else:
            first_failure = "not run (needs alice, the session and the CreateQueue proposal)"
        if first_failure is None:
            run("same-person-twice", same_person_twice, ("alice", "delete"))
            run("two-approvers", bob_approves, ("delete",), "bob")
        else:
            not_run("same-person-twice", "alice's first approval failed")
            FAILURES.append("two-approvers")
            print("FAIL two-approvers: alice's approval: %s" % short(first_failure), flush=True)
        run("xss-rendered-as-text", xss, ("alice", "session"))
        run("audit-view", audit, ("alice", "create"))
    finally:
        for driver in drivers:
            try:
                driver.quit()
            except Exception:
                pass


# --- airlock ui ---

def listening_addresses(pid):
    """The local addresses of process PID's listening TCP sockets, as (family, hex, readable)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        found = re.match(r"socket:\[(\d+)\]$", target)
        if found:
            inodes.add(found.group(1))
    listening = []
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            with open(table) as handle:
                lines = handle.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A" or fields[9] not in inodes:
                continue
            address, port = fields[1].split(":")
            listening.append((family, address, readable_address(family, address) + ":%d" % int(port, 16)))
    return listening


def readable_address(family, hexed):
    raw = bytes.fromhex(hexed)
    # /proc/net/tcp* print each 32-bit word in host (little-endian) order
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if family == 4:
        return ".".join(str(b) for b in raw)
    import ipaddress
    return "[%s]" % ipaddress.IPv6Address(raw)


LOOPBACK = {(4, "0100007F"), (6, "00000000000000000000000001000000"),
            (6, "0000000000000000FFFF00000100007F")}    # the last: ::ffff:127.0.0.1


def local_ui(args):
    origin = origin_of(args.link)
    known = {}
    drivers = []

    def signin():
        driver = known["driver"] = new_driver()
        drivers.append(driver)
        driver.get(args.link)
        wait_until(driver, lambda d: by_css(d, "#login-continue"), 15, "#login-continue")
        tokens = by_css(driver, '#login-form input[name="token"]')
        known["token"] = tokens[0].get_attribute("value") if tokens else urlsplit(args.link).path.rstrip("/").rsplit("/", 1)[-1]
        by_css(driver, "#login-continue")[0].click()
        wait_until(driver, lambda d: by_css(d, "#whoami"), 20, "#whoami")

    def queue():
        driver = known["driver"]
        if urlsplit(driver.current_url).path != "/ui/":
            driver.get(origin + "/ui/")

        def row(d):
            for candidate in by_css(d, "tr.proposal"):
                links = candidate.find_elements("css selector", "a.proposal-link")
                if links and args.summary in links[0].text:
                    return candidate
            return False
        found = wait_until(driver, row, 15, "a row whose link contains %r" % args.summary)
        state = (found.get_attribute("data-state") or "").strip()
        cells = found.find_elements("css selector", "td.state")
        known["link"] = found.find_elements("css selector", "a.proposal-link")[0].get_attribute("href")
        screenshot(driver, args.artifacts, "local-queue.png")
        if state != "pending" and not (cells and cells[0].text.strip() == "pending"):
            raise Fail("the row's state is %r" % (state or (cells[0].text if cells else None)))

    def approve():
        driver = known["driver"]
        url = known["link"]
        driver.get(url)
        wait_until(driver, lambda d: by_css(d, "#approve"), 15, "#approve")
        if by_css(driver, "#reason"):
            fill(driver, "#reason", "local web check")
        click_and_wait_load(driver, "#approve")
        wait_state(driver, "succeeded", 60, url)

    def link_reused():
        answer = Web(origin).post("/ui/login", {"token": known["token"]})
        if answer.status != 401 or answer.sets("airlock_session"):
            raise Fail("POST /ui/login with the used token -> " + answer.describe())

    def loopback():
        listening = listening_addresses(args.pid)
        if not listening:
            raise Fail("process %d has no listening TCP socket" % args.pid)
        outside = [readable for family, hexed, readable in listening if (family, hexed.upper()) not in LOOPBACK]
        if outside:
            raise Fail("listening beyond loopback: %s" % ", ".join(outside))
        return "listening on " + ", ".join(readable for _, _, readable in listening)

    try:
        os.makedirs(args.artifacts, exist_ok=True)
        signed_in = check("local-signin", signin)
        if signed_in:
            queued = check("local-queue", queue)
        else:
            not_run("local-queue", "the link did not sign in")
            queued = False
        if queued:
            check("local-approve", approve)
        else:
            not_run("local-approve", "no queue row")
        if "token" in known:
            check("local-link-reused", link_reused)
        else:
            not_run("local-link-reused", "the link's token was not read")
        check("loopback-only", loopback)

        def rebinding():
            # A page whose own name was re-pointed at 127.0.0.1 sends that name as Host.
            origin = origin_of(args.link)
            port = urlsplit(origin).port
            answer = plain_session().get(origin + "/ui/signin", headers={"Host": "rebound.example:%d" % port},
                                         allow_redirects=False, timeout=10)
            if answer.status_code != 421:
                raise Fail("Host rebound.example -> %d, not 421" % answer.status_code)
            same = plain_session().get(origin + "/ui/signin", allow_redirects=False, timeout=10)
            if same.status_code != 200:
                raise Fail("Host 127.0.0.1 -> %d" % same.status_code)

        check("local-host-checked", rebinding)
    finally:
        for driver in drivers:
            try:
                driver.quit()
            except Exception:
                pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    failures = commands.add_parser("signin-failures", help="OIDC, proxy and link sign-in refusals (requests)")
    failures.add_argument("--gate", required=True)
    failures.add_argument("--idp", required=True)
    failures.add_argument("--host-token", required=True)
    failures.add_argument("--pending", required=True, help="a pending proposal id that must stay pending")
    failures.add_argument("--link", help="a spare one-time link (unused)")
    failures.add_argument("--used-link", required=True)
    failures.add_argument("--revoked-link", required=True)
    failures.add_argument("--revoke-command", required=True, help="a JSON array: the command revoking carol")
    failures.add_argument("--proxy-user", required=True)
    failures.add_argument("--provider-gate", required=True, help="a gate with web.enrol: provider")
    failures.add_argument("--token-user", required=True, help="an approver enrolled there with a token, never bound")
    web = commands.add_parser("browser", help="the approver page in headless Chromium across two gates")
    web.add_argument("--gate-a", required=True)
    web.add_argument("--gate-b", required=True)
    web.add_argument("--idp", required=True)
    web.add_argument("--host-token", required=True)
    web.add_argument("--moto", required=True)
    web.add_argument("--bob-link", required=True)
    web.add_argument("--artifacts", required=True)
    local = commands.add_parser("local-ui", help="`airlock ui` on the local store")
    local.add_argument("--link", required=True)
    local.add_argument("--pid", required=True, type=int)
    local.add_argument("--artifacts", required=True)
    local.add_argument("--summary", required=True)
    args = parser.parse_args()
    {"signin-failures": signin_failures, "browser": browser, "local-ui": local_ui}[args.command](args)
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
