"""``make gpu-check``: everything gcpbench needs a CUDA machine for, in one run, one JSON summary.

Steps (each timed; a failing step is recorded and the next one still runs):

1. ``layer``: the GCP layer's forward+backward against the textbook equations, float32 and TF32,
   B=32 and B=256 (C=256, 14x14): time, error, TF32 speed-up and error on real tensor cores.
2. ``train_step``: training-step images/s of ResNet-50 GAP vs GCP, batch 128 at 224 px, bf16
   autocast, channels_last.
3. ``train``: two epochs of ResNet-18 GCP with ``--amp`` on the built-in synthetic set.
4. ``eval_c`` / ``eval_p``: ImageNet-C (15 corruptions x 5 severities) / -P trees generated
   from the synthetic val set, one image per class (``data make-c`` / ``make-p``), evaluated
   with step 3's checkpoint.
5. ``detect_faster_rcnn`` / ``detect_mask_rcnn``: 20 iterations on the synthetic COCO set from
   step 3's backbone (GCP_M), with COCO evaluation (the CPU smoke runs Mask R-CNN only, 1 iteration).
6. ``ddp``: one DDP training step on NCCL, one process per GPU (torchrun; a single GPU is a
   group of one), ranks checked in sync, and an explicit all-reduce.

Steps 3-6 run the ``gcpbench`` command line (or torchrun) in subprocesses, as a user would.
The summary (``OUT/gpu_check.json``) also holds ``gcpbench doctor``'s report. Without CUDA the
script says so in one line (exit 2); ``--cpu-smoke`` runs every step tiny on the CPU (gloo
instead of NCCL) to check the script itself. Exit 0 when every step passed, else 1.

``--steps layer,train`` runs only the named steps (in the order above) and keeps the other steps'
records of an earlier summary in OUT, so a check split over several runs (mmcv's CUDA build in
between, say) still ends in one summary.

Usage: ``python benchmarks/gpu_check.py [--out runs/gpu-check] [--cpu-smoke] [--budget 600] [--steps a,b]``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchutil import machine_name  # noqa: E402

from gcpbench.io import atomic_write_json  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """Everything the two modes (CUDA, CPU smoke) size differently."""

    device: str
    layer_batches: tuple[int, ...]
    layer_channels: int
    layer_size: int
    layer_repeats: int
    step_arch: str
    step_batch: int
    step_size: int
    step_repeats: int
    train_args: tuple[str, ...]
    make_c_args: tuple[str, ...]
    make_p_args: tuple[str, ...]
    eval_c_args: tuple[str, ...]
    eval_p_args: tuple[str, ...]
    detect_iters: int
    detect_frameworks: tuple[str, ...]
    ddp_processes: int
    ddp_batch: int
    ddp_image: int


def cuda_sizes() -> Sizes:
    from gcpbench.robustness.benchmarks import BENCHMARK_CORRUPTIONS

    workers = ("--workers", str(min(8, os.cpu_count() or 1)))
    return Sizes(device="cuda", layer_batches=(32, 256), layer_channels=256, layer_size=14, layer_repeats=9,
                 step_arch="resnet50", step_batch=128, step_size=224, step_repeats=5,
                 train_args=("--epochs", "2", *workers),
                 make_c_args=("--corruptions", ",".join(BENCHMARK_CORRUPTIONS), "--per-class", "1", "--native-size",
                              *workers),
                 make_p_args=("--per-class", "1", "--native-size", *workers), eval_c_args=workers, eval_p_args=workers,
                 detect_iters=20, detect_frameworks=("faster_rcnn", "mask_rcnn"),
                 ddp_processes=torch.cuda.device_count(), ddp_batch=64, ddp_image=224)


def smoke_sizes() -> Sizes:
    one = ("--workers", "0")
    return Sizes(device="cpu", layer_batches=(2,), layer_channels=16, layer_size=7, layer_repeats=1,
                 step_arch="resnet18", step_batch=2, step_size=32, step_repeats=1,
                 train_args=("--epochs", "1", "--batch-size", "8", "--lr", "0.01", "--device", "cpu", *one),
                 make_c_args=("--corruptions", "gaussian_noise", "--severities", "1", "--per-class", "1",
                              "--native-size", *one),
                 make_p_args=("--perturbations", "gaussian_noise", "--per-class", "1", "--native-size", *one),
                 eval_c_args=("--corruptions", "gaussian_noise", "--severities", "1", "--device", "cpu", *one),
                 eval_p_args=("--perturbations", "gaussian_noise", "--device", "cpu", *one),
                 detect_iters=1, detect_frameworks=("mask_rcnn",), ddp_processes=2, ddp_batch=4, ddp_image=32)


# --------------------------------------------------------------------------- in-process steps
def layer_step(sizes: Sizes) -> dict[str, Any]:
    """Float32 and TF32 layer timings and errors; TF32 speed-up per batch."""
    from gcp_layer import run_config

    device = torch.device(sizes.device)
    rows = [asdict(run_config(b, sizes.layer_channels, sizes.layer_size, device=device, iterations=5, precision=p,
                              repeats=sizes.layer_repeats, warmup=1))
            for b in sizes.layer_batches for p in ("float32", "tf32")]
    speedups = {}
    for batch in sizes.layer_batches:
        f32, tf32 = (next(r for r in rows if r["batch"] == batch and r["precision"] == p) for p in ("float32", "tf32"))
        emulated = tf32["tf32_emulated"]  # on a CPU "tf32" is float32: no speed-up to measure, the error is emulated
        speedups[f"B{batch}"] = {"tf32_speedup": None if emulated else f32["layer_ms"] / tf32["layer_ms"],
                                 "tf32_rel_error_vs_float32": tf32["tf32_rel_error_vs_float32"],
                                 "tf32_emulated": emulated,
                                 "speedup_vs_textbook_float32": f32["speedup_vs_textbook"]}
    return {"configs": rows, "summary": speedups}


def train_step_step(sizes: Sizes) -> dict[str, Any]:
    """images/s GAP vs GCP (bf16 autocast, channels_last)."""
    from throughput import bench_train

    (ratio,) = bench_train([sizes.step_arch], sizes.step_batch, sizes.step_size, torch.device(sizes.device), True,
                           sizes.step_repeats)
    return asdict(ratio)


# --------------------------------------------------------------------------- subprocess steps
class Runner:
    """Runs commands with a shared environment and what is left of the time budget."""

    def __init__(self, out: Path, budget_s: float, env: dict[str, str]) -> None:
        self.out, self.deadline, self.env = out, time.monotonic() + budget_s, env

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, *args: str) -> str:
        """stdout of ``python ARGS``; raises with stderr's tail on failure or timeout."""
        if self.left() < 5:
            raise RuntimeError("the time budget is spent")
        try:
            done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=self.env,
                                  timeout=self.left())
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"timed out: {' '.join(args[:4])} ...") from None
        if done.returncode != 0:
            raise RuntimeError(f"exit {done.returncode}: {' '.join(args[:4])} ...: {done.stderr.strip()[-1500:]}")
        return done.stdout

    def gcpbench(self, *args: str) -> str:
        return self.run("-m", "gcpbench", *args)


