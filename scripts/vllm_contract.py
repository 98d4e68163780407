"""Parse `vllm serve` argument lists with the installed vLLM's own parser (run under vLLM's Python).

    AUTOQUANT_VLLM_PYTHON=/opt/venv-vllm/bin/python
    echo '[["serve", "meta-llama/Llama-3.1-8B-Instruct", "-tp", "2"]]' | $AUTOQUANT_VLLM_PYTHON scripts/vllm_contract.py

Reads a JSON list of argv lists (each without the `vllm` program name, starting at `serve`) on stdin;
writes one JSON object: {"version", "quantization_methods", "kv_cache_dtypes", "results": [{"ok", "error",
"args": {dest: value for the flags given}}]}.

How the parser is built on a machine without a GPU (engine-flags.md section 6): `vllm serve --help` fails
there ("Failed to infer device type"), but `vllm.platforms` resolves the platform lazily, so a minimal
`Platform` subclass with `_enum = PlatformEnum.CUDA` and `device_type = "cuda"` assigned to
`vllm.platforms._current_platform` lets `make_arg_parser(FlexibleArgumentParser())` build the real parser.
On a GPU machine the real platform is used. Standalone on purpose: it imports only vLLM, not autoquant.
"""

from __future__ import annotations

import io
import json
import sys
import typing
from contextlib import redirect_stderr, redirect_stdout


def _parser():
    import vllm.platforms as platforms
    from vllm.platforms.interface import Platform, PlatformEnum

    try:
        real = platforms.current_platform  # resolves the real platform when there is one
        usable = bool(real.device_type) and not real.is_unspecified()
    except Exception:
        usable = False
    if not usable:  # no GPU here: stand in a CUDA platform, only the parser is built
        class _ParserOnlyCuda(Platform):
            _enum = PlatformEnum.CUDA
            device_name = "cuda"
            device_type = "cuda"

        platforms._current_platform = _ParserOnlyCuda()
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))


def main() -> int:
    import vllm
    from vllm.config.cache import CacheDType
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    argvs = json.load(sys.stdin)
    parser = _parser()
    defaults = vars(parser.parse_args(["placeholder-model"]))
    results = []
    for argv in argvs:
        args = argv[1:] if argv and argv[0] == "serve" else argv
        sink = io.StringIO()
        try:
            with redirect_stderr(sink), redirect_stdout(sink):
                ns = parser.parse_args(args)
            parsed = {k: v for k, v in vars(ns).items() if defaults.get(k) != v}
            results.append({"ok": True, "error": "", "args": json.loads(json.dumps(parsed, default=str))})
        except SystemExit:
            lines = sink.getvalue().strip().splitlines()
            results.append({"ok": False, "error": lines[-1] if lines else "exit", "args": {}})
        except Exception as exc:  # a parser-time ValueError etc.
            results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}", "args": {}})
    json.dump({
        "version": vllm.__version__,
        "quantization_methods": list(QUANTIZATION_METHODS),
        "kv_cache_dtypes": list(typing.get_args(CacheDType)),
        "results": results,
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
