"""``sensorium bench``: the deployed half's commands (torch only where a row needs it)."""

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
