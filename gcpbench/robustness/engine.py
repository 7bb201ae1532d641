"""The one evaluation routine of the resumable benchmarks (ImageNet-C, ImageNet-P, CIFAR-10-C,
CIFAR-100-C, CIFAR-10-P): hold the result's writer lock, open the identity-keyed resume log,
stream the pending items through the model once, let the benchmark finish its records, stamp the
identity and write the summary atomically. A benchmark brings its items, a loader, a tally
(per-item callbacks that add a log record when a group is done) and a ``finish`` step."""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from gcpbench.identity import Producer, ResultIdentity
from gcpbench.io import atomic_write_json
from gcpbench.records import EvalResult
from gcpbench.robustness.resume import ResumeLog
from gcpbench.robustness.runner import Loader, Predictor, run_items
from gcpbench.robustness.trees import Item
from gcpbench.runs import RunDir, result_writer


@dataclass(frozen=True)
class ResultFiles:
    """Where one benchmark result lives in ``RUN/eval/`` and how the run directory files it."""

    result: str  # lock / result name, e.g. imagenet_c
    csv: str
    summary: str
    progress: str
    what: str  # for messages, e.g. "ImageNet-C results"
    record: type[EvalResult]  # the summary's schema (gcpbench.records)

    @property
    def names(self) -> tuple[str, str, str]:
        return self.csv, self.summary, self.progress


@dataclass(frozen=True)
class Streaming:
    """How items go through the model."""

    batch_size: int
    items_per_batch: int
    workers: int
    description: str
    quiet: bool = False


Tally = Any  # an object with item(index, logits), failed(index, reason) and group_done(key)


def evaluate_resumable(run: RunDir, files: ResultFiles, producer: Producer, identity: ResultIdentity,
                       eval_config: dict[str, Any], items: Sequence[Item], load: Loader, prep, model, device,
                       make_tally: Callable[[list[Item], ResumeLog, Any], Tally], streaming: Streaming,
                       finish: Callable[[ResumeLog, int], dict]) -> dict:
    """Evaluate (or resume) ``items`` into ``run`` and return the summary written to
    ``eval/<files.summary>``. ``make_tally(pending, log, csv_path)`` builds the per-item tally;
    ``finish(log, resumed_items)`` runs under the lock once every item is through (extra records,
    the CSV) and returns the summary's JSON, which is read as a ``files.record`` (its required
    keys checked) and stamped with the identity."""
    with result_writer(run, files.result, files.names, producer, files.what, eval_config):
        log = ResumeLog(run.eval_file(files.progress), identity)
        pending = [item for item in items if not log.done(item.group)]
        tally = make_tally(pending, log, run.eval_file(files.csv))
        if pending:
            run_items(pending, functools.partial(load, prep=prep), Predictor(model, device), on_item=tally.item,
                      on_failed=tally.failed, on_group_done=tally.group_done, batch_size=streaming.batch_size,
                      items_per_batch=streaming.items_per_batch, workers=streaming.workers,
                      pin_memory=device.type == "cuda", description=streaming.description, quiet=streaming.quiet)
        result = replace(files.record.from_json(finish(log, len(items) - len(pending))), identity=identity)
        atomic_write_json(run.eval_file(files.summary), result.to_json())
    return result.to_json()
