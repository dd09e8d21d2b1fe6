#!/usr/bin/python3
"""Strict validation of Kubernetes manifests against the API types of the official Kubernetes
Python client (Debian's python3-kubernetes; its models are generated from the Kubernetes OpenAPI
spec): every field must exist in the schema (unknown or misplaced fields are errors, as with
`kubectl --validate=strict`), every value must have the schema's type, and required fields must be
present. Kinds the client does not know (CRDs such as ServiceMonitor) are listed and left to
validate_k8s_models.mjs.

Usage: validate_k8s_strict.py MANIFESTS.yaml   (exit 1 on any error)
"""
import re
import sys

import yaml
import kubernetes.client as k8s
from kubernetes.client.configuration import Configuration

CONFIG = Configuration()
CONFIG.client_side_validation = True
PRIMITIVES = {'str': str, 'int': int, 'bool': bool, 'float': (int, float)}


def snake(name):
    return re.sub(r'(?<!^)(?=[A-Z])', '_', name).lower()


def model_for(api_version, kind):
    """The client's model class for apiVersion+kind, or None when the API group/version does not
    serve that kind (checked against the client's generated API classes, e.g. AppsV1Api)."""
    group, _, version = api_version.rpartition('/')
    group_name = ''.join(p.capitalize() for p in group.split('.')[0].split('-')) if group else 'Core'
    api_cls = getattr(k8s, f'{group_name}{version.capitalize()}Api', None)
    if api_cls is None:
        return None
    kind_snake = snake(kind)
    if not any(hasattr(api_cls, f'create_{scope}{kind_snake}') for scope in ('namespaced_', '')):
        return None
    return getattr(k8s, f'{version.capitalize()}{kind}', None)


def check(value, type_name, path, errors):
    if value is None:
        return
    m = re.fullmatch(r'list\[(.+)\]', type_name)
    if m:
        if not isinstance(value, list):
            errors.append(f'{path}: expected a list, got {type(value).__name__}')
            return
        for i, v in enumerate(value):
            check(v, m.group(1), f'{path}[{i}]', errors)
        return
    m = re.fullmatch(r'dict\((\w+), (.+)\)', type_name)
    if m:
        if not isinstance(value, dict):
            errors.append(f'{path}: expected a map, got {type(value).__name__}')
            return
        for k, v in value.items():
            check(v, m.group(2), f'{path}.{k}', errors)
        return
    if type_name == 'object':  # IntOrString, Quantity, RawExtension
        if not isinstance(value, (str, int, float, dict, list)):
            errors.append(f'{path}: unexpected {type(value).__name__}')
        return
    if type_name == 'datetime':
        return
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        if isinstance(value, bool) and type_name != 'bool':
            errors.append(f'{path}: expected {type_name}, got bool')
        elif not isinstance(value, expected):
            errors.append(f'{path}: expected {type_name}, got {type(value).__name__} {value!r}')
        return
    cls = getattr(k8s, type_name, None)
    if cls is None:
        errors.append(f'{path}: schema type {type_name} unknown to the client')
        return
    check_object(value, cls, path, errors)


def check_object(value, cls, path, errors):
    if not isinstance(value, dict):
        errors.append(f'{path}: expected an object ({cls.__name__}), got {type(value).__name__}')
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for key, v in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f'{path}: unknown field "{key}" in {cls.__name__}')
            continue
        check(v, cls.openapi_types[attr], f'{path}.{key}', errors)
    # Required fields: the generated setters reject None for them.
    probe = cls.__new__(cls)
    probe.local_vars_configuration = CONFIG
    for attr, json_name in cls.attribute_map.items():
        if json_name in value:
            continue
        try:
            setattr(probe, attr, None)
        except ValueError:
            errors.append(f'{path}: missing required field "{json_name}" in {cls.__name__}')


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    errors = []
    checked = []
    skipped = []
    for d in docs:
        kind, api_version = d.get('kind'), d.get('apiVersion')
        name = (d.get('metadata') or {}).get('name')
        where = f'{kind}/{name}'
        if not kind or not api_version:
            errors.append(f'{where}: apiVersion and kind are required')
            continue
        cls = model_for(api_version, kind)
        if cls is None:
            skipped.append(f'{api_version} {kind}')
            continue
        check_object(d, cls, where, errors)
        checked.append(where)
    print(f'strict-validated {len(checked)}: {", ".join(checked)}')
    if skipped:
        print(f'not known to the core schema (validated by validate_k8s_models.mjs): '
              f'{", ".join(skipped)}')
    for e in errors:
        print(f'ERROR {e}')
    return 1 if errors or not checked else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
