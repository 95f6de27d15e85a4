"""Deployment: ONNX export and the torch-free runtime."""
