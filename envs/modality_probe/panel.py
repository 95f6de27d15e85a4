"""Pictures of a ModalityProbe world for people (not observations)."""

from __future__ import annotations

import cv2
import numpy as np

from envs.modality_probe.config import ModalityProbeConfig
from envs.modality_probe.render import AudioRenderer, Renderer, VectorRenderer

TILE = 128
"""Side of one modality's tile, pixels."""
BIT_COLOURS = ((230, 80, 60), (80, 200, 90), (70, 120, 240))
"""Colour of the shared, unique and synergy bit's marks."""
_MAX_HZ = 3500.0


def _image_tile(x: np.ndarray, r: Renderer) -> np.ndarray:
    return cv2.resize(x, (TILE, TILE), interpolation=cv2.INTER_NEAREST)


def _audio_tile(x: np.ndarray, r: AudioRenderer) -> np.ndarray:
    """Magnitude spectrum up to 3.5 kHz; ticks under the tones (bright: value 1)."""
    tile = np.full((TILE, TILE, 3), 24, np.uint8)
    mag = np.abs(np.fft.rfft(x[0].astype(np.float64)))
    k_max = min(len(mag), int(np.ceil(_MAX_HZ * r.samples / r.sample_rate)) + 1)
    col = (np.arange(k_max) * TILE) // k_max
    heights = np.zeros(TILE)
    np.maximum.at(heights, col, mag[:k_max])
    heights = (TILE - 12) * heights / max(heights.max(), 1e-12)
    for c in np.flatnonzero(heights >= 1):
        tile[TILE - 10 - int(heights[c]):TILE - 10, c] = 220
    for j, pair in enumerate(r.bins):
        for v, k in enumerate(pair):
            if k < k_max:
                c = int(k * TILE // k_max)
                shade = np.asarray(BIT_COLOURS[j]) * (1.0 if v else 0.45)
                tile[TILE - 8:, max(c - 1, 0):c + 2] = shade.astype(np.uint8)
    return tile


def _vector_tile(x: np.ndarray, r: VectorRenderer) -> np.ndarray:
    """One bar per entry around the middle line; the bit entries coloured."""
    tile = np.full((TILE, TILE, 3), 24, np.uint8)
    mid, d = TILE // 2, len(x)
    scale = (mid - 4) / max(float(np.abs(x).max()), 1.0)
    width = max(TILE // d, 1)
    for i in range(min(d, TILE)):
        h = int(round(float(x[i]) * scale))
        top, bottom = (mid - h, mid) if h > 0 else (mid, mid - h)
        colour = BIT_COLOURS[i] if i < 3 else (150, 150, 150)
        tile[top:bottom + 1, i * width:(i + 1) * width - 1] = colour
    tile[mid, :] = 90
    return tile


_TILES = {"image": _image_tile, "audio": _audio_tile, "vector": _vector_tile}


def _text(img: np.ndarray, text: str, y: int) -> None:
    cv2.putText(img, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (235, 235, 235), 1,
                cv2.LINE_AA)


def world_panel(obs: dict[str, np.ndarray], cfg: ModalityProbeConfig, answer: int) -> np.ndarray:
    """(H, W, 3) uint8: one tile per modality (role and key above), the answer below."""
    renderers = cfg.renderers()
    gap, head, foot = 4, 16, 18
    width = len(renderers) * (TILE + gap) + gap
    out = np.full((head + TILE + foot, width, 3), 8, np.uint8)
    for i, (role, r) in enumerate(renderers.items()):
        x0 = gap + i * (TILE + gap)
        out[head:head + TILE, x0:x0 + TILE] = _TILES[r.kind](obs[r.key], r)
        cv2.putText(out, f"{role}: {r.key}", (x0 + 2, head - 4), cv2.FONT_HERSHEY_SIMPLEX,
                    0.38, (235, 235, 235), 1, cv2.LINE_AA)
    comps = ",".join(f"{c}={(answer >> k) & 1}" for k, c in enumerate(cfg.components))
    _text(out, comps, head + TILE + foot - 5)
    return out
