"""Checks Kubernetes manifests against the API's own type definitions, as far as a machine without
a cluster allows: the models of Debian's python3-kubernetes (generated from the Kubernetes OpenAPI
document, client 22.6 = Kubernetes 1.22). Every field must be one the model declares, every value
of the declared type (str, int, bool, list, map or a nested model; IntOrString is "object", taken
as is), and every field the model requires present (its constructor refuses None for those).
Kinds without a model (custom resources) are listed as skipped, not checked.

Reads a JSON array of manifests from the file named by its argument; prints {"checked": [...], "skipped": [...],
"problems": [...]} as JSON.
"""

import json
import re
import sys

import kubernetes.client as client

KUBERNETES_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io"}
MAP = re.compile(r"^dict\(([^,]+), (.+)\)$")


def check(value, type_name, path, problems):
    if type_name.startswith("list["):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            check(item, type_name[5:-1], f"{path}[{index}]", problems)
        return
    mapping = MAP.match(type_name)
    if mapping:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            check(item, mapping.group(2), f"{path}.{key}", problems)
        return
    scalar = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float), "datetime": (str,)}
    if type_name in scalar:
        wrong_bool = type_name in ("int", "float") and isinstance(value, bool)
        if wrong_bool or not isinstance(value, scalar[type_name]):
            problems.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    if type_name == "object":
        return
    model = getattr(client, type_name, None)
    if model is None:
        problems.append(f"{path}: no model {type_name}")
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected {type_name}, got {type(value).__name__}")
        return
    by_json_name = {json_name: attr for attr, json_name in model.attribute_map.items()}
    arguments = {}
    for key, item in value.items():
        attr = by_json_name.get(key)
        if attr is None:
            problems.append(f"{path}.{key}: not a field of {type_name}")
            continue
        check(item, model.openapi_types[attr], f"{path}.{key}", problems)
        arguments[attr] = item
    try:
        model(**arguments)
    except ValueError as error:
        problems.append(f"{path}: {error}")


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        manifests = json.load(file)
    checked, skipped, problems = [], [], []
    for manifest in manifests:
        api_version = str(manifest.get("apiVersion", ""))
        kind = str(manifest.get("kind", ""))
        name = f"{kind}/{manifest.get('metadata', {}).get('name', '?')}"
        group, _, version = api_version.rpartition("/")
        model = version.capitalize() + kind
        # Only Kubernetes' own groups: a custom resource may share a kind's name.
        if group not in KUBERNETES_GROUPS or getattr(client, model, None) is None:
            skipped.append(f"{api_version} {kind}")
            continue
        checked.append(f"{api_version} {kind}")
        check(manifest, model, name, problems)
    json.dump({"checked": checked, "skipped": skipped, "problems": problems}, sys.stdout)


main()
