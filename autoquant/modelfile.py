"""Ollama Modelfiles: written from lines, and read back the way Ollama reads them, against Ollama's own syntax
(autoquant/data/ollama-modelfile.yaml, transcribed from Ollama's parser/parser.go and api/types.go).

Pure: no files, no processes. `render` writes a Modelfile and refuses to return one that `check` faults, so
autoquant never writes a Modelfile `ollama create` would refuse. `check` is a port of Ollama's ParseFile (the
state machine: instruction, PARAMETER name, MESSAGE role, values to the end of the line unless quoted) and of
FormatParams (each parameter's Go type), returning one problem per line it would fail on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

COMMENT = "#"


@functools.cache
def syntax() -> Mapping[str, Any]:
    """The Modelfile syntax data (instructions, parameters with their types, names, the server facts)."""
    from autoquant.data import load

    return load("ollama-modelfile")


def ollama_version() -> str:
    return str(syntax()["ollama"]["version"])


@dataclass(frozen=True)
class Line:
    """One Modelfile line: a comment (instruction "#"), or an instruction with its value; `name` is PARAMETER's
    parameter or MESSAGE's role."""

    instruction: str
    value: str
    name: str = ""


def comment(text: str) -> Line:
    return Line(COMMENT, text)


def instruction(name: str, value: str) -> Line:
    return Line(name.upper(), value)


def parameter(name: str, value: object) -> Line:
    return Line("PARAMETER", str(value), name)


class ModelfileError(ValueError):
    """A Modelfile Ollama would refuse (check's problems, one per line)."""


def render(lines: Iterable[Line]) -> str:
    """The Modelfile text of `lines`, values quoted as Ollama's own writer quotes them (Command.String). Raises
    ModelfileError for a value no Modelfile can hold, or a result check() faults."""
    out: list[str] = []
    for line in lines:
        if line.instruction == COMMENT:
            out.extend(f"# {part}".rstrip() for part in line.value.splitlines() or [""])
        elif line.instruction == "FROM":
            if "\n" in line.value or line.value != line.value.strip() or line.value.startswith('"'):
                raise ModelfileError(f"FROM {line.value!r}: a FROM value is one line without surrounding blanks")
            out.append(f"FROM {line.value}")
        elif line.instruction in ("PARAMETER", "MESSAGE"):
            out.append(f"{line.instruction} {line.name} {quote(line.value)}")
        else:
            out.append(f"{line.instruction} {quote(line.value)}")
    text = "\n".join(out) + "\n"
    problems = check(text)
    if problems:
        raise ModelfileError("; ".join(problems))
    return text


def quote(value: str) -> str:
    """A value as ParseFile reads it back: bare when it is one line without surrounding blanks, else in "...", or
    in triple quotes when it holds a double quote (parser.go quote, plus a value that starts with a quote, which
    unquote would otherwise strip)."""
    if value and "\n" not in value and value == value.strip() and not value.startswith('"'):
        return value
    if '"""' in value:
        raise ModelfileError(f"{value[:40]!r}...: a Modelfile value cannot hold three double quotes in a row")
    return f'"""{value}"""' if '"' in value else f'"{value}"'


# -- reading, as Ollama's parser/parser.go ParseFile does --------------------------------------------------------
@dataclass(frozen=True)
class Command:
    line: int  # where it starts, 1-based
    instruction: str  # lower case: from, parameter, template, ...
    name: str  # PARAMETER's parameter, MESSAGE's role, else ""
    value: str  # unquoted


def parse(text: str) -> tuple[list[Command], list[str]]:
    """(the commands, the problems ParseFile would stop at) of a Modelfile's text."""
    data = syntax()
    known = {k.lower() for k in data["instructions"]}
    blanks = tuple(data["syntax"]["blanks"])
    commands: list[Command] = []
    problems: list[str] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch in blanks or ch in "\r\n":
            line += ch == "\n"
            i += 1
            continue
        if ch == data["syntax"]["comment"]:
            while i < n and text[i] != "\n":
                i += 1
            continue
        start = line
        j = i
        while j < n and text[j].isascii() and text[j].isalpha():
            j += 1
        word = text[i:j]
        if j >= n or text[j] not in blanks or word.lower() not in known:
            problems.append(f"line {start}: {word or text[i]!r} is not an instruction ("
                            f"{', '.join(k.upper() for k in sorted(known))}), or has no value after a blank")
            return commands, problems
        kind = word.lower()
        i = j + 1
        name = ""
        if kind in ("parameter", "message"):
            j = i
            allowed = (lambda c: c.isascii() and (c.isalnum() or c == "_")) if kind == "parameter" else (
                lambda c: c.isascii() and c.isalpha())
            while j < n and allowed(text[j]):
                j += 1
            if j >= n or text[j] not in blanks:
                problems.append(f"line {start}: {word.upper()} {text[i:j]!r} needs a value after a blank")
                return commands, problems
            name = text[i:j]
            if kind == "message" and name not in data["message_roles"]:
                problems.append(f"line {start}: MESSAGE role {name!r} is not one of {', '.join(data['message_roles'])}")
                return commands, problems
            i = j + 1
        # the value: to the end of a line at which the text so far unquotes (a quote may span lines)
        buffer = ""
        while True:
            end = text.find("\n", i)
            chunk = text[i:] if end < 0 else text[i:end]
            buffer += chunk
            value, closed = unquote(buffer.strip())
            if closed or end < 0:
                break
            buffer += "\n"
            line += 1
            i = end + 1
        i = n if end < 0 else end
        if not closed:
            problems.append(f"line {start}: {word.upper()}: a quote opened here is never closed")
            return commands, problems
        commands.append(Command(start, "from" if kind == "from" else kind, name, value))
    if not any(c.instruction == "from" for c in commands):
        problems.append("no FROM line (Ollama requires one)")
    return commands, problems


