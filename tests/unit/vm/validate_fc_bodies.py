#!/usr/bin/python3
"""Validates request bodies recorded by the vm tests against Firecracker's
OpenAPI (swagger 2.0) spec.

    validate_fc_bodies.py SPEC.yaml REQUESTS.log

REQUESTS.log holds records "METHOD PATH LEN\\nBODY\\n" (other lines, such as
"NETNS ..." from the fake VMM, are skipped). For each record:
  * METHOD PATH must be an operation of the spec (path templates matched);
  * a body parameter's schema must validate the JSON body, with the spec's
    definitions, and with additionalProperties false added to every object
    schema, because Firecracker rejects unknown fields;
  * a path id ({drive_id}, {iface_id}) must equal the body's id field, and
    obey Firecracker's id rule (alphanumeric and '_').
Exits 0 when every body is valid, 1 otherwise (one line per problem), 2 on
usage errors. Prints a summary of what it checked.
"""
import copy
import json
import re
import sys

import jsonschema
import yaml


def strict(schema):
    """Deep copy of |schema| with additionalProperties: false on objects."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(s)
    return s


def load_records(path):
    data = open(path, "rb").read()
    i, out = 0, []
    line_re = re.compile(rb"^(GET|PUT|PATCH|POST|DELETE) (\S+) (\d+)$")
    while i < len(data):
        j = data.find(b"\n", i)
        if j < 0:
            break
        m = line_re.match(data[i:j])
        if not m:
            i = j + 1
            continue
        n = int(m.group(3))
        body = data[j + 1:j + 1 + n]
        out.append((m.group(1).decode(), m.group(2).decode(), body))
        i = j + 1 + n + 1
    return out


def match_path(paths, path):
    for tmpl, ops in paths.items():
        names = re.findall(r"{(\w+)}", tmpl)
        rx = "^" + re.sub(r"{\w+}", r"([^/]+)", tmpl) + "$"
        m = re.match(rx, path)
        if m:
            return tmpl, ops, dict(zip(names, m.groups()))
    return None, None, None


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    spec = yaml.safe_load(open(sys.argv[1]))
    definitions = strict(spec["definitions"])
    records = load_records(sys.argv[2])
    problems, checked = [], 0
    if not records:
        problems.append("no requests recorded")
    for method, path, body in records:
        where = f"{method} {path}"
        tmpl, ops, params = match_path(spec["paths"], path)
        if not ops or method.lower() not in ops:
            problems.append(f"{where}: not an operation of the spec")
            continue
        op = ops[method.lower()]
        body_params = [p for p in op.get("parameters", []) if p.get("in") == "body"]
        if not body_params:
            if body:
                problems.append(f"{where}: the spec takes no body, got {len(body)} bytes")
            continue
        bp = body_params[0]
        if not body:
            if bp.get("required"):
                problems.append(f"{where}: body required")
            continue
        try:
            doc = json.loads(body)
        except ValueError as e:
            problems.append(f"{where}: not JSON: {e}")
            continue
        schema = strict(bp["schema"])
        schema = dict(schema, definitions=definitions)
        validator = jsonschema.Draft4Validator(schema)
        errs = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        for e in errs:
            loc = "/".join(str(x) for x in e.path) or "(body)"
            problems.append(f"{where}: {loc}: {e.message}")
        for name, value in params.items():
            if not re.match(r"^[A-Za-z0-9_]+$", value):
                problems.append(f"{where}: path id {value!r} is not alphanumeric/underscore")
            if name in doc and doc[name] != value:
                problems.append(f"{where}: body {name}={doc[name]!r} differs from path")
        checked += 1
    for p in problems:
        print("INVALID:", p)
    ops = sorted({f"{m} {p}" for m, p, _ in records})
    print(f"checked {checked} bodies of {len(records)} requests: {', '.join(ops)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
