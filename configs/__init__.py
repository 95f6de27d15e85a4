"""Hydra's primary config search path (``pkg://configs``).

The configs themselves are typed dataclasses registered in
:mod:`cli.config_store`; YAML files placed here (e.g. ``env/my_flat.yaml``)
become extra options of the same groups.
"""
