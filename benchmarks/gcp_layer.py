"""Benchmark the GCP meta-layer (iSQRT-COV) against a textbook implementation.

For each configuration (batch B, channels C, spatial H x W, float32) this measures, in one
process and on the same inputs:

- forward+backward time (median of interleaved repeats after warm-up) of ``gcpbench``'s layer
  and of a textbook version written below (the paper's equations literally: X I_hat X^T with
  the explicit M x M centring matrix, autograd through the coupled Newton-Schulz iteration,
  the upper triangle by index);
- the time of one batched B x C x C matrix product; ``floor_ms`` = 3(N-1) forward + 6(N-1)
  backward products (36 for N=5; the covariance not counted) times that, and
  ``efficiency`` = floor_ms / layer time;
- peak memory of forward+backward (see ``benchutil.peak_memory_bytes``);
- the largest relative error (max |ours - textbook| / max |textbook|) of the output and of the
  input gradient against the float32 textbook version.

Usage: ``python benchmarks/gcp_layer.py [--quick] [--json] [--device cpu|cuda|auto]``.
``--norm all`` (or method names) times every GCP-family method instead, against the iSQRT-COV
layer and its authors' computation (``gcp_family.py``; default size B=32, C=256, 14x14).
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchutil import (  # noqa: E402
    base_parser,
    device_from_args,
    interleaved_medians,
    machine_name,
    peak_memory_bytes,
    print_wide,
)

from gcpbench.gcp import PRECISIONS, isqrt_cov  # noqa: E402

FULL = {"batch": (8, 32, 64), "channels": (256, 128), "size": (14, 7)}
QUICK = {"batch": (4,), "channels": (32,), "size": (7,)}


def textbook_isqrt_cov(x: Tensor, iterations: int = 5) -> Tensor:
    """The paper's equations literally, differentiated by autograd (the benchmark's baseline)."""
    b, c, h, w = x.shape
    m = h * w
    feats = x.reshape(b, c, m)
    ones = torch.ones(m, m, dtype=x.dtype, device=x.device)
    i_hat = (torch.eye(m, dtype=x.dtype, device=x.device) - ones / m) / m
    sigma = feats @ i_hat @ feats.mT
    trace = torch.diagonal(sigma, dim1=1, dim2=2).sum(-1)
    a = sigma / trace[:, None, None]
    eye3 = 3 * torch.eye(c, dtype=x.dtype, device=x.device).expand(b, c, c)
    y, z = a, None
    for k in range(1, max(iterations, 1) + 1):
        t = 0.5 * (eye3 - a) if z is None else 0.5 * (eye3 - z @ y)
        if k < iterations:
            y, z = y @ t, (t if z is None else t @ z)
        else:
            y = y @ t
    y = y * trace.sqrt()[:, None, None]
    rows, cols = torch.triu_indices(c, c, device=x.device)
    return y[:, rows, cols]


def round_to_tf32(t: Tensor) -> Tensor:
    """float32 -> the nearest TF32 value (10 mantissa bits; ties away from zero), as float32."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32).view(t.shape)


class EmulatedTF32(TorchDispatchMode):
    """Rounds both matrix operands of every (b)mm / baddbmm to TF32, the way TF32 tensor cores
    read them (accumulation stays float32): TF32's error, measured on a CPU."""

    OPERANDS = {"aten::bmm": (0, 1), "aten::mm": (0, 1), "aten::baddbmm": (1, 2), "aten::baddbmm_": (1, 2)}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        operands = self.OPERANDS.get(func._schema.name, ())
        args = tuple(round_to_tf32(a) if i in operands and a.dtype == torch.float32 else a
                     for i, a in enumerate(args))
        return func(*args, **(kwargs or {}))


