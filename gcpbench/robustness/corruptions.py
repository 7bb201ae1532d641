"""The 15 + 4 ImageNet-C corruptions, written after the benchmark's own recipe.

Constants, random draws (their order and distributions) and image operations follow
``make_imagenet_c.py`` of hendrycks/robustness, so for a 224 px image and a
``np.random.RandomState(seed)`` the output equals the official function run after
``np.random.seed(seed)`` (checked pixel for pixel, docs/robustness-generators.md).
``motion_blur`` and ``snow`` used ImageMagick's motion blur: here a NumPy version of the same
kernel with ImageMagick 6's 16-bit rounding. ``impulse_noise`` is the salt-and-pepper noise of
the scikit-image the benchmark was made with (two ``choice`` masks from the random state);
``glass_blur`` keeps the official pixel "swap", which copies the neighbour into the pixel.
Images of another size (e.g. the 64 px synthetic set) use their own size where the official
code hard-codes 224.

Every function takes an RGB uint8 array ``[H, W, 3]``, a severity 1..5 and the random
state, and returns the corrupted image in [0, 255] (float or uint8); :func:`corrupt`
converts it to uint8 the way the official script saved it (truncation).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from io import BytesIO
from typing import Callable

import numpy as np
from PIL import Image

Rng = np.random.RandomState
Corruption = Callable[[np.ndarray, int, Rng], np.ndarray]

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")  # the official picks 1 of 5


def _unit(image: np.ndarray, dtype=np.float64) -> np.ndarray:
    return np.asarray(image, dtype=dtype) / 255.0


def _blur(image: np.ndarray, sigma: float, **kwargs) -> np.ndarray:
    """skimage's Gaussian filter over the two image axes (``multichannel=True`` of old)."""
    from skimage.filters import gaussian

    return gaussian(image, sigma=sigma, channel_axis=-1 if image.ndim == 3 else None, **kwargs)


def _to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(image, dtype=np.uint8))


