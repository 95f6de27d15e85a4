"""Quantification: what each modality contributes, robustness, interactions, fusion probes."""