def tf32_error(x: Tensor, grad_out: Tensor, iterations: int) -> tuple[float, bool]:
    """Max relative error (forward, gradient) of the layer with TF32 products against the
    layer in float32; on a CPU the TF32 products are emulated. Returns (error, emulated)."""
    emulated = x.device.type != "cuda"
    reference = (isqrt_cov(x, iterations).detach(), forward_backward(lambda t: isqrt_cov(t, iterations), x, grad_out).clone())
    mode = EmulatedTF32() if emulated else contextlib.nullcontext()
    with mode:
        out = isqrt_cov(x, iterations, "tf32").detach()
        grad = forward_backward(lambda t: isqrt_cov(t, iterations, "tf32"), x, grad_out).clone()
    x.grad = None
    return max(rel_error(out, reference[0]), rel_error(grad, reference[1])), emulated


@dataclass
class Result:
    """One configuration's measurements (one JSON object)."""

    device: str
    machine: str
    threads: int
    batch: int
    channels: int
    height: int
    width: int
    iterations: int
    precision: str
    layer_ms: float
    textbook_ms: float
    bmm_ms: float
    floor_products: int
    floor_ms: float
    efficiency: float
    speedup_vs_textbook: float
    layer_peak_mib: float
    textbook_peak_mib: float
    memory_ratio_vs_textbook: float
    max_rel_error_forward: float
    max_rel_error_gradient: float
    max_rel_error: float
    repeats: int
    tf32_rel_error_vs_float32: float | None = None
    tf32_emulated: bool | None = None


def rel_error(value: Tensor, reference: Tensor) -> float:
    """max |value - reference| / max |reference|, computed in float64."""
    reference = reference.double()
    return ((value.double() - reference).abs().max() / reference.abs().max().clamp_min(1e-300)).item()


def forward_backward(layer, x: Tensor, grad_out: Tensor) -> Tensor:
    """One training-style pass: forward, backward with ``grad_out``; returns x.grad."""
    x.grad = None
    layer(x).backward(grad_out)
    return x.grad


