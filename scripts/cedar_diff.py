#!/usr/bin/env python3
"""Generator and reference oracle of the Cedar policy differential test.

Generates random Cedar policy sets over Airlock's schema, random requests and
entity stores for each, and records what the reference engine (PyPI cedarpy
4.12.2, which wraps the Rust crate cedar-policy 4.x) answers. The Swift test
reads the output and checks that Airlock's own Cedar engine parses, validates
and decides every case the same way.

    scripts/cedar_diff.py --seed S --sets N --requests R --out FILE [--stats]

N is the number of policy sets that parse, each with R requests (so N * R pairs:
20,000 by default); the sets that do not parse (about 5 %) come on top of them.

The output is deterministic for a seed (random.Random(seed); cedarpy's messages
are sorted). FILE is ONE JSON document, written one case per line:

    {"schema": {...},   the Cedar JSON-format schema (empty namespace), exactly
                        as given to cedarpy.validate_policies
     "stats":  {...},   counts, see below
     "cases":  [case, ...]}

A case:

    {"policies": "<policy set text>",
     "parses": bool,              cedarpy's parser accepts the whole text
     "validates": bool | null,    cedarpy.validate_policies against the schema
                                  (strict mode); null when it does not parse
     "validation_errors": [str],  cedarpy's messages, sorted, for humans only;
                                  the parse error when it does not parse
     "entities": [entity, ...],   Cedar JSON entity format; [] when it does not parse
     "requests": [request, ...]}  [] when it does not parse

An entity is {"uid": {"type": T, "id": I}, "attrs": {...}, "parents": [uid, ...]}.
The store holds every entity the case's requests name: each Session with its
Host and Human, each Target with its Account (a Target may have no parent, a
Session may lack `address`, a Target may lack some optional attributes), and
the Action entities of the requested actions with their groups as parents
(`{"type": "Action", "id": "aws:s3:PutObject"}` with parent
`{"type": "Action", "id": "mutation"}`), plus both group entities. The
authorizer is NOT given the schema, so the action hierarchy comes from these
entities; an engine that takes it from the schema gets the same graph.

A request:

    {"principal": {"type": "Session", "id": "s1"},
     "action":    {"type": "Action", "id": "aws:s3:PutObject"},
     "resource":  {"type": "Target", "id": "t1"},
     "context":   {...},                 a record matching the Context type
     "decision":  "Allow" | "Deny",
     "reasons":   ["policy0", ...],      sorted: the satisfied permits on Allow,
                                         the satisfied forbids on Deny
     "errors":    ["policy2", ...]}      sorted ids of the policies whose
                                         evaluation errored (they count as not
                                         satisfied)

Values in attrs and context use Cedar's JSON value format: strings, integers
(Long), booleans, arrays (sets; a few contain duplicates), objects (records),
{"__entity": {"type": T, "id": I}}, {"__extn": {"fn": "ip", "arg": "10.1.2.3"}}
and {"__extn": {"fn": "decimal", "arg": "1.25"}}.

Policy ids are the ones cedar-policy gives a parsed text policy set: "policy0",
"policy1", ... in text order. An `@id("x")` annotation does not rename a policy:
cedarpy still reports "policyN" (it only maps ids to `@id` values on the side).

Stats: for each construct name (permit, forbid, scope_eq, ..., see CONSTRUCTS)
the number of policies, in the sets that parse, whose parsed form (cedarpy's
JSON policy format) contains it; "sets" (all cases, with the ones that do not
parse); "policies" (in the sets that parse); "pairs" (requests); "allow";
"deny"; "erroring_policies" (policies that error on at least one request);
"forbid_wins" (requests denied by a satisfied forbid that would be allowed
without the forbids); "unparsable_sets"; "invalid_sets" (sets that parse but do
not validate).

What the reference does, as seen here: a text that does not parse makes
cedarpy.PolicySet.from_str raise ValueError (is_authorized answers NoDecision
with "policy parse errors: ..."); an evaluation error is reported as "error
while evaluating policy `policyN`: ..." and the policy counts as not satisfied;
the validator rejects malformed literals such as ip("300.1.1.1") or
decimal("1.23456") (they only error at run time without a schema); it accepts
`1 == "a"` between two literals (but not between an attribute and a literal);
and it does not type the right of `&&` (of `||`) when the left's type is the
constant false (true), as for `false`, `principal is Host`: the conditions are
joined in text order, so `unless { true }` hides an ill-typed `when` after it,
not one before it.

The generator is type-directed: most policies are well-typed and validate; about
15 % of the sets get a deliberately ill-typed policy (or a condition in one), and
about 5 % get a policy with a token-level mutation that the parser rejects. Some
well-typed policies error at run time (Long overflow on large context values).
What the generator meant is only a means of coverage: the oracle records what
cedarpy answers.
"""

import argparse
import json
import random
import re
import sys
import time

import cedarpy

# ---------------------------------------------------------------------------
# The schema

ACTIONS = {  # action -> its group
    "aws:s3:PutObject": "mutation",
    "aws:s3:DeleteObject": "mutation",
    "aws:s3:GetObject": "sensitive-read",
    "aws:iam:CreateAccessKey": "mutation",
    "aws:cloudformation:DeleteStack": "mutation",
    "aws:ec2:TerminateInstances": "mutation",
    "aws:secretsmanager:GetSecretValue": "sensitive-read",
    "kubernetes:delete": "mutation",
    "kubernetes:create": "mutation",
    "kubernetes:get-secret": "sensitive-read",
    "github:push": "mutation",
    "command:terraform:apply": "mutation",
}
GROUPS = ["mutation", "sensitive-read"]
ACTION_NAMES = list(ACTIONS)

_STRING = {"type": "String"}
_LONG = {"type": "Long"}
_STRINGS = {"type": "Set", "element": {"type": "String"}}
TARGET_OPTIONAL = ["service", "account", "region", "namespace", "repository", "ref"]

SCHEMA = {"": {
    "commonTypes": {
        "Context": {"type": "Record", "attributes": {
            "labels": _STRINGS,
            "risk": _STRING,
            "preview": {"type": "Record", "attributes": {
                "resources": _LONG, "bytes": _LONG, "known": {"type": "Boolean"}}},
            "time": {"type": "Record", "attributes": {
                "epoch": _LONG, "hour": _LONG, "weekday": _LONG}},
            "session": {"type": "Record", "attributes": {
                "proposals": _LONG, "approved": _LONG, "denied": _LONG}},
            "cost": {"type": "Extension", "name": "decimal", "required": False},
        }},
    },
    "entityTypes": {
        "Host": {},
        "Human": {},
        "Account": {},
        "Session": {"memberOfTypes": ["Host"], "shape": {"type": "Record", "attributes": {
            "host": {"type": "Entity", "name": "Host"},
            "user": {"type": "Entity", "name": "Human"},
            "profile": _STRING,
            "labels": _STRINGS,
            "address": {"type": "Extension", "name": "ipaddr", "required": False},
        }}},
        "Target": {"memberOfTypes": ["Account"], "shape": {"type": "Record", "attributes": dict(
            [("kind", _STRING), ("name", _STRING), ("tags", _STRINGS)]
            + [(a, {"type": "String", "required": False}) for a in TARGET_OPTIONAL])}},
    },
    "actions": dict(
        [(g, {}) for g in GROUPS]
        + [(a, {"memberOf": [{"id": g}], "appliesTo": {
            "principalTypes": ["Session"], "resourceTypes": ["Target"],
            "context": {"type": "Context"}}}) for a, g in ACTIONS.items()]),
}}

