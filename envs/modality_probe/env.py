"""ModalityProbe: short episodes whose answer depends on bits shown in two modalities."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.batched import BatchedEnv
from envs.metrics import EpisodeMetric
from envs.modality_probe.config import WHERE, ModalityProbeConfig
from envs.modality_probe.panel import world_panel
from envs.single import SingleWorldEnv
from perception.settings import config_from_kwargs
from perception.spec import ActionSpec, ObsSpec

LATENTS = ("r", "u_a", "u_b", "s_a", "s_b")
"""Latent bits of an episode: shared r, unique u_a and u_b, synergy sides s_a and s_b."""
_SHOWN = {"a": [0, 1, 3], "b": [0, 2, 4]}  # latent columns each carrier shows, in BITS order


def modality_probe_spec(cfg: ModalityProbeConfig) -> ObsSpec:
    """The observation contract of ModalityProbe for settings `cfg` (order a, b, distractor)."""
    mods = tuple(r.spec(cfg.control_hz) for r in cfg.renderers().values())
    return ObsSpec(mods, control_hz=cfg.control_hz)


def modality_probe_action_spec(cfg: ModalityProbeConfig) -> ActionSpec:
    """``Discrete(2**K)``: bit k of the action answers ``cfg.components[k]``."""
    comps = cfg.components
    if len(comps) == 1:
        names = ("answer_0", "answer_1")
    else:
        names = tuple(
            "_".join(f"{c}{(a >> k) & 1}" for k, c in enumerate(comps))
            for a in range(cfg.num_actions)
        )
    return ActionSpec("discrete", n=cfg.num_actions, names=names)


class ModalityProbeVectorEnv(BatchedEnv):
    """## Description

    A probe of how a model combines modalities, with a known answer. Each
    episode draws five independent uniform bits: r (shown by both modality a
    and modality b), u_a (only by a), u_b (only by b), s_a (by a) and s_b (by
    b). Each modality renders its three bits (shared, unique, synergy) with
    random nuisances: stripe orientation in an image patch (random phase and
    colour), the pitch of a tone (random phase and loudness), or the sign of a
    vector entry; plus Gaussian noise. The answer depends on the bits by
    ``interaction``:

    | interaction | answer | information |
    |---|---|---|
    | ``redundant`` | r | either modality alone suffices |
    | ``unique_a`` | u_a | only a; b alone is at chance |
    | ``unique_b`` | u_b | only b; a alone is at chance |
    | ``synergy`` | s_a XOR s_b | both needed; either alone gives exactly no information |
    | ``mixed`` | the components with a positive weight, all at once | weighted |

    Every interaction shows the same kind of observations; only the answer
    differs. An optional ``distractor`` modality shows bits nothing depends on.
    The Bayes-optimal answer from any subset of modalities is
    :func:`envs.modality_probe.bayes_optimal_actions` (the ground truth that
    fusion methods and quantification tools check themselves against).

    ## Observation space
    A ``Dict`` declared by :func:`modality_probe_spec` (which lists a, b, then
    the distractor): ``rgb`` (S, S, 3) uint8 for an image, ``audio`` (1, T) float32
    in [-1, 1] for audio, ``vector`` (D,) float32 for a vector. ``noise_a``,
    ``noise_b`` and ``noise_distractor`` set the noise per bit: the noise std
    over the signal RMS where a bit is read (same difficulty in every kind).

    ## Action space
    ``Discrete(2)`` (the answer bit) for the pure interactions; for ``mixed``,
    ``Discrete(2**K)`` for the K components with a positive weight, taken in
    the order redundant, unique_a, unique_b, synergy: bit k of the action
    (least significant first) answers component k.

    ## Rewards
    At the episode's last step: 1 for a right answer (pure interactions), or
    the sum of the normalised weights of the components answered right
    (``mixed``). 0 at earlier steps.

    ## Episode end
    Terminated after ``episode_steps`` steps (1 by default: a contextual
    bandit). With more steps the same bits, phases, colours and gains are shown
    with fresh noise each step, so evidence can be accumulated; only the last
    answer counts, and the last observation shown is the final one (answering
    changes nothing). Never truncated. ``final_info`` (or ``info`` of the single
    env, every step) reports ``correct`` (every component right),
    ``correct_<component>``, ``answer`` (the right action), the latent bits
    ``latent_r``, ``latent_u_a``, ``latent_u_b``, ``latent_s_a``,
    ``latent_s_b``, ``episode_return`` and ``episode_length``.

    ## Arguments
    See :class:`ModalityProbeConfig`; ``num_envs`` worlds step in one call.
    ``autoreset=True`` resets ended worlds in the same step
    (``AutoresetMode.SAME_STEP``).

    ## Version history
    - v0: first version.
    """

    episode_metrics = (EpisodeMetric("correct", "every component of the answer right", True),)

    def __init__(self, num_envs: int = 1, autoreset: bool = True, **kwargs: Any) -> None:
        self.cfg = config_from_kwargs(ModalityProbeConfig, kwargs, WHERE)
        cfg = self.cfg
        self._init_spaces(num_envs, modality_probe_spec(cfg), modality_probe_action_spec(cfg))
        self.autoreset = bool(autoreset)
        self.renderers = cfg.renderers()
        self._components = cfg.components
        self._weights = np.asarray(cfg.component_weights)
        self._shifts = np.arange(len(self._components))
        n = self.num_envs
        self._rng = np.random.default_rng()
        self._latents = np.zeros((n, len(LATENTS)), np.int64)
        self._clean: dict[str, np.ndarray] = {}
        self._t = np.zeros(n, np.int64)
        self._return = np.zeros(n)
        self._last_obs: dict[str, np.ndarray] | None = None

    # -- episode control -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start new episodes in every world; a seed restarts the RNG, no seed continues it."""
        if seed is not None:
            self._rng = np.random.default_rng(np.random.SeedSequence(seed))
        self._new_episodes(np.arange(self.num_envs))
        self._last_obs = self._observe()
        return self._last_obs, {}

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._last_obs is None:
            raise RuntimeError("ModalityProbe: call reset() before step()")
        if not self.autoreset and (self._t >= self.cfg.episode_steps).any():
            raise RuntimeError(
                "ModalityProbe: the episode has ended (autoreset=False); call reset() first"
            )
        a = self.check_actions(actions)
        answers = self._answers()  # (n, K)
        given = (a[:, None] >> self._shifts) & 1
        right = given == answers
        self._t += 1
        done = self._t >= self.cfg.episode_steps
        reward = np.where(done, right @ self._weights, 0.0)
        self._return += reward
        terminated = done.copy()
        truncated = np.zeros(self.num_envs, np.bool_)
        metrics = self._metrics(right, answers)
        if not self.autoreset:
            # the last view stays the observation once the answer is in (new arrays, though)
            self._last_obs = (
                self._observe() if not done.all()
                else {k: v.copy() for k, v in self._last_obs.items()}
            )
            return self._last_obs, reward, terminated, truncated, metrics
        info: dict[str, Any] = {}
        if done.any():
            idx = np.flatnonzero(done)
            final_obs = {k: v[idx] for k, v in self._last_obs.items()}
            info = self.final_infos(done, final_obs, metrics)
            self._new_episodes(idx)
        self._last_obs = self._observe()
        return self._last_obs, reward, terminated, truncated, info

    def _new_episodes(self, idx: np.ndarray) -> None:
        m = len(idx)
        rng = self._rng
        latents = rng.integers(0, 2, (m, len(LATENTS)))
        everyone = m == self.num_envs
        if everyone:
            self._latents = latents
        else:
            self._latents[idx] = latents
        for role, renderer in self.renderers.items():
            bits = latents[:, _SHOWN[role]] if role in _SHOWN else rng.integers(0, 2, (m, 3))
            clean = renderer.clean(bits, rng)
            if everyone:
                self._clean[role] = clean
            else:
                self._clean[role][idx] = clean
        self._t[idx] = 0
        self._return[idx] = 0.0

    def _observe(self) -> dict[str, np.ndarray]:
        return {r.key: r.observe(self._clean[role], self._rng)
                for role, r in self.renderers.items()}

    def _answers(self) -> np.ndarray:
        """The right answer of each component, (n, K) int64."""
        r, u_a, u_b, s_a, s_b = self._latents.T
        every = {"redundant": r, "unique_a": u_a, "unique_b": u_b, "synergy": s_a ^ s_b}
        return np.stack([every[c] for c in self._components], axis=1)

    def _metrics(self, right: np.ndarray, answers: np.ndarray) -> dict[str, np.ndarray]:
        """Per-world metrics of this step's answer, arrays of shape (n,)."""
        out: dict[str, np.ndarray] = {"correct": right.all(axis=1)}
        for k, c in enumerate(self._components):
            out["correct_" + c] = right[:, k].copy()
        out["answer"] = (answers << self._shifts).sum(axis=1)
        for j, name in enumerate(LATENTS):
            out["latent_" + name] = self._latents[:, j].copy()
        out["episode_return"] = self._return.copy()
        out["episode_length"] = self._t.copy()
        return out

    # -- privileged access -----------------------------------------------------------------

    def expert_actions(self) -> np.ndarray:
        """The right action of every world, from the latent bits (ground truth)."""
        return (self._answers() << self._shifts).sum(axis=1)

    def latents(self) -> dict[str, np.ndarray]:
        """The latent bits of every world's episode, ``{name: (n,) int64}``."""
        return {name: self._latents[:, j].copy() for j, name in enumerate(LATENTS)}

    def render_world(self, index: int) -> np.ndarray:
        """A panel of world `index`'s last observation, one tile per modality, for people."""
        if self._last_obs is None:
            raise RuntimeError("ModalityProbe: call reset() before render_world()")
        obs = {k: v[index] for k, v in self._last_obs.items()}
        return world_panel(obs, self.cfg, int(self.expert_actions()[index]))


class ModalityProbeEnv(SingleWorldEnv):
    __doc__ = ModalityProbeVectorEnv.__doc__
    batched_cls = ModalityProbeVectorEnv

    @property
    def cfg(self) -> ModalityProbeConfig:
        """The settings (for :func:`envs.modality_probe.bayes_optimal_actions`)."""
        return self.batched.cfg
