"""What produced a number: the model, its checkpoint (path and content fingerprint), the data
and the options. Every result file stores this identity; resume logs are keyed by it; a run
directory accepts only results of its own model and checkpoints."""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from gcpbench.errors import GcpbenchError

if TYPE_CHECKING:
    from gcpbench.records import RunConfig

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
    from gcpbench.models.external import model_identity
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
    """A producer plus the data and the options that shape a result."""

    producer: Producer
    data_root: str | None
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        producer = asdict(self.producer)
        if producer["gcp"] is None:
            del producer["gcp"]  # GAP / default iSQRT-COV: the identity of earlier versions
        return {**producer, "data_root": self.data_root, "options": dict(sorted(self.options.items()))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultIdentity:
        """The identity stored by :meth:`as_dict` (missing parts read as None)."""
        gcp = data.get("gcp")
        producer = Producer(str(data.get("model") or ""), str(data.get("checkpoint") or ""), data.get("sha256"),
                            data.get("run_id"), dict(gcp) if isinstance(gcp, Mapping) else None)
        options = data.get("options")
        return cls(producer, data.get("data_root"), dict(options) if isinstance(options, Mapping) else {})

    @property
    def key(self) -> str:
        """A short, stable hash of the whole identity (stamped on resume records)."""
        text = json.dumps(self.as_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _inside(path: str, folder: Path) -> bool:
    return Path(path).parent == folder.resolve()


def check_run_accepts(run_path: str | os.PathLike, config: RunConfig | None, producer: Producer, what: str) -> None:
    """Refuse (one line) to file ``what`` of ``producer`` into a run directory of another model,
    of another training run, or of another checkpoint. ``config`` is the run's typed config.json
    (None for a new directory, which accepts anything)."""
    from gcpbench.records import TrainConfig

    if config is None:
        return
    run_path = Path(run_path)
    elsewhere = "write them to another directory with --out"
    owner = config.model
    if owner and owner != producer.model:
        raise GcpbenchError(f"'{run_path}' holds results of {owner}; {what} of {producer.model} (checkpoint "
                            f"'{producer.checkpoint}') cannot be filed there: {elsewhere}")
    if isinstance(config, TrainConfig):
        own = (producer.run_id is not None and producer.run_id == config.run_id) or \
            _inside(producer.checkpoint, run_path / "checkpoints")
        if not own:
            raise GcpbenchError(f"'{run_path}' is a training run and '{producer.checkpoint}' is not one of its "
                                f"checkpoints; {what} of it cannot be filed there: {elsewhere}")
        return
    stored = config.checkpoint_sha256
    if stored and stored != producer.sha256:
        raise GcpbenchError(f"'{run_path}' holds results of checkpoint {stored[:12]} ('{config.checkpoint}'); "
                            f"{what} of checkpoint {producer.sha256[:12]} ('{producer.checkpoint}') cannot be filed "
                            f"there: {elsewhere}")
