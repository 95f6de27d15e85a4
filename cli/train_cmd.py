"""``sensorium train`` and ``sensorium eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cli.envs_cmd import write_report


def _plain(node: Any) -> Any:
    """A config node as plain Python data (scalars pass through)."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def train(cfg: DictConfig) -> None:
    """Train a policy; the run folder gets config, checkpoints, metrics, TensorBoard, model."""
    from agent.checkpoint import check_run_dir
    from agent.config import RunSettings
    from agent.distributed import init_distributed, shutdown
    from agent.runner import OnPolicyRunner, TrainSetup, default_run_name, pick_device
    from perception.settings import config_from_kwargs

    run_fields = {f: _plain(cfg[f]) for f in RunSettings.__dataclass_fields__}
    run = config_from_kwargs(RunSettings, run_fields, "train")
    setup = TrainSetup(env=_plain(cfg.env), fusion=_plain(cfg.fusion), agent=_plain(cfg.agent),
                       model=_plain(cfg.model), policy=_plain(cfg.policy), run=run)
    run_dir = Path(run.root) / (run.name or default_run_name(setup))
    check_run_dir(run_dir, run.resume)
    dist_info = init_distributed(pick_device(run.device).type)
    try:
        if setup.agent.get("name") == "ppo":
            runner = OnPolicyRunner(setup, run_dir, dist_info)  # checks the settings
            write_config(cfg, run_dir, dist_info.is_main)
            try:
                summary = runner.learn()
            finally:
                runner.close()
        else:  # imitation (agent=bc|dagger) lives in agent.training
            from agent.training import run_training

            write_config(cfg, run_dir, dist_info.is_main)
            summary = run_training(setup, run_dir, dist_info)
        if dist_info.is_main:
            print(f"run: {run_dir}  ({summary['env_steps']:,} env-steps, "
                  f"{summary['train_seconds']:.0f} s)")
            if run.export:
                from deploy.export.policy import export_run

                report = export_run(run_dir)
                print(f"model: {report['model']} (onnxruntime vs torch max |diff| "
                      f"{report['max_abs_diff']:.2e})")
    finally:
        shutdown(dist_info)


def write_config(cfg: DictConfig, run_dir: Path, is_main: bool) -> None:
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))


def evaluate(cfg: DictConfig) -> None:
    """Evaluate a run's last checkpoint; JSON report and an mp4 of a few episodes."""
    from agent.trained import load_trained

    if not cfg.run:
        raise SystemExit("sensorium eval needs run=DIR (a folder written by sensorium train)")
    trained = load_trained(Path(cfg.run), device=cfg.device)
    result = trained.evaluate(cfg.episodes, cfg.num_envs, cfg.seed, cfg.deterministic)
    out = Path(cfg.out) if cfg.out else Path(cfg.run) / "eval.json"
    if cfg.video_episodes:
        video = trained.video(out.with_suffix(".mp4"), cfg.video_episodes, cfg.seed,
                              cfg.deterministic)
        result["video"] = video["video"]
    print(json.dumps({k: v for k, v in result.items()}, indent=2))
    print(f"report: {write_report(result, str(out))}")


def export(cfg: DictConfig) -> None:
    """Export a run's policy to ONNX and check it against torch."""
    from deploy.export.policy import export_run

    if not cfg.run:
        raise SystemExit("sensorium export needs run=DIR (a folder written by sensorium train)")
    report = export_run(Path(cfg.run), Path(cfg.out) if cfg.out else None)
    print(json.dumps(report, indent=2))
