"""mp4 sequences: H.264 written with PyAV's bundled x264, read with OpenCV; RGB uint8 frames.

As the official ImageNet-P command (``ffmpeg -r 1 -framerate 1 -i img%d.png -vcodec libx264
...``): 1 fps, the pixel format ffmpeg picks for RGB input (``yuv444p``), the x264 options
given by the caller (``-crf 20 -preset veryslow``, noise ``-tune grain -preset veryslow``).
x264 runs on one thread so the same frames give the same bytes on every machine.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from gcpbench.errors import GcpbenchError
from gcpbench.robustness.generate import temp_sibling

CODEC = "libx264"
FPS = 1
PIXEL_FORMAT = "yuv444p"


class VideoError(OSError):
    """A sequence that cannot be decoded (reported per file by the evaluation)."""


def write_mp4(path: str | os.PathLike, frames: Sequence[np.ndarray], x264: Mapping[str, str] | None = None,
              fps: int = FPS) -> Path:
    """Encode RGB uint8 frames [H, W, 3] as H.264 mp4 atomically (temporary file, then rename)."""
    import av

    path = Path(path)
    if len(frames) == 0:
        raise GcpbenchError(f"no frames to write to '{path}'")
    height, width = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(CODEC, rate=fps, options={**(x264 or {}), "threads": "1"})
            stream.width, stream.height, stream.pix_fmt = width, height, PIXEL_FORMAT
            stream.thread_count = 1
            for index, frame in enumerate(frames):
                image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
                image = image.reformat(format=PIXEL_FORMAT)
                image.pts = index                     # without timestamps x264's output can vary between runs
                container.mux(stream.encode(image))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_mp4(path: str | os.PathLike) -> np.ndarray:
    """Decode every frame of a video: RGB uint8 [frames, H, W, 3]; VideoError if unreadable."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"'{path}' does not exist")
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
