"""A small CNN for egocentric images and depth maps (64x64 and similar)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from perception.configs.model import ImageEncoderConfig
from perception.encoders.base import Encoder, register_encoder
from perception.preprocess.image import image_preprocess, input_scale
from perception.spec import ModalityKind, ModalitySpec, SpecError


def conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


class ScaledConv2d(nn.Conv2d):
    """A conv whose input is in sensor units: the scale to [0, 1] is folded into its weights.

    Saves a full-frame multiply per forward (and per backward); the export
    folds ``weight * scale`` into a constant.
    """

    def __init__(self, *args: object, input_scale: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.input_scale = input_scale

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.input_scale, self.bias)


@register_encoder(ModalityKind.IMAGE, ModalityKind.DEPTH)
class ImageEncoder(Encoder):
    """uint8 (B, H, W, C) images or float (B, H, W, 1) depth -> (B, out_dim)."""

    def __init__(self, spec: ModalitySpec, cfg: ImageEncoderConfig) -> None:
        super().__init__(spec)
        h, w, c = spec.shape
        if min(h, w) < 8:
            raise SpecError(
                f"modality {spec.name!r}: image {h}x{w} is too small for the CNN encoder; "
                "it needs at least 8x8 pixels"
            )
        self.preprocess = image_preprocess(spec, scale=False)
        layers: list[nn.Module] = []
        in_ch = c
        for i, out_ch in enumerate(cfg.channels):
            k, s, p = (4, 4, 0) if i == 0 else (3, 2, 1)
            if conv_out(h, k, s, p) < 1 or conv_out(w, k, s, p) < 1:
                break  # small images: stop downsampling before nothing is left
            conv = (ScaledConv2d(in_ch, out_ch, k, s, p, input_scale=input_scale(spec)) if i == 0
                    else nn.Conv2d(in_ch, out_ch, k, s, p))
            layers += [conv, nn.ReLU()]
            h, w, in_ch = conv_out(h, k, s, p), conv_out(w, k, s, p), out_ch
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(in_ch * h * w, cfg.out_dim), nn.ReLU())
        self.out_dim = cfg.out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv(self.preprocess(x)))


def image_input_example(spec: ModalitySpec, batch: int) -> Tensor:
    """A random raw batch for `spec` (for export and tests)."""
    if spec.kind is ModalityKind.IMAGE:
        return torch.randint(0, 256, (batch, *spec.shape), dtype=torch.uint8)
    return torch.rand(batch, *spec.shape) * float(spec.high)
