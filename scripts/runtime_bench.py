"""The runtime's bar on this machine: the sim source at fixed rates, and the camera path.

Each rate is one ``sensorium run model=FILE source=sim hz=RATE duration=S`` in its
own process (the robot's way: the sim is a process of its own, the loop one
thread), reporting deadline misses and the tick latency (sample in to action
out) per stage. The camera path is a 640x480 video written here, decoded by
``cv2.VideoCapture``, converted to the model's image spec and copied into the
model's bound input, timed per frame in one thread.

    python scripts/runtime_bench.py --model reports/demo/run/model.onnx \\
        --rates 100 250 500 1000 --seconds 60 --out reports/runtime_bench.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def sensorium() -> str:
    return shutil.which("sensorium") or str(Path(sys.executable).parent / "sensorium")


def run_rate(model: str, hz: float, seconds: float, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        proc = subprocess.run([sensorium(), "run", f"model={model}", "source=sim", f"hz={hz}",
                               f"duration={seconds}", "status=false", f"out={out}", *extra],
                              capture_output=True, text=True, timeout=seconds * 3 + 300)
        if proc.returncode:
            raise SystemExit(f"sensorium run failed at {hz} Hz:\n{proc.stderr}")
        report = json.loads(out.read_text())
    tel = report["telemetry"]
    due = tel["ticks"] + tel["deadline_misses"]
    return {"hz": hz, "seconds": seconds, "ticks": tel["ticks"],
            "deadline_misses": tel["deadline_misses"],
            "miss_fraction": tel["deadline_misses"] / max(due, 1),
            "late_actions": tel["late_actions"], "safe_actions": tel["safe_actions"],
            "tick_us": {k: tel["latency_us"][k] for k in ("p50", "p99", "p99.9", "max")},
            "per_stage_us": tel["latency_us"]["per_stage"], "realtime": report["realtime"],
            "episodes": report.get("episodes", {})}


def camera_path(model: str, frames: int = 600) -> dict:
    """Per 640x480 frame: to the model's image spec and into its bound input, in µs."""
    from deploy.model import Model
    from deploy.sources.camera import to_spec

    cv2.setNumThreads(1)
    m = Model(model)
    spec = next(s for s in m.obs_spec if s.kind.value == "image")
    bound = m.bind(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cam.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:480, 0:640]
        for i in range(frames):
            base = np.stack([(x * 0.4 + 30 * np.sin((y + i) / 7)) % 256,
                             (y * 0.5 + 40 * np.cos((x - i) / 5)) % 256,
                             ((x + y + 3 * i) * 0.3) % 256], -1)
            writer.write(np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8))
        writer.release()
        cap = cv2.VideoCapture(str(path))
        scratch: dict = {}
        convert, decode = [], []
        while True:
            t0 = time.perf_counter()
            ok, frame = cap.read()
            t1 = time.perf_counter()
            if not ok:
                break
            image = to_spec(frame, spec, scratch)
            bound.inputs[spec.name][0] = image
            convert.append(time.perf_counter() - t1)
            decode.append(t1 - t0)
        cap.release()
    us = np.asarray(convert[20:]) * 1e6  # the first frames warm the caches
    return {"frames": len(us), "frame": [480, 640, 3], "spec": list(spec.shape),
            "convert_and_copy_us": {"p50": float(np.median(us)),
                                    "p99": float(np.percentile(us, 99)),
                                    "max": float(us.max())},
            "decode_mjpeg_us_p50": float(np.median(decode[20:]) * 1e6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="reports/demo/run/model.onnx")
    ap.add_argument("--rates", type=float, nargs="+", default=[100, 250, 500, 1000])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--extra", nargs="*", default=[], help="more settings for sensorium run")
    ap.add_argument("--out", default="reports/runtime_bench.json")
    args = ap.parse_args()
    rows = []
    for hz in args.rates:
        row = run_rate(args.model, hz, args.seconds, args.extra)
        rows.append(row)
        t = row["tick_us"]
        print(f"{hz:>7g} Hz: {row['ticks']:>7,} ticks, misses {row['deadline_misses']} "
              f"({100 * row['miss_fraction']:.3f} %), tick p50 {t['p50']:.0f} p99 {t['p99']:.0f}"
              f" max {t['max']:.0f} us, safe {row['safe_actions']['total']}", flush=True)
    ok = [r["hz"] for r in rows if r["miss_fraction"] < 0.001]
    cam = camera_path(args.model)
    c = cam["convert_and_copy_us"]
    print(f"camera path 640x480 -> {cam['spec']}: p50 {c['p50']:.0f} us, p99 {c['p99']:.0f} us "
          f"(decode {cam['decode_mjpeg_us_p50']:.0f} us, not in the path's figure)")
    report = {"model": args.model, "rates": rows,
              "highest_rate_under_0.1pct_misses": max(ok) if ok else None, "camera": cam}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"report: {out}")


if __name__ == "__main__":
    main()