def json_tail(stdout: str) -> Any:
    """The JSON object that ends ``stdout`` (``--json`` output after any notes)."""
    return json.loads(stdout[stdout.index("{"):])


def train_step(runner: Runner, sizes: Sizes, smoke: bool) -> dict[str, Any]:
    data = []
    if smoke:
        runner.gcpbench("data", "synth", "--out", str(runner.out / "data"), "--classes", "4", "--size", "32",
                        "--train-per-class", "8", "--val-per-class", "4", "--quiet")
        data = ["--data", str(runner.out / "data")]
    run = runner.out / "train_resnet18_gcp"
    runner.gcpbench("train", "resnet18", "--head", "gcp", "--amp", *data, *sizes.train_args, "--out", str(run), "--quiet")
    from gcpbench.io import read_jsonl

    records = read_jsonl(run / "metrics.jsonl")
    return {"run": str(run), "epochs": len(records), "last": records[-1]}


def clean_val(runner: Runner, smoke: bool) -> Path:
    if smoke:
        return runner.out / "data" / "val"
    return Path(json.loads(runner.run("-c", "from gcpbench.robustness.defaults import synthetic_val_root as v; "
                                            "import json; print(json.dumps(str(v(quiet=True))))")))


def eval_c_step(runner: Runner, sizes: Sizes, smoke: bool) -> dict[str, Any]:
    val, tree = clean_val(runner, smoke), runner.out / "imagenet-c"
    runner.gcpbench("data", "make-c", "--src", str(val), "--out", str(tree), *sizes.make_c_args, "--quiet")
    ckpt = runner.out / "train_resnet18_gcp" / "checkpoints" / "best.pt"
    return json_tail(runner.gcpbench("eval-c", "--ckpt", str(ckpt), "--data", str(tree), "--clean-data", str(val),
                                     *sizes.eval_c_args, "--json", "--quiet"))


