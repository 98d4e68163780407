"""Parse `python -m sglang.launch_server` argument lists with the installed SGLang's own parser.

    scripts/vllm-env.sh && scripts/sglang-env.sh
    echo '[["--model-path", "m", "--tp-size", "2"]]' | \
        PYTHONPATH=.sglang-parser .venv-vllm/bin/python scripts/sglang_contract.py

Reads a JSON list of argv lists on stdin, each the arguments after `python -m sglang.launch_server`; writes one
JSON object: {"version", "option_strings", "results": [{"ok", "error", "args": {dest: value for the flags
given}, "deprecated": [the deprecated options given]}]}.

The parser is the one `sglang.srt.server_args.prepare_server_args` builds (a plain argparse.ArgumentParser with
`ServerArgs.add_cli_args`); a parsed namespace is also turned into a `ServerArgs` record
(`ServerArgs.from_cli_args`, unresolved: resolution needs the model and a GPU). SGLang's parser has argparse's
allow_abbrev on, so `--tp 2` parses as `--tp-size 2`; autoquant promises full spellings, so an argv that
parses but spells an option by a prefix (or one argparse reads only as a prefix, e.g. `--tp=2`) is reported
as an error too. Which tokens are option strings is what argparse itself decides (its `_parse_optional`),
so a value such as `-1` is not taken for an option.

Standalone on purpose: it imports only SGLang and the standard library, not autoquant. SGLang's full
dependency set (its own torch pin among them) is not needed: `scripts/sglang-env.sh` installs sglang with
--no-deps next to vLLM's virtual environment, whose torch the server_args imports reach.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout


def _parser() -> argparse.ArgumentParser:
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser(prog="sglang serve")  # as prepare_server_args builds it
    ServerArgs.add_cli_args(parser)
    return parser


def _action_of(parsed):
    """The action in argparse's _parse_optional result: (action, ...) (3.11) or [(action, ...), ...] (3.12+)."""
    if isinstance(parsed, list):
        parsed = parsed[0] if len(parsed) == 1 else None
    return parsed[0] if isinstance(parsed, tuple) and parsed else None


def _deprecated(action: argparse.Action) -> bool:
    return type(action).__name__.startswith("Deprecated") or (action.help or "").lower().startswith("deprecated")


def _parse(parser: argparse.ArgumentParser, argv: list[str], server_args_cls) -> dict:
    full = parser._option_string_actions  # every full option string -> its action
    optionals: list[tuple[str, argparse.Action | None]] = []
    original = parser._parse_optional

    def recording(arg_string):
        parsed = original(arg_string)
        if parsed is not None:  # argparse reads this token as an option (known, a prefix, or unknown)
            optionals.append((arg_string, _action_of(parsed)))
        return parsed

    sink = io.StringIO()
    parser._parse_optional = recording
    try:
        with redirect_stderr(sink), redirect_stdout(sink):
            ns = parser.parse_args(argv)
            server_args_cls.from_cli_args(ns)
    except SystemExit:
        lines = sink.getvalue().strip().splitlines()
        return {"ok": False, "error": lines[-1] if lines else "exit", "args": {}, "deprecated": []}
    except Exception as exc:  # a parser-time ValueError, a record that does not construct
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "args": {}, "deprecated": []}
    finally:
        del parser._parse_optional  # back to the class's method
    given = [a for a, _ in optionals]
    abbreviated = [a for a in given if a.split("=", 1)[0] not in full]
    if abbreviated:
        spelled = [(a, act.option_strings[0]) for a, act in optionals if a in abbreviated and act is not None]
        shown = ", ".join(f"{a} (read as {name})" for a, name in spelled) or ", ".join(abbreviated)
        return {"ok": False, "error": f"not a full option string: {shown}", "args": {}, "deprecated": []}
    actions = [full[a.split("=", 1)[0]] for a in given]
    args = {act.dest: getattr(ns, act.dest) for act in actions if hasattr(ns, act.dest)}
    deprecated = sorted({a.split("=", 1)[0] for a, act in zip(given, actions, strict=True) if _deprecated(act)})
    return {"ok": True, "error": "", "args": json.loads(json.dumps(args, default=str)), "deprecated": deprecated}


def main() -> int:
    argvs = json.load(sys.stdin)
    sink = io.StringIO()
    with redirect_stderr(sink), redirect_stdout(sink):  # import-time warnings must not reach the JSON
        import sglang
        from sglang.srt.server_args import ServerArgs

        parser = _parser()
    results = [_parse(parser, list(argv), ServerArgs) for argv in argvs]
    json.dump({
        "version": getattr(sglang, "__version__", None),
        "option_strings": sorted(parser._option_string_actions),
        "results": results,
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
