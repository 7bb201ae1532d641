"""ImageNet-P generation (``gcpbench.robustness.make_p`` / ``video``) against the official recipe.

Sequences of skimage's ``chelsea`` photograph after ``Resize(256)`` are pinned by two
statistics per perturbation (mean |last - first frame|, mean |frame-to-frame change|); these
frames were checked equal, pixel for pixel, to hendrycks/robustness' ``make_imagenet_p.py``
(docs/robustness-generators.md). The videos: H.264 at 1 fps, the same bytes for the same seed.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

cv2 = pytest.importorskip("cv2")
pytest.importorskip("imageio_ffmpeg")
skimage_data = pytest.importorskip("skimage.data")

from gcpbench.robustness.benchmarks import ALL_PERTURBATIONS, is_noise, perturbation_frames  # noqa: E402
from gcpbench.robustness.images import centre_crop, resized  # noqa: E402
from gcpbench.robustness.make_p import PERTURBATIONS, legacy_affine, make_p, sequence  # noqa: E402
from gcpbench.robustness.video import read_mp4  # noqa: E402
from robustness_tiny import as_builtin_set, clean_tree  # noqa: E402,F401

# seed 0: (mean |frame 30 (translate 40) - frame 0|, mean |frame i+1 - frame i|)
PINNED = {
    "gaussian_noise": (6.108, 8.525), "shot_noise": (7.486, 10.450), "motion_blur": (10.382, 0.882),
    "zoom_blur": (13.903, 0.638), "snow": (6.788, 1.170), "brightness": (110.259, 3.675),
    "translate": (35.623, 6.526), "rotate": (34.293, 8.180), "tilt": (21.181, 2.451), "scale": (85.996, 11.613),
    "speckle_noise": (4.362, 6.067), "gaussian_blur": (4.517, 0.157), "spatter": (2.350, 0.614),
    "shear": (29.205, 5.407),
}


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return resized(Image.fromarray(skimage_data.chelsea()))


def test_every_official_perturbation_is_generated():
    assert set(PERTURBATIONS) == set(ALL_PERTURBATIONS) == set(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_sequence_is_pinned(photo, name):
    frames = np.stack(sequence(photo, name, 0)).astype(float)
    assert frames.shape == (perturbation_frames(name), 224, 224, 3)
    last_first, step = PINNED[name]
    assert np.abs(frames[-1] - frames[0]).mean() == pytest.approx(last_first, abs=0.02)
    assert np.abs(np.diff(frames, axis=0)).mean() == pytest.approx(step, abs=0.02)
    again = np.stack(sequence(photo, name, 0))
    assert again.tobytes() == frames.astype(np.uint8).tobytes()              # same seed, same frames
    if is_noise(name) or name in ("snow", "spatter"):
        assert np.stack(sequence(photo, name, 1)).tobytes() != again.tobytes()


@pytest.mark.parametrize("name, sigmas", [("gaussian_noise", (0.03, 0.05, 0.08)),
                                          ("speckle_noise", (0.05, 0.10, 0.15))])
def test_noise_starts_clean_and_follows_the_constants(photo, name, sigmas):
    clean = np.asarray(centre_crop(photo)).astype(float)
    mid = (clean > 70) & (clean < 185)
    for difficulty, sigma in enumerate(sigmas, start=1):
        frames = np.stack(sequence(photo, name, 5, difficulty)).astype(float)
        assert np.array_equal(frames[0], clean)                              # frame 1 is the clean image
        residual = (frames[1:] - clean)[:, mid] + 0.5                        # +0.5: frames are truncated
        scale = clean[mid] if name == "speckle_noise" else 255.0
        assert (residual / scale).std() == pytest.approx(sigma, rel=0.06)


def test_shot_noise_photon_counts(photo):
    clean = np.asarray(centre_crop(photo)).astype(float) / 255
    for difficulty, photons in enumerate((300, 120, 60), start=1):
        frames = np.stack(sequence(photo, "shot_noise", 5, difficulty)[1:]).astype(float) / 255
        mid = (clean > 0.3) & (clean < 0.7)
        variance = ((frames - clean)[:, mid] + 0.5 / 255).var()
        assert variance == pytest.approx(clean[mid].mean() / photons, rel=0.1)   # Poisson: var = x / photons


def test_legacy_affine_is_torchvision_0_2():
    image = Image.fromarray(skimage_data.chelsea()).resize((120, 90))
    w, h = image.size
    for angle in (7, -12):        # clockwise about (w/2 + 0.5, h/2 + 0.5): PIL's rotate the other way round
        expected = image.rotate(-angle, resample=Image.BILINEAR, center=(w * 0.5 + 0.5, h * 0.5 + 0.5))
        assert np.array_equal(np.asarray(legacy_affine(image, angle=angle)), np.asarray(expected))
    moved = np.asarray(legacy_affine(image, translate=(5, -3), resample=Image.NEAREST))
    expected = np.zeros_like(moved)
    expected[:h - 3, 5:] = np.asarray(image)[3:, :w - 5]
    assert np.array_equal(moved, expected)
    dot = np.zeros((101, 101), np.uint8)
    dot[50 + 30, 50] = 255                                                    # 30 px below the centre
    sheared = np.asarray(legacy_affine(Image.fromarray(dot), shear=20, resample=Image.NEAREST))
    y, x = np.argwhere(sheared == 255)[0]
    # 0.2's shear sends (0, d) to (-sin(s) d, cos(s) d) about the centre (today's: (-tan(s) d, d))
    assert abs(x - 50.5 + 30 * np.sin(np.radians(20))) <= 1 and abs(y - 50.5 - 30 * np.cos(np.radians(20))) <= 1


def test_make_p_writes_h264_at_one_fps_with_the_same_bytes(clean_tree, tmp_path):
    names = ["gaussian_noise", "spatter", "tilt"]
    with as_builtin_set(clean_tree):  # native size: 32 px frames, fast
        a = make_p(None, tmp_path / "a", names, difficulties=(1, 3), per_class=1, workers=0, quiet=True, native=True)
        make_p(None, tmp_path / "b", names, difficulties=(1, 3), per_class=1, workers=0, quiet=True, native=True)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.mp4"))
    assert len(files) == 4 * 3 and a["folders"] == ["gaussian_noise", "gaussian_noise_3", "spatter", "tilt"]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert a["x264"]["gaussian_noise"] == {"tune": "grain", "preset": "veryslow"}
    assert a["x264"]["tilt"] == {"crf": "20", "preset": "veryslow"}
    capture = cv2.VideoCapture(str(tmp_path / "a" / files[0]))
    try:
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(1.0) and fourcc in ("avc1", "h264")
    finally:
        capture.release()
    assert read_mp4(tmp_path / "a" / files[0]).shape == (31, 32, 32, 3)


def test_make_p_full_size_uses_the_256_image(tmp_path):
    (tmp_path / "src" / "n01440764").mkdir(parents=True)
    photo = Image.fromarray(skimage_data.chelsea()).resize((333, 250))
    photo.save(tmp_path / "src" / "n01440764" / "x.png")
    record = make_p(tmp_path / "src", tmp_path / "out", ["translate"], workers=0, quiet=True)
    decoded = read_mp4(tmp_path / "out" / "translate" / "n01440764" / "x.mp4").astype(float)
    frames = np.stack(sequence(resized(photo), "translate", 0)).astype(float)
    assert decoded.shape == (41, 224, 224, 3) and "256" in record["geometry"]
    assert np.abs(decoded - frames).mean() < 3                              # crf 20: a close copy
    # the 256 image is moved 20 px left, then cropped: its right edge shows the picture from
    # beyond the 224 crop (moving the crop itself would leave black there)
    assert frames[0, :, -20:].mean() > 40 and np.abs(frames[0, :, -21] - frames[20, :, -1]).mean() < 1
    marker = json.loads((tmp_path / "out" / "gcpbench_generated.json").read_text())
    assert marker["codec"] == "libx264" and marker["fps"] == 1 and marker["perturbations"] == ["translate"]
