"""PNG charts drawn with OpenCV alone (the robot's install has no matplotlib).

Latency histograms on a log axis and per-tick timelines: enough for a person
to see a distribution's shape, its tail and its stalls; grouped bars and
line curves with their intervals for the analysis reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

COLOURS = [(200, 90, 30), (40, 140, 230), (60, 170, 60), (40, 40, 200), (160, 60, 160),
           (20, 180, 180), (120, 120, 120), (0, 100, 200)]  # BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX
W, H = 960, 540
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 50, 60


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45,
          colour: tuple[int, int, int] = (30, 30, 30), thickness: int = 1) -> None:
    cv2.putText(img, text, org, FONT, scale, colour, thickness, cv2.LINE_AA)


def _canvas(title: str, right: int = RIGHT) -> np.ndarray:
    img = np.full((H, W, 3), 255, np.uint8)
    _text(img, title, (LEFT, 28), 0.6, thickness=1)
    cv2.rectangle(img, (LEFT, TOP), (W - right, H - BOTTOM), (120, 120, 120), 1)
    return img


def _nice_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks of a log axis between lo and hi."""
    ticks = []
    for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


def _linear_ticks(lo: float, hi: float, count: int = 5) -> np.ndarray:
    """Round ticks (a 1-2-5 step) of a linear axis between lo and hi, about `count` of them."""
    raw = (hi - lo) / count
    e = 10.0 ** np.floor(np.log10(raw))
    step = next(m * e for m in (1, 2, 2.5, 5, 10) if m * e >= raw * (1 - 1e-9))
    return np.arange(np.ceil(lo / step) * step, hi + step * 1e-9, step) + 0.0  # no -0


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:g}"


