"""The built-in synthetic classification set: determinism, layout, cache, and its statistics."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gcpbench.data import synthetic
from gcpbench.errors import GcpbenchError

TINY = {"num_classes": 3, "image_size": 32, "train_per_class": 3, "val_per_class": 2}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_stamp(tmp_path):
    root = synthetic.make_classification_set(tmp_path / "set", seed=1, **TINY)
    for split, n in (("train", 3), ("val", 2)):
        classes = sorted(p.name for p in (root / split).iterdir())
        assert classes == ["n00000000", "n00000001", "n00000002"]
        for wnid in classes:
            files = sorted((root / split / wnid).iterdir())
            assert [f.name for f in files] == [f"{wnid}_{i:05d}.png" for i in range(n)]
            assert Image.open(files[0]).size == (32, 32) and Image.open(files[0]).mode == "RGB"
    info = synthetic.synthetic_info(root)
    assert info["image_size"] == 32 and info["num_classes"] == 3 and info["seed"] == 1
    assert info["classes"] == ["n00000000", "n00000001", "n00000002"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_deterministic_by_seed(tmp_path):
    a = tree_bytes(synthetic.make_classification_set(tmp_path / "a", seed=5, **TINY))
    b = tree_bytes(synthetic.make_classification_set(tmp_path / "b", seed=5, **TINY))
    c = tree_bytes(synthetic.make_classification_set(tmp_path / "c", seed=6, **TINY))
    assert a == b
    assert a.keys() == c.keys()
    images = [k for k in a if k.endswith(".png")]
    assert all(a[k] != c[k] for k in images)


def test_files_are_the_rendered_images(tmp_path):
    """What lands on disk is exactly render_class's output (PNG is lossless)."""
    root = synthetic.make_classification_set(tmp_path / "set", seed=3, **TINY)
    spec = synthetic.class_specs(3, seed=3)[2]
    pixels, _ = synthetic.render_class(spec, 2, 32, np.random.default_rng([3, 1, 2]))  # val = split 1
    for i in range(2):
        on_disk = np.asarray(Image.open(root / "val" / spec.wnid / f"{spec.wnid}_{i:05d}.png"))
        np.testing.assert_array_equal(on_disk, pixels[i])


def test_partner_correlation_is_the_mirrored_matrix():
    specs = synthetic.class_specs(4, seed=0)
    r = np.array([[1.0, 0.8, 0.6], [0.8, 1.0, 0.8], [0.6, 0.8, 1.0]])
    mirrored = np.array([[1.0, -0.8, -0.6], [-0.8, 1.0, 0.8], [-0.6, 0.8, 1.0]])  # D R D, D = diag(-1, 1, 1)
    np.testing.assert_allclose(specs[0].correlation, r)
    np.testing.assert_allclose(specs[1].correlation, mirrored)
    assert specs[0].mean == specs[1].mean and specs[0].shape == specs[1].shape and specs[0].grain == specs[1].grain
    assert specs[2].mean != specs[0].mean and specs[2].shape != specs[0].shape
    assert specs[1].partner == 0 and specs[2].partner == 3


