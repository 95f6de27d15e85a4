"""Export to ONNX (torch side): one graph from raw sensor arrays to outputs, with its spec.

The package imports nothing: :mod:`deploy.export.settings` is torch-free (the CLI
registers it without torch); the torch parts are imported from their modules
(:mod:`deploy.export.onnx`, ...).
"""
