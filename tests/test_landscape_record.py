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


def test_single_probe_figure_plots_loss_and_gradient_against_the_step_size(tmp_path) -> None:
    """`landscape --ckpt` records one probe: its panels show the per-eta curves (they were empty:
    one x value, zero width), and the stored curves are the probe's own values."""
    from gcpbench.landscape.plot import draw_landscape, read_eta_curves
    from gcpbench.landscape.probe import measure
    from gcpbench.landscape.single import write_eta_curves
    from gcpbench.records import LandscapeRow

    torch.manual_seed(0)
    model = build("resnet18_gcp", num_classes=4)
    images, targets = small_batch(1)
    etas = [0.0, 0.5, 1.0, 2.0, 4.0]
    result = measure(model, images, targets, etas)
    run = RunDir(tmp_path / "probe")
    run.write_config({"command": "landscape", "model": "resnet18_gcp", "arch": "resnet18", "head": "gcp",
                      "dataset": "synthetic"})
    append_row(run.landscape, LandscapeRow.measured(0, 0, result["loss"], result))
    write_eta_curves(run.landscape_eta, result)
    curves = read_eta_curves(run)
    assert curves["eta"].tolist() == etas and curves["loss"].tolist() == result["losses"]
    assert curves["grad_diff"].tolist() == result["grad_diffs"]

    fig = draw_landscape([run.path])
    loss_ax, grad_ax, ratio_ax = fig.axes[:3]
    loss_line = loss_ax.get_lines()[0]
    assert list(loss_line.get_xdata()) == etas and list(loss_line.get_ydata()) == result["losses"]
    assert list(grad_ax.get_lines()[0].get_ydata()) == result["grad_diffs"]
    low, high = loss_ax.get_xlim()
    assert low <= 0.0 and high >= 4.0  # the step-size axis spans the grid, not one point
    ratios = ratio_ax.get_lines()[0].get_ydata()  # eta = 0 is left out of the ratio
    assert len(ratios) == 4 and max(ratios) == pytest.approx(result["beta_smoothness"])
    assert "eta" in loss_ax.get_xlabel() and "$" in loss_ax.get_ylabel()  # mathtext labels
    assert "data: synthetic" in fig._suptitle.get_text()
    out = plot_landscape([run.path], tmp_path / "probe.png")
    assert out.stat().st_size > 20_000


def test_convergence_plot_keeps_the_lr_off_the_loss_axes_and_ticks_whole_epochs(tmp_path) -> None:
    from gcpbench.records import EpochRecord
    from gcpbench.train.plots import convergence_figure, convergence_plot

    records = [EpochRecord(epoch=e, lr=0.1 / e, train_loss=2.0 / e, train_top1=10.0 * e, val_loss=2.5 / e,
                           val_top1=9.0 * e, val_top5=20.0 * e, images_per_s=1.0, wall_time_s=float(e))
               for e in (1, 2, 3)]
    fig = convergence_figure(records, "resnet18_gap LRnorm, data: synthetic")
    loss, accuracy, lr = fig.axes  # three panels, no twin axes
    assert [list(line.get_ydata()) for line in loss.get_lines()] == [[2.0, 1.0, 2 / 3], [2.5, 1.25, 2.5 / 3]]
    assert all(0.0 not in line.get_ydata() and max(line.get_ydata()) > 1 for line in accuracy.get_lines())
    assert [list(line.get_ydata()) for line in lr.get_lines()] == [[0.1, 0.05, 0.1 / 3]]
    fig.canvas.draw()
    ticks = [t for t in lr.get_xticks() if lr.get_xlim()[0] <= t <= lr.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)  # whole epochs only
    assert "$" in lr.get_ylabel() and "data: synthetic" in fig._suptitle.get_text()
    assert convergence_plot(records, tmp_path / "c.png").stat().st_size > 10_000
