"""Every settings dataclass of perception, in modules that import no torch.

Hydra registers them (``sensorium --help``, the config groups) without
loading torch; the modules that build the torch parts import them from here.
"""
