"""Perception: the observation contract, preprocessing, encoders and fusion.

Importing this package must stay torch-free and without side effects: the
robot runtime imports :mod:`perception.spec`. Torch modules live in
submodules imported explicitly; training processes call
:func:`perception.process.setup_process` first (the ``sensorium`` command
and :mod:`agent` do).
"""