def eval_p_step(runner: Runner, sizes: Sizes, smoke: bool) -> dict[str, Any]:
    val, tree = clean_val(runner, smoke), runner.out / "imagenet-p"
    runner.gcpbench("data", "make-p", "--src", str(val), "--out", str(tree), *sizes.make_p_args, "--quiet")
    ckpt = runner.out / "train_resnet18_gcp" / "checkpoints" / "best.pt"
    return json_tail(runner.gcpbench("eval-p", "--ckpt", str(ckpt), "--data", str(tree), *sizes.eval_p_args,
                                     "--json", "--quiet"))


def detect_step(runner: Runner, sizes: Sizes, framework: str) -> dict[str, Any]:
    work = runner.out / f"detect_{framework}"
    ckpt = runner.out / "train_resnet18_gcp" / "checkpoints" / "best.pt"
    started = time.perf_counter()
    runner.gcpbench("detect", "--framework", framework, "--backbone", "resnet18_gcp_m", "--ckpt", str(ckpt),
                    "--max-iters", str(sizes.detect_iters), "--device", sizes.device, "--work-dir", str(work), "--quiet")
    seconds = time.perf_counter() - started
    result = json.loads((work / "eval" / f"detection_{framework}.json").read_text())
    return {"iterations": sizes.detect_iters, "seconds_with_startup_and_eval": seconds, "result": result}


def ddp_step(runner: Runner, sizes: Sizes) -> dict[str, Any]:
    record = runner.out / "ddp.json"
    runner.run("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={sizes.ddp_processes}",
               str(Path(__file__).resolve()), "--ddp-step", str(record), "--device", sizes.device,
               "--ddp-batch", str(sizes.ddp_batch), "--ddp-image", str(sizes.ddp_image))
    return json.loads(record.read_text())


