"""`gcpbench eval-c`, `gcpbench eval-p`, `gcpbench data make-c` and `data make-p`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from gcpbench.cli import app, data_app, modelopts
from gcpbench.cli.choices import (DATA, NPY_BENCHMARKS, OUTPUT, RUNTIME, apply_quiet, choice, device_option, examples,
                                  json_option, quiet_option, workers_option)
from gcpbench.errors import GcpbenchError
from gcpbench.paths import require_eval_output, require_writable
from gcpbench.robustness.benchmarks import ALEXNET_CLEAN_ERROR

NATIVE_HELP = ("built-in synthetic set only (no --src, or the val/ of a `data synth` set): keep its own size instead "
               "of Resize 256 + CenterCrop 224 (a quick check, recorded in the tree's marker; not the benchmark's geometry)")
ALEXNET_HELP = "AlexNet clean top-1 error for relative mCE (0.4345 as in the paper; today's torchvision: 0.43478)"


def split_list(values: Optional[List[str]]) -> list[str]:
    """Options given repeatedly and/or comma-separated: ``--x a,b --x c`` -> [a, b, c]."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def int_list(values: Optional[List[str]], what: str) -> list[int]:
    try:
        return sorted({int(v) for v in split_list(values)})
    except ValueError:
        raise GcpbenchError(f"--{what} takes integers, e.g. --{what} 1,2,3") from None


def out_option() -> Optional[Path]:
    return typer.Option(None, "--out", help="run directory (default: the checkpoint's run)", rich_help_panel=OUTPUT)


def _print(obj, as_json: bool, table_fn) -> None:
    from gcpbench.cli.ui import stdout_console

    if as_json:
        typer.echo(json.dumps(obj, indent=2))
    else:
        stdout_console().print(table_fn(obj))


EVAL_C_EPILOG = examples(
    "gcpbench eval-c --ckpt runs/r50_gcp/checkpoints/best.pt --data /data/imagenet-c --clean-data /data/imagenet/val",
    "gcpbench eval-c --ckpt best.pt --data /data/imagenet-c --subset 10 --corruptions fog,snow --json",
    "gcpbench eval-c --errors errors.csv --clean-error 0.2387",
)