def clipped_zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of ``image`` [H, W, C] by ``factor`` (bilinear) and cut it back to H x W."""
    from scipy.ndimage import zoom

    h, w = image.shape[:2]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    zoomed = zoom(image[top:top + ch, left:left + cw], (factor, factor, 1), order=1)
    trim_h, trim_w = (zoomed.shape[0] - h) // 2, (zoomed.shape[1] - w) // 2
    return zoomed[trim_h:trim_h + h, trim_w:trim_w + w]


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """A normalised disk (at least 17 x 17 taps), slightly blurred against aliasing."""
    import cv2

    half = 8 if radius <= 8 else radius
    taps = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(taps, taps)
    disk = np.array(xx ** 2 + yy ** 2 <= radius ** 2, dtype=np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=(3, 3) if radius <= 8 else (5, 5), sigmaX=alias_blur)


def plasma_fractal(rng: Rng, size: int = 256, decay: float = 3.0) -> np.ndarray:
    """A diamond-square height map in [0, 1] (``size`` a power of two), as the fog recipe draws it."""
    grid = np.empty((size, size), dtype=np.float64)
    grid[0, 0] = 0.0
    step, wibble = size, 100.0

    def jitter(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square += np.roll(square, -1, axis=1)
        grid[half:size:step, half:size:step] = jitter(square)
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        grid[0:size:step, half:size:step] = jitter(centres + np.roll(centres, 1, axis=0)
                                                   + corners + np.roll(corners, -1, axis=1))
        grid[half:size:step, 0:size:step] = jitter(centres + np.roll(centres, 1, axis=1)
                                                   + corners + np.roll(corners, -1, axis=0))
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def motion_blur_kernel(radius: float, sigma: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """ImageMagick's one-sided motion blur: Gaussian weights of taps 0..2*ceil(radius) and
    their integer (dx, dy) offsets along ``angle`` degrees."""
    width = int(2 * np.ceil(radius) + 1)
    taps = np.arange(width, dtype=np.float64)
    weights = np.exp(-taps ** 2 / (2 * sigma ** 2))
    weights /= weights.sum()
    rad = np.deg2rad(angle)
    offsets = np.stack([np.ceil(taps * np.cos(rad) - 0.5), np.ceil(taps * np.sin(rad) - 0.5)], axis=1)
    return weights, offsets.astype(int)


def motion_blur_image(image: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """Motion-blur a uint8 image [H, W] or [H, W, C] as ImageMagick 6 (Q16) does: edge pixels
    repeated outside, the sum rounded to 16 bits, then cut to 8 bits (``q // 257``)."""
    weights, offsets = motion_blur_kernel(radius, sigma, angle)
    pad = int(np.abs(offsets).max())
    spec = ((pad, pad), (pad, pad)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(np.asarray(image, dtype=np.float64) * 257.0, spec, mode="edge")
    h, w = image.shape[:2]
    out = np.zeros(image.shape, dtype=np.float64)
    for weight, (dx, dy) in zip(weights, offsets):
        out += weight * padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]
    return (np.clip(np.floor(out + 0.5), 0, 65535) // 257).astype(np.uint8)


@lru_cache(maxsize=None)
def frost_picture(index: int) -> np.ndarray:
    """The ``index``-th official frost picture (BGR as ``cv2.imread`` reads it), from the
    copies ``imagecorruptions-imaug`` ships (byte-identical to hendrycks/robustness')."""
    import cv2

    path = resources.files("imagecorruptions").joinpath("frost", FROST_FILES[index])
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


# ----------------------------------------------------------------------------- noise

def gaussian_noise(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    x = _unit(image)
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    c = (60, 25, 12, 5, 3)[severity - 1]
    return np.clip(rng.poisson(_unit(image) * c) / c, 0, 1) * 255


def impulse_noise(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    c = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    x = _unit(image)
    flipped = rng.choice([True, False], size=x.shape, p=[c, 1 - c])
    salted = rng.choice([True, False], size=x.shape, p=[0.5, 0.5])
    x[flipped & salted] = 1.0
    x[flipped & ~salted] = 0.0
    return x * 255


def speckle_noise(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    c = (0.15, 0.2, 0.35, 0.45, 0.6)[severity - 1]
    x = _unit(image)
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255


# ----------------------------------------------------------------------------- blur

def gaussian_blur(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    c = (1, 2, 3, 4, 6)[severity - 1]
    return np.clip(_blur(_unit(image), c), 0, 1) * 255


def glass_shuffle(h: int, w: int, delta: int, iterations: int, rng: Rng) -> np.ndarray:
    """Flat source index of every pixel after glass blur's local shuffle.

    The official loop visits pixels from the bottom right, draws (dx, dy) in [-delta, delta)
    per pixel, and "swaps" ``x[r, c], x[r + dy, c + dx] = x[r + dy, c + dx], x[r, c]`` on NumPy
    views, which copies the neighbour into (r, c) and leaves the neighbour as it was."""
    rows, cols = range(h - delta, delta, -1), range(w - delta, delta, -1)
    source = list(range(h * w))
    for _ in range(iterations):
        steps = iter(rng.randint(-delta, delta, size=(len(rows) * len(cols), 2)).tolist())
        for r in rows:
            for col in cols:
                dx, dy = next(steps)
                source[r * w + col] = source[(r + dy) * w + col + dx]
    return np.asarray(source)


def glass_blur(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    sigma, delta, iterations = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))[severity - 1]
    x = np.uint8(_blur(_unit(image), sigma) * 255)
    h, w = x.shape[:2]
    x = x.reshape(h * w, -1)[glass_shuffle(h, w, delta, iterations, rng)].reshape(x.shape)
    return np.clip(_blur(x / 255.0, sigma), 0, 1) * 255


def defocus_blur(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    import cv2

    radius, alias = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))[severity - 1]
    x = _unit(image)
    kernel = disk_kernel(radius, alias)
    channels = [cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)]
    return np.clip(np.stack(channels, axis=2), 0, 1) * 255


def motion_blur(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    radius, sigma = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))[severity - 1]
    return motion_blur_image(image, radius, sigma, rng.uniform(-45, 45))


def zoom_blur(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    zooms = (np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
             np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03))[severity - 1]
    x = _unit(image).astype(np.float32)
    out = np.zeros_like(x)
    for factor in zooms:
        out += clipped_zoom(x, factor)
    return np.clip((x + out) / (len(zooms) + 1), 0, 1) * 255


# ----------------------------------------------------------------------------- weather

def snow(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    loc, scale, zoom, threshold, radius, sigma, keep = (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55))[severity - 1]
    x = _unit(image, np.float32)
    flakes = rng.normal(size=x.shape[:2], loc=loc, scale=scale)
    flakes = clipped_zoom(flakes[..., np.newaxis], zoom)
    flakes[flakes < threshold] = 0
    flakes = (np.clip(flakes.squeeze(-1), 0, 1) * 255).astype(np.uint8)
    flakes = motion_blur_image(flakes, radius, sigma, rng.uniform(-135, -45))
    return snow_over(x, flakes, keep) * 255


def snow_over(x: np.ndarray, flakes: np.ndarray, keep: float) -> np.ndarray:
    """Float RGB ``x`` in [0, 1] greyed towards white by ``1 - keep``, uint8 ``flakes`` [H, W]
    added twice (as they are and turned by 180 degrees); in [0, 1] (snow of ImageNet-C and -P)."""
    import cv2

    layer = flakes[..., np.newaxis] / 255.0
    grey = cv2.cvtColor(np.float32(x), cv2.COLOR_RGB2GRAY)[..., np.newaxis]
    x = keep * x + (1 - keep) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1)


def frost(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    keep, amount = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))[severity - 1]
    picture = frost_picture(rng.randint(len(FROST_FILES)))
    h, w = image.shape[:2]
    top, left = rng.randint(0, picture.shape[0] - h), rng.randint(0, picture.shape[1] - w)
    layer = picture[top:top + h, left:left + w][..., ::-1]
    return np.clip(keep * np.asarray(image, dtype=np.float64) + amount * layer, 0, 255)


