"""A policy on real sensors' faults, measured through the runtime's sim source.

Each condition is one ``sensorium run model=FILE source=sim episodes=N`` on the
evaluation worlds (seed 12345, unseen in training) with a sensor switched off
(``sim.off``), louder or quieter (``sim.gain``) or noisier (``sim.noise``);
the torch-free runtime drives the exported file. By default in lockstep
(``sim.lockstep=true``: each tick sees the world's answer to the last action,
as in evaluation); ``--hz R`` paces the ticks at R Hz instead, where a world
stepped faster than its 10 Hz leaves some ticks with the last observation and
their actions land a step late. The report gives each condition's success,
SPL and collisions and the runtime's telemetry.

    python scripts/robustness.py --model reports/demo/run/model.onnx --episodes 100 \\
        --out reports/robustness.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CONDITIONS = {
    "clean": [],
    "rgb absent": ["sim.off=[rgb]"],
    "depth absent": ["sim.off=[depth]"],
    "audio absent": ["sim.off=[audio]"],
    "proprio absent": ["sim.off=[proprio]"],
    "touch absent": ["sim.off=[touch]"],
    "audio gain x0.5": ["sim.gain.audio=0.5"],
    "audio gain x2": ["sim.gain.audio=2.0"],
    "audio noise sd 0.01": ["sim.noise.audio=0.01"],
    "rgb noise sd 10": ["sim.noise.rgb=10"],
    "rgb brightness x0.7": ["sim.gain.rgb=0.7"],
    "depth noise sd 5 cm": ["sim.noise.depth=0.05"],
}
#: the runtime issue's floors (success)
FLOORS = {"clean": 0.90, "rgb absent": 0.80, "depth absent": 0.80, "proprio absent": 0.80,
          "touch absent": 0.80, "audio absent": 0.15, "audio gain x0.5": 0.85,
          "audio gain x2": 0.85, "audio noise sd 0.01": 0.85, "rgb noise sd 10": 0.85}


def sensorium() -> str:
    return shutil.which("sensorium") or str(Path(sys.executable).parent / "sensorium")


def measure(model: str, extra: list[str], episodes: int, hz: float) -> dict:
    timing = [f"hz={hz}"] if hz else ["sim.lockstep=true"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        proc = subprocess.run([sensorium(), "run", f"model={model}", "source=sim", *timing,
                               f"episodes={episodes}", "duration=0", "status=false",
                               f"out={out}", *extra], capture_output=True, text=True,
                              timeout=3600)
        if proc.returncode:
            raise SystemExit(f"sensorium run {' '.join(extra)} failed:\n{proc.stderr}")
        report = json.loads(out.read_text())
    ep = report["episodes"]
    tel = report["telemetry"]
    return {"overrides": extra, "episodes": ep["episodes"], "success": ep.get("success"),
            "spl": ep.get("spl"), "collisions": ep.get("collisions"),
            "ticks": tel["ticks"], "deadline_misses": tel["deadline_misses"],
            "safe_actions": tel["safe_actions"], "tick_p99_us": tel["latency_us"]["p99"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="reports/demo/run/model.onnx")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--hz", type=float, default=0.0,
                    help="pace the loop at this rate (0: lockstep with the world)")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS),
                    choices=list(CONDITIONS))
    ap.add_argument("--out", default="reports/robustness.json")
    args = ap.parse_args()
    rows = {}
    for name in args.conditions:
        rows[name] = r = measure(args.model, CONDITIONS[name], args.episodes, args.hz)
        floor = FLOORS.get(name)
        mark = "" if floor is None else (" ok" if r["success"] >= floor else f" < {floor}")
        print(f"{name:<22} success {r['success']:.3f}  SPL {r['spl']:.3f}  collisions "
              f"{r['collisions']:.1f}  ({r['episodes']} episodes){mark}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "hz": args.hz, "conditions": rows,
                               "floors": FLOORS}, indent=2))
    print(f"report: {out}")


if __name__ == "__main__":
    main()
