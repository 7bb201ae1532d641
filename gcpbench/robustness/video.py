"""mp4 sequences: H.264 written by the ffmpeg that ``imageio-ffmpeg`` bundles, read with OpenCV.

As the official ImageNet-P command (``ffmpeg -r 1 -framerate 1 -i img%d.png -vcodec libx264
...``): 1 fps, the pixel format ffmpeg picks for RGB input (``yuv444p``), the x264 options
given by the caller (``-crf 20 -preset veryslow``, noise ``-tune grain -preset veryslow``).
x264 runs on one thread, so the same frames give the same bytes on every machine. (PyAV's
in-process x264 was tried first: under load it gave different bytes for the same frames.)
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from gcpbench.errors import GcpbenchError
from gcpbench.robustness.generate import temp_sibling

CODEC = "libx264"
FPS = 1
PIXEL_FORMAT = "yuv444p"
FFMPEG_LOG_ENV = "OPENCV_FFMPEG_LOGLEVEL"


class VideoError(OSError):
    """A sequence that cannot be decoded (reported per file by the evaluation)."""


def ffmpeg_command(width: int, height: int, out: Path, x264: Mapping[str, str], fps: int = FPS) -> list[str]:
    """The ffmpeg call: raw RGB frames on stdin -> H.264 mp4 ``out``."""
    import imageio_ffmpeg

    options = [arg for key, value in x264.items() for arg in (f"-{key}", str(value))]
    return [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:0", "-vcodec", CODEC, *options,
            "-pix_fmt", PIXEL_FORMAT, "-threads", "1", "-r", str(fps), "-f", "mp4", "-y", str(out)]


def write_mp4(path: str | os.PathLike, frames: Sequence[np.ndarray], x264: Mapping[str, str] | None = None,
              fps: int = FPS) -> Path:
    """Encode RGB uint8 frames [H, W, 3] as H.264 mp4 atomically (temporary file, then rename)."""
    path = Path(path)
    if len(frames) == 0:
        raise GcpbenchError(f"no frames to write to '{path}'")
    height, width = frames[0].shape[:2]
    if any(f.shape != (height, width, 3) for f in frames):
        raise GcpbenchError(f"the frames for '{path}' differ in size; every frame must be {height}x{width} RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    raw = b"".join(np.ascontiguousarray(f, dtype=np.uint8).tobytes() for f in frames)
    try:
        done = subprocess.run(ffmpeg_command(width, height, tmp, x264 or {}, fps), input=raw, capture_output=True)
        if done.returncode != 0:
            reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
            raise GcpbenchError(f"ffmpeg could not encode '{path}': {reason}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_mp4(path: str | os.PathLike) -> np.ndarray:
    """Decode every frame of a video: RGB uint8 [frames, H, W, 3]; VideoError if unreadable (the
    reason is the error; libav's own lines never reach stderr)."""
    os.environ.setdefault(FFMPEG_LOG_ENV, "-8")  # AV_LOG_QUIET, read at OpenCV's first use of its ffmpeg backend
    import cv2

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"'{path}' does not exist")
    if path.stat().st_size == 0:
        raise VideoError(f"'{path}' is an empty file")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoError(f"cannot open '{path}' as a video")
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise VideoError(f"no frame could be decoded from '{path}'")
    return np.stack(frames)
