"""Recording the probe during training (CSV format, DDP, rank 0) and drawing the figure."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from typer.testing import CliRunner

from gcpbench.cli import app
from gcpbench.errors import GcpbenchError
from gcpbench.landscape import COLUMNS, LandscapeRecorder, plot_landscape, read_landscape
from gcpbench.landscape.plot import run_label
from gcpbench.landscape.recorder import append_row
from gcpbench.models import build
from gcpbench.runs import RunDir

HEADER = "step,epoch,train_loss,loss_min,loss_max,grad_diff_min,grad_diff_max,beta_smoothness,eta_min,eta_max,num_eta"




def small_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, 32, 32, generator=gen), torch.tensor([0, 1, 2, 3])


def test_recorder_writes_exact_columns_every_k_steps(tmp_path) -> None:
    torch.manual_seed(0)
    model = build("resnet18_gap", num_classes=4).train()
    run = RunDir(tmp_path / "run")
    recorder = LandscapeRecorder(run, model, "resnet", every=2, etas=[0.0])
    rows = {}
    for step in range(4):
        images, targets = small_batch(step)
        loss = F.cross_entropy(model(images), targets)
        row = recorder.maybe_record(step, 1 + step // 3, images, targets, loss.item())
        assert (row is None) == (step % 2 == 1)
        if row is not None:
            rows[step] = (loss.item(), row)
    lines = run.landscape.read_text().splitlines()
    assert lines[0] == HEADER and tuple(HEADER.split(",")) == COLUMNS
    assert len(lines) == 3
    frame = read_landscape(run.landscape)
    assert frame["step"].tolist() == [0, 2] and frame["epoch"].tolist() == [1, 1]
    for record in frame.to_dict("records"):
        train_loss, row = rows[record["step"]]
        # with eta = 0 the recorded loss band is the training loss of that batch
        assert record["loss_min"] == pytest.approx(train_loss, rel=1e-6)
        assert record["loss_max"] == pytest.approx(train_loss, rel=1e-6)
        assert record["train_loss"] == train_loss  # repr round-trips floats exactly
        assert record["grad_diff_min"] == record["grad_diff_max"] == 0.0
        assert (record["eta_min"], record["eta_max"], record["num_eta"]) == (0.0, 0.0, 1)
        assert record["beta_smoothness"] != record["beta_smoothness"]  # NaN: no eta > 0


def test_recorder_defaults_and_bad_interval(tmp_path) -> None:
    model = build("resnet18_gap", num_classes=4)
    recorder = LandscapeRecorder(RunDir(tmp_path), model, "mobilenetv2", every=None)
    assert recorder.every == 1000 and len(recorder.etas) == 50
    assert recorder.due(0) and recorder.due(2000) and not recorder.due(999)
    with pytest.raises(GcpbenchError, match="landscape-every"):
        LandscapeRecorder(RunDir(tmp_path), model, "resnet", every=0)


def test_only_rank_zero_writes_and_ddp_model_is_unwrapped(tmp_path, monkeypatch) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model = build("resnet18_gap", num_classes=4).train()
    images, targets = small_batch(0)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        wrapped = DistributedDataParallel(model)
        rank0 = RunDir(tmp_path / "rank0")
        row = LandscapeRecorder(rank0, wrapped, "resnet", every=1, etas=[0.5]).maybe_record(0, 1, images, targets, 1.0)
        assert rank0.landscape.is_file() and row["num_eta"] == 1
        assert all(p.grad is None for p in model.parameters())

        monkeypatch.setattr(dist, "get_rank", lambda *args, **kwargs: 1)
        rank1 = RunDir(tmp_path / "rank1")
        row = LandscapeRecorder(rank1, wrapped, "resnet", every=1, etas=[0.5]).maybe_record(0, 1, images, targets, 1.0)
        assert row is not None and not rank1.landscape.exists()
    finally:
        dist.destroy_process_group()


def fake_run(path, head: str, scale: float, steps=range(0, 3000, 500)) -> RunDir:
    run = RunDir(path)
    run.write_config({"command": "train", "model": f"resnet18_{head}", "arch": "resnet18", "head": head,
                      "gcp_dim": 256 if head == "gcp" else None, "schedule": "LRnorm", "dataset": "synthetic"})
    for step in steps:
        low = scale * (1.0 + 1000 / (step + 500))
        append_row(run.landscape, {
            "step": step, "epoch": 1 + step // 1000, "train_loss": low, "loss_min": low, "loss_max": 2 * low,
            "grad_diff_min": 0.1 * scale, "grad_diff_max": scale, "beta_smoothness": 3 * scale,
            "eta_min": 0.1, "eta_max": 75.0, "num_eta": 50})
    return run


def test_read_landscape_drops_torn_line_and_keeps_last_duplicate(tmp_path) -> None:
    run = fake_run(tmp_path / "gap", "gap", 1.0, steps=[0, 500, 1000])
    append_row(run.landscape, {name: 7.0 if name == "loss_max" else 500 for name in COLUMNS})
    with open(run.landscape, "a") as handle:
        handle.write("1500,2,0.5")  # a crash mid-write
    frame = read_landscape(run.landscape)
    assert frame["step"].tolist() == [0, 500, 1000]
    assert frame.loc[frame.step == 500, "loss_max"].item() == 7.0

    bad = tmp_path / "bad.csv"
    bad.write_text("step,loss\n1,2\n")
    with pytest.raises(GcpbenchError, match="lacks the columns"):
        read_landscape(bad)
    with pytest.raises(GcpbenchError, match="expected step,epoch"):
        append_row(bad, {name: 1 for name in COLUMNS})
    with pytest.raises(GcpbenchError, match="landscape-every"):
        read_landscape(tmp_path / "missing.csv")


def test_landscape_command_draws_gap_vs_gcp(tmp_path) -> None:
    gap = fake_run(tmp_path / "gap", "gap", 2.0)
    gcp = fake_run(tmp_path / "gcp", "gcp", 1.0)
    assert run_label(gap) == "resnet18 GAP LRnorm" and run_label(gcp) == "resnet18 GCP LRnorm"
    out = tmp_path / "fig" / "landscape.png"
    result = CliRunner().invoke(app, ["landscape", str(gap.path), str(gcp.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert str(out) in result.output

    default = plot_landscape([gap.path], gap.plot_file("landscape.png"), logy=True)
    assert default.is_file()
    with pytest.raises(GcpbenchError, match="landscape-every"):
        plot_landscape([gap.path, tmp_path], tmp_path / "x.png")
