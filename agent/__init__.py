"""Training: actor-critic, PPO, imitation, rollout storage, runner."""
