"""probes.model.load_model: GGUF files (the real demo model), local dirs, the HF cache, the Hub, the catalog.

Faked only at the outer boundary: the Hub client. `RecordedHub` serves the real published files from
tests/fixtures/hf-configs as the Hub's file contents (the Hub is unreachable here, so no live
responses could be recorded); its file listings are written by hand in each test.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from autoquant.errors import InputError, NotFoundError
from autoquant.probes.model import checkpoint_bytes, load_model, safetensors_data_bytes

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hf-configs"


@pytest.fixture(autouse=True)
def isolated_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


class RecordedHub:
    """Stands in for the Hub boundary (autoquant.checkpoints.hub.HubClient): repo_info's file list and
    read_json of small json files; errors are huggingface_hub's own, raised as the library raises them."""

    def __init__(self, files: dict[str, Path], error: BaseException | None = None):
        self.files, self.error, self.calls = files, error, []

    def repo_info(self, repo, revision=None):
        from autoquant.checkpoints.hub import HubRepo

        self.calls.append(("list", repo))
        if self.error:
            raise self.error
        names = [*self.files, "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        return HubRepo(id=repo, files=[(n, None) for n in names])

    def read_json(self, repo, filename, revision=None):
        self.calls.append(("download", filename))
        assert not filename.endswith((".safetensors", ".bin", ".gguf")), "the probe must never fetch weights"
        return json.loads(self.files[filename].read_text())


class NoHub:
    def repo_info(self, *a, **k):
        raise AssertionError("the Hub must not be contacted")

    read_json = repo_info


def hub_error(cls_name: str, message: str) -> BaseException:
    import huggingface_hub.errors as errors

    cls = getattr(errors, cls_name)
    exc = cls.__new__(cls)  # the real class; its __init__ wants a live HTTP response
    Exception.__init__(exc, message)
    return exc


# ---------------------------------------------------------------------------------------------- GGUF


def test_real_gguf(gemma_gguf):
    spec = load_model(str(gemma_gguf))
    assert (spec.source, spec.architecture, spec.num_layers) == ("gguf", "gemma3", 18)
    assert (spec.hidden_size, spec.num_heads, spec.num_kv_heads, spec.head_dim) == (640, 4, 1, 256)
    assert (spec.intermediate_size, spec.vocab_size, spec.max_context) == (2048, 262144, 32768)
    assert (spec.sliding_window, spec.sliding_window_layers) == (512, 15)
    assert spec.quantization.method == "gguf-q4_k_m" and spec.quantization.format == "Q4_K_M"
    assert spec.quantization.container == "gguf"
    # exact count from the tensor shapes; Google/keras-hub publish 268,098,176 for Gemma 3 270M
    assert spec.total_params == 268_098_176 and spec.params_source == "gguf"
    assert spec.tie_word_embeddings and spec.lm_head_params == 0
    assert spec.checkpoint_bytes == gemma_gguf.stat().st_size


def test_gguf_in_a_directory(gemma_gguf, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.gguf").symlink_to(gemma_gguf)
    assert load_model(str(tmp_path / "m")).num_layers == 18


def test_truncated_gguf(gemma_gguf, tmp_path):
    cut = tmp_path / "cut.gguf"
    with gemma_gguf.open("rb") as src:
        cut.write_bytes(src.read(200_000))
    with pytest.raises(InputError, match="truncated"):
        load_model(str(cut))


def test_not_a_gguf(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_text("hello")
    with pytest.raises(InputError, match="not a GGUF file"):
        load_model(str(fake))
    with pytest.raises(InputError, match="no such GGUF file"):
        load_model(str(tmp_path / "absent.gguf"))


# ---------------------------------------------------------------------------------------------- local


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], int]]) -> int:
    header, offset = {}, 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return offset


def test_local_directory_with_modelopt_files(tmp_path):
    d = tmp_path / "llama-fp8"
    shutil.copytree(FIXTURES / "nvidia__Llama-3.1-70B-Instruct-FP8", d)
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 70_000_000_000},
                                                                 "weight_map": {}}))
    spec = load_model(str(d))
    assert spec.source == "local" and spec.num_layers == 80
    assert spec.quantization.method == "fp8" and spec.quantization.producer == "modelopt"
    assert spec.checkpoint_bytes == 70_000_000_000


