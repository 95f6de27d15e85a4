"""The ``sensorium`` command: subcommands configured with Hydra."""
