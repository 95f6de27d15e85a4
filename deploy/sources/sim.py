"""A simulated world as a stand-in robot: its sensors are a source, its motors the actuator.

The world runs in a process of its own, as a robot's simulator (or the robot)
would: the control loop's process only receives observations and sends
actions over a pipe, so stepping the world never holds the loop's GIL. The
world steps whenever an action arrives (from
:class:`deploy.actuators.SimActuator`; if several arrived during a step, the
newest wins), stamps the observation with ``time.monotonic()`` (one clock
for every process of the host) and sends it back; a thread here publishes
each modality. Optional realism knobs make the stand-in behave like a real
robot's sensors: a modality switched off (never published, so absent every
tick), a gain (an uncalibrated microphone), Gaussian noise in the
modality's units (clipped to its bounds). Finished episodes' metrics
(success, SPL, ...) are collected for reports.

An observation's modalities are published at once (a tick never mixes two
steps). In lockstep (:meth:`wait_answer` before each tick) the loop sees the
answer to every action it sent, as the training and evaluation loops do;
paced at a rate above the world's, a slow step leaves a tick with the last
observation, and its action reaches the world one step late, as on a robot.

Needs the ``sim`` extra (the worlds' JIT), not torch.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from deploy.sources.base import Source, SourceError
from perception.spec import ObsSpec


def perturb(data: np.ndarray, low: float, high: float, dtype: str, gain: float, noise: float,
            rng: np.random.Generator) -> np.ndarray:
    """`data` x gain + N(0, noise), clipped to [low, high], in `dtype` (uint8 rounded)."""
    x = data.astype(np.float64) * gain
    if noise:
        x = x + rng.normal(0.0, noise, x.shape)
    x = np.clip(x, low if np.isfinite(low) else -np.inf, high if np.isfinite(high) else np.inf)
    return (np.rint(x) if dtype == "uint8" else x).astype(dtype)


def _world(conn: Any, env_cfg: dict[str, Any], spec_json: str, off: tuple[str, ...],
           gain: dict[str, float], noise: dict[str, float], seed: int, dtype: str) -> None:
    """The child process: step the world on each action, send back what its sensors give."""
    import os

    from perception.process import setup_process

    setup_process()  # before numba starts its threads
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one world: one thread, the loop keeps a core
    import envs  # noqa: F401  (registers the worlds)
    from envs.factory import make_vector_env

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:  # keep off the first CPU: a woken child would preempt the loop there
        os.sched_setaffinity(0, cpus[1:])
    spec = ObsSpec.from_json(spec_json)
    env = make_vector_env(env_cfg, 1)
    discrete = np.dtype(dtype).kind == "i"
    rng = np.random.default_rng(seed)

    def observe(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for m in spec:
            if m.name in off:
                continue
            data = np.asarray(obs[m.name][0])
            if m.name in gain or m.name in noise:
                data = perturb(data, m.low, m.high, m.dtype, gain.get(m.name, 1.0),
                               noise.get(m.name, 0.0), rng)
            out[m.name] = np.array(data)
        return out

    obs, _ = env.reset(seed=seed)
    conn.send(("obs", time.monotonic(), observe(obs), None))
    try:
        while True:
            data = conn.recv_bytes()
            while conn.poll():  # actions that came during the last step: the newest wins
                data = conn.recv_bytes()
            if not data:  # the parent's goodbye
                break
            action = np.frombuffer(data, dtype)
            action = action[0] if action.size == 1 and discrete else action
            obs, _, term, trunc, info = env.step(np.asarray(action)[None])
            t = time.monotonic()
            ended = None
            if term[0] or trunc[0]:
                final = info.get("final_info", {})
                ended = {k: float(np.asarray(v)[0]) for k, v in final.items()
                         if not k.startswith("_") and np.asarray(v).dtype.kind in "biuf"
                         and np.asarray(v).shape[:1] == (1,)}
            conn.send(("obs", t, observe(obs), ended))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        env.close()


class SimSource(Source):
    """One world of `env_cfg` in a child process, stepped by the actions it is sent.

    Args:
        env_cfg: the env config (``{"id": ..., ...}``), e.g. the model's training env.
        spec: the modalities to publish (the model's).
        off: modalities never published.
        gain: per modality, a factor on the data (then clipped to its bounds).
        noise: per modality, the standard deviation of added Gaussian noise.
        seed: seed of the world and of the noise.
        discrete: actions are indices (int64), else float32 vectors.
        start_timeout_s: how long the child may take to start (imports, JIT).
    """

    def __init__(self, env_cfg: Mapping[str, Any], spec: ObsSpec, off: tuple[str, ...] = (),
                 gain: Mapping[str, float] | None = None,
                 noise: Mapping[str, float] | None = None, seed: int = 0,
                 discrete: bool = True, start_timeout_s: float = 120.0,
                 **kwargs: float) -> None:
        super().__init__(list(spec), "sim", **kwargs)
        for what, names in (("off", off), ("gain", gain or {}), ("noise", noise or {})):
            for n in names:
                if n not in spec:
                    raise SourceError(f"sim.{what} names {n!r}; the model's modalities are "
                                      f"{', '.join(spec.names)}")
        self.env_cfg, self.obs_spec, self.seed = dict(env_cfg), spec, seed
        self.off = tuple(off)
        self.gain, self.noise = dict(gain or {}), dict(noise or {})
        self.start_timeout_s = start_timeout_s
        self.episodes: list[dict[str, float]] = []
        self.steps = 0  # observations received (the reset's, then one per step)
        self.sent = 0  # actions sent
        self._answered = threading.Condition()
        self.process: Any = None
        self.conn: Any = None
        self.send_errors = 0
        self._action_dtype = np.int64 if discrete else np.float32

    def send(self, action: np.ndarray) -> None:
        """Send `action` to the world (from the loop's thread; a pipe write, no step here)."""
        conn = self.conn
        if conn is None:
            self.send_errors += 1
            return
        try:  # raw bytes: a pickle of an array costs ~10x more in the tick
            conn.send_bytes(np.ascontiguousarray(action, self._action_dtype).tobytes())
            self.sent += 1
        except (OSError, ValueError, BrokenPipeError):
            self.send_errors += 1

    def wait_answer(self, timeout_s: float = 10.0) -> bool:
        """Block until the world has answered every action sent (False on the timeout)."""
        with self._answered:
            return self._answered.wait_for(lambda: self.steps > self.sent, timeout_s)

    def _open(self) -> None:
        from envs.factory import make_vector_env  # noqa: F401  (fails here without the extra)

        ctx = mp.get_context("spawn")  # no fork of a process with threads
        parent, child = ctx.Pipe()
        seed = self.seed + self.stats.restarts
        self.process = ctx.Process(target=_world, daemon=True, name="sensorium sim",
                                   args=(child, self.env_cfg, self.obs_spec.to_json(),
                                         self.off, self.gain, self.noise, seed,
                                         np.dtype(self._action_dtype).str))
        self.process.start()
        child.close()
        deadline = time.monotonic() + self.start_timeout_s
        while not parent.poll(0.1):
            if not self.process.is_alive():
                raise SourceError(f"the sim process for {self.env_cfg.get('id')} ended at "
                                  f"start (exit code {self.process.exitcode}); check the env "
                                  "settings and that the sim extra is installed")
            if time.monotonic() > deadline or self._stopping.is_set():
                raise SourceError(f"the sim process did not start within "
                                  f"{self.start_timeout_s:.0f} s")
        self.conn = parent
        with self._answered:  # a new world: what the old one never answered is lost
            self.sent = self.steps
        self._receive()

    def _receive(self) -> None:
        kind, t, obs, ended = self.conn.recv()
        missing = [m.name for m in self.obs_spec if m.name not in obs and m.name not in self.off]
        if missing:
            raise SourceError(f"sim env {self.env_cfg.get('id')} has no modality {missing[0]!r}")
        self.publish_all(obs, t)
        if ended is not None:
            self.episodes.append(ended)
        with self._answered:
            self.steps += 1
            self._answered.notify_all()

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            if self.conn.poll(0.1):
                self._receive()
            elif not self.process.is_alive():
                raise OSError(f"the sim process died (exit code {self.process.exitcode})")

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send_bytes(b"")
            conn.close()
        if self.process is not None:
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
            self.process = None

    def episode_summary(self) -> dict[str, Any]:
        """Means of the finished episodes' metrics (success, spl, collisions, ...)."""
        if not self.episodes:
            return {"episodes": 0}
        keys = sorted(set().union(*self.episodes))
        return {"episodes": len(self.episodes),
                **{k: float(np.mean([e[k] for e in self.episodes if k in e])) for k in keys}}
