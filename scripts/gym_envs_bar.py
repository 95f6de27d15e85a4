"""The third-party-env bar: CartPole-v1 and Reacher-v5 trained from pixels and state.

Each run is ``sensorium train`` for a fixed wall-clock budget (``max_minutes``),
then ``sensorium eval`` (greedy, unseen seeds) and ``sensorium export`` (ONNX).
CartPole passes at an evaluated return >= 475. Reacher is reported against a
random policy (gymnasium's own Reacher-v5, same seeds) and a state-only run
(``modalities=[proprio]``) in the same budget. Every command is printed; the
JSON report has the commands, the training summaries (env-steps, env-steps/s),
the evaluations, the exports and the machine's load average around each run.

    python scripts/gym_envs_bar.py --minutes 10 --out reports/gym_envs_bar.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: The command line of each run (after ``sensorium train``); why these in README / report.
#: What both runs share: a 10 Hz camera, 8 worlds, 10 epochs, no entropy bonus or value
#: clip, a lighter CNN, and the settings aimed at AudioVisualNav's sensors off
SHARED = [
    "env.rgb_hz=10", "num_envs=8", "agent.epochs=10", "agent.entropy_coef=0",
    "agent.value_clip=0", "model.image.channels=[8,16,16]",
    "modality_dropout=0", "episode_dropout=0", "randomize=false", "compile=false",
]
CARTPOLE = ["env=cartpole", "agent.num_steps=32", "agent.minibatches=1", "agent.lr=1e-3",
            "agent.gamma=0.98", "agent.lam=0.8", *SHARED]
REACHER = ["env=reacher", "agent.num_steps=64", "agent.minibatches=4", "agent.lr=5e-4",
           "agent.gamma=0.95", "agent.lam=0.95", *SHARED]
RUNS: dict[str, list[str]] = {
    "cartpole": CARTPOLE,
    "reacher": REACHER,
    "reacher_state_only": [*REACHER, "modalities=[proprio]"],
    # the plain command (default PPO and run settings, tuned for AudioVisualNav): opt-in
    "cartpole_plain": ["env=cartpole", "num_envs=16"],
}
DEFAULT_RUNS = ["cartpole", "reacher", "reacher_state_only"]
PASS_RETURN = {"cartpole": 475.0}


def sensorium() -> list[str]:
    exe = shutil.which("sensorium")
    return [exe] if exe else [sys.executable, "-m", "cli"]


def run(args: list[str], log: list[dict[str, Any]]) -> str:
    """Run ``sensorium <args>``, echo and return its stdout, and log the command."""
    cmd = [*sensorium(), *args]
    print("$ sensorium " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stdout.write(proc.stdout)
    log.append({"command": "sensorium " + " ".join(args), "seconds": time.perf_counter() - t0,
                "returncode": proc.returncode})
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"failed ({proc.returncode}): sensorium {' '.join(args)}")
    return proc.stdout


def train_eval_export(name: str, overrides: list[str], a: argparse.Namespace) -> dict[str, Any]:
    """Train `name` for the budget, evaluate and export it; its part of the report."""
    run_dir = Path(a.root) / name
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the budget must be whole: never continue an old run
    commands: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    run(["train", *overrides, f"max_minutes={a.minutes}", f"total_steps={a.total_steps}",
         f"seed={a.seed}", f"name={name}", f"root={a.root}", "progress=false", "export=false"],
        commands)
    load_after = os.getloadavg()
    run(["eval", f"run={run_dir}", f"episodes={a.episodes}", f"seed={a.eval_seed}"], commands)
    run(["export", f"run={run_dir}"], commands)
    result = json.loads((run_dir / "eval.json").read_text())
    part: dict[str, Any] = {
        "overrides": overrides, "commands": commands,
        "train": json.loads((run_dir / "train_summary.json").read_text()),
        "eval": {k: result[k] for k in ("episodes", "mean_return", "mean_length")},
        "onnx": str(run_dir / "model.onnx"), "onnx_exists": (run_dir / "model.onnx").exists(),
        "load_average_1_5_15_before_train": load_before,
        "load_average_1_5_15_after_train": load_after,
    }
    if name in PASS_RETURN:
        part["pass_return"] = PASS_RETURN[name]
        part["passed"] = result["mean_return"] >= PASS_RETURN[name]
    return part


def random_return(env_id: str, episodes: int, seed: int) -> dict[str, Any]:
    """Mean return of uniform random actions on the plain gymnasium env (`episodes`, seeded)."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return {"episodes": episodes, "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns))}


def write(report: dict[str, Any], path: str) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="training budget of each run")
    p.add_argument("--total-steps", type=int, default=100_000_000,
                   help="env-steps cap (large: the minutes end the run)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--eval-seed", type=int, default=12345, help="evaluation seed (unseen)")
    p.add_argument("--root", default="runs/gym_envs_bar")
    p.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=list(RUNS),
                   help="runs to make (cartpole_plain: the plain command, opt-in)")
    p.add_argument("--out", default="reports/gym_envs_bar.json")
    a = p.parse_args()
    report: dict[str, Any] = {
        "benchmark": "gym envs bar", "minutes": a.minutes, "eval_episodes": a.episodes,
        "machine": {"cpus": len(os.sched_getaffinity(0)), "processor": platform.processor(),
                    "python": platform.python_version()},
        "runs": {},
    }
    for name in a.runs:
        report["runs"][name] = train_eval_export(name, RUNS[name], a)
        write(report, a.out)  # a partial report survives a later failure
    if any(n.startswith("reacher") for n in a.runs):
        report["reacher_random_policy"] = random_return("Reacher-v5", a.episodes, a.eval_seed)
    out = write(report, a.out)
    print("\nfigures:")
    for name, part in report["runs"].items():
        verdict = f"  (bar {part['pass_return']:g}: {'PASS' if part['passed'] else 'FAIL'})" \
            if "passed" in part else ""
        print(f"  {name:<20} return {part['eval']['mean_return']:8.2f} over "
              f"{part['eval']['episodes']} episodes, {part['train']['env_steps']:,} env-steps in "
              f"{part['train']['train_seconds']:.0f} s "
              f"({part['train']['median_env_steps_per_s']:.0f} env-steps/s){verdict}")
    if "reacher_random_policy" in report:
        print(f"  {'reacher random':<20} return "
              f"{report['reacher_random_policy']['mean_return']:8.2f}")
    print(f"report: {out}")


if __name__ == "__main__":
    main()
