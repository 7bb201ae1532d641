"""Data-parallel training through torchrun: process-group setup from the environment, rank-0
helpers and metric all-reduce (torch.distributed; nothing home-made).

One machine, N processes (one per GPU, or N CPU processes on gloo)::

    torchrun --nproc_per_node=N -m gcpbench train resnet50 --head gcp --schedule LRadju --data ROOT

Several machines (run on each node, ``--node_rank`` 0..M-1, the same master address and port)::

    torchrun --nnodes=M --node_rank=R --nproc_per_node=N --master_addr=HOST0 --master_port=29500 \\
        -m gcpbench train ...

``--batch-size`` stays the global batch; each rank reads ``batch / world_size`` images per step.
The backend is NCCL on CUDA and gloo on the CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import nn

from gcpbench.errors import GcpbenchError
from gcpbench.runtime import resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, world size and its device."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this module created the process group (and tears it down)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value in (None, "") else int(value)
    except ValueError:
        raise GcpbenchError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1, else a single-process context.

    ``device`` (auto | cpu | cuda) picks the backend: NCCL with ``cuda:LOCAL_RANK``, else gloo.
    """
    resolved = resolve_device(device)
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistContext(resolved)
    local_rank = _env_int("LOCAL_RANK", 0)
    if resolved.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise GcpbenchError(f"LOCAL_RANK {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                                "use --nproc_per_node <= the number of GPUs")
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    owns = not dist.is_initialized()
    if owns:
        kwargs: dict[str, Any] = {"device_id": resolved} if backend == "nccl" else {}
        store, rank, size = next(dist.rendezvous("env://"))
        dist.init_process_group(backend=backend, store=attempt_store(store), rank=rank, world_size=size, **kwargs)
    return DistContext(resolved, dist.get_rank(), dist.get_world_size(), local_rank, owns)


def attempt_store(store: dist.Store) -> dist.Store:
    """``store`` with this restart's keys under their own prefix.

    ``torchrun --max-restarts N`` with ``--master_addr/--master_port`` (static rendezvous) keeps
    one TCPStore for all restarts, while ``init_process_group(init_method="env://")`` assumes a
    fresh store per restart: a restarted worker that looks a peer up before the peer has
    registered again reads the dead worker's address and fails with "Gloo connectFullMesh failed
    ... Connection refused" (a race; NCCL's set-up goes through the same store). The restart
    count torchrun exports gives every attempt its own keys; outside torchrun (one attempt,
    submitit's environment) the prefix is constant.
    """
    return dist.PrefixStore(f"gcpbench/attempt_{_env_int('TORCHELASTIC_RESTART_COUNT', 0)}", store)


def teardown(ctx: DistContext) -> None:
    """Leave the process group this module created."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def all_reduce_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise sum of ``values`` over all ranks, in float64."""
    if not ctx.distributed:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=ctx.device if ctx.device.type == "cuda" else None)
    return box[0]


def all_gather_object(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_buffers(module: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    Under DDP each rank updates its running statistics from its own share of the batch; before
    the sharded validation every rank must evaluate the same weights, the ones rank 0 saves.
    """
    if ctx.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def check_in_sync(module: nn.Module, ctx: DistContext) -> None:
    """Raise if the ranks' parameters differ (a broken gradient all-reduce would show here)."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        checksum = torch.stack([p.detach().double().sum() for p in module.parameters()]).sum().reshape(1)
        low, high = checksum.clone(), checksum.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise GcpbenchError(f"the ranks' parameters differ (checksums {low.item():.17g} vs {high.item():.17g}); "
                            "data-parallel training is out of sync")


def rank_prefix(ctx: DistContext) -> str:
    """'[rank R] ' under data parallelism, '' otherwise (for error messages)."""
    return f"[rank {ctx.rank}] " if ctx.distributed else ""
