"""Perception: the observation contract, preprocessing, encoders and fusion.

Importing this package must stay torch-free: the robot runtime imports
:mod:`perception.spec`. Torch modules live in submodules imported explicitly.
"""

import os

# torch and numba (the simulated worlds) each load an OpenMP runtime. With the
# default active waiting, the idle threads of one spin while the other works,
# and on a 2-core machine training ran ~10x slower. Every sensorium package
# imports this one first, so this takes effect unless torch was loaded before.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
