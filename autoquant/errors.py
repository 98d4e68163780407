"""User-facing errors, and the one place that turns any exception into a one-line message.

Every error a user can cause (bad flag, bad file, a configuration the rules rule out) raises an
`AutoquantError`; `cli.main` prints `autoquant: error: <message>` and exits 2. `describe` also
maps the known library exceptions (JSON, YAML, the Hub, records) so no traceback leaks.
"""

from __future__ import annotations

import json
import re

# The longest message line printed: a 100k-character argument must not make a 100 KB error line.
MESSAGE_LIMIT = 500
# C0 and C1 controls (\n, \r, ESC), U+2028/U+2029 (line and paragraph separators) and the bidi embedding,
# override and isolate characters, which reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class AutoquantError(Exception):
    """An error the user can act on. Its message is one line that says what and how to fix it."""

    exit_code = 2


class UsageError(AutoquantError):
    """Bad command-line usage (unknown flag, missing argument, conflicting options)."""


class InputError(AutoquantError):
    """A file, model id or record that cannot be read or does not have the needed shape."""


class RuleError(AutoquantError):
    """A configuration that the compatibility rules rule out; the message carries the rule's reason."""


class NotFoundError(AutoquantError):
    """Something asked for (a model offline, a checkpoint, a GPU name) that is not known here."""


class EngineError(AutoquantError):
    """An engine could not be started or exited with an error."""


def describe(exc: BaseException) -> str | None:
    """One line for a known exception, or None for a bug (which then gets a traceback)."""
    from autoquant.records.serde import RecordError

    if isinstance(exc, AutoquantError):
        return _one_line(str(exc))
    if isinstance(exc, RecordError):
        return _one_line(f"malformed record: {exc}")
    if isinstance(exc, json.JSONDecodeError):
        return _one_line(f"malformed JSON: {exc}")
    try:
        import yaml

        if isinstance(exc, yaml.YAMLError):
            return _one_line(f"malformed YAML: {exc}")
    except ImportError:  # pragma: no cover - pyyaml is a core dependency
        pass
    hub = _describe_hub_error(exc)
    if hub:
        return hub
    if isinstance(exc, FileNotFoundError):
        return _one_line(f"no such file: {exc.filename or exc}")
    if isinstance(exc, PermissionError):
        return _one_line(f"permission denied: {exc.filename or exc}")
    if isinstance(exc, IsADirectoryError):
        return _one_line(f"{exc.filename or exc} is a directory: give a file")
    if isinstance(exc, NotADirectoryError):
        return _one_line(f"not a directory: {exc.filename or exc}")
    if isinstance(exc, OSError):  # any other failure to read or write a file (disk, device, limits)
        where = f"{exc.filename}: " if exc.filename else ""
        return _one_line(f"{where}{exc.strerror or exc}")
    if isinstance(exc, UnicodeDecodeError):
        return _one_line(f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}): is it the right file?")
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return None


def _describe_hub_error(exc: BaseException) -> str | None:
    mod = type(exc).__module__ or ""
    if not mod.startswith("huggingface_hub"):
        return None
    name = type(exc).__name__
    if name == "GatedRepoError":
        return _one_line(
            f"the repository is gated: accept its licence on the Hub and set HF_TOKEN ({_first_line(exc)})"
        )
    if name == "RepositoryNotFoundError":
        return _one_line(
            f"repository not found on the Hub (if it is private or gated, set HF_TOKEN): {_first_line(exc)}"
        )
    if name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
        return _one_line(f"the Hub is offline here and the file is not cached: {_first_line(exc)}")
    return _one_line(f"Hugging Face Hub error: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` made safe to print as one line: control characters escaped as repr does (a newline in a model
    name shows as \\n instead of starting a forged `autoquant: error:` line), and clipped to `limit`
    characters, keeping its head and tail."""
    return clip(escape_controls(text.strip()), limit)


def escape_controls(text: str) -> str:
    """Line breaks, terminal escapes and bidi overrides written out (repr-style); other text unchanged."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)


def shown(value: object, limit: int = 40) -> str:
    """A value as a message quotes it: repr() for a string, str() otherwise, and long ones (a 5,000-digit
    number, a 100 kB argument) cut to `limit` characters with their length, so the message stays readable."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else f"{clip(text, limit)} ({len(text):,} characters)"


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` cut to at most `limit` characters: two thirds head, one third tail, an ellipsis between."""
    if len(text) <= limit:
        return text
    head = (limit - 1) * 2 // 3
    return f"{text[:head]}\u2026{text[len(text) - (limit - 1 - head):]}"
