"""Adversarial input through the CLI: each class an independent run found (non-finite or absurd numbers,
wrong types, unbounded work, CSV edge cases) ends as the contract says: one `autoquant: error:` line and
exit 2, or a valid result. Never a traceback, a hang, a NaN in --json or an impossible figure."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from autoquant.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
LLAMA = json.loads((FIXTURES / "hf-configs/meta-llama__Llama-3.1-8B-Instruct/config.json").read_text())
DEEPSEEK = FIXTURES / "hf-configs/deepseek-ai__DeepSeek-V3/config.json"


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("autoquant: error: ") and "internal error" not in err[0], err[0]
    return err[0]


def _model_dir(tmp_path: Path, text: str) -> str:
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(text)
    return str(d)


def _with(base: dict, **changes) -> str:
    return json.dumps({**base, **changes})


# -- numbers that are not finite or not sane, in config.json ---------------------------------------------


@pytest.mark.parametrize("key", ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                                 "intermediate_size", "num_key_value_heads"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 5000])
def test_a_non_finite_or_huge_config_number_is_one_line(tmp_path, capsys, key, literal):
    text = json.dumps(LLAMA).replace(f'"{key}": {LLAMA[key]}', f'"{key}": {literal}')
    assert literal in text
    assert main(["model-info", _model_dir(tmp_path, text)]) == 2
    assert _one_error(capsys)


@pytest.mark.parametrize("key,value", [("num_attention_heads", -32), ("num_key_value_heads", -8),
                                       ("num_hidden_layers", 10**12), ("hidden_size", 2**40)])
def test_a_negative_or_absurd_count_is_refused_not_printed(tmp_path, capsys, key, value):
    assert main(["model-info", _model_dir(tmp_path, _with(LLAMA, **{key: value}))]) == 2
    assert key in _one_error(capsys)


def test_a_yarn_factor_out_of_range_is_one_line(tmp_path, capsys):
    rope = {"rope_type": "yarn", "factor": 1e300, "original_max_position_embeddings": 4096}
    assert main(["model-info", _model_dir(tmp_path, _with(LLAMA, rope_scaling=rope))]) == 2
    assert "rope_scaling.factor" in _one_error(capsys)


def test_quantization_bits_out_of_range_is_one_line(tmp_path, capsys):
    qc = {"quant_method": "gptq", "bits": 10**9, "group_size": 128}
    assert main(["model-info", _model_dir(tmp_path, _with(LLAMA, quantization_config=qc))]) == 2
    assert "bits" in _one_error(capsys)


# -- wrong types in secondary keys -----------------------------------------------------------------------


@pytest.mark.parametrize("key,value", [
    ("qk_rope_head_dim", "64"), ("first_k_dense_replace", [3]), ("moe_layer_freq", "1"),
    ("mlp_only_layers", "0,1"), ("num_nextn_predict_layers", 1.5),
])
def test_a_mistyped_secondary_key_of_a_moe_config_is_one_line(tmp_path, capsys, key, value):
    base = json.loads(DEEPSEEK.read_text())
    assert main(["model-info", _model_dir(tmp_path, _with(base, **{key: value}))]) == 2
    assert key in _one_error(capsys)


@pytest.mark.parametrize("key,value", [("architectures", 5), ("architectures", [1, 2]), ("vision_config", "x"),
                                       ("text_config", [1]), ("model_type", 7)])
def test_a_mistyped_structural_key_is_one_line(tmp_path, capsys, key, value):
    assert main(["model-info", _model_dir(tmp_path, _with(LLAMA, **{key: value}))]) == 2
    assert key in _one_error(capsys)


def test_a_vision_config_with_a_huge_tower_is_one_line(tmp_path, capsys):
    config = _with(LLAMA, vision_config={"hidden_size": 10**15, "num_hidden_layers": 27})
    assert main(["model-info", _model_dir(tmp_path, config)]) == 2
    assert "vision_config" in _one_error(capsys)


def test_a_safetensors_index_whose_metadata_is_a_list_is_handled(tmp_path, capsys):
    d = _model_dir(tmp_path, json.dumps(LLAMA))
    (Path(d) / "model.safetensors.index.json").write_text(json.dumps({"metadata": [1], "weight_map": {}}))
    code = main(["model-info", d])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err and "internal error" not in err


def test_a_safetensors_header_with_string_offsets_is_one_line(tmp_path, capsys):
    d = _model_dir(tmp_path, json.dumps(LLAMA))
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": ["0", "4"]}}).encode()
    (Path(d) / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    code = main(["model-info", d])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err and "internal error" not in err


# -- unbounded work -------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["plan", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100:99999"],
    ["plan", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-SXM:8", "--nodes", "99999999"],
    ["plan", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "cpu:99999999999"],
    ["plan", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-SXM:8", "--tp", "100000"],
])
def test_an_absurd_machine_size_is_refused_before_any_work(capsys, argv):
    assert main(argv) == 2
    assert "sane range" in _one_error(capsys)


@pytest.mark.parametrize("what", ["config", "node", "plan", "traffic"])
def test_json_nested_100000_deep_is_one_line(tmp_path, capsys, what):
    deep = "[" * 100_000 + "]" * 100_000
    if what == "config":
        argv = ["model-info", _model_dir(tmp_path, '{"a": ' + deep + "}")]
    elif what == "node":
        (tmp_path / "node.json").write_text(deep)
        argv = ["plan", "meta-llama/Llama-3.1-8B-Instruct", "--hardware", str(tmp_path / "node.json")]
    elif what == "plan":
        (tmp_path / "plan.json").write_text(deep)
        argv = ["serve", "--plan", str(tmp_path / "plan.json"), "--dry-run"]
    else:
        (tmp_path / "t.jsonl").write_text('{"timestamp": ' + deep + "}\n")
        argv = ["profile", str(tmp_path / "t.jsonl")]
    assert main(argv) == 2
    assert "nested" in _one_error(capsys)


def _node(**cpu) -> dict:
    node = json.loads((FIXTURES / "nodes/cpu-2core.json").read_text())
    node["cpu"].update(cpu)
    return node


@pytest.mark.parametrize("change", [
    {"cpu": {"memory_bandwidth_gbps": "NaN"}}, {"cpu": {"matmul_gflops": "Infinity"}},
    {"cpu": {"memory_bandwidth_gbps": "1e-320"}}, {"cgroup": {"cpu_limit_cores": "-4"}},
    {"cgroup": {"cpu_limit_cores": "1e400"}}, {"nodes": "0"}, {"ram_total_bytes": "-1"},
])
def test_a_node_record_with_an_impossible_number_is_one_line(tmp_path, capsys, change):
    node = _node()
    text = json.dumps(node)
    for section, value in change.items():
        if isinstance(value, dict):
            (key, literal), = value.items()
            node[section][key] = "@@"
        else:
            node[section] = "@@"
            literal = value
        text = json.dumps(node).replace('"@@"', literal)
    (tmp_path / "node.json").write_text(text)
    assert main(["plan", "meta-llama/Llama-3.2-1B", "--hardware", str(tmp_path / "node.json")]) == 2
    assert _one_error(capsys)


def test_a_node_record_with_a_million_gpus_is_refused(tmp_path, capsys):
    node = _node()
    node["gpus"] = [{"index": i, "name": "NVIDIA H100 80GB HBM3", "memory_total_bytes": 80 << 30}
                    for i in range(1000)]
    (tmp_path / "node.json").write_text(json.dumps(node))
    assert main(["plan", "meta-llama/Llama-3.2-1B", "--hardware", str(tmp_path / "node.json")]) == 2
    assert "1000 GPUs" in _one_error(capsys)


def _gguf_file(tmp_path: Path, *kvs: bytes) -> str:
    def s(text: str) -> bytes:
        b = text.encode()
        return struct.pack("<Q", len(b)) + b

    body = b"".join(s(k) + struct.pack("<I", t) + v for k, t, v in kvs)
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + body
    path = tmp_path / "m.gguf"
    path.write_bytes(data + b"\0" * (-len(data) % 32))  # tensor data starts 32-byte aligned
    return str(path)


def _s(text: str) -> bytes:
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def test_a_gguf_with_four_billion_layers_is_one_line(tmp_path, capsys):
    path = _gguf_file(tmp_path, ("general.architecture", 8, _s("llama")),
                      ("llama.block_count", 4, struct.pack("<I", 2**32 - 1)),
                      ("llama.embedding_length", 4, struct.pack("<I", 4096)),
                      ("llama.attention.head_count", 4, struct.pack("<I", 32)),
                      ("llama.vocab_size", 4, struct.pack("<I", 32000)))
    assert main(["model-info", path]) == 2
    assert "num_hidden_layers" in _one_error(capsys)


def test_a_gguf_with_alignment_zero_is_one_line(tmp_path, capsys):
    path = _gguf_file(tmp_path, ("general.architecture", 8, _s("llama")),
                      ("general.alignment", 4, struct.pack("<I", 0)))
    assert main(["model-info", path]) == 2
    assert "alignment" in _one_error(capsys)


def test_a_gguf_with_deeply_nested_arrays_is_one_line(tmp_path, capsys):
    nested = struct.pack("<IQ", 9, 1) * 200_000 + struct.pack("<IQ", 4, 0)
    path = _gguf_file(tmp_path, ("general.architecture", 8, _s("llama")), ("x", 9, nested))
    assert main(["model-info", path]) == 2
    assert "nested" in _one_error(capsys)


# -- traffic files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "timestamp,input_tokens,output_tokens\n1,nan,4\n2,3,4\n",
    "timestamp,input_tokens,output_tokens\ninf,3,4\n2,3,4\n",
    "timestamp,input_tokens,output_tokens\n1,1e400,4\n2,3,4\n",
    "timestamp,input_tokens,output_tokens\nnan,3,4\n2,3,4\n",
    "timestamp,input_tokens,output_tokens\n1,3,4,5,6\n2,3,4\n",  # more fields than the header
    'timestamp,input_tokens,output_tokens\n1,3,"' + "x" * 200 + "\n",  # a quote left open
])
def test_a_bad_csv_trace_is_one_line(tmp_path, capsys, body):
    (tmp_path / "t.csv").write_text(body)
    assert main(["profile", str(tmp_path / "t.csv")]) == 2
    assert "line" in _one_error(capsys)


def test_a_csv_field_over_128k_characters_is_read(tmp_path, capsys):
    text = "x" * 200_000
    (tmp_path / "t.csv").write_text(f'timestamp,input_tokens,output_tokens,prompt\n1,3,4,"{text}"\n2,3,4,y\n')
    assert main(["profile", str(tmp_path / "t.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 2


@pytest.mark.parametrize("line", [
    '{"timestamp": NaN, "input_length": 3, "output_length": 4}',
    '{"timestamp": "nan", "input_length": 3, "output_length": 4}',
    '{"timestamp": 1, "input_length": 1e400, "output_length": 4}',
    '{"timestamp": 1, "input_length": "inf", "output_length": 4}',
    '{"timestamp": 1, "input_length": true, "output_length": 4}',
    '{"timestamp": 1e300, "input_length": 3, "output_length": 4}',
])
def test_a_bad_jsonl_trace_is_one_line(tmp_path, capsys, line):
    (tmp_path / "t.jsonl").write_text(line + '\n{"timestamp": 2, "input_length": 3, "output_length": 4}\n')
    assert main(["profile", str(tmp_path / "t.jsonl")]) == 2
    assert "line 1" in _one_error(capsys)


# -- flags -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag,value", [
    ("--cpu-bandwidth", "1e-320"), ("--cpu-bandwidth", "nan"), ("--gpu-hour-cost", "inf"),
    ("--gpu-hour-cost", "1e400"), ("--isl", "9" * 5000), ("--ttft-ms", "-inf"), ("--max-model-len", "nan"),
    ("--concurrency", "99999999999"), ("--min-tps", "NaN"),
])
def test_a_flag_value_that_is_not_a_sane_number_is_one_line(capsys, flag, value):
    assert main(["plan", "meta-llama/Llama-3.2-1B", "--gpu", "L4", flag, value]) == 2
    line = _one_error(capsys)
    assert flag in line and len(line) < 300


@pytest.mark.parametrize("value", ["infk", "nank", "1e400", "9" * 100 + "k"])
def test_serve_max_model_len_that_is_not_a_number_is_one_line(capsys, value):
    assert main(["serve", "meta-llama/Llama-3.2-1B", "--gpu", "L4", "--dry-run", "--max-model-len", value]) == 2
    assert "--max-model-len" in _one_error(capsys)


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_profile_assumed_times_must_be_numbers(capsys, value):
    trace = FIXTURES / "traces/azure_llm_2023_code/AzureLLMInferenceTrace_code.csv"
    assert main(["profile", str(trace), "--assumed-tpot-ms", value]) == 2
    assert "--assumed-tpot-ms" in _one_error(capsys)


@pytest.mark.parametrize("host", ["bad host;x", "", "a" * 300, "-x", "host:80", "a..b"])
def test_serve_host_must_be_an_address_or_a_name(capsys, host):
    assert main(["serve", "meta-llama/Llama-3.2-1B", "--gpu", "L4", "--dry-run", "--host", host]) == 2
    assert "--host" in _one_error(capsys)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "127.0.0.1", "localhost", "node-1.cluster.local"])
def test_serve_host_accepts_addresses_and_names(capsys, host):
    assert main(["serve", "meta-llama/Llama-3.2-1B", "--gpu", "L4", "--dry-run", "--host", host]) == 0


def test_json_output_never_holds_nan():
    from autoquant.output import print_json

    with pytest.raises(ValueError):
        print_json({"x": float("nan")})


@pytest.mark.parametrize("model", ["~0", "~no-such-user-here/model"])
def test_a_tilde_name_for_no_user_is_a_model_name_not_a_crash(capsys, model):
    assert main(["plan", model, "--gpu", "L4"]) == 2
    assert _one_error(capsys)


def test_a_double_dash_as_an_option_value_is_one_line(capsys):
    # Python 3.11's argparse drops it and stores [] without calling the option's type
    assert main(["plan", "meta-llama/Llama-3.2-1B", "--gpu", "L4", "--isl=--"]) == 2
    assert "--isl" in _one_error(capsys)


def test_a_quantization_block_with_nan_bits_has_no_nan_width(tmp_path):
    from autoquant.quantconfig import parse_quantization

    q = parse_quantization({**LLAMA, "quantization_config": {"quant_method": "exl2", "bits": float("nan")}})
    assert q.weight_bits == 0.0


@pytest.mark.parametrize("argv", [
    ["bench", "http://127.0.0.1:9/v1", "--isl", "99999999999"],
    ["bench", "http://127.0.0.1:9/v1", "--concurrency", "1,99999999999"],
    ["bench", "http://127.0.0.1:9/v1", "--requests", "99999999999"],
    ["bench", "http://127.0.0.1:9/v1", "--warmup", "99999999999"],
    ["bench", "http://127.0.0.1:9/v1", "--duration", "1e12"],
    ["calibrate", "http://127.0.0.1:9/v1", "--runs", "99999999999"],
    ["validate", "--reference", "http://127.0.0.1:9/v1", "--candidate", "http://127.0.0.1:9/v1",
     "--dataset", "x.txt", "--max-windows", "99999999999"],
    ["validate", "--reference", "http://127.0.0.1:9/v1", "--candidate", "http://127.0.0.1:9/v1",
     "--dataset", "x.txt", "--top-k", "99999999999"],
])
def test_bench_and_validate_sizes_are_bounded_before_any_request(capsys, argv):
    assert main(argv) == 2
    assert "sane range" in _one_error(capsys)
