"""Validators for the manifests `autoquant k8s` writes (shared by tests/test_k8s_manifests.py and
tests/commands/test_k8s_cmd.py, which load this file by path: the suite runs with --import-mode=importlib).

- Built-in kinds (Deployment, Service): kubernetes-validate's bundled Kubernetes 1.33 schemas, strict (an unknown
  field is an error).
- LeaderWorkerSet: its CRD's v1 openAPIV3Schema, kubernetes-sigs/lws v0.10.0, kept as versioned test data
  (tests/fixtures/k8s/lws-v0.10.0-openapiv3.json, written by scripts/lws_crd_schema.py), checked with jsonschema.
  The CRD declares no `additionalProperties: false` (the API server prunes unknown fields instead, silently), so
  `additionalProperties: false` is added to every object schema that lists `properties`: an unknown or misspelt
  field fails here. The CRD has no x-kubernetes-preserve-unknown-fields, so nothing legitimate is lost by that.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import yaml

KUBERNETES_VERSION = "1.33"
LWS_SCHEMA = Path(__file__).resolve().parent / "fixtures" / "k8s" / "lws-v0.10.0-openapiv3.json"


def strict(schema):
    """`schema` with additionalProperties false on every object schema that lists its properties."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: ({p: strict(s) for p, s in v.items()} if k == "properties" else strict(v)) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@functools.cache
def lws_validator():
    import jsonschema

    schema = strict(json.loads(LWS_SCHEMA.read_text(encoding="utf-8")))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def lws_errors(obj: dict) -> list[str]:
    """Every schema error of a LeaderWorkerSet object, as 'path: message'."""
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in lws_validator().iter_errors(obj)]


def validate(obj: dict) -> None:
    """Raise if `obj` is not a valid object of its kind (see the module docstring for how)."""
    if obj.get("kind") == "LeaderWorkerSet":
        errors = lws_errors(obj)
        if errors:
            raise AssertionError("LeaderWorkerSet does not validate:\n" + "\n".join(errors))
        return
    import kubernetes_validate

    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def documents(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d is not None]
