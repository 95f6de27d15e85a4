"""Videos of worlds for people: the egocentric view, a map and the audio, side by side.

Kept apart from the worlds' dynamics: it only reads observations (and, for
AudioVisualNav, the world state to draw the top-down map).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from envs.factory import make_vector_env, obs_spec_of
from perception.spec import ModalityKind, ObsSpec

TEXT_BGR = (30, 30, 30)
IMAGE_KINDS = (ModalityKind.IMAGE, ModalityKind.DEPTH)
STILL_FRAME = 12  # the frame written as the still (or the last, in shorter videos)
PANEL_BG = 250


def _label(img: np.ndarray, text: str, org: tuple[int, int] = (6, 16)) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT_BGR, 1, cv2.LINE_AA)


def image_panel(frame: np.ndarray, side: int, kind: ModalityKind, max_value: float) -> np.ndarray:
    """An image or depth modality as a BGR square of `side` pixels."""
    if kind is ModalityKind.DEPTH:
        scaled = np.clip(frame[..., 0] / max_value, 0, 1)
        bgr = cv2.applyColorMap((255 * (1 - scaled)).astype(np.uint8), cv2.COLORMAP_INFERNO)
    elif frame.shape[-1] == 1:
        bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    else:
        bgr = np.ascontiguousarray(frame[..., ::-1])
    return cv2.resize(bgr, (side, side), interpolation=cv2.INTER_NEAREST)


def waveform_panel(audio: np.ndarray, width: int, height: int) -> np.ndarray:
    """Each audio channel as a trace in its own band; left ear on top."""
    img = np.full((height, width, 3), PANEL_BG, np.uint8)
    channels = audio.shape[0]
    band = height // channels
    colours = [(200, 80, 30), (30, 80, 200), (60, 160, 60)]
    xs = np.linspace(0, width - 1, audio.shape[1]).astype(np.int32)
    peak = max(float(np.abs(audio).max()), 0.05)
    for c in range(channels):
        mid = c * band + band // 2
        ys = (mid - audio[c] / peak * (band * 0.45)).astype(np.int32)
        pts = np.stack([xs, ys], axis=1).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, colours[c % 3], 1, cv2.LINE_AA)
        rms = float(np.sqrt(np.mean(audio[c] ** 2)))
        name = ("left ear", "right ear")[c] if channels == 2 else f"channel {c}"
        _label(img, f"{name}  rms {rms:.3f}", (6, c * band + 16))
    return img


def vector_panel(values: Mapping[str, np.ndarray], width: int, height: int) -> np.ndarray:
    """Vector modalities as text, one line per modality."""
    img = np.full((height, width, 3), PANEL_BG, np.uint8)
    for i, (name, arr) in enumerate(values.items()):
        numbers = " ".join(f"{float(v):+.2f}" for v in np.ravel(arr)[:16])
        _label(img, f"{name}: {numbers}", (6, 18 + 20 * i))
    return img


def compose_frame(spec: ObsSpec, obs: Mapping[str, np.ndarray], side: int,
                  extra: list[np.ndarray] | None = None, caption: str = "") -> np.ndarray:
    """One video frame (BGR) from one world's observation: images, then audio and vectors."""
    tiles = []
    for m in spec:
        if m.kind in IMAGE_KINDS:
            tile = image_panel(obs[m.name], side, m.kind, m.high)
            _label(tile, m.name)
            tiles.append(tile)
    tiles += extra or []
    top = np.hstack(tiles) if tiles else np.full((side, side, 3), PANEL_BG, np.uint8)
    width = top.shape[1]
    rows = [top]
    for m in spec:
        if m.kind is ModalityKind.AUDIO:
            rows.append(waveform_panel(obs[m.name], width, side // 2))
    vectors = {m.name: obs[m.name] for m in spec
               if m.kind in (ModalityKind.VECTOR, ModalityKind.TOUCH)}
    if vectors:
        rows.append(vector_panel(vectors, width, 12 + 20 * len(vectors)))
    if caption:
        strip = np.full((24, width, 3), PANEL_BG, np.uint8)
        _label(strip, caption, (6, 17))
        rows.append(strip)
    return np.vstack(rows)


def record_video(env_cfg: Mapping[str, Any], out: str | Path, episodes: int = 2,
                 max_frames: int = 400, scale: int = 4, fps: float = 10.0, seed: int = 0,
                 still: str | Path | None = None,
                 policy: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None,
                 label: str = "", on_episode_end: Callable[[], None] | None = None
                 ) -> dict[str, Any]:
    """Write an mp4 of one world driven by `policy` (batched obs -> actions).

    Without a policy: the world's expert, or random actions if it has none.
    Returns what was recorded: frames, episodes, returns and successes.
    """
    env = make_vector_env(env_cfg, num_envs=1)
    spec = obs_spec_of(env)
    has_expert = policy is None and hasattr(env, "expert_actions")
    image_sides = [m.shape[0] for m in spec if m.kind in IMAGE_KINDS]
    side = max(image_sides) * scale if image_sides else 256
    top_down = _top_down_drawer(env)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    frames, ended, ret = 0, [], 0.0
    try:
        while frames < max_frames and len(ended) < episodes:
            one = {k: v[0] for k, v in obs.items()}
            extra = [top_down(side, frames)] if top_down else []
            caption = f"{label}episode {len(ended) + 1}   return so far {ret:+.2f}"
            frame = compose_frame(spec, one, side, extra, caption)
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not writer.isOpened():
                    raise RuntimeError(f"OpenCV cannot write mp4 to {out}; check the path")
            writer.write(frame)
            if frames <= STILL_FRAME:
                still_frame = frame
            frames += 1
            if policy is not None:
                actions = policy(obs)
            else:
                actions = env.expert_actions() if has_expert else env.action_space.sample()
            obs, reward, term, trunc, info = env.step(actions)
            ret += float(reward[0])
            if term[0] or trunc[0]:
                fi = info.get("final_info", {})
                ended.append({"return": ret, "success": bool(fi.get("success", [False])[0])})
                ret = 0.0
                if on_episode_end is not None:
                    on_episode_end()
    finally:
        if writer is not None:
            writer.release()
        env.close()
    if still and frames:
        Path(still).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(still), still_frame)
    return {"video": str(out), "frames": frames, "episodes": ended}


def _top_down_drawer(env: Any):
    from envs.audiovisual_nav.env import AudioVisualNavVectorEnv

    if not isinstance(env, AudioVisualNavVectorEnv):
        return None
    from envs.audiovisual_nav.topdown import draw_top_down

    def draw(side: int, t: int) -> np.ndarray:
        img = draw_top_down(env, 0, side, t)
        _label(img, "map (goal: red rings)")
        return img

    return draw
