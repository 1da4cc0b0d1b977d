"""Frames of agents playing: MinAtar grids drawn as MinAtar draws them, Atari screens, and a
header over each agent's panel (name, episode, step, score). Used by :mod:`poldist.record`.

MinAtar: the observation ``(C, 10, 10)`` is the whole game state; :func:`render_minatar` draws it
as MinAtar's own renderer does (each cell in the colour of its highest set channel, a cubehelix
palette, black where no channel is set), in numpy, each cell ``scale`` pixels wide. Atari: the
native screens come from a twin env (:func:`atari_screen_env`); see :mod:`poldist.record`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from poldist.envs import EnvSpec

MINATAR_CELL_PX = 20  # default --scale: a 10x10 grid becomes 200x200 pixels
ATARI_PIXEL_PX = 2  # default --scale: a 210x160 screen becomes 420x320 pixels
HEADER_BG = (32, 32, 32)
HEADER_FG = (255, 255, 255)
ATARI_SCREEN = (210, 160)  # native ALE screen, (height, width)


# ---------------------------------------------------------------------------------------------
# rendering


def minatar_palette(n_channels: int) -> np.ndarray:
    """MinAtar's colours: ``(n_channels + 1, 3)`` uint8, row 0 black (no channel set), row
    ``k + 1`` the colour of channel ``k``.

    The colours of MinAtar's renderer (seaborn's ``color_palette("cubehelix", n_channels)``:
    matplotlib's cubehelix colour map, Green 2011, with gamma 1, start 0.5, rotations -1.5 and
    hue 1, read through its 256-entry table at ``n_channels`` evenly spaced points that leave
    out both ends), computed here with numpy.
    """
    lut_x = np.linspace(0.0, 1.0, 256)
    phi = 2 * np.pi * (0.5 / 3 + -1.5 * lut_x)
    amp = lut_x * (1 - lut_x) / 2
    coeffs = ((-0.14861, 1.78277), (-0.29227, -0.90649), (1.97294, 0.0))
    lut = np.stack([lut_x + amp * (p0 * np.cos(phi) + p1 * np.sin(phi)) for p0, p1 in coeffs], axis=1)
    lut = np.clip(lut, 0.0, 1.0)
    points = np.linspace(0.0, 1.0, n_channels + 2)[1:-1]
    colours = lut[np.minimum((points * 256).astype(int), 255)]
    rgb = np.round(colours * 255).astype(np.uint8)
    return np.concatenate([np.zeros((1, 3), np.uint8), rgb])


def render_minatar(obs: np.ndarray, scale: int = MINATAR_CELL_PX) -> np.ndarray:
    """A MinAtar observation as an RGB image.

    Args:
        obs: ``(C, H, W)`` in {0, 1} (the library's MinAtar observations, channels first).
        scale: pixels per cell side.

    Returns:
        ``(H * scale, W * scale, 3)`` uint8: each cell in the colour of its highest set channel
        (:func:`minatar_palette`), black where none is set.
    """
    obs = np.asarray(obs)
    c = obs.shape[0]
    index = np.max((obs != 0) * np.arange(1, c + 1).reshape(c, 1, 1), axis=0)
    return upscale(minatar_palette(c)[index], scale)


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """``(H, W, 3)`` -> ``(H * scale, W * scale, 3)``, each pixel a ``scale`` x ``scale`` block."""
    if scale == 1:
        return np.ascontiguousarray(image)
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def atari_screen_env(spec: EnvSpec, height: int = ATARI_SCREEN[0], width: int = ATARI_SCREEN[1]) -> Any:
    """The RGB twin of copy 0 of ``make_vector_env(spec, n, seed)``: one ``AtariVectorEnv`` copy
    with the same game and settings but ``grayscale=False``, one ``height`` x ``width`` frame,
    unstacked, rewards unclipped.

    Reset it with the same ``seed`` and send it copy 0's actions: its observations
    ``(1, 1, height, width, 3)`` uint8 are copy 0's screens in colour.
    """
    import ale_py

    s = dict(spec.settings)
    game = s.pop("game")
    s.update(grayscale=False, stack_num=1, img_height=height, img_width=width)
    return ale_py.AtariVectorEnv(
        game, 1, autoreset_mode="SameStep", reward_clipping=False, num_threads=1, **s
    )


# ---------------------------------------------------------------------------------------------
# headers and panels


def _font() -> Any:
    from PIL import ImageFont

    load = getattr(ImageFont, "load_default_imagefont", None)  # Pillow >= 10.1
    return load() if load is not None else ImageFont.load_default()


def _text_width(font: Any, text: str) -> float:
    return float(font.getlength(text)) if hasattr(font, "getlength") else float(font.getsize(text)[0])


def _fit(font: Any, text: str, width: float) -> str:
    """``text``, or its end led by ``...``, no wider than ``width`` pixels."""
    if _text_width(font, text) <= width:
        return text
    for i in range(1, len(text)):
        cut = "..." + text[i:]
        if _text_width(font, cut) <= width:
            return cut
    return ""


def header_height() -> int:
    """Pixel height of a panel's header (two lines of Pillow's default bitmap font), even."""
    line = _font().getbbox("Ag")[3] + 3
    h = 2 * line + 4
    return h + h % 2


@dataclass
class PanelText:
    """What a panel's header says."""

    name: str
    step: int
    score: float
    episode: int = 1  # 1-based
    episodes: int = 1
    ended: bool = False


def panel(screen: np.ndarray, text: PanelText) -> np.ndarray:
    """A screen under its header.

    Args:
        screen: ``(H, W, 3)`` uint8 RGB.
        text: the name (line 1, with ``ep k/N`` on the right when there are several episodes),
            the step within the episode (with ``end`` once it has ended) and the running score
            (line 2, on the right).

    Returns:
        ``(header_height() + H, W, 3)`` uint8.
    """
    from PIL import Image, ImageDraw

    font = _font()
    h, w = screen.shape[:2]
    top = header_height()
    image = Image.new("RGB", (w, top + h), HEADER_BG)
    image.paste(Image.fromarray(np.ascontiguousarray(screen, dtype=np.uint8)), (0, top))
    draw = ImageDraw.Draw(image)
    line = font.getbbox("Ag")[3] + 3
    pad = 3
    right1 = f"ep {text.episode}/{text.episodes}" if text.episodes > 1 else ""
    right2 = f"score {text.score:g}"
    left2 = f"step {text.step}" + (" end" if text.ended else "")
    for y, left, right in ((2, text.name, right1), (2 + line, left2, right2)):
        right_w = _text_width(font, right) if right else 0.0
        room = w - 2 * pad - right_w - (6 if right else 0)
        draw.text((pad, y), _fit(font, left, room), font=font, fill=HEADER_FG)
        if right and right_w <= w - 2 * pad:
            draw.text((w - pad - right_w, y), right, font=font, fill=HEADER_FG)
    return np.asarray(image)


def side_by_side(panels: Sequence[np.ndarray]) -> np.ndarray:
    """``k`` panels ``(H, W, 3)`` -> one frame ``(H, k * W, 3)``."""
    return np.concatenate(list(panels), axis=1)
