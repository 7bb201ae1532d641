"""ImageNet-P end to end: sequences made by ``make_p`` from a tiny tree, evaluated by
``evaluate_p`` and checked against FP / T5D computed here frame by frame; resume."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("cv2")

from gcpbench.robustness import benchmarks as baselines  # noqa: E402
from gcpbench.robustness.imagenet_p import PRequest, evaluate_p  # noqa: E402
from gcpbench.robustness.make_p import make_p  # noqa: E402
from gcpbench.robustness.video import read_mp4, write_mp4  # noqa: E402
from robustness_tiny import CLASSES, as_builtin_set, checkpoint, clean_tree, logits_of  # noqa: E402,F401

PERTURBATIONS = ("gaussian_noise", "translate", "rotate")


@pytest.fixture(scope="module")
def p_tree(tmp_path_factory, clean_tree):
    root = tmp_path_factory.mktemp("imagenet-p")
    with as_builtin_set(clean_tree):  # native size: 32 px frames, fast
        make_p(None, root, PERTURBATIONS, difficulties=(1, 2), per_class=1, workers=0, quiet=True, native=True)
    return root


def request(checkpoint, data, difficulty=1, **kw) -> PRequest:
    return PRequest(checkpoint=checkpoint, data=data, perturbations=PERTURBATIONS, difficulty=difficulty,
                    batch_size=32, workers=0, device="cpu", quiet=True, **kw)


def independent(checkpoint, root, perturbation: str, difficulty: int) -> tuple[float, float]:
    """FP and T5D written out with plain loops over decoded frames."""
    folder = f"{perturbation}_{difficulty}" if "noise" in perturbation and difficulty > 1 else perturbation
    fps, t5ds = [], []
    for path in sorted((root / folder).rglob("*.mp4")):
        logits = logits_of(checkpoint, read_mp4(path))
        ranking = [list(np.argsort(-row, kind="stable")) for row in logits]
        if "noise" in perturbation:
            pairs = [(0, j) for j in range(1, len(ranking))]
        else:
            pairs = [(j - difficulty, j) for j in range(difficulty, len(ranking))]
        flips = [ranking[a][0] != ranking[b][0] for a, b in pairs]
        top = min(5, logits.shape[1])                       # 3 classes here: all of them
        dists = [sum(abs(i - min(ranking[b].index(ranking[a][i]), 5)) for i in range(top)) for a, b in pairs]
        fps.append(np.mean(flips))
        t5ds.append(np.mean(dists))
    return float(np.mean(fps)), float(np.mean(t5ds))


def test_make_p_layout_and_frames(p_tree):
    marker = json.loads((p_tree / "gcpbench_generated.json").read_text())
    assert sorted(marker["folders"]) == ["gaussian_noise", "gaussian_noise_2", "rotate", "translate"]
    assert marker["codec"] == "libx264" and marker["fps"] == 1 and marker["x264"]["rotate"]["crf"] == "20"
    assert len(list((p_tree / "rotate" / CLASSES[0]).glob("*.mp4"))) == 1
    assert read_mp4(next((p_tree / "translate").rglob("*.mp4"))).shape == (41, 32, 32, 3)
    assert read_mp4(next((p_tree / "rotate").rglob("*.mp4"))).shape == (31, 32, 32, 3)


@pytest.mark.parametrize("difficulty", [1, 2])
def test_eval_p_matches_independent_computation(checkpoint, p_tree, tmp_path, difficulty):
    summary, run = evaluate_p(request(checkpoint, p_tree, difficulty), tmp_path / "run")
    alexnet = baselines.alexnet_p()
    for p in PERTURBATIONS:
        fp, t5d = independent(checkpoint, p_tree, p, difficulty)
        assert summary["raw"][p]["FP"] == pytest.approx(fp, abs=1e-9)
        assert summary["raw"][p]["T5D"] == pytest.approx(t5d, abs=1e-9)
        assert summary["FP"][p] == pytest.approx(100 * fp / (alexnet[p][0]), rel=1e-9)   # AlexNet FP in percent
        assert summary["T5D"][p] == pytest.approx(100 * t5d / alexnet[p][1], rel=1e-9)
    assert summary["mFP"] == pytest.approx(np.mean([summary["FP"][p] for p in PERTURBATIONS]))
    assert summary["difficulty"] == difficulty and summary["partial"] is True and summary["unreadable"] == []
    data = summary["identity"]["data"]            # what the data is: the listing and the generation record
    assert len(data["listing"]) == 16 and data["generation"]["geometry_mode"] == "native"
    assert summary["source_kind"] == "synthetic" and summary["missing_images"] == 0
    rows = list(csv.DictReader(open(run.eval / "imagenet_p.csv")))
    assert [r["perturbation"] for r in rows] == list(PERTURBATIONS)
    assert float(rows[0]["FP_rel"]) == pytest.approx(summary["FP"]["gaussian_noise"], abs=1e-3)


def test_eval_p_resumes_and_lists_unreadable(checkpoint, p_tree, tmp_path):
    from gcpbench.models import load_model

    bad = p_tree / "rotate" / CLASSES[2] / "zz_broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    try:
        model, ckpt = load_model(checkpoint)
        calls: list[int] = []

        def stop_in_second_perturbation(module, args):
            if sum(calls) >= 3 * 31:  # gaussian_noise (3 sequences x 31 frames) is through
                raise KeyboardInterrupt
            calls.append(args[0].shape[0])

        handle = model.register_forward_pre_hook(stop_in_second_perturbation)
        with pytest.raises(KeyboardInterrupt):
            evaluate_p(request(checkpoint, p_tree), tmp_path / "run", model=model, checkpoint=ckpt)
        handle.remove()
        done = [r["perturbation"] for r in csv.DictReader(open(tmp_path / "run" / "eval" / "imagenet_p.csv"))]
        assert done == ["gaussian_noise"]
        calls.clear()
        handle = model.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
        summary, _ = evaluate_p(request(checkpoint, p_tree), tmp_path / "run", model=model, checkpoint=ckpt)
        handle.remove()
        assert sum(calls) == 3 * 41 + 3 * 31                 # translate + rotate only (the broken file yields none)
        assert summary["resumed_sequences"] == 3
        assert summary["unreadable_count"] == 1 and str(bad) in summary["unreadable"][0]
    finally:
        bad.unlink()


def test_video_round_trip(tmp_path):
    frames = [np.full((16, 16, 3), v, np.uint8) for v in (0, 128, 255)]
    back = read_mp4(write_mp4(tmp_path / "a.mp4", frames))
    assert back.shape == (3, 16, 16, 3)
    assert np.abs(back.astype(int) - np.stack(frames)).max() <= 8          # lossy codec, flat frames survive
    assert not list(tmp_path.glob(".*"))                                     # no temporary file left
