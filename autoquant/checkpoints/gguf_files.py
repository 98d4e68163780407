"""GGUF files: names (quant type, gguf-split shards, raw `.partNofM` splits) and header facts.

Pure: the header itself is read by `autoquant.gguf.read_header`. Name patterns are the
ones seen on the Hub (docs: /work/shared/reference/checkpoints.md A7): `-` or `.` before the quant
token, upper or lower case, bartowski/unsloth subfolders, `-00001-of-00003.gguf` gguf-split shards
(llama.cpp follows these itself), mradermacher's `.gguf.part1of2` and TheBloke's `.gguf-split-a` byte splits
(must be joined with `cat`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoquant.errors import InputError
from autoquant.gguf import KEY_MAP, LLAMA_FILE_TYPES, SkippedArray


def registry_data() -> dict[str, Any]:
    from autoquant.checkpoints.registry import _raw

    return _raw()

# Longest alternatives first so Q4_K_M wins over Q4_K, IQ4_XS over IQ4 and Q4_0_4_8 over Q4_0.
_QUANT = (
    r"UD-(?:IQ[1-4]_(?:XXS|XS|S|M|NL)|Q[2-8]_K(?:_XL|_[SMLX]L?)?)"
    r"|IQ[1-4]_(?:XXS|XS|NL|S|M)"
    r"|Q4_0_[48]_[48]"
    r"|Q[2-8]_K(?:_XL|_[SML])?"
    r"|Q[1-8]_[01]"
    r"|TQ[12]_0|MXFP4(?:_MOE)?"
    r"|BF16|FP16|F16|F32"
)
QUANT_RE = re.compile(rf"(?:^|[-._/])(?P<quant>{_QUANT})(?=$|[-._/])", re.IGNORECASE)
SHARD_RE = re.compile(r"^(?P<stem>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.gguf$", re.IGNORECASE)
PART_RE = re.compile(r"^(?P<stem>.+\.gguf)\.part(?P<i>\d+)of(?P<n>\d+)$", re.IGNORECASE)
# TheBloke's byte splits of files over 50 GB: `llama-2-70b-chat.Q6_K.gguf-split-a`, `-split-b` (count unstated)
LETTER_PART_RE = re.compile(r"^(?P<stem>.+\.gguf)-split-(?P<letter>[a-z])$", re.IGNORECASE)
# Aliases llama.cpp's quantize accepts (tools/quantize/quantize.cpp): Q4_K = Q4_K_M and so on.
QUANT_ALIASES = {"q3_k": "q3_k_m", "q4_k": "q4_k_m", "q5_k": "q5_k_m", "fp16": "f16"}
SKIP_RE = re.compile(r"(^|/)mmproj[^/]*\.gguf$|\.mmproj[^/]*\.gguf$|\.imatrix$|imatrix\.dat$", re.IGNORECASE)


@dataclass(frozen=True)
class GGUFName:
    """What a file's path says about itself."""

    path: str
    quant: str | None  # lower case, aliases resolved: "q4_k_m", "ud-q4_k_xl", "f16"
    shard: tuple[int, int] | None = None  # gguf-split (index, count), 1-based
    part: tuple[int, int] | None = None  # raw byte split (index, count), 1-based; count 0 when the name omits it
    group: str = ""  # files sharing a group form one model file


@dataclass
class GGUFVariant:
    """One quant type in a repo: a single file, a gguf-split shard set, or raw parts to `cat`."""

    quant: str
    files: list[str] = field(default_factory=list)
    kind: str = "single"  # single | split | parts
    size_bytes: int | None = None
    complete: bool = True
    problem: str = ""  # why it cannot be used as is ("" when fine)


def normalize_quant(token: str) -> str:
    """The name's quant token, lower case, llama-quantize aliases resolved ("Q4_K" -> "q4_k_m")."""
    q = token.lower()
    return QUANT_ALIASES.get(q, q)


@functools.lru_cache(maxsize=1)
def _file_types() -> frozenset[str]:
    """llama.cpp file type names (gguf.LlamaFileType, as autoquant.gguf.types tabulates them), lower case: what a
    header's general.file_type can say."""
    return frozenset(_type_name(name) for name in LLAMA_FILE_TYPES.values())


def base_type(quant: str) -> str:
    """The llama.cpp file type a name-only variant is (data: checkpoints.yaml gguf_name_variants):
    bartowski's Q4_K_L is a Q4_K_M file with Q8_0 embed/output, Q3_K_XL a Q3_K_L one, unsloth's
    UD-Q4_K_XL a Q4_K_M one. Real file types, and names no rule reduces to one, come back unchanged."""
    rules = registry_data().get("gguf_name_variants") or {}
    q = normalize_quant(quant)
    for prefix in rules.get("prefixes") or ():
        q = q.removeprefix(prefix)
    seen = {q}
    while q not in _file_types():
        suffix = next((s for s in rules.get("suffixes") or {} if q.endswith(s)), None)
        if suffix is None:
            return normalize_quant(quant)
        q = normalize_quant(q.removesuffix(suffix) + str(rules["suffixes"][suffix] or ""))
        if q in seen:
            return normalize_quant(quant)
        seen.add(q)
    return q


