"""Camera and depth frames as the sensor gives them -> float tensors, inside the graph.

Both modules move channels first *before* any elementwise op: onnxruntime runs
an elementwise op on an ``(B, H, W, 1)`` tensor about 7x slower than on the
same data laid out ``(B, 1, H, W)`` (a trailing axis of size 1 defeats its
broadcasting fast path; 38 us against 5 us for a 64x64 depth frame).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from perception.spec import ModalityKind, ModalitySpec, SpecError


def _check_frame(x: Tensor, what: str, dtype: str, channels: tuple[int, ...],
                 hw: tuple[int, int] | None) -> None:
    if x.dim() != 4 or x.shape[-1] not in channels:
        want = f"(batch, H, W, {' or '.join(str(c) for c in channels)})"
        raise SpecError(
            f"{what} takes {want} {dtype} frames, got shape {tuple(x.shape)}; add the batch "
            "axis and keep channels last, as the sensor gives them"
        )
    if str(x.dtype) != f"torch.{dtype}":
        raise SpecError(f"{what} takes {dtype} frames, got {x.dtype}; feed the sensor's raw array")
    if hw is not None and tuple(x.shape[1:3]) != hw:
        raise SpecError(f"{what} was built for {hw[0]}x{hw[1]} frames, got {tuple(x.shape)}")


class ImageToFloat(nn.Module):
    """``(B, H, W, C)`` uint8 -> ``(B, C, H, W)`` float32 in [0, 1]."""

    def __init__(self, shape: tuple[int, int, int] | None = None, scale: bool = True) -> None:
        """`shape`: the ``(H, W, C)`` the forward checks for (None = any size).

        `scale`: False keeps the 0..255 range (for a consumer that folds the
        1/255 into its own weights, as the image encoder's first conv does).
        """
        super().__init__()
        self.shape = tuple(shape) if shape is not None else None
        self.factor = 1.0 / 255.0 if scale else 1.0

    def out_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        h, w, c = shape
        return (c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        _check_frame(x, "ImageToFloat", "uint8", (self.shape[2],) if self.shape else (1, 3),
                     self.shape[:2] if self.shape else None)
        # Transpose the uint8 bytes first: 4x less to move than float32.
        y = x.permute(0, 3, 1, 2).float()
        return y * self.factor if self.factor != 1.0 else y


class DepthToFloat(nn.Module):
    """``(B, H, W, 1)`` float32 metres -> ``(B, 1, H, W)`` in [0, 1]: ``clip(d / max_m, 0, 1)``."""

    def __init__(self, max_m: float, shape: tuple[int, int, int] | None = None,
                 scale: bool = True) -> None:
        """`max_m`: the range that maps to 1 (the spec's ``high``); `shape`: ``(H, W, 1)``.

        `scale`: False clips to [0, max_m] metres without dividing (a consumer
        folds the 1/max_m into its weights).
        """
        super().__init__()
        if not (math.isfinite(max_m) and max_m > 0):
            raise SpecError(
                f"DepthToFloat needs a finite max range > 0, got {max_m}; set the depth "
                "modality's high to the sensor's max range in metres"
            )
        self.max_m = float(max_m)
        self.shape = tuple(shape) if shape is not None else None
        self.scale = scale

    def out_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        h, w, c = shape
        return (c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        _check_frame(x, "DepthToFloat", "float32", (1,), self.shape[:2] if self.shape else None)
        y = x.permute(0, 3, 1, 2)
        if self.scale:
            return (y * (1.0 / self.max_m)).clamp(0.0, 1.0)
        return y.clamp(0.0, self.max_m)


def image_preprocess(spec: ModalitySpec, scale: bool = True) -> nn.Module:
    """The in-graph preprocessing of an image or depth modality, by its kind.

    With ``scale=False`` values stay in sensor units (0..255, metres); see
    :func:`input_scale` for the factor the consumer must apply.
    """
    where = f"modality {spec.name!r}"
    if spec.kind not in (ModalityKind.IMAGE, ModalityKind.DEPTH):
        raise SpecError(
            f"{where}: image_preprocess takes kinds 'image' and 'depth', got "
            f"{spec.kind.value!r}; audio goes through LogMel, vectors through RunningNorm"
        )
    shape = spec.shape
    want_dtype = "uint8" if spec.kind is ModalityKind.IMAGE else "float32"
    want_c = (1, 3) if spec.kind is ModalityKind.IMAGE else (1,)
    if len(shape) != 3 or shape[2] not in want_c:
        raise SpecError(
            f"{where}: kind {spec.kind.value!r} needs shape (H, W, "
            f"{' or '.join(map(str, want_c))}), got {shape}"
        )
    if spec.dtype != want_dtype:
        raise SpecError(
            f"{where}: kind {spec.kind.value!r} takes {want_dtype} frames, got {spec.dtype!r}"
        )
    if spec.kind is ModalityKind.IMAGE:
        return ImageToFloat(shape, scale)
    return DepthToFloat(spec.high, shape, scale)


def input_scale(spec: ModalitySpec) -> float:
    """The factor that maps an image or depth modality's sensor units to [0, 1]."""
    return 1.0 / 255.0 if spec.kind is ModalityKind.IMAGE else 1.0 / float(spec.high)