@app.command("eval-c", epilog=EVAL_C_EPILOG)
def eval_c(
    ckpt: Optional[Path] = modelopts.ckpt_option(),
    model: Optional[str] = modelopts.model_option(),
    weights: Optional[Path] = modelopts.weights_option(),
    gcp_norm: Optional[str] = modelopts.gcp_norm_option(),
    gcp_power: Optional[float] = modelopts.gcp_power_option(),
    cbp_dim: Optional[int] = modelopts.cbp_dim_option(),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageNet-C root (default: made from the synthetic set)", rich_help_panel=DATA),
    clean_error: Optional[float] = typer.Option(None, "--clean-error", help="clean top-1 error (fraction) for relative mCE", rich_help_panel=DATA),
    clean_data: Optional[Path] = typer.Option(None, "--clean-data", help="clean validation tree to measure the clean error on", rich_help_panel=DATA),
    extra: bool = typer.Option(False, "--extra", help="also the 4 held-out corruptions (reported apart, never in mCE)", rich_help_panel=DATA),
    corruptions: Optional[List[str]] = typer.Option(None, "--corruptions", help="only these (comma-separated); mCE marked partial", rich_help_panel=DATA),
    severities: Optional[List[str]] = typer.Option(None, "--severities", help="only these severities (default 1-5)", rich_help_panel=DATA),
    subset: Optional[int] = typer.Option(None, "--subset", min=1, help="a fixed, seeded K images per class (marked as subset)", rich_help_panel=DATA),
    seed: int = typer.Option(0, help="seed of --subset", rich_help_panel=DATA),
    errors: Optional[Path] = typer.Option(None, "--errors", help="score a corruption,severity,error CSV computed elsewhere", rich_help_panel=DATA),
    alexnet_clean_error: float = typer.Option(ALEXNET_CLEAN_ERROR, "--alexnet-clean-error", help=ALEXNET_HELP, rich_help_panel=DATA),
    batch_size: int = typer.Option(64, "--batch-size", min=1, rich_help_panel=RUNTIME),
    workers: Optional[int] = workers_option(),
    device: str = device_option(),
    out: Optional[Path] = out_option(),
    as_json: bool = json_option(),
    quiet: bool = quiet_option(),
) -> None:
    """ImageNet-C: error per corruption x severity, CE, mCE, relative mCE (resumable)."""
    apply_quiet(quiet)
    if (ckpt or weights) is not None and errors is None:
        require_eval_output(ckpt or weights, out, needs_config=True)
    from gcpbench.cli import robustness_tables as tables
    from gcpbench.robustness.benchmarks import SEVERITIES
    from gcpbench.robustness.imagenet_c import corruption_list

    if clean_error is not None and clean_data is not None:
        raise GcpbenchError("give either --clean-error or --clean-data, not both")
    if clean_error is not None and not 0.0 <= clean_error <= 1.0:
        raise GcpbenchError(f"--clean-error is a fraction in [0, 1] (got {clean_error}); divide percentages by 100")
    chosen = corruption_list(extra, split_list(corruptions))
    levels = int_list(severities, "severities") or list(SEVERITIES)
    if errors is not None:
        from gcpbench.robustness.imagenet_c import score_errors_file

        explicit = chosen if corruptions or extra else None
        summary = score_errors_file(errors, clean_error, explicit, levels, alexnet_clean_error)
        _print(summary, as_json, tables.c_table)
        return
    if ckpt is None and model is None:
        raise GcpbenchError("pass --ckpt CHECKPOINT or --model NAME --weights FILE to evaluate (or --errors FILE.csv to score errors)")
    from gcpbench.robustness.imagenet_c import CRequest, evaluate_c

    resolved = modelopts.resolve(ckpt, model, weights, gcp_norm, modelopts.gcp_options(gcp_power, cbp_dim))
    request = CRequest(checkpoint=resolved.path, preprocessing=resolved.preprocessing, data=data, corruptions=chosen, severities=levels, clean_error=clean_error,
                       clean_data=clean_data, subset=subset, seed=seed, batch_size=batch_size, workers=workers,
                       device=device, alexnet_clean_error=alexnet_clean_error, quiet=quiet or as_json)
    summary, run = evaluate_c(request, out, resolved.model, resolved.checkpoint)
    modelopts.describe(resolved, quiet or as_json, benchmark=True)
    _print(summary, as_json, tables.c_table)
    if not as_json:
        typer.echo(f"wrote {run.eval / 'imagenet_c.csv'} and {run.eval / 'imagenet_c_summary.json'}")


EVAL_P_EPILOG = examples(
    "gcpbench eval-p --ckpt runs/r50_gcp/checkpoints/best.pt --data /data/imagenet-p",
    "gcpbench eval-p --ckpt best.pt --data /data/imagenet-p --perturbations gaussian_noise,shot_noise --difficulty 2",
    "gcpbench eval-p --model timm/resnet50_gcp_s1 --weights r50.pth --subset 5 --json",
)


@app.command("eval-p", epilog=EVAL_P_EPILOG)
def eval_p(
    ckpt: Optional[Path] = modelopts.ckpt_option(),
    model: Optional[str] = modelopts.model_option(),
    weights: Optional[Path] = modelopts.weights_option(),
    gcp_norm: Optional[str] = modelopts.gcp_norm_option(),
    gcp_power: Optional[float] = modelopts.gcp_power_option(),
    cbp_dim: Optional[int] = modelopts.cbp_dim_option(),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageNet-P root (default: made from the synthetic set)", rich_help_panel=DATA),
    difficulty: int = typer.Option(1, "--difficulty", min=1, max=3, help="1, 2 or 3", rich_help_panel=DATA),
    extra: bool = typer.Option(False, "--extra", help="also the held-out perturbations (reported apart)", rich_help_panel=DATA),
    perturbations: Optional[List[str]] = typer.Option(None, "--perturbations", help="only these (comma-separated)", rich_help_panel=DATA),
    subset: Optional[int] = typer.Option(None, "--subset", min=1, help="a fixed, seeded K sequences per class", rich_help_panel=DATA),
    seed: int = typer.Option(0, help="seed of --subset", rich_help_panel=DATA),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="frames per forward pass", rich_help_panel=RUNTIME),
    workers: Optional[int] = workers_option(),
    device: str = device_option(),
    out: Optional[Path] = out_option(),
    as_json: bool = json_option(),
    quiet: bool = quiet_option(),
) -> None:
    """ImageNet-P: flip probability and top-5 distance, mFP, mT5D (resumable)."""
    apply_quiet(quiet)
    require_eval_output(ckpt or weights, out, needs_config=True)
    from gcpbench.cli import robustness_tables as tables
    from gcpbench.robustness.imagenet_p import PRequest, evaluate_p, perturbation_list

    chosen = perturbation_list(extra, split_list(perturbations))
    resolved = modelopts.resolve(ckpt, model, weights, gcp_norm, modelopts.gcp_options(gcp_power, cbp_dim))
    request = PRequest(checkpoint=resolved.path, preprocessing=resolved.preprocessing, data=data, perturbations=chosen, difficulty=difficulty, subset=subset,
                       seed=seed, batch_size=batch_size, workers=workers, device=device, quiet=quiet or as_json)
    summary, run = evaluate_p(request, out, resolved.model, resolved.checkpoint)
    modelopts.describe(resolved, quiet or as_json, benchmark=True)
    _print(summary, as_json, tables.p_table)
    if not as_json:
        typer.echo(f"wrote {run.eval / 'imagenet_p.csv'} and {run.eval / 'imagenet_p_summary.json'}")


