"""A validation dataset: JSONL with a `text` field per line, or a plain-text file (read whole)."""

from __future__ import annotations

from pathlib import Path

from autoquant import jsonio
from autoquant.errors import InputError

SEPARATOR = "\n\n"  # between JSONL records, as the texts are scored as one stream (llama-perplexity does the same)


def load_text(path: str) -> str:
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such dataset file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a dataset file (JSONL with a 'text' field, or text)") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text (a dataset is JSONL with a 'text' field, or plain text)") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if p.suffix.lower() in (".jsonl", ".ndjson") or raw.lstrip().startswith("{"):
        texts = []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = jsonio.loads(line, f"{path} line {n}")
            except InputError as exc:
                raise InputError(f"{exc}; a dataset is JSONL with a 'text' field per line, or plain text (.txt)") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise InputError(f"{path} line {n}: no 'text' string field")
            if row["text"].strip():
                texts.append(row["text"])
        text = SEPARATOR.join(texts)
    else:
        text = raw
    if not text.strip():
        raise InputError(f"{path} holds no text to score")
    return text
