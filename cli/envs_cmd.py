"""``sensorium envs list | show | bench``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from omegaconf import DictConfig, OmegaConf

from cli.config_store import env_group
from cli.report import write_report


def env_dict(cfg: DictConfig) -> dict[str, Any]:
    """The ``env`` node as plain kwargs (with its ``id``)."""
    return OmegaConf.to_container(cfg.env, resolve=True)  # type: ignore[return-value]


def list_envs(cfg: DictConfig) -> None:
    """Print every ``env=`` option with its gymnasium id and specs."""
    from dataclasses import asdict

    import envs
    from envs.factory import split_env_config
    from envs.metrics import episode_metrics_of

    for name, node in env_group().items():
        env_id, kwargs = split_env_config(asdict(node))
        env = gym.make(env_id, **kwargs)
        spec = envs.obs_spec_of(env)
        print(f"env={name}  ({env_id})")
        for m in spec:
            rate = f"{m.sample_rate} Hz audio, " if m.sample_rate else ""
            print(f"    {m.name:<9} {m.kind.value:<7} {str(m.shape):<14} {m.dtype:<8} "
                  f"{rate}{m.rate_hz:g}/s  {m.description}")
        names = getattr(getattr(env.unwrapped, "action_spec", None), "names", ())
        print(f"    actions: {env.action_space}" + (f" {list(names)}" if names else ""))
        metrics = episode_metrics_of(env)
        print("    episode metrics: return, length" + "".join(
            f"; {m.name} ({'higher' if m.higher_is_better else 'lower'} is better: "
            f"{m.description})" for m in metrics))
        env.close()


def show(cfg: DictConfig) -> None:
    """Record the expert to an mp4 (and optionally a PNG still)."""
    from envs.show import record_video

    result = record_video(env_dict(cfg), cfg.out, cfg.episodes, cfg.max_frames, cfg.scale,
                          cfg.fps, cfg.seed, cfg.still or None)
    for i, ep in enumerate(result["episodes"], 1):
        print(f"episode {i}: return {ep['return']:+.2f} success {ep['success']}")
    print(f"wrote {result['frames']} frames to {result['video']}")
    if cfg.still:
        print(f"wrote still {cfg.still}")


def bench(cfg: DictConfig) -> None:
    """Measure env-steps/s and write the JSON report."""
    from envs.bench import bench_env

    report = bench_env(env_dict(cfg), list(cfg.num_envs), cfg.steps, cfg.repeats, cfg.stop_prob,
                       cfg.seed, cfg.sync)
    for row in report["results"]:
        mode = row["native"]["vector_mode"]
        line = f"N={row['num_envs']:>4}  {mode} {row['native']['steps_per_s_median']:>10,.0f} /s"
        if "sync" in row:
            line += (f"   sync {row['sync']['steps_per_s_median']:>9,.0f} /s"
                     f"   ratio {row['native_over_sync']:.1f}x")
        print(line)
    if "per_env_cost_256_over_64" in report:
        print(f"per-env cost N=256 / N=64: {report['per_env_cost_256_over_64']:.2f}")
    print(f"report: {write_report(report, cfg.out)}")