EVAL_CIFAR_EPILOG = examples(
    "gcpbench eval-cifar --benchmark cifar10-c --ckpt cifar_r18.pt --data /data/CIFAR-10-C",
    "gcpbench eval-cifar --benchmark cifar10-p --ckpt cifar_r18.pt --data /data/CIFAR-10-P --only gaussian_noise",
    "gcpbench eval-cifar --benchmark cifar100-c --ckpt c100.pt --data /data/CIFAR-100-C --severities 5 --json",
)


@app.command("eval-cifar", epilog=EVAL_CIFAR_EPILOG)
def eval_cifar(
    benchmark: str = choice(..., "--benchmark", NPY_BENCHMARKS, "benchmark", "which .npy release", DATA),
    ckpt: Optional[Path] = modelopts.ckpt_option("checkpoint of a model trained on CIFAR"),
    model: Optional[str] = modelopts.model_option(),
    weights: Optional[Path] = modelopts.weights_option(),
    gcp_norm: Optional[str] = modelopts.gcp_norm_option(),
    gcp_power: Optional[float] = modelopts.gcp_power_option(),
    cbp_dim: Optional[int] = modelopts.cbp_dim_option(),
    data: Path = typer.Option(..., "--data", help="the folder holding <corruption>.npy (and labels.npy)", rich_help_panel=DATA),
    names: Optional[List[str]] = typer.Option(None, "--only", help="only these corruptions / perturbations (marked partial)", rich_help_panel=DATA),
    extra: bool = typer.Option(False, "--extra", help="also the held-out ones (reported apart, never in the means)", rich_help_panel=DATA),
    severities: Optional[List[str]] = typer.Option(None, "--severities", help="only these severities (-C; default 1-5)", rich_help_panel=DATA),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize the 32 px images for a model with another input size", rich_help_panel=DATA),
    batch_size: int = typer.Option(256, "--batch-size", min=1, rich_help_panel=RUNTIME),
    workers: Optional[int] = workers_option(),
    device: str = device_option(),
    out: Optional[Path] = out_option(),
    as_json: bool = json_option(),
    quiet: bool = quiet_option(),
) -> None:
    """CIFAR-10-C / CIFAR-100-C (mean error) or CIFAR-10-P (mFP, mT5D), unnormalised (resumable)."""
    apply_quiet(quiet)
    require_eval_output(ckpt or weights, out, needs_config=True)
    from gcpbench.cli import robustness_tables as tables
    from gcpbench.robustness.benchmarks import SEVERITIES
    from gcpbench.robustness.cifar import NpyRequest, evaluate_npy

    resolved = modelopts.resolve(ckpt, model, weights, gcp_norm, modelopts.gcp_options(gcp_power, cbp_dim))
    request = NpyRequest(benchmark, data, split_list(names), extra, int_list(severities, "severities") or SEVERITIES,
                         image_size, batch_size, workers, device, quiet or as_json)
    summary, run = evaluate_npy(request, resolved, out)
    modelopts.describe(resolved, quiet or as_json, benchmark=True)
    _print(summary, as_json, tables.npy_table)
    if not as_json:
        typer.echo(f"wrote {run.eval / summary['benchmark'].replace('-', '_')}_summary.json")


MAKE_C_EPILOG = examples(
    "gcpbench data make-c --src /data/imagenet/val --out /data/imagenet-c",
    "gcpbench data make-c --src /data/imagenet/val --out c_small --corruptions fog,snow --severities 1,5 --per-class 5",
    "gcpbench data make-c --out /tmp/c_synthetic   (from the built-in synthetic set)",
)


