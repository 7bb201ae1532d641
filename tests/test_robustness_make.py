"""``data make-c`` / ``make-p`` and the CLI paths end to end on tiny trees (and the defaults
that generate from the synthetic set, pointed at a tiny tree here)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")
pytest.importorskip("imagecorruptions")
pytest.importorskip("imageio_ffmpeg")

from gcpbench.errors import GcpbenchError  # noqa: E402
from gcpbench.robustness.images import benchmark_geometry  # noqa: E402
from gcpbench.robustness.make_c import make_c  # noqa: E402
from robustness_tiny import CLASSES, checkpoint, clean_tree  # noqa: E402,F401




def test_benchmark_geometry():
    big = benchmark_geometry(Image.new("RGB", (300, 260)))
    assert big.size == (224, 224)
    # an image under 224 px gets the official geometry too (issue 23, item 7): Resize(256) +
    # CenterCrop(224), written out with PIL by hand
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    official = small.resize((256, 256), Image.BILINEAR).crop((16, 16, 240, 240))  # (256 - 224) / 2 = 16
    assert np.array_equal(np.asarray(benchmark_geometry(small)), np.asarray(official))
    # native size (the built-in synthetic set, asked for): the same ratio at its own size, the
    # crop eval-imagenet gives it: Resize(73) + CenterCrop(64)
    by_hand = small.resize((73, 73), Image.BILINEAR).crop((4, 4, 68, 68))  # (73 - 64) / 2 = 4.5 -> 4
    assert np.array_equal(np.asarray(benchmark_geometry(small, native=True)), np.asarray(by_hand))
    from gcpbench.data.transforms import eval_transform

    crop = eval_transform(64).transforms[:2]  # Resize + CenterCrop, before ToTensor / Normalize
    assert np.array_equal(np.asarray(benchmark_geometry(small, native=True)), np.asarray(crop[1](crop[0](small))))


def test_make_c_layout_reproducible_and_resumable(clean_tree, tmp_path):
    a = make_c(clean_tree, tmp_path / "a", ["gaussian_noise", "contrast"], [1, 2], per_class=2, workers=0, quiet=True)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.JPEG"))
    assert len(files) == 2 * 2 * len(CLASSES) * 2
    assert str(files[0]).startswith("contrast/1/n00000000/")
    with Image.open(tmp_path / "a" / files[0]) as image:
        assert image.format == "JPEG" and image.size == (224, 224)  # 32 px sources: the official geometry
    assert a["problems"] == [] and a["dataset"] == "generated from another tree" and a["jpeg_quality"] == 85
    assert a["geometry_mode"] == "official" and "for every source image" in a["geometry"]
    make_c(clean_tree, tmp_path / "b", ["gaussian_noise", "contrast"], [1, 2], per_class=2, workers=0, quiet=True)
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    (tmp_path / "a" / files[0]).write_bytes(b"kept")       # existing files are skipped on a rerun
    make_c(clean_tree, tmp_path / "a", ["gaussian_noise", "contrast"], [1, 2], per_class=2, workers=0, quiet=True)
    assert (tmp_path / "a" / files[0]).read_bytes() == b"kept"
    noisy = np.asarray(Image.open(tmp_path / "a" / "gaussian_noise/2" / files[1].relative_to("contrast/1")))
    clean = np.asarray(benchmark_geometry(Image.open(clean_tree / files[1].parent.name / f"{files[1].stem}.png")
                                          .convert("RGB")))
    assert np.abs(noisy.astype(int) - clean).mean() > 5     # the corruption did something
    with pytest.raises(GcpbenchError, match="unknown corruption 'fogg'"):
        make_c(clean_tree, tmp_path / "c", ["fogg"], [1], workers=0, quiet=True)
    with pytest.raises(GcpbenchError, match="severity 6 does not exist; severities are 1 to 5"):
        make_c(clean_tree, tmp_path / "c", ["fog"], [1, 6], workers=0, quiet=True)


def test_make_p_rejects_unknown_perturbation_and_difficulty(clean_tree, tmp_path):
    from gcpbench.robustness.make_p import make_p

    with pytest.raises(GcpbenchError, match="cannot generate perturbation 'splatter'; choose from gaussian_noise"):
        make_p(clean_tree, tmp_path / "p", ["splatter"], quiet=True)
    with pytest.raises(GcpbenchError, match="difficulty 4 does not exist; difficulties are 1, 2 and 3"):
        make_p(clean_tree, tmp_path / "p", ["brightness"], [4], quiet=True)
    assert not (tmp_path / "p").exists()


def test_make_c_full_size_pipeline(tmp_path):
    (tmp_path / "src" / "n01440764").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((260, 300, 3)) * 255).astype(np.uint8)).save(tmp_path / "src" / "n01440764" / "x.png")
    record = make_c(tmp_path / "src", tmp_path / "out", ["brightness"], [3], workers=0, quiet=True)
    with Image.open(tmp_path / "out" / "brightness" / "3" / "n01440764" / "x.JPEG") as image:
        assert image.size == (224, 224)
    assert "256" in record["geometry"]


def test_cli_make_c_then_eval_c(run_cli, clean_tree, checkpoint, tmp_path, monkeypatch, capsys):
    code, out, err = run_cli("data", "make-c", "--src", str(clean_tree), "--out", str(tmp_path / "c"),
                             "--corruptions", "gaussian_noise,contrast", "--severities", "1", "--severities", "2",
                             "--per-class", "1", "--workers", "0", "--quiet")
    assert code == 0, err
    assert "2 corruptions x 2 severities x 3 images" in out
    code, out, err = run_cli("eval-c", "--ckpt", str(checkpoint), "--data", str(tmp_path / "c"),
                             "--corruptions", "gaussian_noise,contrast", "--severities", "1,2", "--clean-data",
                             str(clean_tree), "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "run"), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["dataset"] == "generated from another tree" and summary["partial"] is True and set(summary["CE"]) == {"gaussian_noise", "contrast"}
    assert summary["relative_mCE"] is not None and summary["images"] == 4 * 3
    code, out, err = run_cli("eval-c", "--ckpt", str(checkpoint), "--data", str(tmp_path / "c"),
                             "--workers", "0", "--out", str(tmp_path / "run"))
    assert code == 2 and "corruption 'shot_noise' folder" in err and len(err.strip().splitlines()) == 1


def test_cli_defaults_generate_from_the_synthetic_set(run_cli, clean_tree, checkpoint, tmp_path, monkeypatch, capsys):
    import gcpbench.data.synthetic as synthetic

    monkeypatch.setenv("GCPBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(synthetic, "ensure_classification_set", lambda root=None, quiet=False: clean_tree.parent)
    code, out, err = run_cli("eval-c", "--ckpt", str(checkpoint), "--corruptions", "gaussian_noise",
                             "--severities", "1", "--workers", "0", "--out", str(tmp_path / "run"), "--json", "--quiet")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["dataset"] == "synthetic" and summary["clean_error"] is not None
    assert (tmp_path / "cache" / "synthetic" / "imagenet-c" / "gaussian_noise" / "1").is_dir()
    code, out, err = run_cli("eval-p", "--ckpt", str(checkpoint), "--perturbations", "rotate",
                             "--workers", "0", "--out", str(tmp_path / "run"), "--quiet")
    assert code == 0, err
    assert "ImageNet-P difficulty 1" in out and "rotate" in out and "mFP" in out
    assert (tmp_path / "run" / "eval" / "imagenet_p_summary.json").is_file()


def test_a_tree_is_never_topped_up_with_another_recipe(clean_tree, tmp_path):
    """A rerun with another seed (or source, subset, generator) would mix two recipes in one tree
    under the new marker: refused. A non-empty folder without a record and an unfinished tree too."""
    from gcpbench.errors import GcpbenchError
    from gcpbench.robustness.generate import RECIPE_VERSION
    from gcpbench.robustness.trees import MARKER, read_marker

    out = tmp_path / "c"
    make_c(clean_tree, out, ["contrast"], [1], per_class=1, workers=0, quiet=True, seed=0)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(GcpbenchError, match=r"holds a tree made with seed 0; files made with seed 1 would be mixed"):
        make_c(clean_tree, out, ["contrast"], [1], per_class=1, workers=0, quiet=True, seed=1)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert read_marker(out)["recipe_version"] == RECIPE_VERSION
    (tmp_path / "other" / "x").mkdir(parents=True)
    with pytest.raises(GcpbenchError, match="is not empty and holds no gcpbench_generated.json"):
        make_c(clean_tree, tmp_path / "other", ["contrast"], [1], per_class=1, workers=0, quiet=True)
    marker = json.loads((out / MARKER).read_text())
    (out / MARKER).write_text(json.dumps({**marker, "unfinished": True}))  # what a killed run leaves
    with pytest.raises(GcpbenchError, match="did not finish; rerun that command"):
        read_marker(out)
    make_c(clean_tree, out, ["contrast"], [1], per_class=1, workers=0, quiet=True, seed=0)  # finishes it
    assert "unfinished" not in read_marker(out)
