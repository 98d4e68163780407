"""NVIDIA AIConfigurator (PyPI `aiconfigurator`, `pip install 'autoquant[aic]'`) as an optional predictor.

`available()` says whether the package is installed without importing it; `load()` imports it (~1.5 s) and
returns a `Predictor` (autoquant/planner/predictor.py), or None when it is not installed. The predictor asks
AIC's `cli_estimate` in "agg" mode (in-flight batching, batch_size = the request's concurrency) against the
SILICON (measured-kernel) database, and answers None for anything AIC does not cover or cannot estimate:
a GPU, engine, method or KV dtype with no AIC counterpart (autoquant/data/aiconfigurator.yaml), a model that
is not a dense Llama-shaped decoder, a configuration that does not fit (AIC raises "OOM: ..."), or any other
error inside AIC. The mapping helpers below are pure and never import aiconfigurator.

Models reach AIC as a config.json written from the ModelSpec into a private temporary directory (AIC reads
the architecture and shape fields; it would otherwise fetch unknown ids from the Hub), or by id when AIC
bundles that model's config.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoquant.data import load as load_data
from autoquant.paths import write_atomic
from autoquant.planner.predictor import Figures, Predictor, PredictRequest
from autoquant.records import ModelSpec

PACKAGE = "aiconfigurator"
DATA = "aiconfigurator"  # autoquant/data/aiconfigurator.yaml
_LOGGERS = ("aiconfigurator", "aiconfigurator_core")


def available() -> bool:
    """Whether aiconfigurator is installed (found, not imported)."""
    return importlib.util.find_spec(PACKAGE) is not None


# ---- pure mapping (autoquant ids -> AIC names), from autoquant/data/aiconfigurator.yaml ----

def table() -> Mapping[str, Any]:
    return load_data(DATA)


def _lookup(section: str, key: str, t: Mapping[str, Any] | None) -> str | None:
    value = ((t or table()).get(section) or {}).get("map", {}).get(key)
    return None if value is None else str(value)


def system_for(gpu: str, t: Mapping[str, Any] | None = None) -> str | None:
    """AIC system name for an autoquant GPU catalog key (None: no AIC system)."""
    return _lookup("systems", gpu, t)


def backend_for(engine: str, t: Mapping[str, Any] | None = None) -> str | None:
    return _lookup("backends", engine, t)


def gemm_quant_for(method: str, t: Mapping[str, Any] | None = None) -> str | None:
    return _lookup("gemm_quant", method, t)


def kv_quant_for(kv_cache_dtype: str, t: Mapping[str, Any] | None = None) -> str | None:
    return _lookup("kv_cache", kv_cache_dtype, t)


def fmha_quant_for(backend: str, kv: str, t: Mapping[str, Any] | None = None) -> str | None:
    """Context-attention precision to ask AIC for: bfloat16 with a bfloat16 cache, per backend with fp8."""
    return "bfloat16" if kv == "bfloat16" else _lookup("fmha_with_fp8_kv", backend, t)


def coverage(system: str, backend: str, t: Mapping[str, Any] | None = None) -> Mapping[str, Any] | None:
    """The coverage cell of (AIC system, backend): version, gemm and kv lists; None when AIC has no data."""
    return ((((t or table()).get("coverage") or {}).get("systems") or {}).get(system) or {}).get(backend)


@dataclass(frozen=True)
class Query:
    """One request in AIC's names."""

    system: str
    backend: str
    version: str  # the database version the coverage cell was read from
    gemm: str
    kv: str
    fmha: str


def query_for(req: PredictRequest, t: Mapping[str, Any] | None = None) -> Query | None:
    """The request in AIC's names, or None when AIC does not cover the (system, backend, gemm, kv) cell."""
    t = t or table()
    system, backend = system_for(req.gpu, t), backend_for(req.engine, t)
    gemm, kv = gemm_quant_for(req.method, t), kv_quant_for(req.kv_cache_dtype, t)
    if None in (system, backend, gemm, kv):
        return None
    cell = coverage(system, backend, t)
    fmha = fmha_quant_for(backend, kv, t)
    if not cell or fmha is None or gemm not in cell.get("gemm", ()) or kv not in cell.get("kv", ()):
        return None
    return Query(system, backend, str(cell["version"]), gemm, kv, fmha)


def describable(model: ModelSpec, t: Mapping[str, Any] | None = None) -> bool:
    """A dense, text-only decoder of an architecture AIC models as Llama, with full attention everywhere."""
    return (_lookup("architectures", model.architecture, t) is not None and not model.is_moe and not model.is_mla
            and not model.multimodal and not model.sliding_window and not model.sliding_window_layers
            and min(model.num_layers, model.hidden_size, model.num_heads, model.num_kv_heads, model.head_dim,
                    model.intermediate_size, model.vocab_size) > 0)