@data_app.command("make-c", epilog=MAKE_C_EPILOG)
def make_c(
    src: Optional[Path] = typer.Option(None, "--src", help="clean validation tree SRC/WNID/IMAGE (default: synthetic)", rich_help_panel=DATA),
    out: Path = typer.Option(..., "--out", help="where to write OUT/CORRUPTION/SEVERITY/WNID/*.JPEG", rich_help_panel=OUTPUT),
    corruptions: Optional[List[str]] = typer.Option(None, "--corruptions", help="comma-separated (default: all 19)", rich_help_panel=DATA),
    severities: Optional[List[str]] = typer.Option(None, "--severities", help="comma-separated (default: 1-5)", rich_help_panel=DATA),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=1, help="a seeded N images per class", rich_help_panel=DATA),
    seed: int = typer.Option(0, help="seed of --per-class and of the corruptions", rich_help_panel=DATA),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="processes (default: cores, at most 8; 0 = none)", rich_help_panel=RUNTIME),
    native_size: bool = typer.Option(False, "--native-size", help=NATIVE_HELP, rich_help_panel=DATA),
    quiet: bool = quiet_option(),
) -> None:
    """Build an ImageNet-C tree with the official recipe (Resize 256, CenterCrop 224, JPEG 85)."""
    apply_quiet(quiet)
    require_writable(out)
    from gcpbench.robustness.benchmarks import ALL_CORRUPTIONS, SEVERITIES
    from gcpbench.robustness.make_c import make_c as build

    record = build(src, out, split_list(corruptions) or ALL_CORRUPTIONS, int_list(severities, "severities") or SEVERITIES,
                   per_class=per_class, workers=workers, seed=seed, quiet=quiet, native=native_size)
    _report_made(out, record, f"{len(record['corruptions'])} corruptions x {len(record['severities'])} severities x "
                              f"{record['images_per_subset']} images")


MAKE_P_EPILOG = examples(
    "gcpbench data make-p --src /data/imagenet/val --out /data/imagenet-p",
    "gcpbench data make-p --src /data/imagenet/val --out p_small --perturbations gaussian_noise --difficulties 1,2",
    "gcpbench data make-p --out /tmp/p_synthetic --per-class 2   (from the built-in synthetic set)",
)


@data_app.command("make-p", epilog=MAKE_P_EPILOG)
def make_p(
    src: Optional[Path] = typer.Option(None, "--src", help="clean validation tree SRC/WNID/IMAGE (default: synthetic)", rich_help_panel=DATA),
    out: Path = typer.Option(..., "--out", help="where to write OUT/PERTURBATION[_2|_3]/WNID/*.mp4", rich_help_panel=OUTPUT),
    perturbations: Optional[List[str]] = typer.Option(None, "--perturbations", help="comma-separated (default: all 14)", rich_help_panel=DATA),
    difficulties: Optional[List[str]] = typer.Option(None, "--difficulties", help="noise difficulties to write (default: 1)", rich_help_panel=DATA),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=1, help="a seeded N images per class", rich_help_panel=DATA),
    seed: int = typer.Option(0, help="seed of --per-class and of the random perturbations", rich_help_panel=DATA),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="processes (default: cores, at most 8; 0 = none)", rich_help_panel=RUNTIME),
    native_size: bool = typer.Option(False, "--native-size", help=NATIVE_HELP, rich_help_panel=DATA),
    quiet: bool = quiet_option(),
) -> None:
    """Build ImageNet-P sequences with the official recipe (H.264 mp4 at 1 fps)."""
    apply_quiet(quiet)
    require_writable(out)
    from gcpbench.robustness.make_p import SUPPORTED
    from gcpbench.robustness.make_p import make_p as build

    record = build(src, out, split_list(perturbations) or SUPPORTED, int_list(difficulties, "difficulties") or (1,),
                   per_class=per_class, workers=workers, seed=seed, quiet=quiet, native=native_size)
    _report_made(out, record, f"{len(record['folders'])} perturbation folders x {record['sequences_per_folder']} sequences")


def _report_made(out: Path, record: dict, what: str) -> None:
    typer.echo(f"wrote {out}: {what} ({record['geometry']})")
    if record["problems"]:
        typer.echo(f"{len(record['problems'])} problem(s), listed in {out / 'gcpbench_generated.json'}; first: "
                   f"{record['problems'][0]}", err=True)
