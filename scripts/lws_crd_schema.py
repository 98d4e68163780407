"""Write the LeaderWorkerSet CRD's v1 openAPIV3Schema as test data, for validating `autoquant k8s` output.

    git -C LWS_CLONE show v0.10.0:config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml > crd.yaml
    python scripts/lws_crd_schema.py crd.yaml --tag v0.10.0 --commit 2161f38ff333f9e24d3c44adef7cd5d9787cac00
        # -> tests/fixtures/k8s/lws-v0.10.0-openapiv3.json

The CRD file is 1.3 MB, mostly `description` text; the schema without descriptions is ~130 KB. Nothing else is
changed: the `description` keywords are dropped (a property named "description" would be kept), and a `$comment`
(a JSON Schema keyword validators ignore) names the source: repository, tag, commit, path and the file's sha256.
Standalone: PyYAML only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CRD_PATH = "config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml"


def strip_descriptions(schema, under_properties: bool = False):
    if isinstance(schema, dict):
        return {k: strip_descriptions(v, k == "properties") for k, v in schema.items()
                if under_properties or k != "description"}
    if isinstance(schema, list):
        return [strip_descriptions(v) for v in schema]
    return schema


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("crd", help="the CRD YAML from kubernetes-sigs/lws")
    p.add_argument("--tag", required=True)
    p.add_argument("--commit", required=True)
    p.add_argument("-o", "--output", default=None)
    a = p.parse_args(argv)
    raw = Path(a.crd).read_bytes()
    crd = yaml.safe_load(raw)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strip_descriptions(version["schema"]["openAPIV3Schema"])
    out = {"$comment": f"kubernetes-sigs/lws {a.tag} ({a.commit}) {CRD_PATH} (sha256 "
                       f"{hashlib.sha256(raw).hexdigest()}): spec.versions[v1].schema.openAPIV3Schema, the "
                       "'description' keywords removed by scripts/lws_crd_schema.py, nothing else changed",
           **schema}
    target = Path(a.output) if a.output else ROOT / "tests" / "fixtures" / "k8s" / f"lws-{a.tag}-openapiv3.json"
    text = json.dumps(out, separators=(",", ":")) + "\n"
    if a.output == "-":
        sys.stdout.write(text)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
