#!/usr/bin/env python3
"""A stand-in OpenID Connect provider, for the approver web page's sign-in tests: no real
identity provider can run here, so this one does the parts of one that the gate relies on,
as a real one does them: the authorization code flow with PKCE (S256 only), exact
redirect_uri matching, one-time codes, ID tokens signed with keys published as a JWKS.
Standard library and `cryptography`.

    oidc_standin.py --client-id ID --client-secret SECRET --redirect-uri URI
                    [--redirect-uri URI ...] [--port 0]
        listens on 127.0.0.1 (plain HTTP; port 0: a free one) and prints one JSON line
        {"issuer": "http://127.0.0.1:PORT"} once it does.

Endpoints:
    GET  /.well-known/openid-configuration   discovery (issuer, authorize, token, jwks_uri...)
    GET  /jwks         RSA-2048 key kid "rsa-1" (RS256) and EC P-256 key kid "ec-1" (ES256),
                       made at start
    GET  /authorize    checks response_type=code, client_id, redirect_uri (exactly one
                       registered), scope has openid, code_challenge with method S256; any
                       fault is a 400 HTML page with <p id="error">, never a redirect.
                       Otherwise a login form: form#idp-login carrying every query parameter
                       as hidden inputs, input#username, input#groups (comma-separated group
                       names), button#idp-submit. No password: whoever types a name is them.
    POST /authorize    the form: checked again, then 302 to redirect_uri?code=...&state=...;
                       the code is random, one-time, valid 60 s.
    POST /token        grant_type=authorization_code; client authentication by HTTP Basic
                       (client_secret_basic, RFC 6749 form-encoding of id and secret) or
                       client_id/client_secret in the body (401 invalid_client otherwise);
                       the code must be known, unexpired and unused (it is spent by the first
                       attempt even when that attempt fails, as real providers do), issued to
                       this client, redirect_uri must equal the authorize one, and
                       BASE64URL(SHA256(code_verifier)) must equal the code_challenge
                       (400 invalid_grant "PKCE verification failed" otherwise). Success:
                       access_token, token_type Bearer, expires_in 300, id_token.
    GET  /control      {"mode", "last_token_error", "tokens_issued"}; last_token_error is the
                       reason of the last refused /token call: "client", "grant_type",
                       "code_missing", "code_unknown", "code_expired", "code_reused",
                       "client_mismatch", "redirect_uri", "pkce" (null when none since start
                       or since the mode was last set).
    POST /control      {"mode": M}: how the next ID tokens are made, until changed; setting it
                       also clears last_token_error.

ID token: iss, aud (the client id, a string), sub "sub-USERNAME", iat, exp (+300 s), nonce
(when the authorize request had one), preferred_username, email USERNAME@example.com, groups
(the form's list: split on commas, stripped, empties dropped); header {"alg": "RS256",
"typ": "JWT", "kid": "rsa-1"}, RSASSA-PKCS1-v1_5 SHA-256.

Modes (all but "ok", "es256" and "no_groups" make a token a careful client must refuse):
    ok             as above
    wrong_iss      iss is the issuer + "/evil"
    wrong_aud      aud is "someone-else"
    expired        iat now-1200, exp now-600
    alg_none       header alg "none", no kid, empty signature ("h.p.")
    unknown_kid    signed by a second RSA key that is not in the JWKS, kid "rsa-unknown"
    bad_nonce      nonce is "not-the-nonce"
    bad_signature  a valid RS256 token with the last signature byte flipped
    hs256          alg HS256, HMAC-SHA256 keyed with the client secret, kid "rsa-1"
                   (the old RS256/HS256 confusion attack)
    es256          a valid token signed by the EC key, kid "ec-1", JOSE r||s signature
    no_groups      a valid token without the groups claim

Where it differs from a real provider: no consent screen, no password or other
authentication (the form takes any name and any groups), no refresh tokens, no userinfo
endpoint, no implicit or hybrid flows, no plain PKCE method, no prompt/max_age/acr handling,
no key rotation, no TLS (a real issuer is https), and errors at /authorize are always an
error page rather than a redirect to the client with ?error=. One client only.
"""
import argparse
import base64
import hashlib
import hmac
import html
import http.server
import json
import re
import secrets
import threading
import time
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

MODES = {"ok", "wrong_iss", "wrong_aud", "expired", "alg_none", "unknown_kid", "bad_nonce",
         "bad_signature", "hs256", "es256", "no_groups"}
CODE_LIFETIME = 60
TOKEN_LIFETIME = 300
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")    # RFC 7636 §4.1

LOCK = threading.Lock()
STATE = {"mode": "ok", "last_token_error": None, "tokens_issued": 0}
CODES = {}    # code -> {client_id, redirect_uri, nonce, code_challenge, username, groups, expires, used}
CONFIG = {}   # issuer, client_id, client_secret, redirect_uris
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
UNKNOWN_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def uint(number, length=None):
    length = length or (number.bit_length() + 7) // 8
    return number.to_bytes(length, "big")


