"""What produced a number: the model, its checkpoint (path and content fingerprint), the data
and the options. Every result file stores this identity; resume logs are keyed by it; a run
directory accepts only results of its own model and checkpoints
(:func:`gcpbench.runs.check_run_accepts`)."""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gcpbench.errors import GcpbenchError

CHUNK = 1 << 20


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (cached per path, size and modification time)."""
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def gcp_identity(model: str, options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``{"norm": ..., **options}`` of ``model``'s GCP head with ``options`` (defaults filled);
    None for GAP models and for iSQRT-COV with default options."""
    from gcpbench.models.registry import model_identity
    from gcpbench.pooling.registry import DEFAULT_NORM

    try:
        head = model_identity(model, dict(options) if isinstance(options, Mapping) else None).head
    except GcpbenchError:
        return None  # not a model name gcpbench knows (a hand-made record): nothing to add
    if not head.is_gcp or (head.norm == DEFAULT_NORM and not head.options):
        return None
    return {"norm": head.norm, **head.gcp_options()}


@dataclass(frozen=True)
class Producer:
    """The model and checkpoint that produced a result."""

    model: str
    checkpoint: str  # absolute path
    sha256: str  # content fingerprint of the checkpoint file
    run_id: str | None = None  # the training run that wrote the checkpoint (None for other files)
    # GCP normalisation and all its options ({"norm": "mpn", "power": 0.5, "eps": 1e-12}); None for
    # GAP and for iSQRT-COV with its defaults (the name says it all; their identities are unchanged)
    gcp: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, path: str | os.PathLike, model: str, checkpoint: Mapping[str, Any] | None = None) -> Producer:
        """The producer of results of ``model`` loaded from checkpoint file ``path``."""
        config = (checkpoint or {}).get("config")
        run_id = config.get("run_id") if isinstance(config, Mapping) else None
        return cls(model, str(Path(path).resolve()), fingerprint(path), run_id,
                   gcp_identity(model, (checkpoint or {}).get("gcp_options")))

    @property
    def short(self) -> str:
        """``model @ sha256[:12]`` for messages."""
        return f"{self.model} @ {self.sha256[:12]}"


@dataclass(frozen=True)
class ResultIdentity:
    """A producer plus the data and the options that shape a result.

    ``data`` says what the data is, not only where it is: ``listing`` (the listing fingerprint of
    the files read: names, sizes, modification times, :class:`gcpbench.data.walk.TreeWalk`) and,
    for a tree made by ``data make-c`` / ``make-p``, ``generation`` (its record's source, subset,
    seed, recipe and geometry). A tree regenerated at the same path is other data: a resume log
    of the old one is not reused."""

    producer: Producer
    data_root: str | None
    options: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        producer = asdict(self.producer)
        if producer["gcp"] is None:
            del producer["gcp"]  # GAP / default iSQRT-COV: the identity of earlier versions
        return {**producer, "data_root": self.data_root, "data": dict(sorted(self.data.items())),
                "options": dict(sorted(self.options.items()))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultIdentity:
        """The identity stored by :meth:`as_dict` (missing parts read as None)."""
        gcp = data.get("gcp")
        producer = Producer(str(data.get("model") or ""), str(data.get("checkpoint") or ""), data.get("sha256"),
                            data.get("run_id"), dict(gcp) if isinstance(gcp, Mapping) else None)
        options, what = data.get("options"), data.get("data")
        return cls(producer, data.get("data_root"), dict(options) if isinstance(options, Mapping) else {},
                   dict(what) if isinstance(what, Mapping) else {})

    @property
    def key(self) -> str:
        """A short, stable hash of the whole identity (stamped on resume records)."""
        text = json.dumps(self.as_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