# ---------------------------------------------------------------------------
# Value pools: small, so that literals in policies often match the requests.

HOSTS = ["laptop", "ci-runner", "bastion"]
HUMANS = ["alice", "bob"]
ACCOUNTS = ["111122223333", "444455556666"]
SESSIONS = ["s1", "s2", "s3"]
TARGETS = ["t1", "t2", "t3", "t4"]

PROFILES = ["default", "admin", "readonly", "ci"]
RISKS = ["low", "medium", "high", "critical"]
RISK_LABELS = ["destructive", "irreversible", "production", "permissions", "public", "data-loss", "cost"]
SESSION_LABELS = ["trusted", "interactive", "ci", "production"]
KINDS = ["aws", "kubernetes", "github", "command"]
SERVICES = ["s3", "iam", "ec2", "cloudformation", "secretsmanager"]
REGIONS = ["us-east-1", "eu-west-1"]
NAMESPACES = ["default", "prod", "kube-system"]
REPOSITORIES = ["airlock/airlock", "acme/infra"]
REFS = ["refs/heads/main", "refs/heads/dev", "refs/tags/v1.0"]
TAGS = ["env=prod", "env=dev", "team=infra", "team=web", "owner=alice", "owner=bob"]
NAMES = {
    "aws": ["arn:aws:s3:::logs/app.log", "arn:aws:s3:::backups/*", "arn:aws:iam::111122223333:user/ci",
            "arn:aws:ec2:us-east-1:111122223333:instance/i-0abc", "arn:aws:cloudformation:eu-west-1:444455556666:stack/prod-db/1"],
    "kubernetes": ["prod/deployments/web", "default/secrets/db-password", "kube-system/pods/coredns"],
    "github": ["airlock/airlock:refs/heads/main", "acme/infra:refs/heads/dev"],
    "command": ["/work/infra", "/work/caf\u00e9/app", "/home/alice/project"],
}
ALL_NAMES = [n for ns in NAMES.values() for n in ns]
ADDRESSES = ["10.1.2.3", "10.200.0.7", "192.168.1.20", "127.0.0.1", "::1", "2001:db8::1", "224.0.0.1", "10.0.0.0/8"]
IP_LITERALS = ["10.1.2.3", "127.0.0.1", "::1", "192.168.1.20", "224.0.0.1", "2001:db8::1"]
IP_RANGES = ["10.0.0.0/8", "192.168.0.0/16", "127.0.0.0/8", "2001:db8::/32", "0.0.0.0/0", "10.1.2.0/24"]
DECIMALS = ["0.0", "1.25", "10.0", "-3.5", "99.9999", "0.0001", "922337203685477.5807", "-922337203685477.5808"]
COSTS = ["0.0", "1.25", "9.99", "10.0", "250.5", "-0.5", "922337203685477.5807"]

# The string literals a path is compared with.
STRING_POOLS = {
    "principal.profile": PROFILES,
    "resource.kind": KINDS,
    "resource.name": ALL_NAMES,
    "context.risk": RISKS,
    "resource.service": SERVICES,
    "resource.account": ACCOUNTS,
    "resource.region": REGIONS,
    "resource.namespace": NAMESPACES,
    "resource.repository": REPOSITORIES,
    "resource.ref": REFS,
}
STRING_PATHS = ["principal.profile", "resource.kind", "resource.name", "context.risk"]
OTHER_STRINGS = ["", "x", "PROD", "a\"quoted\"", "back\\slash", "caf\u00e9"]
SET_POOLS = {"context.labels": RISK_LABELS, "principal.labels": SESSION_LABELS, "resource.tags": TAGS}
LONG_POOLS = {
    "context.preview.resources": [0, 1, 3, 10, 100],
    "context.preview.bytes": [0, 1024, 1048576, 1000000000, 4611686018427387904],
    "context.time.epoch": [1700000000, 1750000000, 1800000000],
    "context.time.hour": [0, 8, 9, 17, 18, 23],
    "context.time.weekday": [0, 1, 5, 6],
    "context.session.proposals": [0, 1, 5, 10],
    "context.session.approved": [0, 1, 3],
    "context.session.denied": [0, 1, 2],
}
LONG_PATHS = list(LONG_POOLS)
# Optional attributes: (object, attribute, type)
OPTIONAL = [("resource", a, "String") for a in TARGET_OPTIONAL] + [
    ("principal", "address", "IP"), ("context", "cost", "Dec")]

I64_MAX = 2**63 - 1

# Construct names counted in the stats (per policy).
CONSTRUCTS = [
    "permit", "forbid", "scope_eq", "scope_in", "scope_is", "action_list", "action_eq", "action_in_group",
    "when", "unless", "hierarchy_in", "record_literal", "set_literal", "attribute_access", "has", "like",
    "like_escaped_star", "comparison", "equality", "and", "or", "not", "if_then_else", "contains",
    "containsAll", "containsAny", "ip", "isInRange", "isIpv4", "isIpv6", "isLoopback", "isMulticast",
    "decimal", "decimal_compare", "annotation", "id_annotation", "arithmetic", "is_in_condition",
]


