"""Proof that the exported file computes what torch computes, on real data.

Every presence pattern of the spec (all 2^M for M <= 6 modalities) is run on
observations from the policy's own rollouts, in onnxruntime and in torch;
recurrent policies also run whole sequences with each runtime carrying its own
state. Greedy actions must be identical: the only exception allowed is a tie
at float precision (the two best logits closer than the tolerance), which is
counted and reported as ``ties``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from deploy.export.rollouts import Rollout
from perception.spec import ObsSpec, presence_key

TOLERANCE = 1e-4
ALL_PATTERNS_UP_TO = 6  # modalities; above that, a sample of patterns
CHUNK = 256


def presence_patterns(names: Sequence[str], seed: int = 0, sampled: int = 64
                      ) -> list[tuple[bool, ...]]:
    """Every on/off pattern for up to 6 modalities (all present first).

    Above 6: all present, each one off, each one alone, and `sampled` random ones.
    """
    m = len(names)
    if m <= ALL_PATTERNS_UP_TO:
        return sorted(itertools.product([False, True], repeat=m), key=lambda p: -sum(p))
    eye = np.eye(m, dtype=bool)
    chosen = {tuple([True] * m), *map(tuple, ~eye), *map(tuple, eye)}
    rng = np.random.default_rng(seed)
    while len(chosen) < 2 * m + 1 + sampled:
        chosen.add(tuple(rng.random(m) < 0.5))
    return sorted(chosen, key=lambda p: -sum(p))


def pattern_name(names: Sequence[str], pattern: Sequence[bool]) -> str:
    on = [n for n, p in zip(names, pattern) if p]
    return "+".join(on) if on else "none"


def _torch_outputs(policy: nn.Module, feed: dict[str, np.ndarray], spec: ObsSpec,
                   hidden: int) -> list[np.ndarray]:
    x = {k: torch.from_numpy(v) for k, v in feed.items() if k != "h_in"}
    h = torch.from_numpy(feed["h_in"]) if hidden else None
    with torch.no_grad():
        out = policy(x, h)
    return [o.numpy() for o in out if o is not None]


def _compare(names: Sequence[str], got: list[np.ndarray], want: list[np.ndarray],
             continuous: bool) -> dict[str, Any]:
    """Figures for one batch: max |diff| per float output, action agreement, ties."""
    fig: dict[str, Any] = {}
    for name, g, w in zip(names, got, want):
        if name == "action" and not continuous:
            continue
        fig[f"max_abs_diff_{name}"] = float(np.abs(g.astype(np.float64) - w).max())
    i = names.index("action")
    if continuous:
        same = np.abs(got[i] - want[i]).max(axis=-1) <= TOLERANCE
        fig.update(agree=int(same.sum()), ties=0, mismatches=int((~same).sum()))
        return fig
    logits = want[names.index("logits")]
    top2 = np.sort(logits, axis=-1)[:, -2:] if logits.shape[-1] > 1 else None
    gap = top2[:, 1] - top2[:, 0] if top2 is not None else np.full(len(logits), np.inf)
    same = got[i] == want[i]
    tie = ~same & (gap <= TOLERANCE)
    fig.update(agree=int(same.sum()), ties=int(tie.sum()), mismatches=int((~same & ~tie).sum()))
    return fig


def _merge(figs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in figs:
        for k, v in f.items():
            out[k] = max(out.get(k, 0), v) if k.startswith("max_") else out.get(k, 0) + v
    return out


def check_patterns(policy: nn.Module, session: ort.InferenceSession, spec: ObsSpec,
                   rollout: Rollout, output_names: list[str], hidden: int, continuous: bool,
                   seed: int = 0) -> dict[str, Any]:
    """Every presence pattern on every recorded observation, both runtimes; figures."""
    obs, h = rollout.flat()
    n = len(next(iter(obs.values())))
    patterns = presence_patterns(spec.names, seed)
    rows = []
    for pattern in patterns:
        figs = []
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            feed = {k: obs[k][lo:hi] for k in spec.names}
            for name, on in zip(spec.names, pattern):
                feed[presence_key(name)] = np.full(hi - lo, on)
            if hidden:
                feed["h_in"] = h[lo:hi]
            got = session.run(None, feed)
            want = _torch_outputs(policy, feed, spec, hidden)
            figs.append(_compare(output_names, got, want, continuous))
        fig = _merge(figs)
        fig["action_agreement"] = fig.pop("agree") / n
        rows.append({"pattern": pattern_name(spec.names, pattern),
                     "present": dict(zip(spec.names, pattern)), **fig})
    return {"observations": n, "patterns": len(patterns), "per_pattern": rows}


def check_sequences(policy: nn.Module, session: ort.InferenceSession, spec: ObsSpec,
                    rollout: Rollout, output_names: list[str], hidden: int, continuous: bool
                    ) -> dict[str, Any]:
    """Whole recorded sequences, each runtime carrying its own state; the drift per step."""
    b = rollout.worlds
    h_ort = np.zeros((b, hidden), np.float32)
    h_torch = np.zeros((b, hidden), np.float32)
    drift = {name: [] for name in output_names if name != "action" or continuous}
    figs = []
    for t in range(rollout.steps):
        start = rollout.starts[t]
        h_ort[start], h_torch[start] = 0.0, 0.0
        feed = {k: rollout.obs[k][t] for k in spec.names}
        feed.update({presence_key(k): np.ones(b, bool) for k in spec.names})
        got = session.run(None, {**feed, "h_in": h_ort})
        want = _torch_outputs(policy, {**feed, "h_in": h_torch}, spec, hidden)
        fig = _compare(output_names, got, want, continuous)
        figs.append(fig)
        for name in drift:
            drift[name].append(fig[f"max_abs_diff_{name}"])
        h_ort, h_torch = got[-1].copy(), want[-1].copy()
    merged = _merge(figs)
    return {"steps": rollout.steps, "worlds": b,
            "max_drift": max(max(v) for v in drift.values()),
            "max_drift_per_output": {k: max(v) for k, v in drift.items()},
            "drift_last_step": {k: v[-1] for k, v in drift.items()},
            "action_agreement": merged["agree"] / (b * rollout.steps),
            "ties": merged["ties"], "mismatches": merged["mismatches"]}


def parity_report(policy: nn.Module, session: ort.InferenceSession, spec: ObsSpec,
                  rollout: Rollout, output_names: list[str], hidden: int, continuous: bool,
                  seed: int = 0) -> dict[str, Any]:
    """The whole proof; ``passed`` says whether it holds (``failures`` says why not)."""
    report = check_patterns(policy, session, spec, rollout, output_names, hidden, continuous,
                            seed)
    rows = report["per_pattern"]
    float_keys = sorted({k for r in rows for k in r if k.startswith("max_abs_diff_")})
    report["max_abs_diff"] = max(r[k] for r in rows for k in float_keys)
    report["max_abs_diff_per_output"] = {k[len("max_abs_diff_"):]: max(r[k] for r in rows)
                                         for k in float_keys}
    total = report["observations"] * report["patterns"]
    agree = sum(r["action_agreement"] * report["observations"] for r in rows)
    report["action_agreement"] = agree / total
    report["ties"] = sum(r["ties"] for r in rows)
    report["mismatches"] = sum(r["mismatches"] for r in rows)
    if hidden:
        report["sequences"] = check_sequences(policy, session, spec, rollout, output_names,
                                              hidden, continuous)
    report["tolerance"] = TOLERANCE
    failures = []
    if report["max_abs_diff"] > TOLERANCE:
        worst = max(rows, key=lambda r: max(r[k] for k in float_keys))
        failures.append(f"max |onnxruntime - torch| {report['max_abs_diff']:.2e} > {TOLERANCE}"
                        f" (worst pattern: {worst['pattern']})")
    if report["mismatches"]:
        failures.append(f"{report['mismatches']} greedy actions differ beyond ties")
    seq = report.get("sequences")
    if seq and seq["max_drift"] > TOLERANCE:
        failures.append(f"recurrent drift over {seq['steps']} steps {seq['max_drift']:.2e} > "
                        f"{TOLERANCE}")
    if seq and seq["mismatches"]:
        failures.append(f"{seq['mismatches']} greedy actions differ along the sequences")
    report["passed"] = not failures
    report["failures"] = failures
    return report