def model_config(model: ModelSpec, t: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The config.json AIC reads (sdk/utils.py _parse_hf_config_json) for this model, or None when AIC cannot
    describe it. No quantization_config: the request's method sets the GEMM mode explicitly."""
    if not describable(model, t):
        return None
    return {
        "architectures": [_lookup("architectures", model.architecture, t)],
        "model_type": model.model_type,
        "hidden_size": model.hidden_size,
        "intermediate_size": model.intermediate_size,
        "num_hidden_layers": model.num_layers,
        "num_attention_heads": model.num_heads,
        "num_key_value_heads": model.num_kv_heads,
        "head_dim": model.head_dim,
        "vocab_size": model.vocab_size,
        "max_position_embeddings": model.max_context,
        "tie_word_embeddings": model.tie_word_embeddings,
        "torch_dtype": model.native_dtype,
    }


def current_version(doc: Mapping[str, Any], system: str, backend: str) -> str | None:
    """The 'current' slot of AIC's systems/query_versions.yaml for (system, backend): override, else default."""
    entry = ((doc.get("overrides") or {}).get(system) or {}).get(backend)
    if entry is None:
        entry = (doc.get("defaults") or {}).get(backend)
    current = (entry or {}).get("current")
    return None if current is None else str(current)


def source_label(aic_version: str, database_mode: str, query: Query, version: str, mode: str) -> str:
    return f"AIConfigurator {aic_version} {database_mode} ({query.system}, {query.backend} {version}, {mode})"


# ---- the edge: AIC calls ----

class AICPredictor:
    """A `Predictor` over AIC's `cli_estimate`. Thread-safe; never raises for a request."""

    def __init__(self, estimate: Callable[..., Any], versions: Mapping[str, Any], bundled: frozenset[str],
                 aic_version: str, t: Mapping[str, Any] | None = None) -> None:
        self._estimate = estimate
        self._versions_doc = versions
        self._bundled = bundled
        self._t = t or table()
        self.aic_version = aic_version
        self.database_mode = str(self._t.get("database_mode", "SILICON"))
        self.mode = str(self._t.get("mode", "agg"))
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, str], str | None] = {}
        self._dirs: dict[str, str] = {}
        self._root: str | None = None

    def __call__(self, req: PredictRequest) -> Figures | None:
        query = query_for(req, self._t)
        if query is None:
            return None
        return self.estimate(req.model, query, isl=req.isl, osl=req.osl, concurrency=req.concurrency,
                             tp=req.tp, pp=req.pp)

    def backend_version(self, system: str, backend: str) -> str | None:
        key = (system, backend)
        if key not in self._versions:
            self._versions[key] = current_version(self._versions_doc, system, backend)
        return self._versions[key]

    def estimate(self, model: ModelSpec, query: Query, *, isl: int, osl: int, concurrency: int, tp: int,
                 pp: int) -> Figures | None:
        """AIC's figures for one query (explicit AIC names), or None."""
        if min(isl, osl, concurrency, tp, pp) < 1:
            return None
        with self._lock:
            version = self.backend_version(query.system, query.backend)
            if version is None or version != query.version:  # not the database the coverage cell describes
                return None
            try:
                path = self._model_path(model)
                if path is None:
                    return None
                r = self._estimate(
                    path, query.system, mode=self.mode, backend_name=query.backend, backend_version=version,
                    database_mode=self.database_mode, isl=isl, osl=osl, batch_size=concurrency, tp_size=tp,
                    pp_size=pp, gemm_quant_mode=query.gemm, kvcache_quant_mode=query.kv,
                    fmha_quant_mode=query.fmha)
                if str(getattr(r, "kv_cache_warning", None) or "").startswith("OOM"):
                    return None
                values = [float(r.ttft), float(r.tpot), float(r.tokens_per_second)]
                memory = None if r.memory is None else float(r.memory)
            except Exception:  # agg raises RuntimeError("OOM: ...") when it does not fit; anything else: not covered
                return None
        if not all(math.isfinite(v) and v >= 0 for v in values) or (memory is not None and not math.isfinite(memory)):
            return None
        return Figures(ttft_ms=values[0], tpot_ms=values[1], output_tokens_per_s=values[2], memory_gb=memory,
                       source=source_label(self.aic_version, self.database_mode, query, version, self.mode))

    def _model_path(self, model: ModelSpec) -> str | None:
        """AIC's bundled id for the model, else a directory holding its config.json (one per distinct config)."""
        if model.id in self._bundled:
            return model.id
        config = model_config(model, self._t)
        if config is None:
            return None
        text = json.dumps(config, sort_keys=True, indent=1)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        if digest not in self._dirs:
            if self._root is None:
                self._root = tempfile.mkdtemp(prefix="autoquant-aic-")
                atexit.register(shutil.rmtree, self._root, True)
            name = re.sub(r"[^A-Za-z0-9._-]+", "--", model.id).strip("-.")[:80] or "model"
            folder = Path(self._root) / f"{name}-{digest}"
            folder.mkdir(exist_ok=True)
            write_atomic(folder / "config.json", text)  # a full disk's error names the file; no partial one left
            self._dirs[digest] = str(folder)
        return self._dirs[digest]


def load() -> Predictor | None:
    """The AIC predictor, or None when aiconfigurator is not installed (or does not import)."""
    if not available():
        return None
    for name in _LOGGERS:  # AIC logs each fallback and failure it meets; the predictor answers None instead
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.CRITICAL)
    try:
        import aiconfigurator_core
        import yaml
        from aiconfigurator.cli.api import cli_estimate
        from aiconfigurator_core.sdk.common import DefaultHFModels

        versions_file = Path(aiconfigurator_core.__file__).parent / "systems" / "query_versions.yaml"
        versions = yaml.safe_load(versions_file.read_text(encoding="utf-8")) or {}
        aic_version = importlib.metadata.version(PACKAGE)
    except Exception:
        return None
    return AICPredictor(cli_estimate, versions, frozenset(DefaultHFModels), aic_version)
