"""``sensorium demo``: the main job on the embedded default world.

Train a policy on the fused senses of AudioVisualNav for a bounded time (by
default the teacher-student route: DAgger from the privileged expert to a
sensors-only student, then PPO fine-tuning of the student), evaluate it on
episodes it never saw, export it to ONNX (proven against torch), benchmark
the file's latency, drive it with the torch-free runtime on the sim source
for a few seconds, and print it next to reference policies: the privileged
expert and two single-sense scripted probes (hearing only, seeing only).
Videos of the trained policy and of the expert, and the JSON reports, go to
``out_dir``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cli.envs_cmd import env_dict
from cli.report import write_report
from envs.episodes import EVAL_SEED


def reference_policies(env_cfg: dict[str, Any], cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Success, SPL and collisions of the expert and the scripted single-sense probes."""
    from envs.audiovisual_nav import AudioVisualNavVectorEnv
    from envs.audiovisual_nav.heuristics import ObjectSeeker, audio_only_actions
    from envs.episodes import run_episodes
    from envs.factory import make_vector_env

    env = make_vector_env(env_cfg, cfg.num_envs)
    if not isinstance(env, AudioVisualNavVectorEnv):
        raise SystemExit("sensorium demo runs on env=audiovisual_nav; "
                         "use `sensorium envs show env=...` for the other worlds")
    env.reset(seed=cfg.seed)
    seeker = ObjectSeeker(env, seed=cfg.seed)
    policies = {
        "expert (privileged shortest path)": (lambda obs: env.expert_actions(), None),
        "hearing only (turn to the louder ear)": (lambda obs: audio_only_actions(obs["audio"]),
                                                   None),
        "seeing only (drive to a random object)": (lambda obs: seeker.actions(),
                                                    seeker.new_episode),
    }
    rows = {}
    try:
        for name, (policy, on_end) in policies.items():
            env.reset(seed=cfg.seed)
            if on_end is not None:
                seeker.new_episode(range(env.num_envs))
            res = run_episodes(env, policy, cfg.episodes, seed=cfg.seed, on_end=on_end)
            rows[name] = {"success_rate": res["mean"]["success"], "spl": res["mean"]["spl"],
                          "collisions": res["mean"]["collisions"], "episodes": res["episodes"]}
    finally:
        env.close()
    return rows


def train_policy(env_cfg: dict[str, Any], cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The demo's policy within ``cfg.minutes``; the PPO phase's summary (+ ``route``).

    ``route=distill``: DAgger from the env's privileged expert (a sensors-only
    student; modality dropout and the sensor randomizers on its inputs), then PPO
    fine-tuning of that student for the minutes left. ``route=ppo``: PPO from
    scratch for all of them.
    """
    from agent.config import RunSettings
    from agent.run_setup import TrainSetup
    from agent.training import run_training

    if cfg.route not in ("distill", "ppo"):
        raise SystemExit(f"sensorium demo: route={cfg.route!r}; use route=distill or route=ppo")
    if run_dir.exists():  # the demo's own run from a previous call
        shutil.rmtree(run_dir)
    student = run_dir.parent / (run_dir.name + "_dagger")
    if student.exists():
        shutil.rmtree(student)
    common = dict(root=str(run_dir.parent), num_envs=cfg.train_envs, seed=cfg.seed,
                  progress=cfg.progress, episode_dropout_of=dict(cfg.episode_dropout_of),
                  modality_dropout_of=dict(cfg.modality_dropout_of))
    if cfg.curve_every:  # every checkpoint kept, for the learning curve
        common["keep_checkpoints"] = 0
    policy = {"actor_when_absent": list(cfg.actor_when_absent)}
    t0 = time.perf_counter()
    phases: dict[str, Any] = {}
    agent: dict[str, Any] = {"name": "ppo"}
    init = ""
    if cfg.route == "distill":
        steps = cfg.dagger_rounds * cfg.dagger_steps
        # the student is not the deployed policy: no export of its own inside the budget
        run = RunSettings(name=student.name, total_steps=steps, compile=False, export=False,
                          checkpoint_every=1, **common)
        dagger = {"name": "dagger", "rounds": cfg.dagger_rounds,
                  "steps_per_round": cfg.dagger_steps, "epochs": cfg.dagger_epochs}
        phases["dagger"] = run_training(TrainSetup(env=env_cfg, fusion={"method": cfg.fusion},
                                                   agent=dagger, model={}, policy=policy, run=run),
                                        student)
        phases["dagger"].update(minutes=(time.perf_counter() - t0) / 60, run=str(student))
        agent.update(lr=cfg.finetune_lr, entropy_coef=cfg.finetune_entropy,
                     epochs=cfg.finetune_epochs,
                     teacher_coef=cfg.finetune_teacher, teacher_on=cfg.finetune_teacher_on)
        init = str(student)
    left = max(cfg.minutes - (time.perf_counter() - t0) / 60, 0.05)
    run = RunSettings(name=run_dir.name, total_steps=cfg.max_steps, max_minutes=left,
                      compile=cfg.compile, init=init,
                      checkpoint_every=cfg.curve_every or RunSettings.checkpoint_every, **common)
    t1 = time.perf_counter()
    summary = run_training(TrainSetup(env=env_cfg, fusion={"method": cfg.fusion}, agent=agent,
                                      model={}, policy=policy, run=run), run_dir)
    phases["ppo"] = {**summary, "minutes": (time.perf_counter() - t1) / 60, "run": str(run_dir)}
    summary["route"] = {"name": cfg.route, "phases": phases,
                        "minutes": (time.perf_counter() - t0) / 60}
    return summary


def learning_curve(route: dict[str, Any], cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Every kept checkpoint of the route's phases, evaluated on unseen worlds, on one clock:
    a phase's training seconds counted from where it ends on the route's wall-clock minus
    its own training time (so its set-up counts before its first point)."""
    from agent.curves import checkpoint_curve, curve_plots

    points: list[dict[str, Any]] = []
    end, steps = 0.0, 0
    for name, phase in route["phases"].items():
        end += phase["minutes"] * 60
        for p in checkpoint_curve(Path(phase["run"]), cfg.curve_episodes, seed=EVAL_SEED,
                                  offset_seconds=end - phase["train_seconds"],
                                  offset_steps=steps):
            points.append({"phase": name, **p})
        steps += phase["env_steps"]
    curve = {"route": route["name"], "seed": cfg.seed, "episodes": cfg.curve_episodes,
             "eval_seed": EVAL_SEED, "points": points}
    write_report(curve, str(out_dir / "curve.json"))
    curve["plots"] = [str(p) for p in curve_plots(
        {route["name"]: points}, ("success_rate", "spl"), out_dir / "curve",
        f"AudioVisualNav, route={route['name']}, seed {cfg.seed}", rates=("success_rate",))]
    return curve


