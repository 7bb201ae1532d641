"""``gcpbench.benchmark(model, "imagenet-c", data=...)``: one call from a model to its typed
result, as RobustBench's ``benchmark`` offers; the same engine, files and identity as the
command line (``eval-imagenet``, ``eval-c``, ``eval-p``).

``model`` is a checkpoint path or a model built by :func:`gcpbench.build` (kept in memory: it is
saved once as ``OUT/model.pt``, the file the result's identity fingerprints). Results are
written to ``out`` (default: ``runs/benchmark_<model>_<weights digest>``); a second call with
the same weights resumes there, other weights are refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

from gcpbench.errors import GcpbenchError, api_spelling
from gcpbench.records import CorruptionResult, EvalResult, ImageNetResult, PerturbationResult

BENCHMARKS: dict[str, type[EvalResult]] = {"imagenet": ImageNetResult, "imagenet-c": CorruptionResult,
                                           "imagenet-p": PerturbationResult}


def _weights_digest(model) -> str:
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def _checkpoint_for(model, out: Path | None) -> tuple[Path, Path]:
    """(checkpoint file, run directory) of an in-memory model: saved once, reused when equal."""
    import torch

    from gcpbench.models.weights import read_checkpoint, save_checkpoint
    from gcpbench.runs import DEFAULT_ROOT

    name = getattr(model, "zoo_name", None)
    if name is None:
        raise GcpbenchError("model must be built by gcpbench.build (or be a checkpoint path): it carries its name")
    out = Path(out) if out is not None else DEFAULT_ROOT / f"benchmark_{name.replace('/', '-')}_{_weights_digest(model)}"
    path = out / "model.pt"
    if path.is_file():
        stored = read_checkpoint(path)["state_dict"]
        state = model.state_dict()
        same = stored.keys() == state.keys() and all(torch.equal(stored[k], state[k].detach().cpu()) for k in state)
        if not same:
            raise GcpbenchError(f"out='{out}' holds results of other weights ({path}); pass another out")
    else:
        save_checkpoint(path, model, name)
    return path, out


def benchmark(model: Any, name: str, data: str | os.PathLike | None = None, *, out: str | os.PathLike | None = None,
              **options: Any) -> EvalResult:
    """Evaluate ``model`` on ``name`` ("imagenet", "imagenet-c" or "imagenet-p") and return the
    typed record (:class:`~gcpbench.records.ImageNetResult`, :class:`~gcpbench.records.CorruptionResult`,
    :class:`~gcpbench.records.PerturbationResult`). ``data``: the dataset root (None: the
    built-in synthetic set); ``options``: the request's fields (``corruptions``, ``severities``,
    ``subset``, ``batch_size``, ``workers``, ``device``, ``clean_error``, ``difficulty``, ...;
    eval-imagenet's keyword arguments for "imagenet")."""
    with api_spelling():
        key = str(name).lower()
        if key not in BENCHMARKS:
            raise GcpbenchError(f"unknown benchmark '{name}': use one of {', '.join(BENCHMARKS)}")
        if isinstance(model, (str, os.PathLike)):
            checkpoint, run_out = Path(model), (Path(out) if out is not None else None)
        else:  # evaluated from the saved file: the result's identity is that file's fingerprint
            checkpoint, run_out = _checkpoint_for(model, out)
        options = {"quiet": True, **options}
        if key == "imagenet":
            from gcpbench.evaluate import eval_imagenet

            _, path = eval_imagenet(checkpoint, data, run_out, **options)
            return ImageNetResult.read(path)
        from gcpbench.robustness import imagenet_c, imagenet_p

        module, request_type = (imagenet_c, imagenet_c.CRequest) if key == "imagenet-c" else (imagenet_p, imagenet_p.PRequest)
        known = {f.name for f in dataclasses.fields(request_type)} - {"checkpoint", "data"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise GcpbenchError(f"benchmark '{key}' takes no argument '{unknown[0]}'; it takes: {', '.join(sorted(known))}")
        request = request_type(checkpoint=checkpoint, data=Path(data) if data is not None else None, **options)
        evaluate = module.evaluate_c if key == "imagenet-c" else module.evaluate_p
        _, run = evaluate(request, run_out)
        return run.read_result(BENCHMARKS[key])
