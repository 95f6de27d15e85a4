"""Where a PPO iteration's time goes on the default world: each part timed by wrapping it.

Builds the default run (``sensorium train``'s settings, plus ``--set`` overrides),
runs ``--warmup`` iterations untimed, then ``--iters`` timed ones, and reports
env-steps/s and the milliseconds per iteration of: the update, the env's step,
the policy's forward passes, the front-end, the randomizers, the per-step
dropout, the normalisers and the storage. The parts nest (the front-end and the
randomizers are inside the observation pipeline), so they do not add up to the
wall time. JSON to ``--out``.

    python scripts/profile_ppo.py --set agent.epochs=1 --out reports/profile_ppo.json
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import agent  # noqa: F401  (the process set-up, before torch starts its threads)
from agent.logger import RunLogger
from agent.run_setup import TrainSetup
from agent.runner import OnPolicyRunner
from cli.report import write_report
from envs.factory import env_options


def parse_value(text: str) -> Any:
    """An override's value: JSON where it parses (numbers, true/false, lists), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def build(overrides: dict[str, Any]) -> OnPolicyRunner:
    """The default PPO run with `overrides` (``agent.<key>``, ``model.<kind>.<key>`` or run
    settings), in a temporary folder."""
    parts: dict[str, dict[str, Any]] = {"agent": {"name": "ppo"}, "model": {}, "run": {
        "name": "profile", "total_steps": 10**9, "compile": False, "progress": False,
        "tensorboard": False, "export": False}}
    for key, value in overrides.items():
        group, _, rest = key.partition(".")
        if group in ("agent", "model") and rest:
            target = parts[group]
            *path, last = rest.split(".")
            for p in path:
                target = target.setdefault(p, {})
            target[last] = value
        else:
            parts["run"][key] = value
    env = dataclasses.asdict(env_options()["audiovisual_nav"])
    setup = TrainSetup(env=env, fusion={"method": "concat"}, agent=parts["agent"],
                       model=parts["model"], policy={}, run=parts["run"])
    return OnPolicyRunner(setup, Path(tempfile.mkdtemp()) / "profile")


def wrap(totals: dict[str, float], obj: Any, name: str, key: str) -> None:
    """Add the seconds spent in ``obj.name`` to ``totals[key]``."""
    inner: Callable = getattr(obj, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - t

    setattr(obj, name, timed)


def profile(overrides: dict[str, Any], warmup: int, iters: int) -> dict[str, Any]:
    runner = build(overrides)
    totals: dict[str, float] = collections.defaultdict(float)
    wrap(totals, runner.env, "step", "env_step")
    wrap(totals, runner.alg, "act", "policy_act")
    wrap(totals, runner.alg, "process_env_step", "storage_add")
    wrap(totals, runner.alg, "update", "update")
    wrap(totals, runner.policy, "frontend", "frontend")
    wrap(totals, runner.policy.trunk, "update_normalizers", "normalizers")
    if runner.pipeline.randomizer is not None:
        wrap(totals, runner.pipeline.randomizer, "forward", "randomizers")
    if runner.pipeline.dropout is not None:
        wrap(totals, runner.pipeline.dropout, "apply", "dropout")
    runner.start(RunLogger(runner.run_dir, 10**9, enabled=False, tensorboard=False,
                           progress=False), None)
    try:
        for _ in range(warmup):
            runner.iterate(0.0)
        totals.clear()
        t0 = time.perf_counter()
        for _ in range(iters):
            runner.iterate(0.0)
        wall = time.perf_counter() - t0
    finally:
        runner.close()
    steps = iters * runner.cfg.num_steps * runner.env.num_envs
    return {"overrides": overrides, "iterations": iters, "env_steps": steps,
            "seconds": wall, "env_steps_per_s": steps / wall,
            "ms_per_iteration": {k: 1000 * v / iters for k, v in
                                 sorted(totals.items(), key=lambda kv: -kv[1])},
            "ms_per_iteration_wall": 1000 * wall / iters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="e.g. agent.epochs=1, model.image.channels=[8,16,32], compile=true")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--out", default="reports/profile_ppo.json")
    args = parser.parse_args()
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    report = profile(overrides, args.warmup, args.iters)
    print(f"{report['env_steps_per_s']:,.0f} env-steps/s "
          f"({report['ms_per_iteration_wall']:.0f} ms per iteration of 4,096 steps)")
    for key, ms in report["ms_per_iteration"].items():
        print(f"  {key:<12} {ms:8.1f} ms")
    print(f"report: {write_report(report, args.out)}")


if __name__ == "__main__":
    main()