def jwks():
    rsa_numbers = RSA_KEY.public_key().public_numbers()
    ec_numbers = EC_KEY.public_key().public_numbers()
    return {"keys": [
        {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig",
         "n": b64url(uint(rsa_numbers.n)), "e": b64url(uint(rsa_numbers.e))},
        {"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256",
         "x": b64url(uint(ec_numbers.x, 32)), "y": b64url(uint(ec_numbers.y, 32))},
    ]}


def discovery():
    issuer = CONFIG["issuer"]
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile", "email", "groups"],
    }


def encode_part(value):
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def id_token(grant, mode):
    """The ID token for a spent code, made as MODE says."""
    now = int(time.time())
    claims = {"iss": CONFIG["issuer"], "aud": CONFIG["client_id"], "sub": "sub-" + grant["username"],
              "iat": now, "exp": now + TOKEN_LIFETIME}
    if grant["nonce"] is not None:
        claims["nonce"] = grant["nonce"]
    claims["preferred_username"] = grant["username"]
    claims["email"] = grant["username"] + "@example.com"
    claims["groups"] = grant["groups"]
    header = {"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}
    if mode == "wrong_iss":
        claims["iss"] = CONFIG["issuer"] + "/evil"
    elif mode == "wrong_aud":
        claims["aud"] = "someone-else"
    elif mode == "expired":
        claims["iat"], claims["exp"] = now - 1200, now - 600
    elif mode == "bad_nonce":
        claims["nonce"] = "not-the-nonce"
    elif mode == "no_groups":
        del claims["groups"]
    elif mode == "alg_none":
        return encode_part({"alg": "none", "typ": "JWT"}) + "." + encode_part(claims) + "."
    elif mode == "unknown_kid":
        header["kid"] = "rsa-unknown"
    elif mode == "hs256":
        header["alg"] = "HS256"
    elif mode == "es256":
        header = {"alg": "ES256", "typ": "JWT", "kid": "ec-1"}
    signing_input = (encode_part(header) + "." + encode_part(claims)).encode("ascii")
    if mode == "hs256":
        signature = hmac.new(CONFIG["client_secret"].encode(), signing_input, hashlib.sha256).digest()
    elif mode == "es256":
        r, s = decode_dss_signature(EC_KEY.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = uint(r, 32) + uint(s, 32)
    else:
        key = UNKNOWN_RSA_KEY if mode == "unknown_kid" else RSA_KEY
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        if mode == "bad_signature":
            signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
    return signing_input.decode("ascii") + "." + b64url(signature)


def authorize_fault(params):
    """Why an authorize request (GET query or POST form) is refused, or None."""
    if params.get("client_id") != CONFIG["client_id"]:
        return "unknown client_id"
    if params.get("redirect_uri") not in CONFIG["redirect_uris"]:
        return "redirect_uri is not registered for this client"
    if params.get("response_type") != "code":
        return "response_type must be code"
    if "openid" not in params.get("scope", "").split():
        return "scope must contain openid"
    if not params.get("code_challenge"):
        return "code_challenge is required (PKCE)"
    if params.get("code_challenge_method") != "S256":
        return "code_challenge_method must be S256"
    return None


def page(title, body):
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>" + html.escape(title)
            + "</title></head><body>" + body + "</body></html>").encode()


def login_form(params):
    hidden = "".join('<input type="hidden" name="%s" value="%s">' % (html.escape(k, True), html.escape(v, True))
                     for k, v in params.items() if k not in ("username", "groups"))
    return page("Sign in to the stand-in provider",
                '<h1>Stand-in identity provider</h1>'
                '<form id="idp-login" method="post" action="/authorize">' + hidden
                + '<label>User name <input id="username" name="username" autocomplete="off"></label>'
                '<label>Groups <input id="groups" name="groups" autocomplete="off"></label>'
                '<button id="idp-submit" type="submit">Sign in</button></form>')


def error_page(why):
    return page("Sign-in error", '<h1>Sign-in error</h1><p id="error">' + html.escape(why) + "</p>")


def client_credentials(headers, form):
    """(client_id, client_secret) from HTTP Basic, else from the body, else (None, None)."""
    authorization = headers.get("Authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except Exception:
            return None, None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            return None, None
        return unquote_plus(client_id), unquote_plus(secret)
    return form.get("client_id"), form.get("client_secret")


def token_request(headers, form):
    """(status, JSON body) of a /token call; records the reason of a refusal."""
    def refuse(status, reason, error, description):
        with LOCK:
            STATE["last_token_error"] = reason
        return status, {"error": error, "error_description": description}

    client_id, secret = client_credentials(headers, form)
    if client_id != CONFIG["client_id"] or secret is None \
            or not hmac.compare_digest(secret.encode(), CONFIG["client_secret"].encode()):
        return refuse(401, "client", "invalid_client", "client authentication failed")
    if form.get("grant_type") != "authorization_code":
        return refuse(400, "grant_type", "unsupported_grant_type", "only authorization_code")
    code = form.get("code")
    if not code:
        return refuse(400, "code_missing", "invalid_request", "code is required")
    with LOCK:
        grant = CODES.get(code)
        already_used = grant is not None and grant["used"]
        if grant is not None:
            grant["used"] = True    # spent by this attempt, whatever follows
    if grant is None:
        return refuse(400, "code_unknown", "invalid_grant", "unknown authorization code")
    if already_used:
        return refuse(400, "code_reused", "invalid_grant", "authorization code already used")
    if time.time() > grant["expires"]:
        return refuse(400, "code_expired", "invalid_grant", "authorization code expired")
    if grant["client_id"] != client_id:
        return refuse(400, "client_mismatch", "invalid_grant", "code was issued to another client")
    if form.get("redirect_uri") != grant["redirect_uri"]:
        return refuse(400, "redirect_uri", "invalid_grant", "redirect_uri does not match the authorization request")
    verifier = form.get("code_verifier", "")
    if not VERIFIER.match(verifier) or b64url(hashlib.sha256(verifier.encode()).digest()) != grant["code_challenge"]:
        return refuse(400, "pkce", "invalid_grant", "PKCE verification failed")
    with LOCK:
        mode = STATE["mode"]
        STATE["tokens_issued"] += 1
    return 200, {"access_token": secrets.token_urlsafe(32), "token_type": "Bearer",
                 "expires_in": TOKEN_LIFETIME, "id_token": id_token(grant, mode)}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "oidc-standin/1"

    def reply(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def json(self, status, value, extra=()):
        self.reply(status, json.dumps(value).encode(), "application/json", extra)

    def html(self, status, body):
        self.reply(status, body, "text/html; charset=utf-8")

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def form(self):
        # Repeated parameters: the first wins (a real provider would refuse; none are sent twice here).
        params = {}
        for key, value in parse_qsl(self.body().decode("utf-8", "replace"), keep_blank_values=True):
            params.setdefault(key, value)
        return params

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/.well-known/openid-configuration":
            self.json(200, discovery())
        elif url.path == "/jwks":
            self.json(200, jwks())
        elif url.path == "/authorize":
            params = {}
            for key, value in parse_qsl(url.query, keep_blank_values=True):
                params.setdefault(key, value)
            fault = authorize_fault(params)
            self.html(400, error_page(fault)) if fault else self.html(200, login_form(params))
        elif url.path == "/control":
            with LOCK:
                self.json(200, dict(STATE))
        else:
            self.json(404, {"error": "not_found"})

    def do_POST(self):
        path = urlsplit(self.path).path
        if path == "/authorize":
            params = self.form()
            fault = authorize_fault(params)
            username = params.get("username", "").strip()
            if not fault and not username:
                fault = "a user name is required"
            if fault:
                self.html(400, error_page(fault))
                return
            code = secrets.token_urlsafe(24)
            groups = [g.strip() for g in params.get("groups", "").split(",") if g.strip()]
            with LOCK:
                now = time.time()
                for old in [c for c, g in CODES.items() if g["expires"] < now - 600]:
                    del CODES[old]
                CODES[code] = {"client_id": params["client_id"], "redirect_uri": params["redirect_uri"],
                               "nonce": params.get("nonce"), "code_challenge": params["code_challenge"],
                               "username": username, "groups": groups,
                               "expires": now + CODE_LIFETIME, "used": False}
            answer = {"code": code}
            if "state" in params:
                answer["state"] = params["state"]
            redirect = params["redirect_uri"]
            location = redirect + ("&" if "?" in redirect else "?") + urlencode(answer)
            self.reply(302, b"", "text/plain", [("Location", location)])
        elif path == "/token":
            status, value = token_request(self.headers, self.form())
            extra = [("WWW-Authenticate", 'Basic realm="oidc-standin"')] if status == 401 else []
            self.json(status, value, extra)
        elif path == "/control":
            try:
                mode = json.loads(self.body() or b"{}").get("mode")
            except (ValueError, AttributeError):
                mode = None
            if mode not in MODES:
                self.json(400, {"error": "mode must be one of " + ", ".join(sorted(MODES))})
                return
            with LOCK:
                STATE["mode"] = mode
                STATE["last_token_error"] = None
                self.json(200, dict(STATE))
        else:
            self.json(404, {"error": "not_found"})

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True, action="append", dest="redirect_uris")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    CONFIG.update(issuer="http://127.0.0.1:%d" % server.server_address[1], client_id=args.client_id,
                  client_secret=args.client_secret, redirect_uris=set(args.redirect_uris))
    print(json.dumps({"issuer": CONFIG["issuer"]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
