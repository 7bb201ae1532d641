"""The command line's conventions: --version, shell completion, fast --help (no torch before
parsing), options grouped in panels with real choices, examples in every command's help, and
nothing truncated at 80 columns."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HELP_SCRIPT = r"""
import contextlib, io, json, sys
import typer.main
from gcpbench.cli import app
group = typer.main.get_command(app)

def walk(cmd, path):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from walk(sub, path + [name])

pages = {}
for path, cmd in walk(group, []):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            group.main(path + ["--help"], prog_name="gcpbench", standalone_mode=False)
        except SystemExit:
            pass
    opts = [o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
    panels = sorted({getattr(p, "rich_help_panel", None) or "" for p in cmd.params})
    ctx = cmd.make_context(" ".join(["gcpbench", *path]), [], resilient_parsing=True)
    metavars = {p.opts[0]: p.make_metavar(ctx) for p in cmd.params if p.opts and p.opts[0].startswith("--")}
    pages[" ".join(path)] = {"help": buf.getvalue(), "opts": opts, "group": hasattr(cmd, "commands"),
                             "epilog": cmd.epilog or "", "panels": panels,
                             "metavars": metavars}
heavy = sorted(m for m in ("torch", "torchvision", "timm", "numpy", "pandas", "matplotlib", "PIL", "mmengine", "cv2")
               if m in sys.modules)
print(json.dumps({"pages": pages, "heavy": heavy}))
"""


@pytest.fixture(scope="module")
def help_pages() -> dict:
    """Every command's --help at 80 columns, rendered in one fresh interpreter."""
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    result = subprocess.run([sys.executable, "-c", HELP_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_help_of_every_command_loads_no_heavy_library(help_pages) -> None:
    assert len(help_pages["pages"]) >= 15
    assert help_pages["heavy"] == []


def test_no_option_name_is_truncated_at_80_columns(help_pages) -> None:
    for path, page in help_pages["pages"].items():
        text = page["help"]
        assert "…" not in text, f"`gcpbench {path} --help` truncates:\n{text}"
        for opt in page["opts"]:
            assert opt in text, f"`gcpbench {path} --help` lacks {opt}:\n{text}"


def test_every_command_shows_examples(help_pages) -> None:
    for path, page in help_pages["pages"].items():
        if page["group"] or not path:
            continue
        examples = [line for line in page["epilog"].splitlines() if line.strip().startswith(("gcpbench", "torchrun"))]
        assert 2 <= len(examples) <= 3, f"gcpbench {path}: {len(examples)} examples"
        assert "Examples:" in page["help"]


@pytest.mark.parametrize("command", ["train", "eval-imagenet", "eval-c", "eval-p", "detect", "landscape", "sweep run"])
def test_options_are_grouped_in_panels(help_pages, command) -> None:
    page = help_pages["pages"][command]
    assert {"Model", "Runtime", "Output"} <= set(page["panels"]), page["panels"]
    assert "╭─ Runtime" in page["help"]


@pytest.mark.parametrize("command, option, shown", [
    ("train", "--head", "[gap|gcp]"),
    ("train", "--schedule", "[LRnorm|LRfast|LRadju]"),
    ("train", "--device", "[auto|cpu|cuda|cuda:N]"),
    ("detect", "--framework", "[faster_rcnn|mask_rcnn]"),
    ("detect", "--launcher", "[none|pytorch]"),
    ("sweep run", "--launcher", "[local|slurm|submitit-local]"),
])
def test_choices_are_shown_as_choices(help_pages, command, option, shown) -> None:
    page = help_pages["pages"][command]
    assert page["metavars"][option] == shown
    assert shown[:12] in page["help"]  # a long choice list may fold inside its column


def test_version(run_cli) -> None:
    from gcpbench import __version__

    code, out, err = run_cli("--version")
    assert (code, out.strip(), err) == (0, f"gcpbench {__version__}", "")


def complete(words: str) -> list[str]:
    """What bash completion offers for the command line ``words`` (the last word being typed)."""
    env = {**os.environ, "_GCPBENCH_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    script = "import sys; sys.argv[0] = 'gcpbench'; from gcpbench.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_shell_completion_completes_commands_and_choices(help_pages) -> None:
    assert "--install-completion" in help_pages["pages"][""]["help"]
    assert complete("gcpbench tr") == ["train"]
    assert complete("gcpbench train --schedule LR") == ["LRnorm", "LRfast", "LRadju"]
    assert complete("gcpbench train --device c") == ["cpu", "cuda"]
    assert complete("gcpbench detect --framework m") == ["mask_rcnn"]


def test_a_wrong_choice_is_one_line_naming_the_closest(run_cli) -> None:
    code, out, err = run_cli("train", "resnet18", "--schedule", "lrfats")
    assert code == 2 and err.count("\n") == 1
    assert "unknown schedule 'lrfats' (did you mean 'LRfast'?); choose from LRnorm, LRfast, LRadju" in err
    code, out, err = run_cli("eval-c", "--device", "gpu")
    assert code == 2 and "unknown device 'gpu'" in err and "use auto, cpu, cuda or cuda:N" in err


def test_choices_are_case_insensitive_and_canonical() -> None:
    import click

    from gcpbench.cli.choices import Choice, Device

    assert Choice(("LRnorm", "LRfast"), "schedule").convert("lrfast", None, None) == "LRfast"
    assert Device().convert("CUDA:1", None, None) == "cuda:1"
    with pytest.raises(click.BadParameter):
        Device().convert("cuda:x", None, None)


def test_choice_sets_mirror_the_library() -> None:
    from gcpbench.cli import choices
    from gcpbench.detection.config import FRAMEWORKS
    from gcpbench.gcp import PRECISIONS
    from gcpbench.models.external import SOURCES
    from gcpbench.models.registry import FAMILIES
    from gcpbench.robustness.benchmarks import NPY_BENCHMARKS, VARIANTS
    from gcpbench.sweep.launchers import LAUNCHERS
    from gcpbench.train.schedules import SCHEDULES

    assert choices.SCHEDULES == SCHEDULES and choices.FAMILIES == FAMILIES
    assert set(choices.FRAMEWORKS) == set(FRAMEWORKS) and set(choices.SWEEP_LAUNCHERS) == set(LAUNCHERS)
    assert set(choices.NPY_BENCHMARKS) == set(NPY_BENCHMARKS) and set(choices.VARIANTS) == set(VARIANTS)
    assert choices.SOURCES == ("zoo", *SOURCES) and choices.GCP_PRECISIONS == PRECISIONS


def all_commands():
    import typer.main

    from gcpbench.cli import app

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, path + [name])

    return list(walk(typer.main.get_command(app), []))


def test_quiet_has_one_meaning_everywhere() -> None:
    from gcpbench.cli.choices import QUIET_HELP

    quiet = {" ".join(path): p.help for path, cmd in all_commands() if path for p in cmd.params if p.name == "quiet"}
    assert len(quiet) >= 10 and set(quiet.values()) == {QUIET_HELP}, quiet


@pytest.mark.parametrize("command", ["train", "eval-imagenet", "eval-c", "eval-p", "eval-cifar", "detect", "landscape",
                                     "report", "zoo", "doctor", "sweep status"])
def test_every_command_with_a_result_has_json(command) -> None:
    commands = {" ".join(path): cmd for path, cmd in all_commands()}
    assert "--json" in [o for p in commands[command].params for o in p.opts]


def test_one_rule_for_loader_workers() -> None:
    from gcpbench.robustness.cifar import NpyRequest
    from gcpbench.robustness.imagenet_c import CRequest
    from gcpbench.robustness.imagenet_p import PRequest

    commands = {" ".join(path): cmd for path, cmd in all_commands()}
    for name in ("train", "eval-imagenet", "eval-c", "eval-p", "eval-cifar"):
        workers = next(p for p in commands[name].params if p.name == "workers")
        assert workers.default is None and "CPU cores - 1, at most 8" in workers.help, name
    for request in (CRequest, PRequest, NpyRequest):  # None: runtime.loader_workers() in the runner
        assert request.__dataclass_fields__["workers"].default is None


def test_benchmark_lines_say_what_is_done_to_the_images() -> None:
    from gcpbench.models import build
    from gcpbench.models.resolve import Resolved
    from gcpbench.models.preprocess import for_model

    model = build("resnet18_gap", num_classes=4)
    resolved = Resolved(model, {}, for_model(model), Path("m.pt"))
    folder_line = resolved.lines()[-1]
    assert "resize 256" in folder_line and "centre crop 224" in folder_line  # eval-imagenet resizes and crops
    benchmark_line = resolved.lines(benchmark=True)[-1]
    assert "resize 256" not in benchmark_line and "no resize + crop" in benchmark_line
    assert "under the model's 224 px input are kept at their size" in benchmark_line


def test_json_and_quiet_print_only_the_result(run_cli, tmp_path) -> None:
    from gcpbench.data.synthetic import make_classification_set
    from gcpbench.models import build, save_checkpoint

    data = make_classification_set(tmp_path / "data", num_classes=4, image_size=32, train_per_class=1,
                                   val_per_class=2, seed=0)
    ckpt = save_checkpoint(tmp_path / "m.pt", build("resnet18_gap", num_classes=4), "resnet18_gap")
    code, out, err = run_cli("eval-imagenet", "--ckpt", str(ckpt), "--data", str(data), "--workers", "0", "--json",
                             "--quiet", "--out", str(tmp_path / "r.json"))
    assert code == 0, err
    result = json.loads(out)  # stdout holds the JSON and nothing else
    assert result["images"] == 8 and result["top1"] == json.loads((tmp_path / "r.json").read_text())["top1"]
    assert err == ""  # --quiet: no info lines
    code, out, err = run_cli("zoo", "--json", "-m", "resnet18_gcp")
    rows = json.loads(out)
    assert code == 0 and [r["model"] for r in rows] == ["resnet18_gcp"] and rows[0]["gcp_dim"] == 256