def histogram_png(series: Mapping[str, Sequence[float]], path: str | Path, title: str,
                  unit: str = "us", bins: int = 60) -> Path:
    """One step line per series: the share of calls in each log-spaced bin of latency."""
    img = _canvas(title)
    data = {k: np.asarray(v, np.float64) for k, v in series.items() if len(v)}
    if not data:
        raise ValueError("histogram_png needs at least one non-empty series")
    lo = max(min(float(v.min()) for v in data.values()) / 1.15, 1e-3)
    hi = max(max(float(v.max()) for v in data.values()) * 1.15, lo * 1.5)
    edges = np.geomspace(lo, hi, bins + 1)
    hists = {k: np.histogram(v, edges)[0] / len(v) for k, v in data.items()}
    top = max(float(h.max()) for h in hists.values()) * 1.1
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP

    def px(v: float) -> int:
        return int(x0 + (np.log(v) - np.log(lo)) / (np.log(hi) - np.log(lo)) * (x1 - x0))

    def py(f: float) -> int:
        return int(y0 - f / top * (y0 - y1))

    for t in _nice_ticks(lo, hi):
        cv2.line(img, (px(t), y0), (px(t), y1), (230, 230, 230), 1)
        _text(img, _fmt(t), (px(t) - 12, y0 + 18))
    _text(img, f"latency ({unit}, log scale)", ((x0 + x1) // 2 - 70, H - 15))
    _text(img, "share of calls", (8, TOP - 10))
    for i, (name, h) in enumerate(hists.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts = []
        for j, f in enumerate(h):
            pts += [(px(edges[j]), py(f)), (px(edges[j + 1]), py(f))]
        cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
        v = data[name]
        label = (f"{name}: p50 {_fmt(float(np.percentile(v, 50)))}  p99 "
                 f"{_fmt(float(np.percentile(v, 99)))}  max {_fmt(float(v.max()))} {unit}")
        _text(img, label, (x1 - 470, y1 + 20 + 18 * i), 0.42, colour)
    return _save(img, path)


def timeline_png(series: Mapping[str, Sequence[float]], path: str | Path, title: str,
                 limit: float | None = None, unit: str = "us") -> Path:
    """One line per series against the tick index (log y); `limit` drawn as a red line."""
    img = _canvas(title)
    data = {k: np.maximum(np.asarray(v, np.float64), 1e-3) for k, v in series.items() if len(v)}
    if not data:
        raise ValueError("timeline_png needs at least one non-empty series")
    n = max(len(v) for v in data.values())
    lo = min(float(v.min()) for v in data.values())
    hi = max([float(v.max()) for v in data.values()] + ([limit] if limit else []))
    hi = max(hi, lo * 1.5)
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP

    def py(v: np.ndarray) -> np.ndarray:
        return (y0 - (np.log(v) - np.log(lo)) / (np.log(hi) - np.log(lo)) * (y0 - y1))

    for t in _nice_ticks(lo, hi):
        y = int(py(np.array([t]))[0])
        cv2.line(img, (x0, y), (x1, y), (230, 230, 230), 1)
        _text(img, _fmt(t), (8, y + 4))
    _text(img, f"tick (0..{n - 1})", ((x0 + x1) // 2 - 30, H - 15))
    if limit:
        y = int(py(np.array([limit]))[0])
        cv2.line(img, (x0, y), (x1, y), (0, 0, 220), 1)
        _text(img, f"deadline {_fmt(limit)} {unit}", (x1 - 160, y - 5), 0.42, (0, 0, 220))
    for i, (name, v) in enumerate(data.items()):
        colour = COLOURS[i % len(COLOURS)]
        # at most one point per pixel column: the column's maximum (stalls stay visible)
        cols = np.linspace(0, len(v), min(len(v), x1 - x0) + 1).astype(int)
        peaks = np.array([v[a:max(b, a + 1)].max() for a, b in zip(cols[:-1], cols[1:])])
        xs = x0 + (cols[:-1] / max(n - 1, 1) * (x1 - x0)).astype(int)
        pts = np.stack([xs, py(peaks).astype(int)], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, colour, 1, cv2.LINE_AA)
        _text(img, name, (x0 + 10, y1 + 18 + 18 * i), 0.42, colour)
    return _save(img, path)


def bars_png(groups: Mapping[str, Mapping[str, tuple[float, float, float]]], path: str | Path,
             title: str, unit: str = "") -> Path:
    """Grouped bars with intervals: ``groups[group][bar] = (value, lo, hi)``; one colour
    per bar name, a zero line, the value written over each bar."""
    img = _canvas(title)
    if not groups or not any(groups.values()):
        raise ValueError("bars_png needs at least one group with one bar")
    names = list(dict.fromkeys(b for g in groups.values() for b in g))
    every = [x for g in groups.values() for v in g.values() for x in v]
    lo, hi = min(min(every), 0.0), max(max(every), 0.0)
    pad = (hi - lo) * 0.1 or 1.0
    lo, hi = lo - (pad if lo < 0 else 0.0), hi + pad
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP

    def py(v: float) -> int:
        return int(y0 - (v - lo) / (hi - lo) * (y0 - y1))

    for t in np.linspace(lo, hi, 6):
        cv2.line(img, (x0, py(t)), (x1, py(t)), (235, 235, 235), 1)
        _text(img, f"{t:.2f}", (8, py(t) + 4))
    cv2.line(img, (x0, py(0.0)), (x1, py(0.0)), (90, 90, 90), 1)
    slot = (x1 - x0) / len(groups)
    width = max(int(slot * 0.8 / len(names)), 2)
    for g, (group, bars) in enumerate(groups.items()):
        left = x0 + g * slot + slot * 0.1
        _text(img, group, (int(left), y0 + 18))
        for b, name in enumerate(names):
            if name not in bars:
                continue
            value, low, high = bars[name]
            colour = COLOURS[b % len(COLOURS)]
            xa = int(left + b * width)
            cv2.rectangle(img, (xa, min(py(value), py(0.0))), (xa + width - 2,
                          max(py(value), py(0.0))), colour, -1)
            mid = xa + width // 2
            cv2.line(img, (mid, py(low)), (mid, py(high)), (20, 20, 20), 1)
            _text(img, f"{value:.2f}", (xa, min(py(high), py(value)) - 4), 0.35)
    for b, name in enumerate(names):
        _text(img, name, (x1 - 200, y1 + 18 + 18 * b), 0.42, COLOURS[b % len(COLOURS)])
    if unit:
        _text(img, unit, (8, TOP - 10))
    return _save(img, path)


def curves_png(series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float],
                                           Sequence[float]]],
               path: str | Path, title: str, x_label: str, y_label: str) -> Path:
    """One line with markers per series, ``series[name] = (x, y, lo, hi)``, its interval
    a lighter band of its colour; the legend right of the plot."""
    legend = 250
    img = _canvas(title, legend)
    data = {k: [np.asarray(a, np.float64) for a in v] for k, v in series.items()}
    if not data:
        raise ValueError("curves_png needs at least one series")
    for k, arrays in data.items():
        if len(arrays) != 4 or len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1 \
                or not len(arrays[0]) or not all(np.isfinite(a).all() for a in arrays):
            raise ValueError(f"curves_png series {k!r}: give (x, y, lo, hi), four finite 1-D "
                             "sequences of one non-zero length")
    xs = np.concatenate([v[0] for v in data.values()])
    ys = np.concatenate([np.concatenate(v[1:]) for v in data.values()])
    xlo, xhi = float(xs.min()), float(xs.max())
    if xhi == xlo:
        xlo, xhi = xlo - 0.5, xhi + 0.5
    ylo, yhi = float(ys.min()), float(ys.max())
    pad = (yhi - ylo) * 0.08 or 0.5
    ylo, yhi = ylo - pad, yhi + pad
    x0, x1, y0, y1 = LEFT, W - legend, H - BOTTOM, TOP
    inset = 12  # the first and last points stay off the frame

    def px(v: np.ndarray) -> np.ndarray:
        return (x0 + inset + (v - xlo) / (xhi - xlo) * (x1 - x0 - 2 * inset)).astype(np.int32)

    def py(v: np.ndarray) -> np.ndarray:
        return (y0 - (v - ylo) / (yhi - ylo) * (y0 - y1)).astype(np.int32)

    for t in _linear_ticks(ylo, yhi):
        y = int(py(np.array([t]))[0])
        cv2.line(img, (x0, y), (x1, y), (235, 235, 235), 1)
        _text(img, f"{t:.3g}", (8, y + 4))
    ticks = np.unique(xs) if len(np.unique(xs)) <= 12 else _linear_ticks(xlo, xhi)
    for t in ticks:
        x = int(px(np.array([t]))[0])
        cv2.line(img, (x, y0), (x, y1), (235, 235, 235), 1)
        _text(img, f"{t:.3g}", (x - 8, y0 + 18))
    _text(img, x_label, ((x0 + x1) // 2 - 4 * len(x_label), H - 15))
    _text(img, y_label, (8, TOP - 10))
    for i, (x, _, lo, hi) in enumerate(data.values()):  # bands first, lines over them all
        band = img.copy()
        outline = np.concatenate([np.stack([px(x), py(lo)], 1), np.stack([px(x), py(hi)], 1)[::-1]])
        cv2.fillPoly(band, [outline.astype(np.int32)], COLOURS[i % len(COLOURS)], cv2.LINE_AA)
        cv2.addWeighted(band, 0.18, img, 0.82, 0, dst=img)
    for i, (name, (x, y, lo, hi)) in enumerate(data.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts = np.stack([px(x), py(y)], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
        for (a, b), top, bottom in zip(pts, py(hi), py(lo)):
            cv2.line(img, (int(a), int(top)), (int(a), int(bottom)), colour, 1, cv2.LINE_AA)
            cv2.circle(img, (int(a), int(b)), 3, colour, -1, cv2.LINE_AA)
        ly = y1 + 12 + 20 * i
        cv2.line(img, (x1 + 10, ly - 4), (x1 + 30, ly - 4), colour, 2, cv2.LINE_AA)
        _text(img, name[:32], (x1 + 36, ly), 0.42, colour)
    return _save(img, path)


def _save(img: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}; check that the folder is writable")
    return path
