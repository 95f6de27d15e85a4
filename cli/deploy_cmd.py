"""``sensorium bench``, ``run``, ``record``: the deployed half's commands (torch-free; bench
imports torch only for its torch row)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from cli.report import write_report


def bench(cfg: DictConfig) -> None:
    """Latency of an exported model on this machine; JSON, PNG histogram, table."""
    from deploy.bench import BenchSettings, bench, table
    from perception.settings import config_from_kwargs

    settings = config_from_kwargs(BenchSettings, OmegaConf.to_container(cfg, resolve=True),
                                  "bench")
    report = bench(settings)
    print(table(report))
    print(f"histogram: {report['histogram']}")
    print(f"report: {write_report(report, settings.out)}")


def _settings(cfg: DictConfig) -> object:
    from deploy.run_settings import RunCommandSettings
    from perception.settings import config_from_kwargs

    return config_from_kwargs(RunCommandSettings, OmegaConf.to_container(cfg, resolve=True),
                              "run")


def run(cfg: DictConfig) -> None:
    """The real-time loop on the model's file: live sensors, the sim, or a replay."""
    from deploy.launch import run as run_loop
    from deploy.model import ModelFileError

    settings = _settings(cfg)
    if not settings.model:
        raise ModelFileError("sensorium run needs model=FILE (an export: sensorium export "
                             "run=DIR writes DIR/model.onnx)")
    report = run_loop(settings)
    tel = report["telemetry"]
    lat = tel["latency_us"]
    print(f"{tel['ticks']:,} ticks at {report['hz']:g} Hz in {report['wall_s']:.1f} s: tick "
          f"p50 {lat['p50']:.0f} / p99 {lat['p99']:.0f} / max {lat['max']:.0f} us, "
          f"{tel['deadline_misses']} deadline misses, safe actions {tel['safe_actions']}")
    for name, m in report["modalities"].items():
        age = m.get("age_ms", {})
        print(f"  {name:<10} {m['source']:<22} fresh {m['fresh']:>7,} stale {m['stale']:>6,} "
              f"absent {m['absent']:>7,}" + (f"  age p50 {age['p50']:.1f} ms p99 "
                                              f"{age['p99']:.1f} ms" if age else ""))
    if "episodes" in report:
        print(f"episodes: {report['episodes']}")
    if "replay" in report:
        print(f"replay: {report['replay']}")
    if "recording" in report:
        print(f"recording: {report['recording']}")
    print(f"report: {report['report']}" + (f" (plot {report['plot']})" if "plot" in report
                                           else ""))


def record(cfg: DictConfig) -> None:
    """Sensors of a model's modalities to MCAP, without running the model."""
    from deploy.launch import record as record_sources
    from deploy.model import ModelFileError

    settings = _settings(cfg)
    if not settings.model:
        raise ModelFileError("sensorium record needs model=FILE: its spec says what to "
                             "record and in which shapes")
    record_sources(settings)