def one_ddp_step(record: Path, device: str, batch: int, image: int) -> None:
    """Under torchrun: one bf16 training step of ResNet-18 GCP in DDP (NCCL on CUDA, gloo on the
    CPU), then an explicit all-reduce and the ranks' parameters checked equal; rank 0 writes
    ``record``. The group is joined here, also for a single process (one GPU)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from gcpbench.evaluate import autocast
    from gcpbench.models import build
    from gcpbench.train.distributed import DistContext, check_in_sync

    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    dev = torch.device("cuda", local) if device == "cuda" else torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", device_id=dev if dev.type == "cuda" else None)
    ctx = DistContext(dev, rank, world, local, owns_group=True)
    torch.manual_seed(rank)
    model = build("resnet18_gcp", num_classes=10).to(dev)
    ddp = DistributedDataParallel(model, device_ids=[local] if dev.type == "cuda" else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, image, image, device=dev)
    targets = torch.randint(0, 10, (batch,), device=dev)
    started = time.perf_counter()
    with autocast(dev, True):
        loss = torch.nn.functional.cross_entropy(ddp(images), targets)
    loss.backward()
    optimizer.step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - started
    check_in_sync(model, ctx)  # raises when the gradient all-reduce did not make the ranks agree (world size > 1)
    total = torch.full((1,), float(rank + 1), device=dev)
    dist.all_reduce(total)  # a collective on the backend also with a single process
    if ctx.is_main:
        atomic_write_json(record, {"backend": dist.get_backend(), "world_size": world, "device": str(dev),
                                   "batch_per_rank": batch, "image": image, "loss": loss.item(), "step_seconds": seconds,
                                   "in_sync": True, "all_reduce_ok": total.item() == world * (world + 1) / 2})
    dist.destroy_process_group()


# --------------------------------------------------------------------------- driver
def run_steps(steps: dict[str, Callable[[], Any]], summary: dict[str, Any], write: Callable[[], None]) -> None:
    """Run each step, record result or error and seconds, rewrite the summary after each."""
    for name, fn in steps.items():
        started = time.perf_counter()
        try:
            summary["steps"][name] = {"ok": True, "result": fn()}
        except Exception as exc:  # a failing step is recorded; the next one still runs
            summary["steps"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        summary["steps"][name]["seconds"] = round(time.perf_counter() - started, 2)
        print(f"[gpu-check] {name}: {'ok' if summary['steps'][name]['ok'] else 'FAILED'} "
              f"({summary['steps'][name]['seconds']:.1f} s)", flush=True)
        write()


def select_steps(steps: dict[str, Callable[[], Any]], wanted: str | None) -> dict[str, Callable[[], Any]]:
    """The steps named in ``wanted`` (comma-separated), in their usual order; all when None.
    An unknown name raises ValueError with the valid ones."""
    if wanted is None:
        return steps
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = [name for name in names if name not in steps]
    if unknown or not names:
        raise ValueError(f"unknown step {', '.join(unknown) or '(none given)'}; the steps are {', '.join(steps)}")
    return {name: fn for name, fn in steps.items() if name in names}


def earlier_steps(path: Path, mode: str) -> dict[str, Any]:
    """The step records of an earlier summary at ``path`` made in the same mode, else none."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return dict(earlier.get("steps", {})) if earlier.get("mode") == mode else {}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-check"), help="output folder (replaced files inside)")
    parser.add_argument("--cpu-smoke", action="store_true", help="every step tiny on the CPU (checks the script itself)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for the whole check")
    parser.add_argument("--steps", help="comma-separated steps to run (default: all); an earlier summary's other "
                                        "steps are kept")
    parser.add_argument("--ddp-step", type=Path, help=argparse.SUPPRESS)  # internal: one rank of the DDP step
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-batch", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--ddp-image", type=int, default=224, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def all_steps(runner: Runner, sizes: Sizes, smoke: bool) -> dict[str, Callable[[], Any]]:
    """Every step of the check, by name, in the order they run."""
    return {
        "layer": lambda: layer_step(sizes),
        "train_step": lambda: train_step_step(sizes),
        "train": lambda: train_step(runner, sizes, smoke),
        "eval_c": lambda: eval_c_step(runner, sizes, smoke),
        "eval_p": lambda: eval_p_step(runner, sizes, smoke),
        **{f"detect_{fw}": lambda fw=fw: detect_step(runner, sizes, fw) for fw in sizes.detect_frameworks},
        "ddp": lambda: ddp_step(runner, sizes),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ddp_step is not None:
        one_ddp_step(args.ddp_step, args.device, args.ddp_batch, args.ddp_image)
        return 0
    if not args.cpu_smoke and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA GPU visible (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
              "run it on a CUDA machine, or pass --cpu-smoke to check the script on the CPU", file=sys.stderr)
        return 2
    from gcpbench.doctor import collect

    smoke = args.cpu_smoke
    sizes = smoke_sizes() if smoke else cuda_sizes()
    out = args.out.resolve()
    env = {**os.environ, "GCPBENCH_CACHE": str(out / "cache"), "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")) if p)}
    if smoke:
        env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    runner = Runner(out, args.budget, env)
    try:
        steps = select_steps(all_steps(runner, sizes, smoke), args.steps)
    except ValueError as exc:
        print(f"gpu-check: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(sizes.device)
    mode, path = "cpu-smoke" if smoke else "cuda", out / "gpu_check.json"
    summary: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": mode, "machine": machine_name(device), "torch": torch.__version__,
        "cuda": torch.version.cuda, "doctor": collect(run_root=out).to_json(),
        "steps": earlier_steps(path, mode) if args.steps is not None else {}}

    def write() -> None:
        atomic_write_json(path, summary)

    run_steps(steps, summary, write)
    failed = [name for name in steps if not summary["steps"][name]["ok"]]
    print(f"[gpu-check] {len(steps) - len(failed)}/{len(steps)} steps passed"
          + (f" (failed: {', '.join(failed)})" if failed else "") + f"; summary: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
