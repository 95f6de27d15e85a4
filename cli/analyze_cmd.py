"""``sensorium analyze``: what each modality of a trained run contributes."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def analyze(cfg: DictConfig) -> None:
    """Shapley values, interactions, PID and robustness curves of a run's modalities -> a
    report folder."""
    from analysis.report import analyze as run_analysis
    from analysis.report import write
    from analysis.settings import AnalyzeSettings
    from perception.settings import config_from_kwargs

    settings = config_from_kwargs(AnalyzeSettings, OmegaConf.to_container(cfg), "analyze")
    report = run_analysis(settings)
    out = Path(settings.out) if settings.out else Path(settings.run) / "analysis"
    paths = write(report, out)
    print(paths["md"].read_text())
    took = sum(report["seconds"].values())
    print(f"report ({took:.0f} s): {', '.join(str(p) for p in paths.values())}")