def run_on_sim(model: str, cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """The exported file driven by the torch-free runtime on the sim source for a while."""
    from deploy.launch import run as run_loop
    from deploy.run_settings import RunCommandSettings

    settings = RunCommandSettings(model=model, source="sim", hz=cfg.runtime_hz,
                                  duration=cfg.runtime_seconds, status=False,
                                  out=str(out_dir / "runtime.json"))
    return run_loop(settings, print_fn=lambda *a: None)


def run(cfg: DictConfig) -> None:
    from agent.trained import load_trained
    from cli.train_cmd import export_summary
    from deploy.bench import BenchSettings, bench, table
    from deploy.export.policy import export_run
    from envs.show import record_video

    env_cfg = env_dict(cfg)
    out_dir = Path(cfg.out_dir)
    rows = reference_policies(env_cfg, cfg)
    what = ("DAgger from the expert, then PPO fine-tuning" if cfg.route == "distill"
            else "PPO from scratch")
    print(f"training ({what}; {cfg.fusion} fusion of every sense) for {cfg.minutes:g} "
          "minutes ...")
    summary = train_policy(env_cfg, cfg, out_dir / "run")
    curve = learning_curve(summary["route"], cfg, out_dir) if cfg.curve_every else None
    trained = load_trained(out_dir / "run")
    result = trained.evaluate(cfg.episodes, num_envs=32, seed=EVAL_SEED)  # unseen worlds
    route = summary["route"]
    dagger = route["phases"].get("dagger")
    name = (f"PPO, {cfg.fusion} fusion ({summary['env_steps'] / 1e6:.2f}M steps, "
            f"{route['minutes']:.1f} min" + (f", after {dagger['env_steps'] / 1e3:.0f}k DAgger "
                                            "steps)" if dagger else ")"))
    rows = {name: {k: result[k] for k in ("success_rate", "spl", "collisions", "episodes")},
            **rows}
    exported = export_run(out_dir / "run")
    latency = bench(BenchSettings(model=exported["model"], run=str(out_dir / "run"),
                                  runs=cfg.bench_runs, out=str(out_dir / "bench.json")))
    runtime = run_on_sim(exported["model"], cfg, out_dir)
    trained_video = trained.video(out_dir / "trained.mp4", episodes=2)
    expert_video = record_video(env_cfg, out_dir / "expert.mp4", episodes=2, seed=cfg.seed,
                                still=out_dir / "expert.png")
    print(f"\nAudioVisualNav, {cfg.episodes} evaluation episodes per policy")
    print(f"{'policy':<72}{'success':>8}{'SPL':>7}{'collisions':>12}")
    for policy, r in rows.items():
        print(f"{policy:<72}{r['success_rate']:>8.3f}{r['spl']:>7.3f}{r['collisions']:>12.2f}")
    print(f"training: {summary['median_env_steps_per_s']:,.0f} env-steps/s (PPO phase, median, "
          "updates included); phases: " + ", ".join(
              f"{k} {v['minutes']:.1f} min" for k, v in route["phases"].items()))
    if curve is not None:
        print(f"learning curve ({len(curve['points'])} checkpoints x {cfg.curve_episodes} "
              f"unseen episodes): {out_dir / 'curve.json'}, " + ", ".join(curve["plots"]))
    print(export_summary(exported))
    print(f"\nlatency of {exported['model']} on this machine (sensorium bench, us):")
    print(table(latency))
    write_report(latency, str(out_dir / "bench.json"))
    tel = runtime["telemetry"]
    lat = tel["latency_us"]
    print(f"\nthe file on the robot runtime (sensorium run source=sim hz={cfg.runtime_hz:g}, "
          f"{cfg.runtime_seconds:g} s): {tel['ticks']:,} ticks, {tel['deadline_misses']} deadline "
          f"misses, tick p50 {lat['p50']:.0f} / p99 {lat['p99']:.0f} / max {lat['max']:.0f} us, "
          f"safe actions {tel['safe_actions']['total']}, episodes {runtime['episodes']}")
    report = {"env": env_cfg, "episodes": cfg.episodes, "seed": cfg.seed, "policies": rows,
              "training": summary, "curve": curve, "onnx": {k: v for k, v in exported.items()
                                            if k != "per_pattern"},
              "latency": {k: latency[k] for k in ("onnxruntime", "floor_us", "floors")},
              "runtime": {k: runtime[k] for k in ("telemetry", "episodes", "report")},
              "videos": {
                  "trained": trained_video["video"], "expert": expert_video["video"]}}
    print(f"videos: {trained_video['video']}, {expert_video['video']}")
    print(f"report: {write_report(report, str(out_dir / 'demo.json'))}")
