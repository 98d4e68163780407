"""Calibration from measurements: what a node really did against what the speed model predicted for it.

A sample is one measured run of one configuration (`autoquant calibrate` / `bench --calibrate`): the
measured speed of a phase and the speed the model predicted for the same load *without* any measured
calibration (so calibrating again never compounds). Phases: `decode` (a request's decode tok/s, 1000 / TPOT)
and `prefill` (prompt tok/s, ISL / TTFT at the measured concurrency).

Samples are kept per hardware fingerprint x engine x method. The factor for a phase is the median of
measured / predicted, bounded (overheads.yaml `measured_calibration`), and applies only from a minimum number
of samples; the samples of the same model are preferred when there are enough of them. Its leave-one-out
error (each sample predicted by the median of the others) says how well it predicts a new run.
Pure: records in, records out; reading and writing record files is autoquant.measurements.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoquant.records import Node

SCHEMA = "autoquant.calibration"
SCHEMA_VERSION = 1
PHASES = ("decode", "prefill")


@dataclass(frozen=True)
class Sample:
    phase: str  # decode | prefill
    measured: float  # tok/s: decode per request (1000 / TPOT), or prompt tokens per second of TTFT
    predicted: float  # the same figure from the speed model with no measured calibration
    model: str = ""
    concurrency: int = 1
    isl: int = 0
    osl: int = 0
    taken_at: str = ""  # ISO 8601 UTC
    server: str = ""  # what the server said it is (engine, version), never a URL's credentials
    id: str = ""  # unique per sample: a record merged from two directories keeps one copy

    @property
    def ratio(self) -> float:
        return self.measured / self.predicted


@dataclass(frozen=True)
class Record:
    """The samples of one configuration on one kind of node (a versioned JSON file holds a list of these)."""

    fingerprint: str
    engine: str
    method: str
    samples: tuple[Sample, ...] = ()
    hardware: str = ""  # the node in words


@dataclass(frozen=True)
class Policy:
    min_samples: int = 3
    low: float = 0.25
    high: float = 4.0

    @classmethod
    def from_data(cls, raw: Mapping[str, Any] | None) -> Policy:
        raw = raw or {}
        bounds = raw.get("factor_bounds") or (cls.low, cls.high)
        return cls(int(raw.get("min_samples", cls.min_samples)), float(bounds[0]), float(bounds[1]))


@dataclass(frozen=True)
class Factor:
    """What one phase's measurements say: multiply the model's speed by `value` (1.0 when not applied)."""

    phase: str
    value: float
    samples: int
    applied: bool
    leave_one_out: float | None = None  # median |error| of predicting each sample from the others (0.05 = 5%)
    pooled: bool = False  # True: too few runs of this model, so the runs of every model on this node
    raw: float = 1.0  # the median ratio before bounding

    def describe(self) -> str:
        runs = f"{self.samples} run{'s' if self.samples != 1 else ''}"
        if not self.applied:
            return f"{self.phase}: {runs} measured, too few to calibrate"
        loo = f", leave-one-out error {self.leave_one_out:.0%}" if self.leave_one_out is not None else ""
        bounded = f" (measured x{self.raw:.2f}, bounded)" if abs(self.raw - self.value) > 1e-9 else ""
        scope = " of several models" if self.pooled else ""
        return f"{self.phase} x{self.value:.2f}{bounded}, calibrated from {runs}{scope} on this node{loo}"


@dataclass(frozen=True)
class Measured:
    """The factors that apply on one node: (engine, method) -> phase -> Factor."""

    fingerprint: str = ""
    factors: Mapping[tuple[str, str], Mapping[str, Factor]] = field(default_factory=dict)

    def get(self, engine: str, method: str, phase: str) -> Factor | None:
        return self.factors.get((engine, method), {}).get(phase)

    def speed_factor(self, engine: str, method: str, phase: str) -> float:
        f = self.get(engine, method, phase)
        return f.value if f is not None and f.applied else 1.0

    def notes(self, engine: str, method: str) -> list[str]:
        got = self.factors.get((engine, method), {})
        return [got[p].describe() for p in PHASES if p in got]


def fingerprint(node: Node) -> str:
    """What makes measurements on one node stand for another: the GPUs (model x count) when there are any,
    else the CPU model and the threads llama.cpp runs on it (one core reads about half of two)."""
    if node.gpus:
        names = sorted({g.catalog_key or g.name for g in node.gpus})
        return f"gpu:{'+'.join(names)} x{len(node.gpus)}"
    if node.apple and (node.apple.catalog_key or node.apple.chip):
        return f"apple:{node.apple.catalog_key or node.apple.chip}"
    cpu = node.cpu
    if not cpu or cpu.model in (None, "", "unknown"):
        return ""
    threads = cpu.physical_cores or cpu.logical_cores or 1
    if node.cgroup and node.cgroup.cpu_limit_cores:
        threads = min(threads, max(1, int(node.cgroup.cpu_limit_cores)))
    return f"cpu:{cpu.model} x{threads}"


def factor(samples: Iterable[Sample], phase: str, model: str, policy: Policy) -> Factor | None:
    """The factor of one phase from its samples (None: no sample of that phase)."""
    of_phase = [s for s in samples if s.phase == phase and s.predicted > 0 and s.measured > 0]
    if not of_phase:
        return None
    mine = [s for s in of_phase if model and s.model == model]
    same = len(mine) >= policy.min_samples
    use = mine if same else of_phase
    ratios = [s.ratio for s in use]
    raw = statistics.median(ratios)
    applied = len(use) >= policy.min_samples
    value = min(policy.high, max(policy.low, raw)) if applied else 1.0
    return Factor(phase, value, len(use), applied, leave_one_out(ratios),
                  pooled=bool(model) and not same and any(s.model != model for s in use), raw=raw)


def leave_one_out(ratios: list[float]) -> float | None:
    """Median relative error of predicting each ratio by the median of the others (None under 2 samples)."""
    if len(ratios) < 2:
        return None
    errors = []
    for i, r in enumerate(ratios):
        rest = statistics.median(ratios[:i] + ratios[i + 1:])
        errors.append(abs(rest - r) / r)
    return round(statistics.median(errors), 4)


def measured_for(records: Iterable[Record], node_fingerprint: str, model: str, policy: Policy) -> Measured:
    """The factors that apply to `node_fingerprint` from every record (others' fingerprints are ignored)."""
    if not node_fingerprint:
        return Measured()
    pooled: dict[tuple[str, str], dict[str, Sample]] = {}
    for rec in records:
        if rec.fingerprint != node_fingerprint:
            continue
        bucket = pooled.setdefault((rec.engine, rec.method), {})
        for s in rec.samples:
            bucket.setdefault(s.id or f"{s.phase}|{s.taken_at}|{s.measured}", s)
    out: dict[tuple[str, str], dict[str, Factor]] = {}
    for key, by_id in pooled.items():
        for phase in PHASES:
            f = factor(by_id.values(), phase, model, policy)
            if f is not None:
                out.setdefault(key, {})[phase] = f
    return Measured(node_fingerprint, out)


def add_samples(records: list[Record], fingerprint_: str, engine: str, method: str, samples: Iterable[Sample],
                hardware: str = "") -> list[Record]:
    """`records` with `samples` added to the record of (fingerprint, engine, method), made when missing."""
    samples = tuple(samples)
    out, done = [], False
    for rec in records:
        if (rec.fingerprint, rec.engine, rec.method) == (fingerprint_, engine, method) and not done:
            rec = Record(rec.fingerprint, rec.engine, rec.method, rec.samples + samples, rec.hardware or hardware)
            done = True
        out.append(rec)
    if not done:
        out.append(Record(fingerprint_, engine, method, samples, hardware))
    return out


def to_json(records: Iterable[Record]) -> dict[str, Any]:
    from dataclasses import asdict

    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "records": [asdict(r) for r in records]}


def from_json(data: Any) -> list[Record]:
    """Records of a calibration file; ValueError (with why) for anything else: a foreign or newer file."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        raise ValueError("not an autoquant calibration file")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"calibration schema version {data.get('schema_version')!r}, this autoquant reads "
                         f"{SCHEMA_VERSION}")
    out = []
    for raw in data.get("records") or []:
        try:
            samples = tuple(Sample(**{k: v for k, v in s.items() if k in Sample.__dataclass_fields__})
                            for s in raw.get("samples") or [])
            for s in samples:
                if s.phase not in PHASES or not _positive(s.measured) or not _positive(s.predicted):
                    raise ValueError(f"bad sample {s.id or s.phase}")
            out.append(Record(str(raw["fingerprint"]), str(raw["engine"]), str(raw["method"]), samples,
                              str(raw.get("hardware") or "")))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed record ({type(exc).__name__}: {exc})") from None
    return out


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and v == v and v != float("inf")
