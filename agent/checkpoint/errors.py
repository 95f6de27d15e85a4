"""The error of the checkpoint package, in a module each of its modules can import."""

from perception.settings import UserError


class CheckpointError(UserError):
    """A checkpoint is missing or does not fit this run; the message says how to fix it."""
