"""The `autoquant` command line: a thin adapter over the library.

Subcommands are declared once, in COMMANDS. Only the selected command's module is imported, so
`autoquant --help` stays fast and never imports an engine. Each command module exposes
`add_arguments(parser)`, `run(args) -> int`, and optionally `ACCEPTS_EXTRA_ARGS = True` (serve passes
unknown flags through to the engine). Errors are turned into one line here, and only here: secrets (the
values of secret flags on the command line, of secret variables, URL credentials) masked, control characters
escaped, long input clipped (output.say).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from autoquant import __version__
from autoquant.errors import AutoquantError, UsageError, describe
from autoquant.secrets import redact_tokens, scrub, secret_values

# name -> (module, one-line help). Names are a contract (design.md): add freely, rename nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "probe": ("autoquant.commands.probe", "describe this node: GPUs, interconnect, CPU, memory, limits"),
    "model-info": ("autoquant.commands.model_info", "describe a model: architecture, size, KV geometry"),
    "plan": ("autoquant.commands.plan", "choose engine, quantization, kernel and parallelism"),
    "estimate": ("autoquant.commands.estimate", "evaluate one fixed configuration"),
    "explain": ("autoquant.commands.explain", "the reasoning behind a plan, in words"),
    "profile": ("autoquant.commands.profile", "a workload profile from a traffic sample"),
    "checkpoints": ("autoquant.commands.checkpoints", "pre-quantized checkpoints for a model, verified"),
    "pull": ("autoquant.commands.pull", "download the checkpoint a plan would use"),
    "serve": ("autoquant.commands.serve", "probe, plan, resolve and launch the engine"),
    "bench": ("autoquant.commands.bench", "measure a running server: latency, throughput, goodput under load"),
    "validate": ("autoquant.commands.validate", "compare a candidate's quality with a reference on your text"),
    "calibrate": ("autoquant.commands.calibrate", "measure a running server and calibrate the planner with it"),
    "ollama": ("autoquant.commands.ollama", "the plan as an Ollama Modelfile (llama.cpp's GGUF, context, threads, layers)"),
    "k8s": ("autoquant.commands.k8s", "the plan as Kubernetes manifests: a Deployment, or a LeaderWorkerSet across nodes"),
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (one line, exit 2 from main) instead of printed."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)

    def _get_values(self, action, arg_strings):  # type: ignore[override]
        # Python < 3.12 drops a '--' given as an option's value (`--isl=--`) and stores [] without calling the
        # option's type: refuse it here, as later Pythons do.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)


def build_parser(selected: str | None) -> Parser:
    parser = Parser(
        prog="autoquant",
        description="Right engine, quantization, kernel and parallelism for this node and its traffic.",
        # the top parser only: the examples keep their lines (the commands' own help is wrapped as before)
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  autoquant serve\n"
            "      CPU only: serve the demo model (base Gemma 3 270M, autoquant[demo]) through llama.cpp\n"
            "  autoquant plan meta-llama/Llama-3.1-70B-Instruct --gpu H100-SXM:2 --concurrency 128\n"
            "      the plan for a machine you are not on (offline: from the bundled catalog)\n"
            "  autoquant serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 8192 --dry-run\n"
            "      a `vllm serve` line as it is: the plan and the exact engine command, nothing started\n"
            "\n"
            "`autoquant COMMAND --help` lists a command's options."
        ),
    )
    parser.add_argument("--version", action="version", version=f"autoquant {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(module_name)
            module.add_arguments(cmd_parser)
            cmd_parser.set_defaults(_module=module)
    return parser


def _selected_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg in COMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def _unrecognized(extra: Sequence[str]) -> str:
    # `plan MODEL --api-key sk-...`: name the flag, never its value
    return f"unrecognized arguments: {' '.join(redact_tokens(extra))}"


def _argv_secrets(argv: Sequence[str]) -> list[str]:
    """The secrets argparse or a command may quote back from the command line. A value that looks like a
    short-option cluster is quoted in part: `--hf-token -hfX` reads as -h with 'fX' attached."""
    found = secret_values(argv)
    return found + [v[2:] for v in found if v.startswith("-") and not v.startswith("--") and len(v) > 2]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("AUTOQUANT_DEBUG") == "1"
    try:
        parser = build_parser(_selected_command(argv))
        args, extra = parser.parse_known_args(argv)
        module = getattr(args, "_module", None)
        if module is None:
            if extra:
                raise UsageError(_unrecognized(extra))
            parser.print_help()
            return 0 if not argv or argv == ["--debug"] else 2
        if extra and not getattr(module, "ACCEPTS_EXTRA_ARGS", False):
            raise UsageError(_unrecognized(extra))
        args.extra_args = extra
        return int(module.run(args) or 0)
    except SystemExit:
        raise
    except BrokenPipeError:
        # `autoquant ... | head` closed the pipe: not an error. Point stdout at /dev/null so the
        # interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except BaseException as exc:  # the one place exceptions become user messages
        from autoquant.output import say

        secrets = _argv_secrets(argv)
        message = describe(exc)
        if message is None or debug:
            sys.stderr.write(scrub(traceback.format_exc(), secrets))
        if message is None:
            message = f"internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)"
        say(f"error: {message}", secrets)
        if isinstance(exc, KeyboardInterrupt):
            return 130
        return exc.exit_code if isinstance(exc, AutoquantError) else AutoquantError.exit_code
