"""The ImageNet-C corruptions (``gcpbench.robustness.corruptions``) on a real photograph.

Each corruption's output on skimage's ``chelsea`` photograph (Resize 256 + CenterCrop 224)
at severity 3 and seed 0 is pinned by two statistics (mean value, mean change from the
clean image); these values were checked equal, pixel for pixel, to hendrycks/robustness'
``make_imagenet_c.py`` run after ``np.random.seed(0)`` (docs/robustness-generators.md).
"""
from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")
pytest.importorskip("imagecorruptions")
skimage_data = pytest.importorskip("skimage.data")

from gcpbench.robustness import corruptions as cr  # noqa: E402
from gcpbench.robustness.benchmarks import ALL_CORRUPTIONS  # noqa: E402
from gcpbench.robustness.images import benchmark_geometry  # noqa: E402

# (mean of the output, mean |output - clean|) at severity 3, seed 0
PINNED = {
    "gaussian_noise": (109.388, 35.166), "shot_noise": (107.717, 36.754), "impulse_noise": (110.358, 11.504),
    "defocus_blur": (108.127, 9.788), "glass_blur": (107.410, 11.903), "motion_blur": (108.542, 14.240),
    "zoom_blur": (107.032, 15.126), "snow": (184.626, 75.998), "frost": (161.855, 54.302),
    "fog": (107.803, 32.693), "brightness": (163.366, 54.738), "contrast": (108.059, 20.180),
    "elastic_transform": (107.727, 10.295), "pixelate": (108.823, 5.734), "jpeg_compression": (108.582, 6.732),
    "speckle_noise": (107.839, 29.735), "gaussian_blur": (108.131, 8.923), "spatter": (116.664, 8.036),
    "saturate": (78.935, 29.693),
}
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
          "elastic_transform", "speckle_noise", "spatter"}
# md5 of hendrycks/robustness ImageNet-C/create_c/frost1..5 (the official picks among these five)
OFFICIAL_FROST_MD5 = ("6ead634ace1f366d77e87078b465863c", "98f0d2b1d74a048d3bc9c7ecfd886939",
                      "b3ed8eb147824261888e730f916c0d8b", "d70b9d6aa0b1fe7bd8133b113787e078",
                      "50984ae2c871b7df2c28f1d71ca460a0")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(benchmark_geometry(Image.fromarray(skimage_data.chelsea())))


def test_every_benchmark_corruption_is_defined():
    assert set(cr.CORRUPTIONS) == set(ALL_CORRUPTIONS) == set(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_corruption_output_is_pinned_and_reproducible(photo, name):
    out = cr.corrupt(photo, name, 3, 0)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    mean, change = PINNED[name]
    assert out.mean() == pytest.approx(mean, abs=0.02)
    assert np.abs(out.astype(float) - photo).mean() == pytest.approx(change, abs=0.02)
    assert cr.corrupt(photo, name, 3, 0).tobytes() == out.tobytes()          # same seed, same bytes
    if name in RANDOM:
        assert cr.corrupt(photo, name, 3, 1).tobytes() != out.tobytes()


def test_noise_statistics_follow_the_constants(photo):
    mid = (photo > 60) & (photo < 195)                        # pixels that gaussian noise rarely clips
    residual = (cr.corrupt(photo, "gaussian_noise", 2, 3).astype(float) - photo)[mid] / 255
    assert residual.std() == pytest.approx(0.12, abs=0.005)
    impulse = cr.corrupt(photo, "impulse_noise", 4, 3)
    salt, pepper = (impulse == 255) & (photo != 255), (impulse == 0) & (photo != 0)
    assert (salt | pepper).mean() == pytest.approx(0.17, abs=0.01)
    assert salt.mean() == pytest.approx(pepper.mean(), abs=0.01)


def test_contrast_keeps_channel_means(photo):
    out = cr.corrupt(photo, "contrast", 5, 0).astype(float)
    assert np.allclose(out.mean(axis=(0, 1)), photo.mean(axis=(0, 1)), atol=0.6)   # truncation lowers <= 1
    assert np.allclose(out.std(axis=(0, 1)), 0.05 * photo.astype(float).std(axis=(0, 1)), atol=0.6)


def test_frost_uses_the_official_five_pictures():
    folder = resources.files("imagecorruptions").joinpath("frost")
    digests = tuple(hashlib.md5(folder.joinpath(f).read_bytes()).hexdigest() for f in cr.FROST_FILES)
    assert digests == OFFICIAL_FROST_MD5
    assert all(min(cr.frost_picture(i).shape[:2]) > 224 for i in range(5))


def test_glass_shuffle_copies_neighbours_as_the_official_loop():
    h, w, delta = 12, 10, 2
    source = cr.glass_shuffle(h, w, delta, 1, np.random.RandomState(0))
    rows, cols = np.divmod(source, w)
    here_r, here_c = np.divmod(np.arange(h * w), w)
    inner = (here_r > delta) & (here_r <= h - delta) & (here_c > delta) & (here_c <= w - delta)
    assert (source[~inner] == np.arange(h * w)[~inner]).all()               # the loop leaves the border alone
    assert len(set(source.tolist())) < h * w                                  # a copy, not a swap: values repeat
    # one pass visits each pixel once from the bottom right; a pixel's source was drawn within
    # [-delta, delta) of it, possibly a pixel already visited (its source then came from further)
    steps = np.random.RandomState(0).randint(-delta, delta, size=(inner.sum(), 2))
    order = [r * w + c for r in range(h - delta, delta, -1) for c in range(w - delta, delta, -1)]
    expected = list(range(h * w))
    for position, (dx, dy) in zip(order, steps):
        expected[position] = expected[position + dy * w + dx]
    assert source.tolist() == expected
    assert (np.abs(rows - here_r) <= 2 * delta).all() and (np.abs(cols - here_c) <= 2 * delta).all()


def test_motion_blur_kernel_matches_imagemagick_geometry():
    weights, offsets = cr.motion_blur_kernel(10, 3, 0)
    assert len(weights) == 21 and weights.sum() == pytest.approx(1.0) and (np.diff(weights) < 0).all()
    assert offsets.tolist() == [[i, 0] for i in range(21)]                  # along +x at 0 degrees
    assert cr.motion_blur_kernel(10, 3, 90)[1].tolist() == [[0, i] for i in range(21)]
    flat = np.full((20, 30, 3), 77, np.uint8)
    assert (cr.motion_blur_image(flat, 10, 3, 33) == 77).all()             # weights sum to one, edges repeated


def test_small_images_keep_their_size():
    image = (np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)
    for name in cr.CORRUPTIONS:
        assert cr.corrupt(image, name, 5, 1).shape == image.shape, name


@pytest.mark.parametrize("size", [(500, 224), (500, 333), (500, 375), (500, 499), (231, 500), (640, 427)])
def test_geometry_is_torchvision_resize_and_centre_crop(size):
    from torchvision import transforms

    image = Image.fromarray(skimage_data.coffee()).resize(size)
    expected = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])(image)
    assert np.array_equal(np.asarray(benchmark_geometry(image)), np.asarray(expected))
