"""Perception: the observation contract, preprocessing, encoders and fusion.

Importing this package must stay torch-free: the robot runtime imports
:mod:`perception.spec`. Torch modules live in submodules imported explicitly.
"""
