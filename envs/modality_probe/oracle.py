"""Ground truth of ModalityProbe: Bayes-optimal readers of each modality and of the answer.

Every bit a modality shows lies in one of two orthogonal bins (``render.py``):
under value v, bin v holds ``G + noise`` and bin 1 - v holds noise only, with
a random gain ``G ~ CN(0, S I_d)`` (d = 3 colour channels for images, 1 for
tones) and white noise ``CN(0, N I_d)`` in each bin. The bins' energies E_0,
E_1 are then sufficient, and the exact log-odds of the bit is

    log P(v=1 | x) / P(v=0 | x) = (E_1 - E_0) * S / (N (S + N)).

The vector's bits are ``+-1 + N(0, noise**2)``: log-odds ``2 x / noise**2``.
Everything else in an observation is independent of the bits, so these
readers are Bayes-optimal, up to the 8-bit rounding of images (counted as
noise of variance 1/12 grey level squared) and clipping beyond 4 (image) or
5 (audio) noise stds.

Latent bits are independent a priori and the modalities are independent given
them, so the answer components have independent posteriors: redundant adds
both modalities' log-odds of r, unique_a/unique_b use one modality, and
synergy (s_a XOR s_b) has ``2 P(y=1) - 1 = -(2 p_a - 1)(2 p_b - 1)``. A
modality not used contributes log-odds 0 (a uniform prior); for synergy one
modality alone then gives P(y=1) = 1/2 exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from envs.modality_probe.config import WHERE, ModalityProbeConfig
from envs.modality_probe.render import AudioRenderer, ImageRenderer, Renderer, VectorRenderer
from perception.settings import config_from_kwargs
from perception.spec import presence_key

QUANT_VAR = 1.0 / 12.0
"""Variance of 8-bit rounding, grey levels squared."""
FLOAT_STD = 1e-6
"""Floor on the noise std of float modalities (float32 rounding), so noise 0 is finite."""


def _as_config(cfg: ModalityProbeConfig | Mapping[str, Any]) -> ModalityProbeConfig:
    if isinstance(cfg, ModalityProbeConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return config_from_kwargs(ModalityProbeConfig, cfg, WHERE)
    raise TypeError(
        f"expected a ModalityProbeConfig (e.g. env.cfg) or a mapping of its settings, "
        f"got {type(cfg).__name__}"
    )


def _views(
    obs: Mapping[str, Any], key: str, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The view-averaged data of modality `key` and the number of views per world.

    ``obs[key]`` is (N, *shape), or (V, N, *shape) for V views of the same
    episodes (``episode_steps > 1``). A ``<key>_present`` flag of shape (N,) or
    (V, N), if given, drops the views where it is False.
    """
    if key not in obs:
        raise ValueError(f"observation lacks modality {key!r}; it has: {', '.join(sorted(obs))}")
    arr = np.asarray(obs[key])
    rank = len(shape)
    if arr.ndim == rank + 1:
        arr = arr[None]
    if arr.ndim != rank + 2 or arr.shape[2:] != shape:
        raise ValueError(
            f"modality {key!r}: expected shape (N, *{shape}) or (views, N, *{shape}), got "
            f"{np.shape(obs[key])}; check that the config matches the env's (pass env.cfg)"
        )
    v, n = arr.shape[:2]
    flag = obs.get(presence_key(key))
    if flag is None:
        if v == 1:
            return arr[0], np.ones(n)
        return arr.mean(axis=0, dtype=np.float64), np.full(n, float(v))
    mask = np.broadcast_to(np.asarray(flag, bool).reshape(-1, n), (v, n))
    count = mask.sum(axis=0).astype(np.float64)
    w = mask.reshape((v, n) + (1,) * rank).astype(np.float64)
    x = (w * arr).sum(axis=0) / np.maximum(count, 1.0).reshape((n,) + (1,) * rank)
    return x, count


def _energy_log_odds(e1: np.ndarray, e0: np.ndarray, s: float, noise: np.ndarray) -> np.ndarray:
    return (e1 - e0) * (s / (noise * (s + noise)))


def _image_log_odds(x: np.ndarray, r: ImageRenderer, views: np.ndarray) -> np.ndarray:
    p = r.patch
    e = np.exp(-2j * np.pi * r.cycles * np.arange(p) / p)
    s = p**4 * r.gain_std**2 / 4.0
    noise = p**2 * (r.noise_std**2 + QUANT_VAR) / np.maximum(views, 1.0)
    out = np.empty((x.shape[0], 3))
    for j in range(3):
        r0, c0 = r.origins[j]
        patch = x[:, r0:r0 + p, c0:c0 + p, :]
        down_rows = patch.sum(axis=2, dtype=np.float64)  # (n, row, channel)
        along_cols = patch.sum(axis=1, dtype=np.float64)  # (n, col, channel)
        e0 = (np.abs(np.einsum("nuc,u->nc", down_rows, e)) ** 2).sum(-1)  # horizontal: 0
        e1 = (np.abs(np.einsum("nuc,u->nc", along_cols, e)) ** 2).sum(-1)  # vertical: 1
        out[:, j] = _energy_log_odds(e1, e0, s, noise)
    return out