def parse_name(path: str) -> GGUFName | None:
    """The quant type and split facts of one file path, or None for non-weight files (mmproj, imatrix...)."""
    if SKIP_RE.search(path):
        return None
    name = path.rsplit("/", 1)[-1]
    shard = part = None
    stem = name
    if m := PART_RE.match(name):
        part = (int(m["i"]), int(m["n"]))
        stem = m["stem"]
    elif m := LETTER_PART_RE.match(name):
        part = (ord(m["letter"].lower()) - ord("a") + 1, 0)
        stem = m["stem"]
    elif m := SHARD_RE.match(name):
        shard = (int(m["i"]), int(m["n"]))
        stem = m["stem"] + ".gguf"
    elif not name.lower().endswith(".gguf"):
        return None
    # Search the file name first, then the folder (bartowski's `Q8_0/...-00001-of-00002.gguf`).
    quant = None
    for text in (stem, path):
        found = QUANT_RE.findall(text)
        if found:
            quant = normalize_quant(found[-1])
            break
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    group = f"{folder}/{stem}".lower() if folder else stem.lower()
    return GGUFName(path=path, quant=quant, shard=shard, part=part, group=group)


def group_variants(files: Iterable[str | tuple[str, int | None]]) -> dict[str, GGUFVariant]:
    """Group a repo's file list (paths, or (path, size) pairs) into one variant per quant type.

    When a type appears more than once (a single file and a split copy), the single file wins.
    """
    sizes: dict[str, int | None] = {}
    names: list[GGUFName] = []
    for item in files:
        path, size = (item, None) if isinstance(item, str) else item
        parsed = parse_name(path)
        if parsed and parsed.quant:
            names.append(parsed)
            sizes[path] = size
    groups: dict[str, list[GGUFName]] = {}
    for n in names:
        groups.setdefault(n.group, []).append(n)
    variants: dict[str, GGUFVariant] = {}
    for members in groups.values():
        members.sort(key=lambda n: (n.shard or n.part or (1, 1))[0])
        first = members[0]
        files_sorted = [n.path for n in members]
        size_list = [sizes.get(p) for p in files_sorted]
        size = sum(s for s in size_list if s is not None) if all(s is not None for s in size_list) else None
        if first.part:
            # a letter split does not say its count: as many as its last letter says (b missing from a, c: 2 of 3)
            expected = first.part[1] or max(n.part[0] for n in members if n.part)
            kind = "parts"
        elif first.shard:
            expected = first.shard[1]
            kind = "split"
        else:
            expected = 1
            kind = "single"
        complete = len(members) == expected
        v = GGUFVariant(quant=first.quant or "", files=files_sorted, kind=kind, size_bytes=size, complete=complete)
        if not complete:
            v.problem = f"incomplete {kind}: {len(members)} of {expected} files present"
        elif kind == "parts":
            v.problem = (
                f"raw byte split ({expected} part files): needs `cat` merge into one .gguf before "
                "llama.cpp or vLLM can load it"
            )
        current = variants.get(v.quant)
        if current is None or _rank(v) < _rank(current):
            variants[v.quant] = v
    return variants


def _rank(v: GGUFVariant) -> tuple[int, int]:
    order = {"single": 0, "split": 1, "parts": 2}
    return (0 if v.complete else 1, order[v.kind])


# --- header facts (the reader is autoquant.gguf.read_header) ----------------------------------


def _type_name(name: str) -> str:
    return "f32" if name == "ALL_F32" else name.removeprefix("MOSTLY_").lower()


def file_type_name(file_type: Any) -> str | None:
    """`general.file_type` as a lower-case quant name (15 -> "q4_k_m"), None when missing or unknown."""
    from autoquant.quantconfig import gguf_type_name

    try:
        return gguf_type_name(int(file_type)).lower() if file_type is not None else None
    except (InputError, TypeError, ValueError):
        return None


# The header keys verification compares against the base model, as ModelSpec field <- GGUF "<arch>.<key>".
COMPARED = {"num_layers": "block_count", "hidden_size": "embedding_length", "num_heads": "attention.head_count",
            "num_kv_heads": "attention.head_count_kv", "vocab_size": "vocab_size"}


def header_facts(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What verification compares: architecture, quant type and the COMPARED dimensions (keys from KEY_MAP)."""
    arch = meta.get("general.architecture")
    facts: dict[str, Any] = {"architecture": arch, "quant": file_type_name(meta.get("general.file_type"))}
    for field_name, key in COMPARED.items():
        assert key in KEY_MAP, key  # one key table: autoquant.gguf.KEY_MAP
        facts[field_name] = meta.get(f"{arch}.{key}") if arch else None
    vocab = meta.get("tokenizer.ggml.tokens")
    if facts["vocab_size"] is None and isinstance(vocab, (list, SkippedArray)):
        facts["vocab_size"] = vocab.count if isinstance(vocab, SkippedArray) else len(vocab)
    return facts
