"""``sensorium demo``: the main job on the embedded default world.

For now: the default world driven by its privileged expert and by two
single-modality scripted probes (hearing only, seeing only), with a video of
the expert; success, SPL, collisions and speed printed and written as JSON.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from cli.envs_cmd import env_dict, write_report


def run(cfg: DictConfig) -> None:
    from envs.audiovisual_nav import AudioVisualNavVectorEnv
    from envs.audiovisual_nav.heuristics import ObjectSeeker, audio_only_actions
    from envs.episodes import run_episodes
    from envs.factory import make_vector_env
    from envs.show import record_video

    env_cfg = env_dict(cfg)
    out_dir = Path(cfg.out_dir)
    env = make_vector_env(env_cfg, cfg.num_envs)
    if not isinstance(env, AudioVisualNavVectorEnv):
        raise SystemExit("sensorium demo runs on env=audiovisual_nav; "
                         "use `sensorium envs show env=...` for the other worlds")
    env.reset(seed=cfg.seed)
    env.expert_actions()  # load the compiled kernels before anything is timed
    seeker = ObjectSeeker(env, seed=cfg.seed)

    def seeker_policy(obs):
        return seeker.actions()

    policies = {
        "expert (privileged shortest path)": (lambda obs: env.expert_actions(), None),
        "hearing only (turn to the louder ear)": (lambda obs: audio_only_actions(obs["audio"]),
                                                   None),
        "seeing only (drive to a random object)": (seeker_policy, seeker.new_episode),
    }
    rows = {}
    for name, (policy, on_end) in policies.items():
        env.reset(seed=cfg.seed)
        if on_end is not None:
            seeker.new_episode(range(env.num_envs))
        res = run_episodes(env, policy, cfg.episodes, seed=cfg.seed, on_end=on_end)
        rows[name] = {**res["mean"], "episodes": res["episodes"],
                      "env_steps_per_s_with_policy": res["env_steps_per_s"]}
    video = record_video(env_cfg, out_dir / "expert.mp4", episodes=2, seed=cfg.seed,
                         still=out_dir / "expert.png")
    print(f"AudioVisualNav, {cfg.num_envs} worlds, {cfg.episodes} episodes per policy")
    print(f"{'policy':<42}{'success':>8}{'SPL':>7}{'collisions':>12}{'steps/s':>10}")
    for name, r in rows.items():
        print(f"{name:<42}{r['success']:>8.3f}{r['spl']:>7.3f}{r['collisions']:>12.2f}"
              f"{r['env_steps_per_s_with_policy']:>10,.0f}")
    report = {"env": env_cfg, "num_envs": cfg.num_envs, "episodes": cfg.episodes,
              "seed": cfg.seed, "policies": rows, "video": video["video"]}
    print(f"video: {video['video']}")
    print(f"report: {write_report(report, str(out_dir / 'demo.json'))}")
