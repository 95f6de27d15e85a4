"""Running mean/std normalisation of vector observations, frozen into the exported graph."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from perception.settings import ConfigError, require_float


class RunningNorm(nn.Module):
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` over the trailing `shape` axes.

    The trainer calls :meth:`update` with raw observations; ``forward`` never
    updates, so evaluation and export see frozen statistics. Statistics
    accumulate in float64 buffers (parallel Welford/Chan merge, population
    variance); ``forward`` reads float32 copies, which the ONNX export turns
    into constants. Until the first update it is exactly the identity
    (mean 0, scale 1), apart from the clip. Keep the module out of ``.half()``/``.float()``
    casts: they would cast the float64 accumulators too.
    """

    def __init__(self, shape: int | tuple[int, ...], eps: float = 1e-4, clip: float = 5.0) -> None:
        """`eps` floors the variance (std >= sqrt(eps) for features that never vary)."""
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        require_float("RunningNorm", "eps", eps, 0.0, lo_open=True)
        require_float("RunningNorm", "clip", clip, 0.0, lo_open=True)
        if not self.shape or any(s < 1 for s in self.shape):
            raise ConfigError(f"RunningNorm: shape {self.shape} needs sizes >= 1")
        self.eps, self.clip = float(eps), float(clip)
        f64 = torch.float64
        self.register_buffer("count", torch.zeros((), dtype=f64))
        self.register_buffer("mean64", torch.zeros(self.shape, dtype=f64))
        self.register_buffer("var64", torch.ones(self.shape, dtype=f64))
        self.register_buffer("mean", torch.zeros(self.shape))
        self.register_buffer("inv_std", torch.ones(self.shape))  # exact identity until updated

    def _batch(self, x: Tensor) -> Tensor:
        n = len(self.shape)
        if x.dim() < n or tuple(x.shape[x.dim() - n:]) != self.shape:
            raise ConfigError(
                f"RunningNorm over {self.shape} got a tensor of shape {tuple(x.shape)}; the "
                f"trailing axes must be {self.shape} (any leading batch axes)"
            )
        return x.reshape(-1, *self.shape)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold a batch ``(..., *shape)`` into the running mean and variance."""
        xb = self._batch(x.detach()).to(torch.float64)
        n_b = xb.shape[0]
        if n_b == 0:
            return
        mean_b = xb.mean(0)
        var_b = xb.var(0, unbiased=False)
        n_a = self.count
        total = n_a + n_b
        delta = mean_b - self.mean64
        # With no data yet (n_a = 0) the identity prior (var 1) drops out of the merge.
        m2 = self.var64 * n_a + var_b * n_b + delta.square() * (n_a * n_b / total)
        self.mean64.add_(delta * (n_b / total))
        self.var64.copy_(m2 / total)
        self.count.copy_(total)
        self.mean.copy_(self.mean64)
        self.inv_std.copy_((self.var64 + self.eps).rsqrt())

    def forward(self, x: Tensor) -> Tensor:
        return ((x - self.mean) * self.inv_std).clamp(-self.clip, self.clip)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, eps={self.eps}, clip={self.clip}, count={int(self.count)}"
