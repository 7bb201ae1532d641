"""mp4 sequences with OpenCV: RGB uint8 frames in, RGB uint8 frames out."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from gcpbench.errors import GcpbenchError
from gcpbench.robustness.generate import temp_sibling

FOURCC = "mp4v"  # MPEG-4 part 2: encoded by every opencv-python wheel
FPS = 30


class VideoError(OSError):
    """A sequence that cannot be decoded (reported per file by the evaluation)."""


def write_mp4(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: int = FPS) -> Path:
    """Encode RGB uint8 frames [H, W, 3] as an mp4 atomically (temporary file, then rename)."""
    import cv2

    path = Path(path)
    if len(frames) == 0:
        raise GcpbenchError(f"no frames to write to '{path}'")
    height, width = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
    try:
        if not writer.isOpened():
            raise GcpbenchError(f"OpenCV cannot encode '{FOURCC}' video to '{path}'; reinstall opencv-python")
        for frame in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), cv2.COLOR_RGB2BGR))
        writer.release()
        os.replace(tmp, path)
    finally:
        writer.release()
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
