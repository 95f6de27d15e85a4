"""``sensorium <command> [<subcommand>] [key=value ...]``: one entry point, Hydra configs.

Each command has a structured primary config (see :mod:`cli.config_store`);
everything after the command words is handed to Hydra, so overrides
(``env.map_size=9``), config groups (``env=modality_probe``), ``--help``,
``--cfg job`` and ``-m`` sweeps work as Hydra documents them.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

USAGE = """usage: sensorium <command> [key=value ...] [--help]

commands:
{commands}

Settings are Hydra overrides: `sensorium envs show env=modality_probe seed=3`.
`sensorium <command> --help` lists the config groups and every setting."""


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    config: str  # primary config name in Hydra's ConfigStore
    target: str  # "module:function" taking the composed DictConfig
    help: str
    node: str  # "module:name" of the primary config: a dataclass, or a function making one
    groups: tuple[str, ...] = ()  # the config groups it composes from


_STORE = "cli.config_store:"
COMMANDS = (
    Command(("demo",), "demo", "cli.demo:run",
            "the main job: train on the default world (20 min), evaluate, export, run it",
            _STORE + "DemoConfig", ("env",)),
    Command(("envs", "list"), "envs_list", "cli.envs_cmd:list_envs",
            "the registered worlds with their observation and action specs",
            _STORE + "EnvsListConfig", ("env",)),
    Command(("envs", "show"), "envs_show", "cli.envs_cmd:show",
            "an mp4 of the expert: egocentric view, top-down map, audio",
            _STORE + "EnvsShowConfig", ("env",)),
    Command(("envs", "bench"), "envs_bench", "cli.envs_cmd:bench",
            "env-steps/s of the batched world vs gymnasium's SyncVectorEnv (JSON report)",
            _STORE + "EnvsBenchConfig", ("env",)),
    Command(("train",), "train", "cli.train_cmd:train",
            "train a policy (agent=ppo|bc|dagger) -> runs/<name>/",
            _STORE + "train_config", ("env", "fusion", "agent")),
    Command(("eval",), "eval", "cli.train_cmd:evaluate",
            "evaluate a run: mean return and the world's episode metrics (JSON) and an mp4",
            _STORE + "EvalConfig"),
    Command(("export",), "export", "cli.train_cmd:export",
            "a run's policy -> model.onnx (raw sensors in, action out), proven equal to torch",
            _STORE + "export_config"),
    Command(("bench",), "bench", "cli.deploy_cmd:bench",
            "latency of an exported model: onnxruntime, int8, torch eager, the compute floor",
            "deploy.bench:BenchSettings"),
    Command(("run",), "run", "cli.deploy_cmd:run",
            "the real-time loop: model=FILE on live sensors, sim or a replay (torch-free)",
            "deploy.run_settings:RunCommandSettings"),
    Command(("record",), "record", "cli.deploy_cmd:record",
            "record sensors to MCAP without a model (spec from model=FILE)",
            "deploy.run_settings:RunCommandSettings"),
    Command(("analyze",), "analyze", "cli.analyze_cmd:analyze",
            "what each modality of a run contributes and how they interact, robustness (report)",
            "analysis.settings:AnalyzeSettings"),
    Command(("perception", "bench"), "perception_bench", "cli.perception_cmd:bench",
            "params, MACs, onnxruntime vs torch-eager latency of every fusion method (JSON)",
            _STORE + "PerceptionBenchConfig", ("env", "fusion")),
    Command(("perception", "probe"), "perception_probe", "cli.perception_cmd:probe",
            "train every fusion method on ModalityProbe tasks with a known answer (JSON)",
            _STORE + "PerceptionProbeConfig"),
)


def _usage() -> str:
    lines = [f"  {' '.join(c.words):<14} {c.help}" for c in COMMANDS]
    return USAGE.format(commands="\n".join(lines))


def _find(argv: list[str]) -> tuple[Command, list[str]]:
    for cmd in sorted(COMMANDS, key=lambda c: -len(c.words)):
        n = len(cmd.words)
        if tuple(argv[:n]) == cmd.words:
            return cmd, argv[n:]
    given = " ".join(a for a in argv[:2] if "=" not in a and not a.startswith("-"))
    raise SystemExit(f"sensorium: unknown command {given!r}\n\n{_usage()}")


#: Hydra's flags that take a value (the next word unless written ``--flag=value``).
_VALUE_FLAGS = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name",
                "-cd", "--config-dir", "--experimental-rerun"}
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def _flags_last(args: list[str]) -> list[str]:
    """The overrides first, then the flags with their values (``-m``, ``--cfg job``...).

    argparse takes Hydra's overrides as one run of positional words: a flag between
    them (``-m k=a,b`` after the command's own overrides) would be an error.
    """
    flags, rest = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            flags.append(a)
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is not None and (a in _VALUE_FLAGS or (a in ("-i", "--info")
                                                           and nxt in _INFO_CHOICES)):
                flags.append(nxt)
                i += 1
        else:
            rest.append(a)
        i += 1
    return rest + flags


def _load(target: str) -> Callable:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _reported(task: Callable, name: str, debug: bool) -> Callable:
    """`task` with the project's own errors (bad settings, files, specs) as one message.

    They exit with status 2 and no traceback; anything unexpected keeps its
    traceback, and so does every error with ``debug=true`` or ``HYDRA_FULL_ERROR=1``.
    """
    from perception.settings import UserError

    @functools.wraps(task)
    def run(cfg: Any) -> Any:
        try:
            return task(cfg)
        except UserError as e:
            if debug:
                raise
            print(f"sensorium {name}: {e}", file=sys.stderr)
            raise SystemExit(2) from None

    return run


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    cmd, overrides = _find(argv)
    debug = "debug=true" in overrides or os.environ.get("HYDRA_FULL_ERROR") == "1"
    overrides = [o for o in overrides if o not in ("debug=true", "debug=false")]
    from perception.process import setup_process

    setup_process()  # before torch and numba start their threads
    import hydra

    from cli.config_store import register_configs

    register_configs(cmd.config, _load(cmd.node), cmd.groups)
    name = " ".join(cmd.words)
    hydra_args = [
        "hydra.run.dir=.",
        "hydra.output_subdir=null",
        "hydra/job_logging=stdout",
        "hydra/hydra_logging=disabled",
        f"hydra.job.name={cmd.config}",
        "hydra.help.header='sensorium " + f"{name}: {cmd.help}".replace("'", "\\'") + "'",
        "hydra.help.footer='Hydra: --hydra-help; a sweep: -m key=a,b'",
        "hydra.sweep.dir=multirun/" + cmd.config + "/${now:%Y-%m-%d_%H-%M-%S}",
    ]
    task = _reported(_load(cmd.target), name, debug)
    old_argv = sys.argv
    sys.argv = [f"sensorium {name}", *_flags_last([*hydra_args, *overrides])]
    try:
        hydra.main(version_base=None, config_path="pkg://configs", config_name=cmd.config)(task)()
    finally:
        sys.argv = old_argv


if __name__ == "__main__":
    main()
