"""What a reported number is: current or stale, over the whole benchmark or not, normalised by
AlexNet's ImageNet tables or measured on other data. One function, :func:`flags`, decides it for
every result; the frames of :mod:`gcpbench.report.collect` carry its answer as ``status``
columns and every table and figure marks the numbers of a flagged row with it.

* ``stale``: the checkpoint file the result names now holds other content (its SHA-256 differs
  from the one in the result's identity; e.g. ``best.pt`` rewritten by a training that went on).
* ``partial``: a mean over a subset of the benchmark's corruptions / perturbations / severities.
* ``incomplete``: a mean over a tree that lacks files, or with unreadable files skipped.
* ``not ImageNet``: ImageNet-C / -P numbers of data not made from ImageNet's validation set
  (the built-in synthetic set, another tree), divided by AlexNet's ImageNet errors all the same:
  not comparable with published numbers.
* ``implausible``: a clean error at chance or a negative relative CE (see ``sanity`` in the summary).
"""
from __future__ import annotations

from pathlib import Path

from gcpbench.records import (
    CifarResult, CorruptionResult, DetectionResult, EvalResult, ImageNetResult, PerturbationResult, VariantResult,
)

STALE, PARTIAL, INCOMPLETE, NOT_IMAGENET, IMPLAUSIBLE = "stale", "partial", "incomplete", "not ImageNet", "implausible"
IMAGENET_SOURCE = "imagenet-val"
COMMANDS = {ImageNetResult: "eval-imagenet", VariantResult: "eval-imagenet --variant ...", CorruptionResult: "eval-c",
            PerturbationResult: "eval-p", CifarResult: "eval-cifar", DetectionResult: "detect"}


def current_fingerprint(result: EvalResult) -> str | None:
    """The SHA-256 the checkpoint file named by ``result``'s identity holds now, when it differs
    from the one the result was computed from (None when it matches or cannot be told: no
    identity, or the file is gone)."""
    from gcpbench.identity import fingerprint

    identity = result.identity
    if identity is None or not identity.producer.sha256 or not identity.producer.checkpoint:
        return None
    path = Path(identity.producer.checkpoint)
    try:
        now = fingerprint(path) if path.is_file() else None
    except OSError:
        return None
    return now if now is not None and now != identity.producer.sha256 else None


def _not_imagenet(result: CorruptionResult | PerturbationResult) -> bool:
    if result.source_kind is not None:
        return result.source_kind != IMAGENET_SOURCE
    from gcpbench.data.manifests import canonical_name  # results written before the source was recorded
    from gcpbench.errors import GcpbenchError

    try:
        name = canonical_name(str(result.dataset or ""))
    except GcpbenchError:
        return True
    return name not in ("imagenet-c", "imagenet-p")


def flags(result: EvalResult | None) -> list[str]:
    """The status flags of ``result`` (empty: a plain number)."""
    if result is None:
        return []
    found = [STALE] if current_fingerprint(result) is not None else []
    if getattr(result, "partial", False):
        found.append(PARTIAL)
    if getattr(result, "missing_images", 0) or result.extra.get("unreadable_count"):
        found.append(INCOMPLETE)
    if isinstance(result, (CorruptionResult, PerturbationResult)) and _not_imagenet(result):
        found.append(NOT_IMAGENET)
    if result.extra.get("sanity"):
        found.append(IMPLAUSIBLE)
    return found


def status(result: EvalResult | None) -> str:
    """The flags as one cell: ``"stale, partial"``, or ``""`` for a plain number."""
    return ", ".join(flags(result))


def stale_warning(result: EvalResult, path: Path) -> str | None:
    """The report's warning for a stale result: what changed and how to refresh it."""
    now = current_fingerprint(result)
    if now is None:
        return None
    producer = result.identity.producer
    command = COMMANDS.get(type(result), "the evaluation")
    return (f"{path}: computed from checkpoint {producer.sha256[:12]}, but '{producer.checkpoint}' now holds "
            f"{now[:12]}: its numbers are marked stale; refresh them with `gcpbench {command} --ckpt "
            f"{producer.checkpoint}` (same options)")


def marked(value: str, state: str) -> str:
    """A displayed value with its flags: ``74.09 [stale, partial]``."""
    return f"{value} [{state}]" if state else value