def _audio_log_odds(x: np.ndarray, r: AudioRenderer, views: np.ndarray) -> np.ndarray:
    t = r.samples
    wave = np.asarray(x[:, 0, :], np.float32)
    re = (wave @ r.cos.reshape(6, t).T).astype(np.float64)
    im = (wave @ r.sin.reshape(6, t).T).astype(np.float64)
    energy = (re**2 + im**2).reshape(-1, 3, 2)
    s = t**2 * r.gain_std**2 / 4.0
    noise = t * (r.noise_std**2 + FLOAT_STD**2) / np.maximum(views, 1.0)
    return _energy_log_odds(energy[:, :, 1], energy[:, :, 0], s, noise[:, None])


def _vector_log_odds(x: np.ndarray, r: VectorRenderer, views: np.ndarray) -> np.ndarray:
    var = (r.noise_std**2 + FLOAT_STD**2) / np.maximum(views, 1.0)
    return 2.0 * np.asarray(x[:, :3], np.float64) / var[:, None]


_READERS = {"image": _image_log_odds, "audio": _audio_log_odds, "vector": _vector_log_odds}


def bit_log_odds(
    obs: Mapping[str, Any], cfg: ModalityProbeConfig | Mapping[str, Any], role: str
) -> np.ndarray:
    """Exact log P(bit=1 | data) / P(bit=0 | data) of the bits one modality shows.

    Args:
        obs: batched observations, ``obs[key]`` of shape (N, ...) or (V, N, ...)
            for V views of the same episodes; ``<key>_present`` flags drop views.
        cfg: the env's settings (``env.cfg``).
        role: ``"a"``, ``"b"`` or ``"distractor"`` (or that modality's key).

    Returns:
        (N, 3) float64: the shared, unique and synergy bit (r, u_a, s_a for a;
        r, u_b, s_b for b). 0 where a modality is absent in every view.
    """
    cfg = _as_config(cfg)
    role = _role(role, cfg)
    renderer: Renderer = cfg.renderers()[role]
    shape = renderer.spec(cfg.control_hz).shape
    x, views = _views(obs, renderer.key, shape)
    llr = _READERS[renderer.kind](x, renderer, views)
    return np.where((views > 0)[:, None], llr, 0.0)


def _role(name: str, cfg: ModalityProbeConfig) -> str:
    keys = cfg.keys
    if name in keys:
        return name
    for role, key in keys.items():
        if name == key:
            return role
    choices = ", ".join(f"{r!r} ({k})" for r, k in keys.items())
    raise ValueError(f"unknown modality {name!r}; use a role or observation key: {choices}")


def _batch_size(obs: Mapping[str, Any], cfg: ModalityProbeConfig) -> int:
    for r in cfg.renderers().values():
        if r.key in obs:
            return _views(obs, r.key, r.spec(cfg.control_hz).shape)[1].shape[0]
    raise ValueError(f"observation has none of the modalities {', '.join(cfg.keys.values())}")


def _evidence(
    obs: Mapping[str, Any], cfg: ModalityProbeConfig, use: str | Iterable[str]
) -> np.ndarray:
    """2 P(component = 1 | used modalities) - 1, shape (N, K), in [-1, 1]."""
    names = (use,) if isinstance(use, str) else tuple(use)
    roles = {_role(u, cfg) for u in names}
    n = _batch_size(obs, cfg)
    llr = {r: bit_log_odds(obs, cfg, r) if r in roles else np.zeros((n, 3)) for r in ("a", "b")}
    la, lb = llr["a"], llr["b"]
    columns = {
        "redundant": lambda: np.tanh(0.5 * (la[:, 0] + lb[:, 0])),
        "unique_a": lambda: np.tanh(0.5 * la[:, 1]),
        "unique_b": lambda: np.tanh(0.5 * lb[:, 1]),
        "synergy": lambda: -np.tanh(0.5 * la[:, 2]) * np.tanh(0.5 * lb[:, 2]),
    }
    return np.stack([columns[c]() for c in cfg.components], axis=1)


def answer_probabilities(
    obs: Mapping[str, Any],
    cfg: ModalityProbeConfig | Mapping[str, Any],
    use: str | Iterable[str] = ("a", "b"),
) -> np.ndarray:
    """P(component = 1 | the modalities in `use`) for each of ``cfg.components``, (N, K).

    `use` names modalities by role (``"a"``, ``"b"``, ``"distractor"``) or
    observation key; the others count as unseen (uniform prior).
    """
    cfg = _as_config(cfg)
    return 0.5 + 0.5 * _evidence(obs, cfg, use)


def bayes_optimal_actions(
    obs: Mapping[str, Any],
    cfg: ModalityProbeConfig | Mapping[str, Any],
    use: str | Iterable[str] = ("a", "b"),
) -> np.ndarray:
    """The Bayes-optimal action of every world, reading only the modalities in `use`.

    It maximises the expected reward and the chance that every component is
    right (the posteriors are independent). Component k's answer is bit k of
    the action; a tie (P = 1/2 exactly) answers 0.

    Args:
        obs: batched observations as from the vector env, (N, ...) per key, or
            (V, N, ...) for V views of the same episodes.
        cfg: the env's settings (``env.cfg``) or a mapping of them.
        use: modalities to read, by role or observation key.

    Returns:
        (N,) int64 actions.
    """
    cfg = _as_config(cfg)
    bits = (_evidence(obs, cfg, use) > 0).astype(np.int64)
    return (bits << np.arange(bits.shape[1])).sum(axis=1)