def cedar_string(s, rng=None):
    """A Cedar string literal for s (non-ASCII sometimes as \\u{..} when rng is given)."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) > 126 and rng is not None and rng.random() < 0.5:
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def entity_literal(type_, id_):
    return "%s::%s" % (type_, cedar_string(id_))


# ---------------------------------------------------------------------------
# Expressions. An expression is (text, precedence, hint); the hint is the pool
# its values come from, so that the other side of a comparison can match.

IF, OR, AND, REL, ADD, MUL, UNARY, PRIMARY = range(8)


def wrap(e, prec):
    return e[0] if e[1] >= prec else "(" + e[0] + ")"


class PolicyGen:
    def __init__(self, rng):
        self.r = rng

    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(seq)

    def choose(self, options):
        """options: [(weight, thunk)]: call one, by weight."""
        total = sum(w for w, _ in options)
        x = self.r.random() * total
        for w, f in options:
            x -= w
            if x < 0:
                return f()
        return options[-1][1]()

    def access(self, obj, attr):
        """obj.attr, sometimes as obj["attr"]."""
        if self.chance(0.08):
            return '%s["%s"]' % (obj, attr)
        return "%s.%s" % (obj, attr)

    def path(self, p):
        obj, _, attr = p.rpartition(".")
        return (self.access(obj, attr), PRIMARY, p)

    # -- Long ---------------------------------------------------------------
    def long_literal(self, hint=None):
        pool = LONG_POOLS.get(hint) or [0, 1, 2, 5, 10, 100]
        v = self.pick(pool) if self.chance(0.8) else self.r.randint(-5, 50)
        if self.chance(0.02):
            v = self.pick([I64_MAX, -I64_MAX - 1])
        return (str(v), PRIMARY if v >= 0 else UNARY, hint)

    def gen_long(self, d, avail):
        if d <= 0 or self.chance(0.5):
            return self.path(self.pick(LONG_PATHS)) if self.chance(0.75) else self.long_literal()
        a = self.gen_long(d - 1, avail)

        def binop(op, prec):
            b = self.gen_long(d - 1, avail) if self.chance(0.5) else self.long_literal(a[2])
            return ("%s %s %s" % (wrap(a, prec), op, wrap(b, prec + 1)), prec, a[2])

        return self.choose([
            (3, lambda: binop("+", ADD)),
            (2, lambda: binop("-", ADD)),
            (2, lambda: binop("*", MUL)),
            (2, lambda: ("-" + wrap(a, UNARY) if not a[0].startswith("-") else "-(" + a[0] + ")", UNARY, a[2])),
            (1, lambda: ("if %s then %s else %s" % (self.gen_bool(d - 1, avail)[0], a[0],
                                                    self.gen_long(d - 1, avail)[0]), IF, a[2])),
            (1, lambda: ("{n: %s, k: %s}.n" % (a[0], self.gen_str(0, avail)[0]), PRIMARY, a[2])),
            (5, self.overflow_long),
        ])

    def overflow_long(self):
        """Well-typed arithmetic that overflows at run time for a large context value."""
        p = self.path(self.pick(["context.preview.bytes", "context.preview.bytes", "context.time.epoch",
                                 "context.preview.resources"]))
        return self.pick([
            lambda: ("%s * %d" % (p[0], self.pick([1024, 1048576, 1000000000, 4611686018427387904])), MUL, None),
            lambda: ("%s + %d" % (p[0], self.pick([9223372036854775000, I64_MAX])), ADD, None),
            lambda: ("%s + %s" % (p[0], p[0]), ADD, None),
            lambda: ("-9223372036854775807 - %s" % p[0], ADD, None),
            lambda: ("%s * %s" % (p[0], p[0]), MUL, None),
        ])()

    # -- String -------------------------------------------------------------
    def string_literal(self, hint=None):
        pool = STRING_POOLS.get(hint)
        if pool is None or self.chance(0.1):
            pool = self.pick([PROFILES, RISKS, KINDS, SERVICES, OTHER_STRINGS, ALL_NAMES])
        return (cedar_string(self.pick(pool), self.r), PRIMARY, hint)

    def gen_str(self, d, avail):
        opts = [(5, lambda: self.path(self.pick(STRING_PATHS))), (2, lambda: self.string_literal())]
        strs = sorted(p for p in avail if p.startswith("resource."))  # sorted: sets iterate in hash order
        if strs:
            opts.append((6, lambda: self.path(self.pick(strs))))
        if d > 0:
            def guarded():
                attr = self.pick(TARGET_OPTIONAL)
                p = "resource." + attr
                other = self.string_literal(p)
                return ("if resource has %s then %s else %s" % (attr, self.access("resource", attr), other[0]), IF, p)

            def cond():
                a = self.gen_str(d - 1, avail)
                return ("if %s then %s else %s" % (self.gen_bool(d - 1, avail)[0], a[0],
                                                   self.string_literal(a[2])[0]), IF, a[2])

            def record():
                a = self.gen_str(d - 1, avail)
                return ('{"s": %s, n: %s}.s' % (a[0], self.gen_long(0, avail)[0]), PRIMARY, a[2])
            opts += [(2, guarded), (1, cond), (1, record)]
        return self.choose(opts)

    # -- Set<String> --------------------------------------------------------
    def set_literal(self, hint=None, n=None):
        pool = SET_POOLS.get(hint) or self.pick(list(SET_POOLS.values()))
        n = n or self.r.randint(1, 3)
        return ("[" + ", ".join(cedar_string(self.pick(pool)) for _ in range(n)) + "]", PRIMARY, hint)

    def gen_set(self, d, avail):
        if self.chance(0.8):
            return self.path(self.pick(list(SET_POOLS)))
        return self.set_literal()

    # -- ipaddr and decimal -------------------------------------------------
    def gen_ip(self, d, avail):
        opts = [(3, lambda: ('ip(%s)' % cedar_string(self.pick(IP_LITERALS + IP_RANGES)), PRIMARY, None))]
        if "principal.address" in avail:
            opts.append((8, lambda: self.path("principal.address")))
        if d > 0:
            opts.append((2, lambda: ('if principal has address then %s else ip("127.0.0.1")'
                                     % self.access("principal", "address"), IF, None)))
        return self.choose(opts)

    def gen_dec(self, d, avail):
        opts = [(3, lambda: ('decimal(%s)' % cedar_string(self.pick(DECIMALS)), PRIMARY, None))]
        if "context.cost" in avail:
            opts.append((8, lambda: self.path("context.cost")))
        if d > 0:
            opts.append((2, lambda: ('if context has cost then %s else decimal("0.0")'
                                     % self.access("context", "cost"), IF, None)))
        return self.choose(opts)

    # -- predicates over a typed expression ---------------------------------
    def pred_long(self, d, avail, e=None):
        a = e or self.gen_long(d, avail)
        b = self.long_literal(a[2]) if self.chance(0.7) else self.gen_long(d - 1, avail)
        op = self.pick(["<", "<=", ">", ">=", "<", ">=", "==", "!="])
        return ("%s %s %s" % (wrap(a, ADD), op, wrap(b, ADD)), REL, None)

    def pred_str(self, d, avail, e=None):
        a = e or self.gen_str(d, avail)
        return self.choose([
            (4, lambda: ("%s %s %s" % (wrap(a, ADD), self.pick(["==", "==", "!="]),
                                       wrap(self.string_literal(a[2]) if self.chance(0.8)
                                            else self.gen_str(d - 1, avail), ADD)), REL, None)),
            (4, lambda: ("%s like %s" % (wrap(a, ADD), self.like_pattern(a[2])), REL, None)),
            (1, lambda: ("[%s].contains(%s)" % (", ".join(self.string_literal(a[2])[0]
                                                          for _ in range(self.r.randint(1, 3))), a[0]),
                         PRIMARY, None)),
        ])

    def like_pattern(self, hint):
        """A like pattern, mostly derived from a value of the hint's pool."""
        pool = STRING_POOLS.get(hint) or ALL_NAMES
        v = self.pick(pool)
        segs = []  # str = literal text, None = wildcard
        k = self.r.random()
        if k < 0.2:
            segs = [v[:self.r.randint(0, len(v))], None]
        elif k < 0.35:
            segs = [None, v[self.r.randint(0, len(v)):]]
        elif k < 0.5 and len(v) > 2:
            i = self.r.randint(1, len(v) - 1)
            j = self.r.randint(i, len(v))
            segs = [None, v[i:j], None]
        elif k < 0.6:
            segs = [v]
        elif k < 0.65:
            segs = [None]
        elif k < 0.72:
            segs = [None, None]  # "**"
        else:  # replace a few characters by wildcards
            chars = list(v)
            for _ in range(self.r.randint(1, 2)):
                if chars:
                    i = self.r.randrange(len(chars))
                    chars[i] = None
            segs = chars
        if self.chance(0.2):  # a literal star, matched only by an escaped \*
            segs = segs + [self.pick(["*", "/*"])]
        out = []
        for s in segs:
            if s is None:
                out.append("*")
            else:
                out.append(s.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*"))
        return '"' + "".join(out) + '"'

    def pred_set(self, d, avail, e=None):
        a = e or self.gen_set(d, avail)
        hint = a[2]
        pool = SET_POOLS.get(hint) or TAGS
        return self.choose([
            (4, lambda: ("%s.contains(%s)" % (wrap(a, PRIMARY), cedar_string(self.pick(pool))
                                              if self.chance(0.8) else self.gen_str(d - 1, avail)[0]), PRIMARY, None)),
            (3, lambda: ("%s.containsAll(%s)" % (wrap(a, PRIMARY), self.set_literal(hint)[0]
                                                 if self.chance(0.8) else self.gen_set(0, avail)[0]), PRIMARY, None)),
            (3, lambda: ("%s.containsAny(%s)" % (wrap(a, PRIMARY), self.set_literal(hint)[0]
                                                 if self.chance(0.8) else self.gen_set(0, avail)[0]), PRIMARY, None)),
            (1, lambda: ("%s %s %s" % (a[0], self.pick(["==", "!="]), self.set_literal(hint)[0]), REL, None)),
        ])

    def pred_ip(self, d, avail, e=None):
        a = e or self.gen_ip(d, avail)
        return self.choose([
            (4, lambda: ("%s.isInRange(ip(%s))" % (wrap(a, PRIMARY), cedar_string(self.pick(IP_RANGES))),
                         PRIMARY, None)),
            (3, lambda: ("%s.%s()" % (wrap(a, PRIMARY), self.pick(["isIpv4", "isIpv6", "isLoopback", "isMulticast"])),
                         PRIMARY, None)),
            (1, lambda: ('%s %s ip(%s)' % (wrap(a, ADD), self.pick(["==", "!="]),
                                          cedar_string(self.pick(ADDRESSES))), REL, None)),
        ])

    def pred_dec(self, d, avail, e=None):
        a = e or self.gen_dec(d, avail)
        b = 'decimal(%s)' % cedar_string(self.pick(DECIMALS + COSTS))
        if self.chance(0.1):
            return ("%s %s %s" % (wrap(a, ADD), self.pick(["==", "!="]), b), REL, None)
        return ("%s.%s(%s)" % (wrap(a, PRIMARY), self.pick(["lessThan", "lessThanOrEqual", "greaterThan",
                                                           "greaterThanOrEqual"]), b), PRIMARY, None)

    def pred_entity(self, d, avail):
        return self.choose([
            (3, lambda: ("%s %s %s" % (self.access("principal", "host"), self.pick(["==", "!="]),
                                       entity_literal("Host", self.pick(HOSTS))), REL, None)),
            (2, lambda: ("%s == %s" % (self.access("principal", "user"), entity_literal("Human", self.pick(HUMANS))),
                         REL, None)),
            (2, lambda: ("principal == %s" % entity_literal("Session", self.pick(SESSIONS)), REL, None)),
            (2, lambda: ("resource %s %s" % (self.pick(["==", "!="]), entity_literal("Target", self.pick(TARGETS))),
                         REL, None)),
            (1, lambda: ("[%s].contains(%s)" % (", ".join(entity_literal("Host", h) for h in
                                                          self.r.sample(HOSTS, self.r.randint(1, 2))),
                                                self.access("principal", "host")), PRIMARY, None)),
        ])

    def pred_in(self, d, avail):
        """`in` inside a condition."""
        return self.choose([
            (4, lambda: ("principal in %s" % entity_literal("Host", self.pick(HOSTS)), REL, None)),
            (4, lambda: ("resource in %s" % entity_literal("Account", self.pick(ACCOUNTS)), REL, None)),
            (1, lambda: ("principal in [%s]" % ", ".join(entity_literal("Host", h) for h in
                                                         self.r.sample(HOSTS, 2)), REL, None)),
            (1, lambda: ("principal in %s" % self.access("principal", "host"), REL, None)),
            (1, lambda: ("%s in %s" % (self.access("principal", "host"), entity_literal("Host", self.pick(HOSTS))),
                         REL, None)),
            (1, lambda: ("resource in %s" % entity_literal("Target", self.pick(TARGETS)), REL, None)),
            (1, lambda: ("principal in %s" % entity_literal("Account", self.pick(ACCOUNTS)), REL, None)),
        ])

    def pred_is(self, d, avail):
        return self.choose([
            (3, lambda: ("principal is Session", REL, None)),
            (2, lambda: ("resource is Target", REL, None)),
            (1, lambda: ("resource is Session", REL, None)),
            (2, lambda: ("principal is Session in %s" % entity_literal("Host", self.pick(HOSTS)), REL, None)),
            (2, lambda: ("resource is Target in %s" % entity_literal("Account", self.pick(ACCOUNTS)), REL, None)),
            (1, lambda: ("%s is Host" % self.access("principal", "host"), REL, None)),
        ])

    def pred_action(self, d, avail):
        return self.choose([
            (2, lambda: ("action == %s" % entity_literal("Action", self.pick(ACTION_NAMES)), REL, None)),
            (2, lambda: ("action in %s" % entity_literal("Action", self.pick(GROUPS)), REL, None)),
            (1, lambda: ("action in [%s]" % ", ".join(entity_literal("Action", a) for a in
                                                      self.r.sample(ACTION_NAMES + GROUPS, 2)), REL, None)),
        ])

    def pred_has(self, d, avail):
        return self.choose([
            (4, lambda: ("resource has %s" % self.pick(TARGET_OPTIONAL), REL, None)),
            (2, lambda: ("principal has address", REL, None)),
            (2, lambda: ("context has cost", REL, None)),
            (1, lambda: ("principal has profile", REL, None)),
            (1, lambda: ('resource has "kind"', REL, None)),
            (1, lambda: ("context.preview has known", REL, None)),
        ])

    def pred_record(self, d, avail):
        def access_literal():
            fields = [("risk", self.gen_str(0, avail), self.pred_str),
                      ("n", self.gen_long(0, avail), self.pred_long),
                      ("tags", self.gen_set(0, avail), self.pred_set),
                      ('"the key"', self.gen_long(0, avail), self.pred_long)]
            self.r.shuffle(fields)
            fields = fields[:self.r.randint(1, 3)]
            key, e, pred = self.pick(fields)
            rec = "{" + ", ".join("%s: %s" % (k, v[0]) for k, v, _ in fields) + "}"
            acc = ("%s[%s]" % (rec, key)) if key.startswith('"') else ("%s.%s" % (rec, key))
            return pred(d - 1, avail, (acc, PRIMARY, e[2]))

        def equal_literal():
            which = self.pick(["preview", "time", "session"])
            if which == "preview":
                body = "resources: %s, bytes: %s, known: %s" % (
                    self.pick([0, 1, 3]), self.pick([0, 1024]), self.pick(["true", "false"]))
            elif which == "time":
                body = "epoch: %s, hour: %s, weekday: %s" % (1700000000, self.pick([9, 17]), self.pick([1, 5]))
            else:
                body = "proposals: %s, approved: %s, denied: %s" % (self.pick([0, 1]), self.pick([0, 1]), 0)
            return ("%s %s {%s}" % (self.access("context", which), self.pick(["==", "!="]), body), REL, None)

        return self.choose([
            (4, access_literal),
            (2, equal_literal),
            (1, lambda: ("{a: 1, b: %s} has %s" % (self.gen_str(0, avail)[0], self.pick(["a", "b", "c"])), REL, None)),
        ])

    def guarded(self, d, avail):
        """`X has a && P(X.a)` or `if X has a then P(X.a) else Q`."""
        obj, attr, typ = self.pick(OPTIONAL)
        p = obj + "." + attr
        inner = avail | {p}
        e = self.path(p)
        pred = {"String": self.pred_str, "IP": self.pred_ip, "Dec": self.pred_dec}[typ](d - 1, inner, e)
        if self.chance(0.25):
            op = self.pick(["&&", "||"])
            pred = ("%s %s %s" % (wrap(pred, AND if op == "&&" else OR), op,
                                  wrap(self.gen_bool(d - 1, inner), REL if op == "&&" else AND)),
                    AND if op == "&&" else OR, None)
        test = "%s has %s" % (obj, attr)
        if self.chance(0.7):
            return ("%s && %s" % (test, wrap(pred, REL)), AND, None)
        return ("if %s then %s else %s" % (test, pred[0], self.gen_bool(d - 1, avail)[0]), IF, None)

    # -- Bool -----------------------------------------------------------------
    def leaf_bool(self, d, avail):
        return self.choose([
            (8, lambda: self.pred_long(max(d, 1), avail)),
            (6, lambda: self.pred_str(d, avail)),
            (5, lambda: self.pred_set(d, avail)),
            (3, lambda: self.pred_ip(d, avail)),
            (3, lambda: self.pred_dec(d, avail)),
            (4, lambda: self.pred_entity(d, avail)),
            (4, lambda: self.pred_in(d, avail)),
            (3, lambda: self.pred_is(d, avail)),
            (3, lambda: self.pred_action(d, avail)),
            (3, lambda: self.pred_has(d, avail)),
            (3, lambda: self.pred_record(d, avail)),
            (6, lambda: self.guarded(d, avail)),
            (1, lambda: (self.access("context.preview", "known"), PRIMARY, None)),
            (1, lambda: ("context.preview.known == %s" % self.pick(["true", "false"]), REL, None)),
            (1, lambda: (self.pick(["true", "false"]), PRIMARY, None)),
        ])

    def gen_bool(self, d, avail=frozenset()):
        if d <= 0 or self.chance(0.35):
            return self.leaf_bool(d, avail)
        return self.choose([
            (5, lambda: ("%s && %s" % (wrap(self.gen_bool(d - 1, avail), AND), wrap(self.gen_bool(d - 1, avail), REL)),
                         AND, None)),
            (4, lambda: ("%s || %s" % (wrap(self.gen_bool(d - 1, avail), OR), wrap(self.gen_bool(d - 1, avail), AND)),
                         OR, None)),
            (2, lambda: ("!" + wrap(self.gen_bool(d - 1, avail), PRIMARY), UNARY, None)),
            (1, lambda: ("if %s then %s else %s" % (self.gen_bool(d - 1, avail)[0], self.gen_bool(d - 1, avail)[0],
                                                    self.gen_bool(d - 1, avail)[0]), IF, None)),
            (1, lambda: ("%s == %s" % (wrap(self.leaf_bool(0, avail), ADD), self.pick(["true", "false"])), REL, None)),
        ])

    # -- ill-typed conditions -------------------------------------------------
    def ill_typed(self):
        """A condition the validator should reject (its outcome at run time varies)."""
        lit = lambda: self.string_literal()[0]
        return self.pick([
            # unknown attribute
            lambda: self.pick(['principal.clearance == "top"', 'resource.owner == "alice"',
                               "context.preview.size > 1", 'context.urgency like "*"', "principal.host.name == \"x\""]),
            # unknown entity type in a literal
            lambda: self.pick(['principal in Group::"admins"', 'resource == Bucket::"logs"', "principal is User",
                               'principal.host == Machine::"laptop"']),
            # unknown action
            lambda: 'action == Action::"aws:s3:ListBucket"',
            # like on a Long
            lambda: "%s like \"1*\"" % self.pick(LONG_PATHS),
            # arithmetic on a String (or Bool)
            lambda: self.pick(["principal.profile + 1 > 0", "-context.risk < 0", "resource.kind * 2 == 4",
                               "context.preview.known + 1 > 1"]),
            # optional attribute without a `has` guard
            lambda: self.pick(['resource.%s == %s' % (a, cedar_string(self.pick(STRING_POOLS["resource." + a])))
                               for a in TARGET_OPTIONAL] + [
                "principal.address.isLoopback()", 'principal.address.isInRange(ip("10.0.0.0/8"))',
                'context.cost.lessThan(decimal("10.0"))', 'resource.region like "us-*"']),
            # == between a Long and a String
            lambda: self.pick(['context.time.hour == "9"', "principal.profile != 3", 'context.preview.resources == "0"']),
            # wrong arity of an extension function or method
            lambda: self.pick(['ip("10.0.0.1", "x").isIpv4()', "ip().isIpv4()",
                               'decimal("1.0", "2.0").lessThan(decimal("3.0"))',
                               'ip("10.1.2.3").isInRange(ip("10.0.0.0/8"), ip("::1"))',
                               'decimal("1.0").lessThan()']),
            # a set of mixed element types
            lambda: self.pick(['[1, "a"].contains(1)', 'context.labels.containsAny(["cost", 1])',
                               '[principal.host, "laptop"].contains("laptop")', '[true, 1] == [1, true]']),
            # malformed extension literals
            lambda: self.pick(['ip("300.1.1.1").isIpv4()', 'ip("10.0.0.0/33").isIpv4()', 'ip("010.0.0.1").isIpv4()',
                               'decimal("1.23456").lessThan(decimal("2.0"))', 'decimal("1") == decimal("1.0")',
                               'decimal("abc").greaterThan(decimal("0.0"))']),
            # an empty set literal, branches of different types, a non-Bool condition
            lambda: self.pick(["context.labels.containsAll([])", '(if context.preview.known then 1 else "x") == 1',
                               "context.preview.resources", "context.preview.bytes has x",
                               "context.preview == {resources: 1}", "principal == %s" % lit()]),
        ])()

    def ill_scope(self):
        """(slot, scope text) that names nothing the schema allows."""
        return self.pick([
            ("principal", 'principal == Target::"t1"'),
            ("principal", 'principal in Account::"111122223333"'),
            ("resource", 'resource in Host::"laptop"'),
            ("resource", "resource is Session"),
            ("action", 'action == Action::"mutation"'),
            ("action", 'action == Action::"aws:s3:ListBucket"'),
            ("action", 'action in [Action::"aws:s3:PutObject", Action::"aws:s3:ListBucket"]'),
        ])

    # -- policies ---------------------------------------------------------------
    def scope(self, broad=False):
        """The scope; a broad one constrains little (an allowlist's catch-all rules)."""
        r = self.r.random() * (0.55 if broad else 1.0)
        if r < 0.45:
            principal = "principal"
        elif r < 0.63:
            principal = "principal == " + entity_literal("Session", self.pick(SESSIONS))
        elif r < 0.75:
            principal = "principal in " + entity_literal("Host", self.pick(HOSTS))
        elif r < 0.78:
            principal = "principal in " + entity_literal("Session", self.pick(SESSIONS))
        elif r < 0.89:
            principal = "principal is Session"
        else:
            principal = "principal is Session in " + entity_literal("Host", self.pick(HOSTS))
        r = self.r.random() * (0.45 if broad else 1.0)
        if r < 0.35:
            action = "action"
        elif r < 0.53:
            action = "action == " + entity_literal("Action", self.pick(ACTION_NAMES))
        elif r < 0.73:
            names = self.r.sample(ACTION_NAMES + GROUPS, self.r.randint(2, 5))
            action = "action in [" + ", ".join(entity_literal("Action", a) for a in names) + "]"
        else:
            action = "action in " + entity_literal("Action", "mutation" if self.chance(0.7) else "sensitive-read")
        r = self.r.random() * (0.55 if broad else 1.0)
        if r < 0.45:
            resource = "resource"
        elif r < 0.63:
            resource = "resource == " + entity_literal("Target", self.pick(TARGETS))
        elif r < 0.75:
            resource = "resource in " + entity_literal("Account", self.pick(ACCOUNTS))
        elif r < 0.78:
            resource = "resource in " + entity_literal("Target", self.pick(TARGETS))
        elif r < 0.89:
            resource = "resource is Target"
        else:
            resource = "resource is Target in " + entity_literal("Account", self.pick(ACCOUNTS))
        return {"principal": principal, "action": action, "resource": resource}

    def annotations(self):
        if not self.chance(0.35):
            return ""
        choices = [
            lambda: '@approvals("%d")' % self.r.randint(1, 3),
            lambda: "@airlock_allow",
            lambda: '@expires("%s")' % self.pick(["1h", "30m", "7d"]),
            lambda: '@id("rule-%d")' % self.r.randint(1, 9),
            lambda: '@reason("needs a \\"second\\" look")',
            lambda: '@advice("")',
        ]
        picked = self.r.sample(choices, self.r.randint(1, 2))
        return " ".join(f() for f in picked) + self.pick([" ", "\n"])

    def policy(self, effect, ill=False):
        """Policy text. ill: put one ill-typed condition or scope in it."""
        scope = self.scope(broad=effect == "permit" and self.chance(0.45))
        clauses = []
        n = self.pick([0, 0, 0, 1, 1, 1, 2, 3]) if effect == "permit" else self.pick([1, 1, 1, 2])
        for _ in range(n):
            kind = "when" if self.chance(0.7 if effect == "permit" else 0.55) else "unless"
            clauses.append([kind, self.gen_bool(self.r.randint(0, 3))[0]])
        if self.chance(0.08):  # well-typed, but overflows on a large context value
            e = self.pred_long(1, frozenset(), self.overflow_long())
            clauses.insert(self.r.randint(0, len(clauses)), [self.pick(["when", "unless"]), e[0]])
        if ill:
            if self.chance(0.2):
                slot, text = self.ill_scope()
                scope[slot] = text
            else:
                bad = self.ill_typed()
                if clauses and self.chance(0.6):
                    c = self.pick(clauses)
                    ops = self.pick(["&&", "||"])
                    c[1] = ("(%s) %s %s" % (c[1], ops, bad)) if self.chance(0.5) else ("%s %s (%s)" % (bad, ops, c[1]))
                else:
                    clauses.append([self.pick(["when", "unless"]), bad])
        sep = self.pick([", ", ",", ",\n  "])
        text = self.annotations() + "%s (%s%s%s%s%s)" % (effect, scope["principal"], sep, scope["action"], sep,
                                                            scope["resource"])
        for kind, body in clauses:
            text += " %s { %s }" % (kind, body)
        return text + ";"

    # -- unparsable mutations -------------------------------------------------
    def mutate(self, text):
        """A token-level mutation of a valid policy text that the parser should reject."""
        # Split into string literals and the code between them, so that only code is touched.
        parts = re.split(r'("(?:[^"\\]|\\.)*")', text)
        code = [i for i in range(0, len(parts), 2)]

        def in_code(pattern, repl):
            hits = [(i, m) for i in code for m in re.finditer(pattern, parts[i])]
            if not hits:
                return None
            i, m = self.pick(hits)
            p = parts[:]
            s = p[i]
            p[i] = s[:m.start()] + (repl(m) if callable(repl) else repl) + s[m.end():]
            return "".join(p)

        head_end = re.search(r"\b(permit|forbid) \(", text).end() - 1  # the scope's "("
        mutations = [
            lambda: in_code(r"\)", ""),                                        # a dropped )
            lambda: text[:-1],                                                  # a dropped ;
            lambda: in_code(r"&&|\|\||==|!=|<=|>=|<|>|\+|\*", lambda m: m.group(0) + " " + m.group(0)),
            lambda: in_code(r"\.(profile|kind|name|risk|labels|tags|host|preview|time|session)\b",
                            lambda m: "." + self.pick(["if", "then", "else", "in", "like", "has", "is", "true"])),
            lambda: text[:-1] + " when { 1 < context.preview.resources < 3 };",   # a < b < c
            lambda: text[:-1] + " when { context.preview.bytes < 9223372036854775808 };",
            lambda: text[:-1] + ' unless { resource.name == "unterminated };',   # unterminated string
            lambda: text[:head_end] + text[head_end:].replace("principal", "principal in", 1)
            if "(principal," in text.replace(" ", "").replace("\n", "") else None,
            lambda: text[:-1] + ' when { context.risk == "\\*" };',            # \* outside a like pattern
            lambda: '@airlock_allow @airlock_allow ' + text,                      # a duplicate annotation
            lambda: in_code(r'Action::', "Action:"),                            # a broken path
            lambda: text[:-1] + " when { if context.preview.known then true };",  # if without else
            lambda: text[:-1] + " when { };",                                    # an empty condition
            lambda: text.replace("(", "(principal, ", 1),                        # four scope elements
        ]
        while True:
            out = self.pick(mutations)()
            if out is not None and out != text:
                return out


# ---------------------------------------------------------------------------
# Requests and entity stores

def uid(t, i):
    return {"type": t, "id": i}


def ext(fn, arg):
    return {"__extn": {"fn": fn, "arg": arg}}


class World:
    """The entities of one case: each created on first use, with random attributes."""

    def __init__(self, rng):
        self.r = rng
        self.entities = {}  # (type, id) -> entity
        self.order = []

    def add(self, type_, id_, attrs, parents):
        key = (type_, id_)
        if key not in self.entities:
            self.entities[key] = {"uid": uid(type_, id_), "attrs": attrs, "parents": parents}
            self.order.append(key)

    def session(self, sid):
        if ("Session", sid) in self.entities:
            return
        r = self.r
        host = r.choice(HOSTS)
        user = r.choice(HUMANS)
        labels = r.sample(SESSION_LABELS, r.randint(0, 3))
        attrs = {"host": {"__entity": uid("Host", host)}, "user": {"__entity": uid("Human", user)},
                 "profile": r.choice(PROFILES), "labels": labels}
        if r.random() < 0.7:
            attrs["address"] = ext("ip", r.choice(ADDRESSES))
        parents = [uid("Host", host)] if r.random() < 0.9 else []
        self.add("Session", sid, attrs, parents)
        self.add("Host", host, {}, [])
        self.add("Human", user, {}, [])

    def target(self, tid):
        if ("Target", tid) in self.entities:
            return
        r = self.r
        kind = r.choice(KINDS)
        account = r.choice(ACCOUNTS)
        tags = r.sample(TAGS, r.randint(0, 3))
        if tags and r.random() < 0.05:
            tags.append(tags[0])  # a duplicate in a set
        attrs = {"kind": kind, "name": r.choice(NAMES[kind]), "tags": tags}
        natural = {"aws": ["service", "account", "region"], "kubernetes": ["namespace"],
                   "github": ["repository", "ref"], "command": []}[kind]
        for a in TARGET_OPTIONAL:
            if r.random() < (0.8 if a in natural else 0.1):
                attrs[a] = r.choice(STRING_POOLS["resource." + a])
        parents = [uid("Account", account)] if r.random() < 0.85 else []
        self.add("Target", tid, attrs, parents)
        if parents:
            self.add("Account", account, {}, [])

    def action(self, name):
        self.add("Action", name, {}, [uid("Action", ACTIONS[name])])

    def context(self):
        r = self.r
        ctx = {
            "labels": r.sample(RISK_LABELS, r.randint(0, 3)),
            "risk": r.choice(RISKS),
            "preview": {"resources": r.choice([0, 1, 2, 3, 10, 100]),
                        "bytes": r.choice([0, 1024, 1048576, 1000000000]) if r.random() < 0.7 else
                        r.choice([2**40, 2**52, 2**61, 2**62 + 12345, I64_MAX]),
                        "known": r.random() < 0.7},
            "time": {"epoch": r.choice([1700000000, 1750000000, 1800000000]) if r.random() < 0.9 else
                     r.choice([0, I64_MAX // 2, I64_MAX]),
                     "hour": r.randint(0, 23), "weekday": r.randint(0, 6)},
            "session": {"proposals": r.randint(0, 10), "approved": r.randint(0, 3), "denied": r.randint(0, 2)},
        }
        if r.random() < 0.75:
            ctx["cost"] = ext("decimal", r.choice(COSTS))
        return ctx

    def request(self):
        r = self.r
        sid, tid, act = r.choice(SESSIONS), r.choice(TARGETS), r.choice(ACTION_NAMES)
        self.session(sid)
        if r.random() < 0.08:
            # A resource the store does not hold: its attributes are errors, `has` is false,
            # `in` is equality only (the reference's semantics for a missing entity).
            tid = "t-absent-%d" % r.randint(0, 2)
        else:
            self.target(tid)
        self.action(act)
        return {"principal": uid("Session", sid), "action": uid("Action", act), "resource": uid("Target", tid),
                "context": self.context()}

    def store(self):
        for g in GROUPS:
            self.add("Action", g, {}, [])
        return [self.entities[k] for k in self.order]


# ---------------------------------------------------------------------------
# The oracle

ERROR_POLICY = re.compile(r"^error while evaluating policy `([^`]+)`")


def error_ids(messages):
    ids = set()
    for m in messages:
        match = ERROR_POLICY.match(m)
        if not match:
            raise SystemExit("cedar_diff: an authorization error not tied to a policy: %r" % m)
        ids.add(match.group(1))
    return sorted(ids)


def constructs(est):
    """The construct names in one policy of cedarpy's JSON policy format."""
    found = {est["effect"]}
    for slot in ("principal", "resource"):
        op = est[slot]["op"]
        if op == "==":
            found.add("scope_eq")
        elif op == "in":
            found.add("scope_in")
        elif op == "is":
            found.add("scope_is")
    action = est["action"]
    if action["op"] == "==":
        found.add("action_eq")
    elif action["op"] == "in":
        if "entities" in action:
            found.add("action_list")
        elif action["entity"]["id"] in GROUPS:
            found.add("action_in_group")
    if est.get("annotations"):
        found.add("annotation")
        if "id" in est["annotations"]:
            found.add("id_annotation")
    names = {"&&": "and", "||": "or", "!": "not", "if-then-else": "if_then_else", "==": "equality",
             "!=": "equality", "<": "comparison", "<=": "comparison", ">": "comparison", ">=": "comparison",
             "+": "arithmetic", "-": "arithmetic", "*": "arithmetic", "neg": "arithmetic", "like": "like",
             "has": "has", ".": "attribute_access", "in": "hierarchy_in", "is": "is_in_condition",
             "Record": "record_literal", "Set": "set_literal", "contains": "contains",
             "containsAll": "containsAll", "containsAny": "containsAny", "ip": "ip", "isInRange": "isInRange",
             "isIpv4": "isIpv4", "isIpv6": "isIpv6", "isLoopback": "isLoopback", "isMulticast": "isMulticast",
             "decimal": "decimal", "lessThan": "decimal_compare", "lessThanOrEqual": "decimal_compare",
             "greaterThan": "decimal_compare", "greaterThanOrEqual": "decimal_compare"}

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "Value":
                    continue  # a constant: its keys are data
                if k == "Record":
                    found.add("record_literal")
                    for field in v.values():
                        walk(field)
                    continue
                if k == "like":
                    found.add("like")
                    if any(isinstance(s, dict) and "*" in s.get("Literal", "") for s in v["pattern"]):
                        found.add("like_escaped_star")
                    walk(v["left"])
                    continue
                if k == "in" and isinstance(v, dict) and v.get("left") == {"Var": "action"}:
                    right = v["right"].get("Value")
                    if isinstance(right, dict) and right.get("__entity", {}).get("id") in GROUPS:
                        found.add("action_in_group")
                if k in names:
                    found.add(names[k])
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for cond in est["conditions"]:
        found.add(cond["kind"])
        walk(cond["body"])
    return found


def run(seed, sets, requests_per_set):
    rng = random.Random(seed)
    gen = PolicyGen(rng)
    schema_handle = cedarpy.Schema.from_json_str(json.dumps(SCHEMA))
    stats = {name: 0 for name in CONSTRUCTS}
    stats.update({"sets": 0, "policies": 0, "pairs": 0, "allow": 0, "deny": 0, "erroring_policies": 0,
                  "forbid_wins": 0, "unparsable_sets": 0, "invalid_sets": 0})
    cases = []
    while stats["sets"] - stats["unparsable_sets"] < sets:  # the sets that do not parse come on top
        stats["sets"] += 1
        n = rng.randint(1, 6)
        effects = ["permit" if rng.random() < 0.65 else "forbid" for _ in range(n)]
        kind = rng.random()
        ill = rng.randrange(n) if 0.05 <= kind < 0.20 else -1  # about 15 %: one ill-typed policy
        texts = [gen.policy(e, ill=(i == ill)) for i, e in enumerate(effects)]
        if kind < 0.05:  # about 5 %: one policy the parser rejects
            i = rng.randrange(n)
            texts[i] = gen.mutate(texts[i])
        text = "\n".join(texts) + "\n"
        world = World(rng)
        reqs = [world.request() for _ in range(requests_per_set)]
        entities = world.store()

        case = {"policies": text}
        try:
            policy_set = cedarpy.PolicySet.from_str(text)
        except ValueError as e:
            stats["unparsable_sets"] += 1
            case.update({"parses": False, "validates": None, "validation_errors": [str(e)],
                         "entities": [], "requests": []})
            cases.append(case)
            continue
        est = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
        ids = ["policy%d" % i for i in range(n)]
        if sorted(est) != sorted(ids) or [est[i]["effect"] for i in ids] != effects:
            raise SystemExit("cedar_diff: unexpected policy ids %s for %r" % (sorted(est), text))
        for i in ids:
            for name in constructs(est[i]):
                stats[name] += 1
        stats["policies"] += n

        validation = cedarpy.validate_policies(text, schema_handle)
        if not validation.validation_passed:
            stats["invalid_sets"] += 1
        case.update({"parses": True, "validates": validation.validation_passed,
                     "validation_errors": sorted(str(e) for e in validation.errors), "entities": entities})

        results = cedarpy.is_authorized_batch(reqs, policy_set, entities)
        erroring = set()
        forbid_denied = []
        for req, res in zip(reqs, results):
            decision = res.decision.value
            if decision not in ("Allow", "Deny"):
                raise SystemExit("cedar_diff: no decision: %r for %r" % (res._authz_resp, text))
            req["decision"] = decision
            req["reasons"] = sorted(res.diagnostics.reasons)
            req["errors"] = error_ids(res.diagnostics.errors)
            erroring.update(req["errors"])
            stats["pairs"] += 1
            stats["allow" if decision == "Allow" else "deny"] += 1
            if decision == "Deny" and req["reasons"]:
                forbid_denied.append(req)
        stats["erroring_policies"] += len(erroring)
        if forbid_denied and "permit" in effects:
            permits = cedarpy.PolicySet.from_str("\n".join(t for t, e in zip(texts, effects) if e == "permit"))
            without = cedarpy.is_authorized_batch([{k: r[k] for k in ("principal", "action", "resource", "context")}
                                                   for r in forbid_denied], permits, entities)
            stats["forbid_wins"] += sum(1 for res in without if res.decision.value == "Allow")
        case["requests"] = reqs
        cases.append(case)
    return stats, cases


def write(path, stats, cases):
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"schema": %s,\n "stats": %s,\n "cases": [\n' % (json.dumps(SCHEMA), json.dumps(stats)))
        for i, case in enumerate(cases):
            f.write(json.dumps(case, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(cases) else "\n")
        f.write("]}\n")


def print_stats(stats, seconds):
    pairs = max(stats["pairs"], 1)
    policies = max(stats["policies"], 1)
    sets = max(stats["sets"], 1)
    rows = [(name, stats[name], "%5.1f %% of policies" % (100.0 * stats[name] / policies)) for name in CONSTRUCTS]
    rows += [
        ("sets", stats["sets"], "cases, with the ones that do not parse"),
        ("policies", stats["policies"], "in the sets that parse"),
        ("pairs", stats["pairs"], "requests"),
        ("allow", stats["allow"], "%5.1f %% of pairs" % (100.0 * stats["allow"] / pairs)),
        ("deny", stats["deny"], "%5.1f %% of pairs" % (100.0 * stats["deny"] / pairs)),
        ("forbid_wins", stats["forbid_wins"], "%5.1f %% of pairs" % (100.0 * stats["forbid_wins"] / pairs)),
        ("erroring_policies", stats["erroring_policies"],
         "%5.1f %% of policies" % (100.0 * stats["erroring_policies"] / policies)),
        ("unparsable_sets", stats["unparsable_sets"], "%5.1f %% of sets" % (100.0 * stats["unparsable_sets"] / sets)),
        ("invalid_sets", stats["invalid_sets"], "%5.1f %% of sets" % (100.0 * stats["invalid_sets"] / sets)),
    ]
    width = max(len(r[0]) for r in rows)
    for name, count, note in rows:
        print("%-*s %7d  %s" % (width, name, count, note), file=sys.stderr)
    print("%-*s %7.1f s" % (width, "time", seconds), file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sets", type=int, default=4000, help="policy sets that parse (the others come on top)")
    parser.add_argument("--requests", type=int, default=5, help="requests per policy set")
    parser.add_argument("--out", required=True, help="the JSON document to write")
    parser.add_argument("--stats", action="store_true", help="print the stats as a table to stderr")
    args = parser.parse_args()
    start = time.monotonic()
    stats, cases = run(args.seed, args.sets, args.requests)
    write(args.out, stats, cases)
    if args.stats:
        print_stats(stats, time.monotonic() - start)


if __name__ == "__main__":
    main()
