"""`--launcher slurm` up to the scheduler: submitit writes the job array's sbatch script and job
pickles; a stand-in `sbatch` on PATH (there is no Slurm here) records what it was given."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from submitit.core.utils import DelayedSubmission

from gcpbench.cli import install_logging
from gcpbench.sweep.job import SweepJob

SBATCH = """#!/bin/sh
cp "$1" "$(dirname "$0")/submitted.sh"
echo "Submitted batch job 4242"
"""


def fake_scheduler(bin_dir: Path) -> None:
    bin_dir.mkdir()
    for name, text in (("sbatch", SBATCH), ("srun", "#!/bin/sh\nexit 1\n")):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_launcher_submits_one_array_of_ddp_jobs(tmp_path, monkeypatch, run_cli) -> None:
    bin_dir = tmp_path / "bin"
    fake_scheduler(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    spec = tmp_path / "grid.toml"
    spec.write_text('models = ["resnet50"]\nheads = ["gap", "gcp"]\nschedules = ["LRnorm"]\n'
                    'evaluations = ["eval-c"]\n')
    sweep = tmp_path / "sweep"
    code, out, err = run_cli("sweep", str(spec), "--launcher", "slurm", "--out", str(sweep), "--partition", "gpu",
                             "--account", "lab", "--nodes", "2", "--gpus-per-node", "8", "--cpus-per-task", "10",
                             "--time", "3-00:00:00", "--array-parallelism", "4", "--setup", "module load cuda")
    assert code == 0, err
    assert "submitted 2 job(s) to slurm (4242_0, 4242_1)" in out
    script = (bin_dir / "submitted.sh").read_text()
    for line in ("--partition=gpu", "--account=lab", "--nodes=2", "--gpus-per-node=8", "--ntasks-per-node=8",
                 "--cpus-per-task=10", "--time=4320", "--array=0-1%2", "--signal=USR2@90"):
        assert f"#SBATCH {line}" in script, line
    assert "module load cuda" in script and "srun" in script and "submitit.core._submit" in script
    for index, name in enumerate(["resnet50_gap_LRnorm_s0", "resnet50_gcp_LRnorm_s0"]):
        delayed = DelayedSubmission.load(sweep / "submitit" / f"4242_{index}_submitted.pkl")
        assert isinstance(delayed.function, SweepJob)
        assert delayed.function.show_logs is install_logging  # the job's log reads like the command's output
        assert delayed.args == (str(sweep.resolve()), name)
        assert (sweep / "sweep.json").is_file()