def fog(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    amount, decay = ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4))[severity - 1]
    x = _unit(image)
    h, w = x.shape[:2]
    peak = x.max()
    size = max(256, 1 << int(np.ceil(np.log2(max(h, w)))))
    x += amount * plasma_fractal(rng, size, decay)[:h, :w][..., np.newaxis]
    return np.clip(x * peak / (peak + amount), 0, 1) * 255


def spatter(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    loc, scale, sigma, threshold, intensity, mud = (
        (0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1))[severity - 1]
    x = _unit(image, np.float32)
    liquid = _blur(rng.normal(size=x.shape[:2], loc=loc, scale=scale), sigma)
    liquid[liquid < threshold] = 0
    if not mud:
        return water_drops(x, liquid, intensity) * 255
    mask = _blur(np.where(liquid > threshold, 1, 0).astype(np.float32), intensity)
    mask[mask < 0.8] = 0
    brown = np.array([63 / 255.0, 42 / 255.0, 20 / 255.0], dtype=np.float32) * mask[..., np.newaxis]
    return np.clip(x * (1 - mask[..., np.newaxis]) + brown, 0, 1) * 255


def water_drops(x: np.ndarray, liquid: np.ndarray, intensity: float) -> np.ndarray:
    """Pale-turquoise drops drawn where ``liquid`` (a thresholded blurred field) is set, on
    float RGB ``x`` in [0, 1]: the water branch of spatter (ImageNet-C and -P); result in [0, 1]."""
    import cv2

    layer = (liquid * 255).astype(np.uint8)
    dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
    _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
    dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
    dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
    dist = cv2.blur(dist, (3, 3)).astype(np.float32)
    m = cv2.cvtColor(layer * dist, cv2.COLOR_GRAY2BGRA)
    peak = np.max(m, axis=(0, 1))
    # no drop at all (tiny images): the official divides 0 by 0, here the image stays clean
    m = np.divide(m, peak, out=np.zeros_like(m), where=peak > 0) * np.float32(intensity)
    colour = np.empty(m.shape[:2] + (3,), dtype=np.float32)
    colour[...] = np.array([175 / 255.0, 238 / 255.0, 238 / 255.0], dtype=np.float32)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)
    x = cv2.cvtColor(np.asarray(x, dtype=np.float32), cv2.COLOR_BGR2BGRA)
    return cv2.cvtColor(np.clip(x + m * colour, 0, 1), cv2.COLOR_BGRA2BGR)


