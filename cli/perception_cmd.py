"""``sensorium perception bench``: the model zoo's size and latency on a world's spec."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from cli.envs_cmd import env_dict
from cli.report import write_report


def bench(cfg: DictConfig) -> None:
    import torch

    from deploy.export.latency import bench_fusions
    from envs.factory import make_vector_env, obs_spec_of
    from perception.fusion import fusion_configs
    from perception.model import PerceptionModel

    env = make_vector_env(env_dict(cfg), 1)
    spec = obs_spec_of(env)
    obs, _ = env.reset(seed=cfg.seed)
    env.close()
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    default = OmegaConf.to_container(cfg.fusion, resolve=True)
    configs = fusion_configs()
    fusions = [default] + [
        {**vars(configs[name])} for name in cfg.methods if name != default["method"]]

    def build(fusion, hidden):
        torch.manual_seed(cfg.seed)
        return PerceptionModel(spec, {**model_cfg, "memory": hidden}, fusion)

    def inputs(hidden):
        xs = [torch.from_numpy(obs[n]) for n in spec.names]
        xs += [torch.ones(1, dtype=torch.bool) for _ in spec.names]
        return xs + ([torch.zeros(1, hidden)] if hidden else [])

    report = bench_fusions(spec, inputs, build, fusions, cfg.memory, cfg.runs, cfg.warmup)
    report.update({"benchmark": "perception bench", "env": env_dict(cfg),
                   "default_fusion": default, "model": model_cfg,
                   "input": "one real observation of the world, every modality present"})
    print(f"{'fusion':<10}{'memory':>7}{'params':>9}{'MACs':>11}{'ORT p50':>9}{'p99':>8}"
          f"{'eager p50':>11}{'p99':>8}{'ratio':>7}")
    for r in report["results"]:
        o, e = r["onnxruntime"], r["torch_eager"]
        print(f"{r['fusion']['method']:<10}{r['memory']:>7}{r['params']:>9,}{r['macs']:>11,}"
              f"{o['p50_us']:>9.0f}{o['p99_us']:>8.0f}{e['p50_us']:>11.0f}{e['p99_us']:>8.0f}"
              f"{r['eager_over_onnxruntime_p50']:>6.1f}x")
    print("latency in microseconds, batch 1, one thread, preprocessing included")
    print(f"report: {write_report(report, cfg.out)}")


def probe(cfg: DictConfig) -> None:
    """Train every fusion method on ModalityProbe tasks; print and write the accuracy table."""
    from analysis.fusion_probe import ProbeRun, train_probe

    probe_settings = OmegaConf.to_container(cfg.probe, resolve=True)
    rows = []
    for method in cfg.methods:
        for task in cfg.tasks:
            run = ProbeRun(interaction=task.interaction, fusion={"method": method},
                           steps=cfg.steps, batch=cfg.batch, lr=cfg.lr,
                           modality_dropout=task.modality_dropout, seed=cfg.seed,
                           probe=probe_settings)
            rows.append(train_probe(run))
            r = rows[-1]
            absent = "  ".join(f"{k.removeprefix('accuracy_')}={v:.3f}" for k, v in r.items()
                               if k.endswith("_absent"))
            print(f"{method:<10} {task.interaction:<10} dropout={task.modality_dropout:<4} "
                  f"accuracy={r['accuracy']:.3f}  {absent}  ({r['train_seconds']:.1f} s)")
    report = {"benchmark": "perception probe", "probe": probe_settings, "steps": cfg.steps,
              "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed, "results": rows}
    print(f"report: {write_report(report, cfg.out)}")
