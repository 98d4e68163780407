"""Write a YAML schema of every `vllm serve` option, read from the installed vLLM's own parser.

    .venv-vllm/bin/python scripts/vllm_options.py            # -> autoquant/data/engine_options/vllm-<ver>.yaml
    .venv-vllm/bin/python scripts/vllm_options.py -o FILE    # another path ("-" for stdout)

Run it under vLLM's Python (scripts/vllm-env.sh makes .venv-vllm). The parser is built the same way as in
scripts/vllm_contract.py: on a machine without a GPU a parser-only CUDA platform stands in (docs/serve.md),
then `make_arg_parser(FlexibleArgumentParser())` builds the real `vllm serve` parser.

Each option is keyed by its first long option string; `aliases` are every other string the parser accepts for
the same action (`-tp`; for booleans the negative forms: vLLM's EnableDisableAction pairs `--enable-x` with
`--disable-x` and keeps the `--no-` form registered but out of --help, so those come from the parser's
option-string table, not `action.option_strings`). `negated` lists the strings that set a boolean to False.
`takes_value` is false for store_true/store_false/BooleanOptionalAction/count/store_const actions. `nargs` is
recorded when it is not None/1, `choices` when the action declares them (as strings). The positional model_tag is
listed under `positional`. -h/--help is skipped.
Standalone on purpose: it imports only vLLM (and PyYAML, a vLLM dependency), not autoquant.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# argparse actions that consume no value on the command line
_NO_VALUE = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
             argparse._AppendConstAction, argparse._CountAction, argparse.BooleanOptionalAction,
             argparse._HelpAction, argparse._VersionAction)


def _parser() -> argparse.ArgumentParser:
    """vLLM's real `vllm serve` parser, built as scripts/vllm_contract.py builds it (one construction)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from vllm_contract import _parser as contract_parser

    return contract_parser()


def _takes_value(action: argparse.Action) -> bool:
    if isinstance(action, _NO_VALUE):
        return False
    return action.nargs != 0


def _choices(action: argparse.Action) -> list[str] | None:
    if action.choices is None:
        return None
    return [str(c) for c in action.choices]


def _all_strings(parser: argparse.ArgumentParser) -> dict[int, list[str]]:
    """Every option string the parser accepts, per action: the visible ones first, then the hidden ones.

    vLLM's EnableDisableAction (its BooleanOptionalAction) shows `--enable-x/--disable-x` but keeps
    `--no-enable-x`/`--no-disable-x` registered (parsed, not in help), so `action.option_strings` is not enough.
    """
    out: dict[int, list[str]] = {}
    for action in parser._actions:
        out[id(action)] = list(action.option_strings)
    for string, action in parser._option_string_actions.items():
        strings = out.setdefault(id(action), [])
        if string not in strings:
            strings.append(string)
    return out


def _negated(action: argparse.Action, strings: list[str]) -> list[str]:
    """The option strings that set a boolean flag to False."""
    if not isinstance(action, argparse.BooleanOptionalAction):
        return []
    negative = getattr(action, "negative_option_strings", None)  # vLLM's EnableDisableAction
    if negative is not None:
        return [s for s in strings if s in negative]
    return [s for s in strings if s.startswith("--no-")]


NOTES = [
    "FlexibleArgumentParser accepts underscores for dashes in names (--max_model_len) and --name=value",
    "-O<n>, -O=<n> and -O <n> (n in 0-3) become --optimization-level <n> before parsing (there is no -O action)",
    "JSON options also take dotted keys (--compilation-config.mode 3, --limit-mm-per-prompt.image 2; key+ appends)",
    "--model MODEL is moved to the positional model_tag (deprecated); --config FILE reads options from a YAML file",
    "booleans pair --enable-x with --disable-x (vLLM EnableDisableAction); the --no-x forms still parse but are "
    "hidden from --help; negated lists the strings that set the flag to false",
]


def schema(parser: argparse.ArgumentParser, version: str) -> dict:
    options: dict[str, dict] = {}
    positional: list[str] = []
    strings_of = _all_strings(parser)
    deprecated = getattr(parser, "_deprecated", set())
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:
            positional.append(action.dest)
            continue
        strings = strings_of[id(action)]
        longs = [s for s in strings if s.startswith("--")]
        key = longs[0] if longs else strings[0]
        entry: dict = {}
        aliases = [s for s in strings if s != key]
        if aliases:
            entry["aliases"] = aliases
        entry["takes_value"] = _takes_value(action)
        if action.nargs not in (None, 1) and entry["takes_value"]:
            entry["nargs"] = str(action.nargs)
        choices = _choices(action)
        if choices is not None:
            entry["choices"] = choices
        negated = _negated(action, strings)
        if negated:
            entry["negated"] = negated
        if action in deprecated or getattr(action, "deprecated", False):
            entry["deprecated"] = True
        entry["dest"] = action.dest
        if key in options:
            raise SystemExit(f"vllm_options: {key} is declared twice in vLLM's parser")
        options[key] = entry
    return {
        "engine": "vllm",
        "version": version,
        "underscores": True,  # FlexibleArgumentParser: --max_model_len is --max-model-len
        "source": (f"vllm {version} (pip wheel): vllm/entrypoints/cli/serve.py + vllm/engine/arg_utils.py "
                   "EngineArgs.add_cli_args + vllm/entrypoints/common/cli_args.py, generated by scripts/vllm_options.py"),
        "notes": NOTES,
        "positional": positional,
        "options": options,
    }


def _dump(data: dict) -> str:
    """Block style at the top; one line per option (`--x: {takes_value: true, dest: x}`) where it fits in
    120 columns, else a block mapping of the option's fields with flow lists."""
    import yaml

    class _Flow(dict):
        pass

    class _FlowList(list):
        pass

    class _Quoted(str):
        pass

    class _Dumper(yaml.SafeDumper):
        pass

    _Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(),
                                                                    flow_style=True))
    _Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v,
                                                                         flow_style=True))
    _Dumper.add_representer(_Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style='"'))

    def dump(obj, width=100) -> str:
        return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=width, default_flow_style=False)

    head = {k: v for k, v in data.items() if k != "options"}
    head.update(version=_Quoted(head["version"]), positional=_FlowList(head["positional"]))
    parts = [dump(head), "options:\n"]
    for key in sorted(data["options"]):
        entry = data["options"][key]
        one = dump({key: _Flow(entry)}, width=10**6)
        if len(one.rstrip("\n")) + 2 <= 120:
            parts.append("  " + one)
            continue
        block = dump({key: {k: _FlowList(v) if isinstance(v, list) else v for k, v in entry.items()}}, width=100)
        parts.append("".join("  " + line + "\n" for line in block.splitlines()))
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:

    version = importlib.metadata.version("vllm")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "autoquant" / "data" / "engine_options" / f"vllm-{version}.yaml"),
                    help="where to write the YAML ('-' for stdout)")
    ns = ap.parse_args(argv)

    data = schema(_parser(), version)
    header = (f"# vLLM {version} `vllm serve` options, generated by scripts/vllm_options.py from vLLM's own parser\n"
              f"# {len(data['options'])} options. Regenerate: .venv-vllm/bin/python scripts/vllm_options.py\n")
    text = header + _dump(data)
    if ns.output == "-":
        sys.stdout.write(text)
    else:
        out = Path(ns.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"vllm_options: {len(data['options'])} options -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