def test_local_gptq_quantize_config_and_safetensors_headers(tmp_path):
    d = tmp_path / "gptq"
    shutil.copytree(FIXTURES / "TheBloke__Genz-70b-GPTQ", d)
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0}}))  # seen in the wild
    size = _write_safetensors(d / "model.safetensors", {"a": ("I32", [4, 8], 128), "b": ("F16", [8], 16)})
    spec = load_model(str(d))
    assert spec.quantization.method == "gptq-int4" and spec.quantization.act_order is True
    assert spec.checkpoint_bytes == size == 144
    assert checkpoint_bytes(d) == safetensors_data_bytes(d / "model.safetensors")


def test_malformed_json_in_directory(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 4096,')
    with pytest.raises(InputError, match="not valid JSON"):
        load_model(str(tmp_path))


def test_missing_fields_in_directory(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    with pytest.raises(InputError, match="has no 'num_hidden_layers'"):
        load_model(str(tmp_path))


def test_directory_without_config(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        load_model(str(tmp_path))


def test_truncated_safetensors(tmp_path):
    shutil.copy(FIXTURES / "meta-llama__Llama-3.2-1B" / "config.json", tmp_path / "config.json")
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(InputError, match="truncated safetensors"):
        load_model(str(tmp_path))


# ---------------------------------------------------------------------------------------------- cache


def test_hf_cache_snapshot(tmp_path, monkeypatch):
    repo = tmp_path / "hf-cache" / "models--Qwen--Qwen3-8B"
    snap = repo / "snapshots" / "b968826d9c46dd6066d109eabc6255188de91218"
    snap.mkdir(parents=True)
    shutil.copy(FIXTURES / "Qwen__Qwen3-8B" / "config.json", snap / "config.json")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snap.name)
    spec = load_model("Qwen/Qwen3-8B", hub=NoHub())
    assert spec.source == "cache" and spec.head_dim == 128
    assert spec.published_params == 8_190_735_360  # attached from the catalog


# ---------------------------------------------------------------------------------------------- hub


def test_hub_reads_config_and_quant_files_only():
    base = FIXTURES / "nvidia__Llama-3.1-70B-Instruct-FP8"
    hub = RecordedHub({"config.json": base / "config.json", "hf_quant_config.json": base / "hf_quant_config.json"})
    spec = load_model("nvidia/Llama-3.1-70B-Instruct-FP8", hub=hub)
    assert spec.source == "hub" and spec.quantization.method == "fp8" and spec.quantization.kv_cache == "fp8"
    assert ("download", "hf_quant_config.json") in hub.calls


def test_hub_gguf_only_repo_is_a_clear_error(tmp_path):
    hub = RecordedHub({"gemma-3-270m-Q4_K_M.gguf": tmp_path / "x"})
    with pytest.raises(InputError, match="GGUF repo"):
        load_model("someone/gemma-3-270m-GGUF", hub=hub)


def test_network_failure_falls_back_to_catalog():
    hub = RecordedHub({}, error=ConnectionError("Name or service not known"))
    spec = load_model("meta-llama/Meta-Llama-3.1-70B-Instruct", hub=hub)
    assert spec.source == "catalog" and abs(spec.total_params / 70.6e9 - 1) < 0.02


def test_gated_repo_known_to_catalog_falls_back():
    hub = RecordedHub({}, error=hub_error("GatedRepoError", "401 Client Error: gated repo"))
    assert load_model("meta-llama/Llama-3.1-8B-Instruct", hub=hub).source == "catalog"


def test_missing_repo_unknown_to_catalog_raises_hub_error():
    from autoquant.errors import describe

    hub = RecordedHub({}, error=hub_error("RepositoryNotFoundError", "404 Client Error: repo not found"))
    with pytest.raises(Exception) as info:
        load_model("nobody/nothing", hub=hub)
    assert "repository not found" in describe(info.value)


def test_offline_env_skips_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_model("mistralai/Mixtral-8x7B-v0.1", hub=NoHub()).source == "catalog"


def test_unknown_model_offline_names_what_was_tried():
    with pytest.raises(NotFoundError) as info:
        load_model("nobody/nothing", offline=True, hub=NoHub())
    message = str(info.value)
    for tried in ("Hugging Face cache", "offline", "bundled catalog"):
        assert tried in message


@pytest.mark.parametrize("ref", ["", "not an id", "a/b/c"])
def test_bad_refs(ref):
    with pytest.raises(InputError):
        load_model(ref, offline=True)


def test_gguf_with_cut_tensor_data(gemma_gguf, tmp_path):
    cut = tmp_path / "cut.gguf"
    with gemma_gguf.open("rb") as src:
        cut.write_bytes(src.read(gemma_gguf.stat().st_size - 4096))  # header intact, data short
    with pytest.raises(InputError, match="tensor data ends at byte"):
        load_model(str(cut))
