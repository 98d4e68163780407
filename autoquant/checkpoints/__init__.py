"""Checkpoint resolution: from a base model and a method to a verified pre-quantized checkpoint.

`resolve(...)` lists every candidate per method (verified, flagged, or rejected with a reason) and the
one that would be used; `resolve_for_plan(...)` is the planner's view: method -> Checkpoint or None.
Sources and their order are in resolve.py; verification rules in verify.py; docs/checkpoints.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from autoquant.checkpoints.hub import HubClient, HubSettings
from autoquant.checkpoints.resolve import (
    Resolution,
    Resolver,
    base_checkpoint,
    capability_of,
    check_disk,
    how_to_make,
    validate_methods,
)
from autoquant.checkpoints.verify import Target
from autoquant.records import Checkpoint, ModelSpec

__all__ = [
    "Resolution", "Resolver", "Target", "base_checkpoint", "check_disk", "how_to_make", "resolve",
    "resolve_for_plan", "validate_methods",
]


def _base_spec(model: ModelSpec | str) -> tuple[str, ModelSpec | None]:
    if isinstance(model, ModelSpec):
        return model.id, model
    # the bundled catalog only (the core reads no files; pass a ModelSpec for a model it does not know)
    from autoquant.catalog.models import find, spec_from_catalog

    if find(model) is None:
        return model, None  # dimensions are then not compared
    return model, spec_from_catalog(model)


def resolve(model: ModelSpec | str, methods: Iterable[str] | None = None, *, node: object | None = None,
            engine: str | None = None, tp: int = 1, client: HubClient | None = None, offline: bool | None = None,
            checkpoint: str | None = None, local_dirs: Iterable[str] = (), settings: HubSettings | None = None,
            notify: Callable[[str], None] | None = None) -> Resolution:
    """All candidates for `model` per method (all methods found when `methods` is None), verified for
    `engine` at `tp` on `node`'s GPUs when given."""
    model_id, base = _base_spec(model)
    resolver = Resolver(client=client, settings=settings, offline=offline, notify=notify, local_dirs=local_dirs)
    target = Target(engine=engine, tp=tp, capability=capability_of(node))
    return resolver.resolve(model_id, base, methods, target, checkpoint)


def resolve_for_plan(model: ModelSpec, methods: Iterable[str], *, node: object | None, client: HubClient | None,
                     offline: bool | None, checkpoint: str | None = None, engine: str | None = None, tp: int = 1,
                     notify: Callable[[str], None] | None = None) -> dict[str, list[Checkpoint]]:
    """method -> the checkpoints the planner may use, best first (empty: the planner rejects the method and
    says how to make one, or, for an engine that quantizes at load time, how to ask for that).

    Each checkpoint carries its per-engine verdicts (`loadable_by`, `not_loadable`); the planner takes, per
    (engine, method), the first its engine can load. bf16/fp16 map to the base checkpoint. Registry entries
    that could not be verified offline are included flagged (verified False, status "unverified") when their
    published quant facts are recorded.
    """
    wanted = list(methods)
    res = resolve(model, wanted, node=node, engine=engine, tp=tp, client=client, offline=offline,
                  checkpoint=checkpoint, notify=notify)
    return {m: res.usable(m) for m in wanted}
