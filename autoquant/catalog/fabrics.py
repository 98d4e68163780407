"""The inter-node fabric catalog (autoquant/data/fabrics.yaml): what a hop between two nodes costs.

Pure: reads only the packaged YAML (through `autoquant.data.load`) and returns records. `resolve` turns what a
node record says (`fabric`, `inter_node_gbps`, `inter_node_latency_us`) into the one `Fabric` the planner costs
pipeline hops with; with neither, the file's `default` (the figures the planner used before issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoquant.errors import InputError


@dataclass(frozen=True)
class Fabric:
    id: str  # a fabrics.yaml id, or "given" for a bare --inter-node-gbps
    label: str
    node_gbps: float  # GB/s one way out of one node, all its NICs together
    rails: int  # NICs per node; a hop sent as TP slices uses min(TP, rails) of them
    latency_us: float  # per hop
    kind: str  # measured | spec | given: what node_gbps is
    source: str = ""

    def short(self) -> str:
        return f"{self.id} fabric, {self.node_gbps:g} GB/s per node {self.kind}, {self.latency_us:g} us"

    def describe(self) -> str:
        return (f"{self.label}: {self.node_gbps:g} GB/s per node ({self.kind}) over {self.rails} rail(s), "
                f"{self.latency_us:g} us per hop")


def _data() -> dict[str, Any]:
    from autoquant.data import load

    return load("fabrics")


def fabric_ids() -> list[str]:
    """Fabrics a user may name (`--fabric`): every entry but the assumed default, and their other names."""
    data = _data()
    return [k for k in data["fabrics"] if k != data["default"]] + list(data.get("aliases") or {})


def lookup(fabric_id: str) -> Fabric:
    data = _data()
    fabrics = data["fabrics"]
    fabric_id = (data.get("aliases") or {}).get(fabric_id, fabric_id)
    raw = fabrics.get(fabric_id)
    if raw is None:
        raise InputError(f"unknown fabric {fabric_id!r}; choose one of {', '.join(fabric_ids())} "
                         "(or give --inter-node-gbps)")
    return Fabric(id=fabric_id, label=str(raw["label"]), node_gbps=float(raw["node_gbps"]), rails=int(raw["rails"]),
                  latency_us=float(raw["latency_us"]), kind=str(raw["kind"]), source=str(raw.get("source") or ""))


def default_fabric() -> Fabric:
    return lookup(str(_data()["default"]))


def resolve(fabric_id: str | None, node_gbps: float | None, latency_us: float | None,
            gpus_per_node: int) -> Fabric:
    """The fabric a node record describes: its named fabric (or the default), with its own bandwidth and
    latency over the catalog's where it gives them. A bare bandwidth (no fabric) is taken as one NIC per GPU."""
    base = lookup(fabric_id) if fabric_id else default_fabric()
    if node_gbps is None and latency_us is None:
        return base
    if fabric_id is None:
        label = f"{node_gbps:g} GB/s per node (--inter-node-gbps)" if node_gbps is not None else base.label
        rails = max(1, gpus_per_node) if node_gbps is not None else base.rails
        return Fabric(id="given" if node_gbps is not None else base.id, label=label,
                      node_gbps=float(node_gbps if node_gbps is not None else base.node_gbps), rails=rails,
                      latency_us=float(latency_us if latency_us is not None else base.latency_us),
                      kind="given" if node_gbps is not None else base.kind,
                      source="the node record / flags" + (f"; latency from {base.id}" if latency_us is None else ""))
    return Fabric(id=base.id, label=base.label + (f", {node_gbps:g} GB/s given" if node_gbps is not None else ""),
                  node_gbps=float(node_gbps if node_gbps is not None else base.node_gbps), rails=base.rails,
                  latency_us=float(latency_us if latency_us is not None else base.latency_us),
                  kind="given" if node_gbps is not None else base.kind, source=base.source)
