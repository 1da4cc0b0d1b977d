"""Video files: GIF with Pillow, MP4 (H.264) with imageio and its ffmpeg plugin.

GIF frames are palette images (one exact palette when the caller knows every colour, as for
MinAtar; else an adaptive palette per frame). A GIF keeps every frame in memory until it is
written (one byte a pixel), so it suits clips of a few hundred frames; whole Atari episodes belong
in an MP4, which streams (the ``video`` extra: ``pip install 'poldist[video]'``). The file is
written under a temporary name and renamed when whole.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from poldist.errors import PoldistError

VIDEO_SUFFIXES = (".gif", ".mp4")


# ---------------------------------------------------------------------------------------------
# encoders


def _mp4_available() -> bool:
    return (
        importlib.util.find_spec("imageio") is not None
        and importlib.util.find_spec("imageio_ffmpeg") is not None
    )


def check_video_path(path: str | Path) -> Path:
    """Validate a video file name before any play: ``.gif`` or ``.mp4`` (with imageio installed).

    Raises:
        PoldistError: another suffix, an existing directory, or ``.mp4`` without the ``video`` extra.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise PoldistError(f"video {str(path)!r}: the file name must end in .gif or .mp4")
    if p.is_dir():
        raise PoldistError(f"video {str(path)!r} is a directory")
    if suffix == ".mp4" and not _mp4_available():
        raise PoldistError(
            "writing MP4 needs imageio and imageio-ffmpeg: pip install 'poldist[video]' (or write a .gif)"
        )
    return p


class VideoWriter:
    """Frames ``(H, W, 3)`` uint8, all of one size, into a GIF or an MP4 (by the suffix).

    Written under a temporary name in the same directory and renamed on :meth:`close`;
    :meth:`abort` removes it. ``palette``: ``(P, 3)`` uint8 colours that every frame is made of
    (GIF only; exact and small), else each GIF frame gets its own adaptive palette.
    """

    def __init__(self, path: str | Path, fps: float, palette: np.ndarray | None = None):
        self.path = check_video_path(path)
        self.fps = float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (height, width)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=self.path.suffix
        )
        os.close(fd)
        self._tmp = Path(tmp)
        self._gif_frames: list[Any] = []
        self._palette_image: Any = None
        self._mp4: Any = None
        if palette is not None:
            from PIL import Image

            pal = np.zeros((256, 3), np.uint8)
            pal[: len(palette)] = palette
            pal[len(palette) :] = palette[0]
            self._palette_image = Image.new("P", (1, 1))
            self._palette_image.putpalette(pal.ravel().tolist())

    @property
    def kind(self) -> str:
        """``"gif"`` or ``"mp4"``."""
        return self.path.suffix.lower()[1:]

    def append(self, frame: np.ndarray) -> None:
        """Add one ``(H, W, 3)`` uint8 frame."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if self.size is None:
            self.size = (frame.shape[0], frame.shape[1])
        elif frame.shape[:2] != self.size:
            raise ValueError(f"frame of shape {frame.shape}, the video's frames are {self.size}")
        if self.kind == "gif":
            from PIL import Image

            image = Image.fromarray(frame)
            if self._palette_image is not None:
                image = image.quantize(palette=self._palette_image, dither=Image.Dither.NONE)
            else:
                image = image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            self._gif_frames.append(image)
        else:
            if self._mp4 is None:
                import imageio.v2 as imageio

                self._mp4 = imageio.get_writer(
                    str(self._tmp),
                    format="FFMPEG",
                    mode="I",
                    fps=self.fps,
                    codec="libx264",
                    quality=7,
                    pixelformat="yuv420p",
                    macro_block_size=2,
                )
            h, w = frame.shape[:2]
            if h % 2 or w % 2:  # H.264 in yuv420p wants even sides
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
            self._mp4.append_data(frame)
        self.frames += 1

    def close(self) -> Path:
        """Encode (GIF) or finish (MP4), then move the file into place; returns its path."""
        if self.frames == 0:
            self.abort()
            raise PoldistError("no frames to write")
        try:
            if self.kind == "gif":
                first, *rest = self._gif_frames
                # optimize: pixels unchanged since the previous frame become transparent (long runs
                # for LZW), each frame's colour table trimmed to its colours. (Passing the fixed
                # palette as one global table saves ~2% more but costs Pillow ~40 ms a frame.)
                first.save(
                    self._tmp,
                    format="GIF",
                    save_all=True,
                    append_images=rest,
                    duration=max(20, round(1000 / self.fps / 10) * 10),
                    loop=0,
                    optimize=True,
                )
                self._gif_frames = []
            else:
                self._mp4.close()
                self._mp4 = None
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; nothing is written at :attr:`path`."""
        if self._mp4 is not None:
            try:
                self._mp4.close()
            except Exception:  # noqa: BLE001  (already failing; the file goes anyway)
                pass
            self._mp4 = None
        self._gif_frames = []
        self._tmp.unlink(missing_ok=True)


def read_gif(path: str | Path) -> np.ndarray:
    """The frames of a GIF as ``(T, H, W, 3)`` uint8 (Pillow; for tests and checks)."""
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])
