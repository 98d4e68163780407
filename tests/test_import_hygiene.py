"""Layering and import hygiene: the core imports no edge, and `plan` for a Hub id imports only what it uses."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "autoquant"
EDGES = ("autoquant.probes", "autoquant.launchers")
# Modules that compose edges with the core (the command layer and the library entry points).
COMPOSERS = ("commands/", "api.py", "cli.py")
# Not needed to plan for a Hub id answered from the catalog: the GGUF package (and numpy under it), the
# Hub client and its HTTP stack (huggingface_hub 2.x ships it as httpx2).
NOT_FOR_PLAN = ("gguf", "numpy", "huggingface_hub", "httpx", "httpx2")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (lazy imports count), relative ones resolved,
    and of importlib.import_module("...") calls with a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def test_core_imports_no_probe_or_launcher():
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE).as_posix()
        if rel.startswith(COMPOSERS):
            continue
        for line, name in _imported_names(path):
            if any(name == edge or name.startswith(f"{edge}.") for edge in EDGES):
                offenders.append(f"autoquant/{rel}:{line}: {name}")
    assert not offenders, "the core must not import the edges:\n" + "\n".join(offenders)


def test_the_scanner_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "autoquant" / "planner"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from ..launchers import vllm\n    import autoquant.probes.cpu\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    names = [n for _, n in _imported_names(pkg / "x.py")]
    assert names == ["autoquant.launchers.vllm", "autoquant.probes.cpu"]


@pytest.mark.parametrize(("model", "gpus"), [("meta-llama/Llama-3.1-8B-Instruct", "H100-SXM:1")])
def test_plan_for_a_hub_id_imports_no_gguf_numpy_or_hub_client(model, gpus, tmp_path):
    code = (
        "import json, sys\n"
        "from autoquant.cli import main\n"
        f"rc = main(['plan', {model!r}, '--gpu', {gpus!r}, '--json'])\n"
        f"print(json.dumps({{'rc': rc, 'loaded': [m for m in {NOT_FOR_PLAN!r} if m in sys.modules]}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hf-hub"), HOME=str(tmp_path),
               AUTOQUANT_CACHE_DIR=str(tmp_path / "aq-cache"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    *plan_lines, last = proc.stdout.strip().splitlines()
    result = json.loads(last)
    assert result["rc"] == 0, proc.stderr
    assert json.loads("\n".join(plan_lines))["model"]  # it did plan
    assert result["loaded"] == [], f"plan imported {result['loaded']}"