def run_config(
    batch: int, channels: int, size: int, *, device: torch.device, iterations: int,
    precision: str, repeats: int, warmup: int,
) -> Result:
    """Measure one configuration."""
    gen = torch.Generator().manual_seed(batch * 1_000_003 + channels * 101 + size)
    # Features as they leave the reduction layer (conv + BN + ReLU): non-negative, unit scale.
    x = torch.randn(batch, channels, size, size, generator=gen).relu_().to(device).requires_grad_()
    grad_out = torch.randn(batch, channels * (channels + 1) // 2, generator=gen).to(device)
    mats = torch.randn(2, batch, channels, channels, generator=gen).to(device)

    def ours(t: Tensor) -> Tensor:
        return isqrt_cov(t, iterations, precision)

    def textbook(t: Tensor) -> Tensor:
        return textbook_isqrt_cov(t, iterations)

    # correctness (also the warm-up of caches such as the triu index)
    with torch.no_grad():
        err_fwd = rel_error(ours(x), textbook(x))
    err_grad = rel_error(forward_backward(ours, x, grad_out).clone(), forward_backward(textbook, x, grad_out))

    times = interleaved_medians(
        {
            "layer": lambda: forward_backward(ours, x, grad_out),
            "textbook": lambda: forward_backward(textbook, x, grad_out),
            "bmm": lambda: torch.bmm(mats[0], mats[1]),
        },
        device, repeats=repeats, warmup=warmup,
    )
    x.grad = None
    peaks = {
        name: peak_memory_bytes(lambda fn=fn: forward_backward(fn, x, grad_out), device) / 2**20
        for name, fn in (("layer", ours), ("textbook", textbook))
    }
    products = 9 * (max(iterations, 1) - 1) if iterations > 1 else 3
    floor_ms = products * times["bmm"]
    tf32 = tf32_error(x, grad_out, iterations) if precision == "tf32" else (None, None)
    return Result(
        device=str(device), machine=machine_name(device), threads=torch.get_num_threads(),
        batch=batch, channels=channels, height=size, width=size, iterations=iterations,
        precision=precision, layer_ms=times["layer"], textbook_ms=times["textbook"],
        bmm_ms=times["bmm"], floor_products=products, floor_ms=floor_ms,
        efficiency=floor_ms / times["layer"], speedup_vs_textbook=times["textbook"] / times["layer"],
        layer_peak_mib=peaks["layer"], textbook_peak_mib=peaks["textbook"],
        memory_ratio_vs_textbook=peaks["layer"] / peaks["textbook"],
        max_rel_error_forward=err_fwd, max_rel_error_gradient=err_grad,
        max_rel_error=max(err_fwd, err_grad), repeats=repeats,
        tf32_rel_error_vs_float32=tf32[0], tf32_emulated=tf32[1],
    )


def print_table(results: list[Result]) -> None:
    """A rich table of the results."""
    from rich.table import Table

    first = results[0]
    table = Table(title=f"GCP layer fwd+bwd, N={first.iterations}, {first.precision}, "
                        f"{first.device} ({first.machine}, {first.threads} threads)")
    for col in ("B", "C", "HxW", "layer ms", "textbook ms", "bmm ms", "floor ms", "efficiency",
                "speedup", "layer MiB", "textbook MiB", "mem ratio", "max rel err"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            str(r.batch), str(r.channels), f"{r.height}x{r.width}", f"{r.layer_ms:.1f}",
            f"{r.textbook_ms:.1f}", f"{r.bmm_ms:.2f}", f"{r.floor_ms:.1f}", f"{r.efficiency:.2f}",
            f"{r.speedup_vs_textbook:.2f}x", f"{r.layer_peak_mib:.1f}", f"{r.textbook_peak_mib:.1f}",
            f"{r.memory_ratio_vs_textbook:.2f}", f"{r.max_rel_error:.1e}",
        )
    print_wide(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0], "one tiny configuration (smoke run)",
                         "print one JSON object per configuration")
    parser.add_argument("--batch", type=int, nargs="+", help="batch sizes (default 8 32 64)")
    parser.add_argument("--channels", type=int, nargs="+", help="channels C (default 256 128)")
    parser.add_argument("--size", type=int, nargs="+", help="spatial sizes H=W (default 14 7)")
    parser.add_argument("--iterations", type=int, default=5, help="Newton-Schulz iterations N")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="the layer's matrix-product precision; tf32 also reports its error "
                             "against float32 (emulated on a CPU, where tf32 is a no-op)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 9, quick 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds before timing")
    parser.add_argument("--norm", nargs="+", help="GCP-family methods to time against iSQRT-COV and their "
                        "authors' computations ('all': every one; default size B=32, C=256, 14x14)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    device = device_from_args(args)
    if args.norm:
        return family(args, device)
    grid = QUICK if args.quick else FULL
    configs = itertools.product(args.batch or grid["batch"], args.channels or grid["channels"],
                                args.size or grid["size"])
    repeats = args.repeats or (3 if args.quick else 9)
    results = []
    for batch, channels, size in configs:
        result = run_config(batch, channels, size, device=device, iterations=args.iterations,
                            precision=args.precision, repeats=repeats, warmup=args.warmup)
        results.append(result)
        if args.json:
            print(json.dumps(asdict(result)), flush=True)
    if not args.json:
        print_table(results)
    return results


def family(args: argparse.Namespace, device: torch.device) -> list:
    """``--norm``: the GCP family at one size (:mod:`gcp_family`)."""
    from gcp_family import print_family, resolve_norms, run_family

    size = {"batch": 4, "channels": 32, "size": 7} if args.quick else {"batch": 32, "channels": 256, "size": 14}
    batch, channels, spatial = (args.batch or [size["batch"]])[0], (args.channels or [size["channels"]])[0], \
        (args.size or [size["size"]])[0]
    results = run_family(resolve_norms(args.norm), batch, channels, spatial, device=device,
                         repeats=args.repeats or (2 if args.quick else 5), warmup=args.warmup,
                         textbook=lambda t: textbook_isqrt_cov(t, args.iterations),
                         report=(lambda r: print(json.dumps(asdict(r)), flush=True)) if args.json else None)
    if not args.json:
        print_family(results)
    return results


if __name__ == "__main__":
    main()