# ----------------------------------------------------------------------------- digital

def hsv_channel(image: np.ndarray, channel: int, change: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Change one HSV channel (clipped to [0, 1]) of an RGB uint8 image; RGB in [0, 255]."""
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(_unit(image))
    hsv[:, :, channel] = np.clip(change(hsv[:, :, channel]), 0, 1)
    return np.clip(hsv2rgb(hsv), 0, 1) * 255


def brightness(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    return hsv_channel(image, 2, lambda v: v + c)


def saturate(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    scale, shift = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))[severity - 1]
    return hsv_channel(image, 1, lambda s: s * scale + shift)


def contrast(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    x = _unit(image)
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def jpeg_compression(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    c = (25, 18, 15, 10, 7)[severity - 1]
    buffer = BytesIO()
    _to_pil(image).save(buffer, "JPEG", quality=c)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def pixelate(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    c = (0.6, 0.5, 0.4, 0.3, 0.25)[severity - 1]
    h, w = image.shape[:2]
    small = _to_pil(image).resize((int(w * c), int(h * c)), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BOX))


def elastic_transform(image: np.ndarray, severity: int, rng: Rng) -> np.ndarray:
    import cv2
    from scipy.ndimage import map_coordinates

    # the official constants are multiples of 244 (meant as 224), kept as they are
    alpha, sigma, affine = ((244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2),
                            (244 * 0.05, 244 * 0.01, 244 * 0.02), (244 * 0.07, 244 * 0.01, 244 * 0.02),
                            (244 * 0.12, 244 * 0.01, 244 * 0.02))[severity - 1]
    x = _unit(image, np.float32)
    shape = x.shape
    centre = np.float32(shape[:2]) // 2
    side = min(shape[:2]) // 3
    before = np.float32([centre + side, [centre[0] + side, centre[1] - side], centre - side])
    after = before + rng.uniform(-affine, affine, size=before.shape).astype(np.float32)
    x = cv2.warpAffine(x, cv2.getAffineTransform(before, after), shape[1::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx, dy = ((_blur(rng.uniform(-1, 1, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha)
              .astype(np.float32)[..., np.newaxis] for _ in range(2))
    cols, rows, chans = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    coords = np.reshape(rows + dy, (-1, 1)), np.reshape(cols + dx, (-1, 1)), np.reshape(chans, (-1, 1))
    return np.clip(map_coordinates(x, coords, order=1, mode="reflect").reshape(shape), 0, 1) * 255


CORRUPTIONS: dict[str, Corruption] = {f.__name__: f for f in (
    gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost,
    fog, brightness, contrast, elastic_transform, pixelate, jpeg_compression,
    speckle_noise, gaussian_blur, spatter, saturate)}


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt an RGB uint8 image with its own ``RandomState(seed)``; uint8 out, converted as
    the official script saved it (values in [0, 255] truncated to integers)."""
    out = CORRUPTIONS[name](np.asarray(image, dtype=np.uint8), severity, np.random.RandomState(seed))
    return np.uint8(np.clip(np.asarray(out, dtype=np.float64), 0, 255))
