"""Checkpoints that survive a kill at any moment and never unpickle anything.

Layout of a run's checkpoint directory::

    ckpt_000000004096/
        tensors.safetensors   every tensor of every state_dict, keyed "<module>/<path>"
        state.json            the rest of each state_dict (optimizer hyper-parameters,
                              step counters, ...) with {"__tensor__": key} placeholders
        rng.json              Python / numpy RNG states (when saved)
        rng.safetensors       torch RNG states (when saved)
        meta.json             step, user meta (config, obs/action spec JSON), versions,
                              time, file sizes; written last
    latest                    name of the newest checkpoint directory

A checkpoint is written into ``.tmp-*`` beside its final place, fsynced, and
renamed into place; then ``latest`` is replaced atomically. A process killed
mid-save leaves only a ``.tmp-*`` directory that the loader never looks at
and that the next save deletes. Old checkpoints are renamed to ``.trash-*``
before they are deleted, so a ``ckpt_*`` directory is always complete.
One writer per directory (rank 0) is assumed.

A load compares the saved meta (obs/action spec, config) with this run's before any
tensor is read, and refuses one that differs, naming the difference and the fix.
"""

from agent.checkpoint.atomic import LATEST, latest_checkpoint, list_checkpoints
from agent.checkpoint.errors import CheckpointError
from agent.checkpoint.rng import RNGState, capture_rng, restore_rng
from agent.checkpoint.store import (
    LoadedCheckpoint,
    check_run_dir,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)

__all__ = [
    "LATEST", "CheckpointError", "LoadedCheckpoint", "RNGState", "capture_rng", "check_run_dir",
    "latest_checkpoint", "list_checkpoints", "load_checkpoint", "read_checkpoint_meta",
    "restore_rng", "save_checkpoint",
]
