"""``sensorium train`` and ``sensorium eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cli.report import write_report


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
    from agent.run_setup import TrainSetup, default_run_name, pick_device
    from agent.training import make_runner

    # the composed config becomes the run's dataclasses here, once (checked)
    setup = TrainSetup(env=_plain(cfg.env), fusion=_plain(cfg.fusion), agent=_plain(cfg.agent),
                       model=_plain(cfg.model), policy=_plain(cfg.policy),
                       run={f: _plain(cfg[f]) for f in RunSettings.__dataclass_fields__})
    run = setup.run
    run_dir = Path(run.root) / (run.name or default_run_name(setup))
    check_run_dir(run_dir, run.resume)
    dist_info = init_distributed(pick_device(run.device).type)
    try:
        runner = make_runner(setup, run_dir, dist_info)  # checks the settings
        write_config(cfg, run_dir, dist_info.is_main)
        try:
            summary = runner.learn()
        finally:
            runner.close()
        if dist_info.is_main:
            print(f"run: {run_dir}  ({summary['env_steps']:,} env-steps, "
                  f"{summary['train_seconds']:.0f} s)")
            if run.export:
                from deploy.export.policy import export_run

                print(export_summary(export_run(run_dir)))
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
    """Export a run's policy to ONNX, prove it against torch (and int8 against fp32)."""
    from deploy.export.policy import export_run
    from deploy.export.settings import ExportSettings
    from perception.settings import config_from_kwargs

    if not cfg.run:
        raise SystemExit("sensorium export needs run=DIR (a folder written by sensorium train)")
    fields = {k: _plain(cfg[k]) for k in ExportSettings.__dataclass_fields__}
    settings = config_from_kwargs(ExportSettings, fields, "export")
    report = export_run(Path(cfg.run), settings)
    print(export_summary(report))


def export_summary(report: dict[str, Any]) -> str:
    """What `sensorium export` prints: the file, its proof, and the int8 verdict."""
    lines = [f"model: {report['model']} ({report['bytes'] / 1e3:,.0f} kB, "
             f"{report['macs']:,} MACs, safe action {report['safe_action']}: "
             f"{report['safe_action_source']})",
             f"parity: {report['observations']:,} observations from the policy's rollouts x "
             f"{report['patterns']} presence patterns: max |onnxruntime - torch| "
             f"{report['max_abs_diff']:.2e}, greedy actions agree {report['action_agreement']:.4f}"
             f" (ties {report['ties']})"]
    if "sequences" in report:
        seq = report["sequences"]
        lines.append(f"recurrent: {seq['worlds']} sequences of {seq['steps']} steps, state "
                     f"carried by each runtime: max drift {seq['max_drift']:.2e}")
    if "int8" in report:
        q = report["int8"]
        ev = q["evaluation"]
        lines.append(f"int8: {q['model']} ({q['bytes']['int8'] / 1e3:,.0f} kB), agreement "
                     f"{q['action_agreement']:.4f}, success {ev['fp32'].get('success_rate', 0):.3f}"
                     f" -> {ev['int8'].get('success_rate', 0):.3f}, p50 "
                     f"{q['latency_batch1_1thread']['fp32']['p50_us']:.0f} -> "
                     f"{q['latency_batch1_1thread']['int8']['p50_us']:.0f} us; report "
                     f"{q['report']}")
    lines.append(f"report: {report['report']}")
    return "\n".join(lines)
