"""Training: actor-critic, PPO, imitation, rollout storage, runner.

Importing it sets the training process up (:func:`perception.process.setup_process`:
OpenMP threads wait passively, freed heap pages are kept) before torch loads.
"""

from perception.process import setup_process

setup_process()
