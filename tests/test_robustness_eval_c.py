"""ImageNet-C evaluation end to end on tiny hand-made trees (3 classes, 32 px) and a briefly
trained ResNet-18: errors against an independent computation, resume, unreadable files,
tree checks, subsets, and the --errors scoring command."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from gcpbench.errors import GcpbenchError
from gcpbench.robustness import metrics
from gcpbench.robustness.imagenet_c import CRequest, evaluate_c
from robustness_tiny import CLASSES, PER_CLASS, checkpoint, clean_tree, logits_of, tiny_images, write_tree  # noqa: F401

CORRUPTIONS = ("gaussian_noise", "brightness")
SEVERITIES = (1, 2)


def corrupt_by_hand(a: np.ndarray, corruption: str, severity: int, rng) -> np.ndarray:
    x = a.astype(np.float64) / 255
    x = x + rng.normal(0, 0.1 * severity, x.shape) if corruption == "gaussian_noise" else x + 0.15 * severity
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture()
def c_tree(tmp_path):
    root = tmp_path / "imagenet-c"
    rng = np.random.default_rng(1)
    images = tiny_images()
    for c in CORRUPTIONS:
        for s in SEVERITIES:
            write_tree(root / c / str(s), {k: [corrupt_by_hand(a, c, s, rng) for a in v] for k, v in images.items()},
                       ext="JPEG")
    return root


def request(checkpoint, data, **kw) -> CRequest:
    return CRequest(checkpoint=checkpoint, data=data, corruptions=CORRUPTIONS, severities=SEVERITIES,
                    batch_size=4, workers=0, device="cpu", quiet=True, **kw)


def independent_errors(checkpoint, root) -> dict[str, dict[int, float]]:
    """Top-1 errors computed image by image without the evaluation code."""
    out: dict[str, dict[int, float]] = {}
    for c in CORRUPTIONS:
        for s in SEVERITIES:
            wrong = total = 0
            for label, wnid in enumerate(CLASSES):
                for path in sorted((root / c / str(s) / wnid).iterdir()):
                    logits = logits_of(checkpoint, np.asarray(Image.open(path).convert("RGB"))[None])
                    wrong += int(logits.argmax() != label)
                    total += 1
            out.setdefault(c, {})[s] = wrong / total
    return out


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_eval_c_matches_independent_errors(checkpoint, c_tree, clean_tree, tmp_path):
    summary, run = evaluate_c(request(checkpoint, c_tree, clean_data=clean_tree), tmp_path / "run")
    expected = independent_errors(checkpoint, c_tree)
    rows = read_csv(run.eval / "imagenet_c.csv")
    assert [(r["corruption"], r["severity"]) for r in rows] == [(c, str(s)) for c in CORRUPTIONS for s in SEVERITIES]
    for r in rows:
        assert float(r["error_pct"]) == pytest.approx(100 * expected[r["corruption"]][int(r["severity"])], abs=1e-4)
        assert int(r["images"]) == len(CLASSES) * PER_CLASS
    again = metrics.summarize_c(expected, summary["clean_error_pct"] / 100, corruptions=["gaussian_noise", "brightness"],
                                severities=SEVERITIES)
    assert summary["mCE_pct"] == pytest.approx(again["mCE_pct"])
    assert summary["relative_mCE_pct"] == pytest.approx(again["relative_mCE_pct"])
    for c in CORRUPTIONS:  # every number in percent, the unit in its key
        assert summary["severity_error_pct"][c] == pytest.approx({str(s): 100 * expected[c][s] for s in SEVERITIES})
    assert summary["partial"] is True and summary["subset"] is False and summary["unreadable"] == []
    assert 0.0 <= summary["clean_error_pct"] <= 100.0 and "clean_error" not in summary and "errors" not in summary
    on_disk = json.loads((run.eval / "imagenet_c_summary.json").read_text())
    assert on_disk["mCE_pct"] == pytest.approx(summary["mCE_pct"]) and on_disk["dataset"] == "imagenet-c"
    config = json.loads(run.config.read_text())
    assert config["command"] == "eval-c" and config["model"] == "resnet18_gap" and config["head"] == "gap"
    assert config["provenance"]["device"] == "cpu" and on_disk["provenance"]["device"] == "cpu"


def test_resume_after_interruption_skips_finished_subsets(checkpoint, c_tree, tmp_path):
    from gcpbench.models import load_model

    model, ckpt = load_model(checkpoint)
    seen: list[int] = []

    def interrupt_on_fourth_batch(module, args):
        if len(seen) == 3:  # 12 images per subset, batches of 4: the first subset is finished
            raise KeyboardInterrupt
        seen.append(args[0].shape[0])

    handle = model.register_forward_pre_hook(interrupt_on_fourth_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluate_c(request(checkpoint, c_tree), tmp_path / "run", model=model, checkpoint=ckpt)
    handle.remove()
    rows = read_csv(tmp_path / "run" / "eval" / "imagenet_c.csv")
    assert [(r["corruption"], r["severity"]) for r in rows] == [("gaussian_noise", "1")]

    seen.clear()
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    summary, _ = evaluate_c(request(checkpoint, c_tree), tmp_path / "run", model=model, checkpoint=ckpt)
    handle.remove()
    assert sum(seen) == 3 * len(CLASSES) * PER_CLASS          # only the three unfinished subsets
    assert summary["resumed_images"] == len(CLASSES) * PER_CLASS
    fresh, _ = evaluate_c(request(checkpoint, c_tree), tmp_path / "fresh", model=model, checkpoint=ckpt)
    assert summary["CE_pct"] == pytest.approx(fresh["CE_pct"])

    seen.clear()
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    evaluate_c(request(checkpoint, c_tree), tmp_path / "run", model=model, checkpoint=ckpt)
    handle.remove()
    assert seen == []                                         # everything finished: nothing recomputed


def test_unreadable_images_are_counted_and_listed(checkpoint, c_tree, tmp_path):
    bad = c_tree / "brightness" / "2" / CLASSES[1] / "broken.JPEG"
    bad.write_bytes(b"not a jpeg")
    summary, run = evaluate_c(request(checkpoint, c_tree), tmp_path / "run")
    assert summary["unreadable_count"] == 1 and str(bad) in summary["unreadable"][0]
    rows = {(r["corruption"], r["severity"]): int(r["images"]) for r in read_csv(run.eval / "imagenet_c.csv")}
    assert rows[("brightness", "2")] == len(CLASSES) * PER_CLASS and rows[("brightness", "1")] == len(CLASSES) * PER_CLASS


def test_tree_checks_name_the_problem(checkpoint, c_tree, tmp_path):
    (c_tree / "gaussian_noise" / "2" / "n09999999").mkdir()
    with pytest.raises(GcpbenchError, match=r"gaussian_noise/2.*extra n09999999"):
        evaluate_c(request(checkpoint, c_tree), tmp_path / "run")
    (c_tree / "gaussian_noise" / "2" / "n09999999").rmdir()
    with pytest.raises(GcpbenchError, match="corruption 'fog' folder .* is missing"):
        evaluate_c(CRequest(checkpoint, c_tree, corruptions=("fog",), severities=(1,), workers=0, quiet=True),
                   tmp_path / "run")
    with pytest.raises(GcpbenchError, match="severity 3 folder"):
        evaluate_c(CRequest(checkpoint, c_tree, corruptions=CORRUPTIONS, severities=(3,), workers=0, quiet=True),
                   tmp_path / "run")


def test_subset_is_fixed_and_marked(checkpoint, c_tree, tmp_path):
    from gcpbench.robustness.trees import select_per_class

    summary, run = evaluate_c(request(checkpoint, c_tree, subset=2), tmp_path / "run")
    assert summary["subset"] is True and summary["subset_per_class"] == 2
    assert all(int(r["images"]) == 2 * len(CLASSES) for r in read_csv(run.eval / "imagenet_c.csv"))
    picks = {tuple(p.name for p in select_per_class(sorted((c_tree / c / str(s) / CLASSES[0]).iterdir()), 2, 0, CLASSES[0]))
             for c in CORRUPTIONS for s in SEVERITIES}
    assert len(picks) == 1                                    # the same images in every subset


def test_worker_processes_give_the_same_result(checkpoint, c_tree, tmp_path):
    one, _ = evaluate_c(request(checkpoint, c_tree), tmp_path / "a")
    r = request(checkpoint, c_tree)
    r.workers = 1
    two, _ = evaluate_c(r, tmp_path / "b")
    assert one["CE_pct"] == pytest.approx(two["CE_pct"])




def test_cli_scores_errors_file(run_cli, tmp_path, monkeypatch, capsys):
    from gcpbench.robustness.benchmarks import alexnet_c_errors

    path = tmp_path / "errors.csv"
    path.write_text("corruption,severity,error\n" + "".join(
        f"{c},{s},{e / 2}\n" for c, errs in alexnet_c_errors().items() for s, e in enumerate(errs, 1)))
    code, out, _ = run_cli("eval-c", "--errors", str(path), "--clean-error", "0.2", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["mCE_pct"] == pytest.approx(50.0) and set(result) >= {"mCE_pct", "relative_mCE_pct", "CE_pct"}
    assert len(result["CE_pct"]) == 15 and len(result["extra_CE_pct"]) == 4
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith("pixelate,4")))
    code, out, err = run_cli("eval-c", "--errors", str(path), "--clean-error", "0.2", "--json")
    assert code == 2 and "'pixelate' severity 4" in err and len(err.strip().splitlines()) == 1
