"""analysis.md: the tables of a ``sensorium analyze`` report that a person reads first."""

from __future__ import annotations

from typing import Any

from analysis.interaction_types import KINDS


def _interval(lo: float, hi: float, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(lo)} .. {f.format(hi)}"


def _shapley(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    names = report["modalities"]
    for v, per in report["shapley"].items():
        lines += ["", f"## Shapley values: {v} ({report['value_units'][v]})", "",
                  "| modality | Shapley value | 95 % interval |", "|---|---|---|"]
        for m, x in sorted(per.items(), key=lambda kv: -kv[1]["value"]):
            lines.append(f"| {m} | {x['value']:.3f} | {_interval(*x['ci'])} |")
        full = report["coalition_values"][v]
        lines += ["", f"v(all) = {full['+'.join(names)]:.3f}, v(none) = "
                  f"{full['none']:.3f}; the values sum to the difference."]
        if not report["interaction_index"][v]:
            continue
        pairs = sorted(report["interaction_index"][v].items(), key=lambda kv: -kv[1]["value"])
        lines += ["", "| pair | interaction index | 95 % interval | reads as |",
                  "|---|---|---|---|"]
        for p, x in pairs:
            lo, hi = x["ci"]
            kind = "synergy" if lo > 0 else "redundancy" if hi < 0 else "neither (0 inside)"
            lines.append(f"| {p} | {x['value']:+.3f} | {_interval(lo, hi, True)} | {kind} |")
    return lines


def _types(types: dict[str, Any]) -> list[str]:
    context = ("each pair alone (the other modalities absent)" if types["context"] == "none"
               else "each pair inside the full policy (the other modalities present)")
    lines = ["", "## Interaction types per state", "",
             f"{context}; a modality responds when its decision distribution is more than "
             f"{types['threshold']} (total variation) from the one without it. Shares of the "
             "states (95 % intervals); dominance and modulation name the modality that "
             "dominates or modulates.", "",
             "| pair | " + " | ".join(KINDS) + " |", "|---" * (len(KINDS) + 1) + "|"]
    for pair, x in types["pairs"].items():
        a, b = pair.split("*")
        cells = []
        for k in KINDS:
            f = x["fractions"][k]
            cell = f"{f['value']:.2f} ({_interval(*f['ci'])})"
            by = {"dominance": x["dominance_by"], "modulation": x["modulation_by"]}.get(k)
            if by and f["value"] > 0:
                cell += f" {a} {by[a]:.2f} / {b} {by[b]:.2f}"
            cells.append(cell)
        lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    return lines


def _pid(pid: dict[str, Any]) -> list[str]:
    lines = ["", "## Partial information decomposition (bits)", "",
             f"Each modality's encoder features in {pid['clusters']} k-means clusters, "
             f"{pid['states']} states, seed {pid['seed']}; target: the policy's greedy action "
             "(model) or the expert's (data); U1 is the pair's first modality. Each atom's "
             f"95 % interval bootstraps the states ({pid['resamples']} resamples); null: "
             f"the atom's mean over {pid['shuffles']} shuffles of the target (the "
             "estimator's bias).", "",
             "| pair | target | R | U1 | U2 | S | null R / S | solver |", "|---" * 8 + "|"]
    for pair, per in pid["pairs"].items():
        for target in ("model", "data"):
            if target not in per:
                continue
            x = per[target]
            atoms = " | ".join(f"{x[a]:.3f} ({_interval(*x['ci'][a])})"
                               for a in ("R", "U1", "U2", "S"))
            null = x["null"]["mean"]
            solver = "dit" if x["estimator"].startswith("dit") else "scipy"
            lines.append(f"| {pair} | {target} | {atoms} | {null['R']:.3f} / {null['S']:.3f} "
                         f"| {solver} |")
    return lines


def _robustness(rob: dict[str, Any]) -> list[str]:
    lines = ["", "## Robustness: area under each curve", "",
             f"Levels {rob['levels'][0]:g}..{rob['levels'][-1]:g}; noise in units of each "
             "modality's scale (its sd over the states), dropout a probability per state or "
             "step; a flat curve at 1 has area 0.9."
             + (f" Effective robustness: against {rob['reference']['run']}."
                if rob.get("reference") else ""), ""]
    sections = [s for s in ("offline", "online") if s in rob]
    head = [f"{kind} ({rob['score'][s]})" for s in sections for kind in rob[s]]
    lines += ["| modality | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    targets = list(next(iter(rob["offline"].values())))
    for t in targets:
        cells = []
        for s in sections:
            for kind in rob[s]:
                c = rob[s][kind][t]
                cell = f"{c['area']:.3f}"
                if "effective_robustness" in c:
                    cell += f" (eff. {c['effective_robustness']:+.3f})"
                cells.append(cell)
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


def summary_markdown(report: dict[str, Any]) -> str:
    """The report's Shapley values, interaction indices, interaction types, PID and
    robustness areas as Markdown tables."""
    exact = report.get("shapley_exact", True)
    lines = [f"# What each modality contributes: {report['run']}", "",
             f"{report['states']} states of the full policy's rollouts (seed {report['seed']}), "
             + (f"every coalition of {', '.join(report['modalities'])}" if exact else
                f"the coalitions of {report['permutations']} sampled orders of "
                f"{', '.join(report['modalities'])}")
             + f", modalities removed by `{report['removal']}`; 95 % bootstrap intervals over "
             f"the states ({report['resamples']} resamples)"
             + (f"; closed-loop values over {report['episodes']} episodes per coalition "
                "(evaluation worlds, seed 12345, modalities off by their presence flags)"
                if report["episodes"] else "") + ".", ""]
    lines += [f"**Warning:** {w}" for w in report["warnings"]]
    took = ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in report["seconds"].items())
    lines += [f"Took {sum(report['seconds'].values()):.0f} s: {took}."]
    lines += _shapley(report)
    if "interaction_types" in report:
        lines += _types(report["interaction_types"])
    if "pid" in report:
        lines += _pid(report["pid"])
    if "robustness" in report:
        lines += _robustness(report["robustness"])
    return "\n".join(lines) + "\n"
