"""The README's examples run as written: the sweep grid file (copied out of the README, then the
command shown under it) and the `make demo` hint about running gcpbench from .venv."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def block_after(marker: str, language: str) -> str:
    """The first fenced block of ``language`` after the line holding ``marker``."""
    text = README.read_text()
    start = text.index(marker)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no ```{language} block after {marker!r}"
    return match.group(1)


def test_sweep_grid_file_example_runs_as_written(tmp_path) -> None:
    marker = "A grid file (TOML, or YAML) describes any other sweep"
    (tmp_path / "grid.toml").write_text(block_after(marker, "toml"))
    command = block_after(marker + "; save this as `grid.toml`", "bash").split("#")[0].strip()
    argv = shlex.split(command)
    assert argv[:2] == ["gcpbench", "sweep"] and "--dry-run" in argv
    done = subprocess.run([sys.executable, "-m", "gcpbench", *argv[1:]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    runs = [line for line in done.stdout.splitlines() if re.match(r"^resnet\d+_g\w+_LR\w+_s\d_e30\s", line)]
    assert len(runs) == 24 and "24 runs" in done.stdout  # 2 models x (GAP, GCP 256, GCP 128) x 2 schedules x 2 seeds
    assert any("detect:faster_rcnn:gcp_m" in line for line in runs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml"]  # --dry-run writes nothing


def test_readme_says_how_to_run_gcpbench_after_make_demo() -> None:
    text = README.read_text()
    assert ".venv/bin/gcpbench" in text and "source .venv/bin/activate" in text