def foreground_stats(spec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled foreground channel means and correlation, and per-image features (means, corr)."""
    pixels, masks = synthetic.render_class(spec, n, 32, np.random.default_rng(seed))
    values = pixels.astype(np.float64) / 255
    pooled = values[masks]  # (pixels, 3)
    features = []
    for image, mask in zip(values, masks):
        fg = image[mask]
        corr = np.corrcoef(fg.T)
        features.append([*fg.mean(0), corr[0, 1], corr[0, 2], corr[1, 2]])
    return pooled.mean(0), np.corrcoef(pooled.T), np.array(features)


def test_equal_channel_means_different_channel_correlations():
    specs = synthetic.class_specs(4, seed=0)
    mean0, corr0, _ = foreground_stats(specs[0], 48, seed=10)
    mean1, corr1, _ = foreground_stats(specs[1], 48, seed=11)
    mean2, _, _ = foreground_stats(specs[2], 48, seed=12)
    # partners: the same channel means (and the designed ones), opposite red-green / red-blue correlation
    np.testing.assert_allclose(mean0, mean1, atol=0.01)
    np.testing.assert_allclose(mean0, specs[0].mean, atol=0.01)
    assert corr0[0, 1] > 0.6 and corr1[0, 1] < -0.6
    assert corr0[0, 2] > 0.4 and corr1[0, 2] < -0.4
    assert corr0[1, 2] > 0.6 and corr1[1, 2] > 0.6  # green-blue unchanged
    # another pair differs in its means
    assert np.abs(mean2 - mean0).max() > 0.05


def nearest_centroid_accuracy(train: list[np.ndarray], test: list[np.ndarray]) -> float:
    centroids = np.stack([t.mean(0) for t in train])
    scale = np.concatenate(train).std(0) + 1e-9
    hits = total = 0
    for label, samples in enumerate(test):
        distances = (((samples[:, None] - centroids[None]) / scale) ** 2).sum(-1)
        hits += int((distances.argmin(1) == label).sum())
        total += len(samples)
    return hits / total


def test_partners_separate_by_correlation_not_by_means():
    """Within a pair, first-order features are at chance and second-order ones separate the classes."""
    specs = synthetic.class_specs(2, seed=0)
    train = [foreground_stats(spec, 40, seed=20 + i)[2] for i, spec in enumerate(specs)]
    test = [foreground_stats(spec, 40, seed=30 + i)[2] for i, spec in enumerate(specs)]
    means_only = nearest_centroid_accuracy([t[:, :3] for t in train], [t[:, :3] for t in test])
    corr_only = nearest_centroid_accuracy([t[:, 3:] for t in train], [t[:, 3:] for t in test])
    assert means_only < 0.75
    assert corr_only > 0.95


def test_refuses_non_empty_out_without_overwrite(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(GcpbenchError, match="already exists"):
        synthetic.make_classification_set(tmp_path / "busy", **TINY)
    synthetic.make_classification_set(tmp_path / "busy", overwrite=True, **TINY)
    assert not (tmp_path / "busy" / "keep.txt").exists()
    assert synthetic.synthetic_info(tmp_path / "busy") is not None


def test_bad_parameters_are_one_line_errors(tmp_path):
    with pytest.raises(GcpbenchError, match="--classes"):
        synthetic.make_classification_set(tmp_path / "x", num_classes=1)
    with pytest.raises(GcpbenchError, match="--size"):
        synthetic.make_classification_set(tmp_path / "y", image_size=8)


@pytest.fixture
def tiny_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GCPBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(synthetic, "DEFAULTS", {**TINY, "seed": 0})
    return tmp_path / "cache" / "synthetic" / "imagenet"


def test_default_root_follows_environment(tiny_cache):
    assert synthetic.default_root() == tiny_cache.parent


def test_ensure_generates_once_and_says_so(tiny_cache, capsys):
    root = synthetic.ensure_classification_set()
    assert root == tiny_cache
    assert "generating the built-in synthetic set" in capsys.readouterr().err
    stamp_time = (root / synthetic.STAMP).stat().st_mtime_ns
    assert synthetic.ensure_classification_set() == root
    assert capsys.readouterr().err == ""
    assert (root / synthetic.STAMP).stat().st_mtime_ns == stamp_time


def test_ensure_replaces_a_stale_set(tiny_cache):
    root = synthetic.ensure_classification_set(quiet=True)
    stamp = root / synthetic.STAMP
    stamp.write_text(stamp.read_text().replace('"version": 1', '"version": 0'))
    synthetic.ensure_classification_set(quiet=True)
    assert synthetic.synthetic_info(root)["version"] == synthetic.VERSION


def test_ensure_is_safe_when_two_callers_race(tiny_cache):
    results, errors = [], []

    def call() -> None:
        try:
            results.append(synthetic.ensure_classification_set(quiet=True))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [tiny_cache, tiny_cache]
    assert len(list((tiny_cache / "val").rglob("*.png"))) == 3 * 2
    assert sorted(p.name for p in tiny_cache.parent.iterdir()) == ["imagenet"]  # no temporary folders left


def test_synthesize_picks_the_cached_default_or_writes_the_asked_set(tiny_cache, tmp_path):
    root, cached = synthetic.synthesize_classification_set(quiet=True)
    assert (root, cached) == (tiny_cache, True) and synthetic.synthetic_info(root)["num_classes"] == 3
    other, cached = synthetic.synthesize_classification_set(quiet=True, num_classes=2, seed=4)
    info = synthetic.synthetic_info(other)
    assert (other, cached) == (tiny_cache, False)  # other parameters replace the cache's folder
    assert (info["num_classes"], info["seed"], info["image_size"]) == (2, 4, 32)
    out = tmp_path / "mine"
    assert synthetic.synthesize_classification_set(out, quiet=True) == (out, False)
    with pytest.raises(GcpbenchError, match="already exists and is not empty; choose another --out or pass --force"):
        synthetic.synthesize_classification_set(out, quiet=True)
    assert synthetic.synthesize_classification_set(out, force=True, quiet=True, seed=9) == (out, False)
    assert synthetic.synthetic_info(out)["seed"] == 9
