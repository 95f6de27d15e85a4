"""Several learning curves on one pair of plots, and their data in one JSON.

Each input is a ``curve.json`` of ``sensorium demo`` or the report of
``scripts/sb3_anchor.py`` (both hold ``points`` with ``minutes``, ``env_steps``,
``success_rate``, ``spl`` and ``episodes``), named ``NAME=PATH``:

    python scripts/plot_curves.py "route seed 0=reports/s0/curve.json" \\
        "route seed 1=reports/s1/curve.json" --out docs/demo_curve

writes ``<out>.json``, ``<out>_minutes.png`` and ``<out>_steps.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.curves import curve_plots
from cli.report import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("curves", nargs="+", metavar="NAME=PATH")
    parser.add_argument("--keys", default="success_rate,spl")
    parser.add_argument("--title", default="AudioVisualNav, unseen worlds, greedy")
    parser.add_argument("--out", default="reports/curves/curves")
    args = parser.parse_args()
    curves = {}
    for item in args.curves:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"plot_curves: {item!r} is not NAME=PATH of a curve's JSON file")
        curves[name] = json.loads(Path(path).read_text())
    out = Path(args.out)
    data = write_report(curves, out.with_suffix(".json"))  # makes the folder
    plots = curve_plots({n: c["points"] for n, c in curves.items()}, args.keys.split(","),
                        out, args.title, rates=("success_rate",))
    print("\n".join(str(p) for p in [data, *plots]))


if __name__ == "__main__":
    main()