def unquote(text: str) -> tuple[str, bool]:
    """parser.go unquote: (the value inside "..." or \"\"\"...\"\"\", True), a bare value as it is, or
    ("", False) while a quote is open."""
    if text.startswith('"""'):
        if len(text) >= 6 and text.endswith('"""'):
            return text[3:-3], True
        return "", False
    if text.startswith('"'):
        if len(text) >= 2 and text.endswith('"'):
            return text[1:-1], True
        return "", False
    return text, True


_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)", re.I)
_BOOL = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}  # strconv.ParseBool
_SEMVER = re.compile(r"v?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def check(text: str) -> list[str]:
    """What Ollama would refuse or drop in this Modelfile, one line each ([] = it reads as written): the
    parser's errors, then per command an unknown or deprecated parameter, a value of the wrong type
    (FormatParams), an invalid REQUIRES version, control characters (ParseFile drops them)."""
    data = syntax()
    commands, problems = parse(text)
    params = data["parameters"]
    for c in commands:
        where = f"line {c.line}"
        if _CONTROL.search(c.value):
            problems.append(f"{where}: {c.instruction.upper()} has control characters, which Ollama drops")
        if c.instruction == "parameter":
            if c.name in data["deprecated_parameters"]:
                problems.append(f"{where}: parameter {c.name} is deprecated (Ollama ignores it)")
                continue
            spec = params.get(c.name)
            if spec is None:
                problems.append(f"{where}: unknown parameter {c.name!r} (Ollama {data['ollama']['version']} "
                                f"takes {', '.join(sorted(params))})")
                continue
            bad = type_problem(spec["type"], c.value)
            if bad:
                problems.append(f"{where}: parameter {c.name} {c.value!r}: {bad}")
        elif c.instruction == "requires" and not _SEMVER.fullmatch(c.value):
            problems.append(f"{where}: REQUIRES {c.value!r} is not a semantic version (e.g. 0.14.0)")
        elif c.instruction in ("from", "adapter", "draft") and not c.value:
            problems.append(f"{where}: {c.instruction.upper()} has no value")
    seen: dict[str, int] = {}
    for c in commands:
        if c.instruction == "parameter" and not params.get(c.name, {}).get("repeatable"):
            if c.name in seen:
                problems.append(f"line {c.line}: parameter {c.name} given again (line {seen[c.name]}): the last wins")
            seen.setdefault(c.name, c.line)
    return problems


def type_problem(kind: str, value: str) -> str | None:
    """Why FormatParams would refuse `value` for a parameter of this type, or None."""
    if kind == "int":
        if not _INT.fullmatch(value) or not -(2 ** 63) <= int(value) < 2 ** 63:
            return "not an integer (strconv.ParseInt)"
    elif kind == "float":
        if not _FLOAT.fullmatch(value):
            return "not a number (strconv.ParseFloat)"
    elif kind == "bool":
        if value not in _BOOL:
            return "not a boolean (strconv.ParseBool: true, false, 1, 0, t, f)"
    elif kind != "string":
        return f"of unknown type {kind}"
    return None


# -- model names ---------------------------------------------------------------------------------------------
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def name_problem(name: str) -> str | None:
    """Why Ollama would refuse `name` as a model name ([namespace/]model[:tag]; types/model/name.go), or None."""
    limit = int(syntax()["names"]["max_len"])
    rest, _, tag = name.rpartition(":") if name.rfind(":") > name.rfind("/") else (name, "", None)
    parts = rest.split("/")
    if len(parts) > 2:
        return "at most one / (namespace/model)"
    labels = (["namespace"] if len(parts) == 2 else []) + ["model"]
    for label, part in zip(labels, parts, strict=True):
        if not _PART.fullmatch(part) or len(part) > limit or (label == "namespace" and "." in part):
            return (f"the {label} {part!r} must be 1-{limit} letters, digits, _, - or ."
                    + (" (no . in a namespace)" if label == "namespace" else "") + ", starting with a letter or digit")
    if tag is not None and (not _PART.fullmatch(tag) or len(tag) > limit):
        return f"the tag {tag!r} must be 1-{limit} letters, digits, _, - or ."
    return None


def name_for(model: str) -> str:
    """An Ollama model name for a model id or file: its last path part, without .gguf, lower case, with every
    character Ollama's names do not take turned into '-'."""
    base = model.rstrip("/").rsplit("/", 1)[-1]
    if base.lower().endswith(".gguf"):
        base = base[:-5]
    base = re.sub(r"[^a-z0-9_.-]+", "-", base.lower()).strip("-.")
    base = base[: int(syntax()["names"]["max_len"])].rstrip("-.")
    return base or "model"


def served_ids(name: str) -> list[str]:
    """The ids /v1/models lists for a model created as `name`: the name as given, and with the default tag."""
    tag = syntax()["names"]["default_tag"]
    return [name] if name.rfind(":") > name.rfind("/") else [name, f"{name}:{tag}"]
