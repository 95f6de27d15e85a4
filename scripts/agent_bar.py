"""The agent's bar on this machine: PPO from scratch on AudioVisualNav with a fixed
wall-clock budget, fused against audio-only and vision-only policies.

Each variant is ``sensorium train`` (same seed, same minutes) then ``sensorium
eval`` on 200 unseen episodes; the JSON report has every run's evaluation,
its median training throughput (env-steps/s, updates included), and the fused
policy's success and SPL over each ablation's. A variant whose run folder
already holds ``train_summary.json`` is not trained again (delete the folder
to retrain it).

    python scripts/agent_bar.py --minutes 20 --out reports/agent_bar.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "fused": [],
    "audio_only": ["modalities=[audio,proprio,touch]"],
    "vision_only": ["modalities=[rgb,depth,proprio,touch]"],
}


def sensorium() -> str:
    return shutil.which("sensorium") or str(Path(sys.executable).parent / "sensorium")


def run_variant(name: str, extra: list[str], args: argparse.Namespace) -> dict:
    run_dir = Path(args.root) / f"bar_{name}"
    if not (run_dir / "train_summary.json").exists():
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an unfinished run: the budget must be whole
        subprocess.run([sensorium(), "train", f"name=bar_{name}", f"root={args.root}",
                        f"total_steps={args.total_steps}", f"max_minutes={args.minutes}",
                        f"seed={args.seed}", "compile=true", "progress=false", *extra],
                       check=True)
    subprocess.run([sensorium(), "eval", f"run={run_dir}", f"episodes={args.episodes}",
                    "video_episodes=2"], check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((run_dir / "train_summary.json").read_text())
    result = json.loads((run_dir / "eval.json").read_text())
    return {"overrides": extra, "train": summary, "eval": result}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=20.0, help="training budget of each run")
    p.add_argument("--total-steps", type=int, default=4_000_000,
                   help="env-steps cap (the LR schedule follows steps or minutes, the larger)")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="runs")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", default="reports/agent_bar.json")
    args = p.parse_args()
    results = {name: run_variant(name, VARIANTS[name], args) for name in args.variants}
    report = {"minutes": args.minutes, "episodes": args.episodes, "seed": args.seed,
              "results": results}
    if "fused" in results:
        fused = results["fused"]["eval"]
        report["fused_over"] = {
            name: {k: fused[k] / max(r["eval"][k], 1e-9) for k in ("success_rate", "spl")}
            for name, r in results.items() if name != "fused"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"{'run':<12}{'success':>8}{'SPL':>7}{'collisions':>12}{'steps/s':>9}{'M steps':>9}")
    for name, r in results.items():
        e, t = r["eval"], r["train"]
        print(f"{name:<12}{e['success_rate']:>8.3f}{e['spl']:>7.3f}{e['collisions']:>12.2f}"
              f"{t['median_env_steps_per_s']:>9,.0f}{t['env_steps'] / 1e6:>9.2f}")
    print(f"report: {out}")


if __name__ == "__main__":
    main()
