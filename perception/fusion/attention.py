"""Attention fusion: a small pre-LN transformer over one token per modality and a summary token."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from perception.configs.fusion import AttentionConfig
from perception.fusion.base import Fusion, register_fusion

NEG = -1e9
"""Attention logit bias of an absent modality's key: its weight exp(NEG - max) is exactly 0."""


class _Layer(nn.Module):
    """Pre-LN transformer layer in plain matmul/softmax ops, static shapes (a small ONNX graph)."""

    def __init__(self, d_model: int, heads: int, ffn: int, tokens: int) -> None:
        super().__init__()
        self.heads, self.head_dim, self.tokens = heads, d_model // heads, tokens
        self.norm1 = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.o = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn), nn.ReLU(), nn.Linear(ffn, d_model))

    def forward(self, xq: Tensor, x: Tensor, key_bias: Tensor, nq: int) -> Tensor:
        """Tokens xq updated by attending to all tokens x; rows are (sample, token) pairs.

        xq: (B * nq, d), or (nq, d) for the same tokens in every sample; x: (B * T, d);
        key_bias: (B, 1, 1, T), added to the attention logits (NEG masks a key out).
        Returns (B * nq, d). Sizes are Python ints, never read from tensors, and the
        matmuls are 2-D where they can be, so the exported graph is small and static.
        """
        t, h, hd = self.tokens, self.heads, self.head_dim
        q = self.q(self.norm1(xq)) * (1.0 / math.sqrt(hd))
        q = q.reshape(-1, nq, h, hd).transpose(1, 2)  # (B or 1, h, nq, hd)
        kv = self.kv(self.norm1(x)).reshape(-1, t, 2 * h, hd).transpose(1, 2)  # (B, 2h, T, hd)
        k, v = kv[:, :h], kv[:, h:]
        attn = torch.softmax(q @ k.transpose(2, 3) + key_bias, dim=-1)  # (B, h, nq, T)
        xq = xq + self.o((attn @ v).transpose(1, 2).reshape(-1, h * hd))
        return xq + self.ffn(self.norm2(xq))


@register_fusion("attention")
class AttentionFusion(Fusion):
    """A small transformer over modality tokens, read out through a summary token.

    A token per modality (``W_m f_m + e_m``, e_m a learned modality embedding) and a
    learned summary token pass ``layers`` pre-LN transformer layers. Absent modalities
    are masked out of the keys (the summary token is always there, so no row is fully
    masked). The state is ``ReLU(Linear(LayerNorm(summary)))``. The last layer updates
    only the summary token, the one that is read.
    """

    Config = AttentionConfig

    def __init__(self, dims: dict[str, int], cfg: AttentionConfig | None = None) -> None:
        super().__init__(dims)
        self.cfg = cfg or self.Config()
        self.out_dim = self.cfg.out_dim
        d = self.cfg.d_model
        self.tokens = nn.ModuleDict({n: nn.Linear(k, d, bias=False) for n, k in self.dims.items()})
        self.modality_embedding = nn.Parameter(torch.randn(len(self.names), d) * 0.02)
        self.summary = nn.Parameter(torch.randn(d) * 0.02)
        self.layers = nn.ModuleList(
            _Layer(d, self.cfg.heads, self.cfg.ffn_mult * d, len(self.names) + 1)
            for _ in range(self.cfg.layers))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, self.out_dim)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        d, t = self.cfg.d_model, len(self.names) + 1
        p = [present[n][:, None] for n in self.names]
        tokens = torch.cat([self.tokens[n](torch.where(p_n, features[n], 0.0))
                            for n, p_n in zip(self.names, p)], dim=1)
        # a zero slot in front for the summary token; then every token gets its embedding
        embedding = torch.cat([self.summary[None], self.modality_embedding]).flatten()
        x = (F.pad(tokens, (d, 0)) + embedding).reshape(-1, d)  # (B * T, d)
        key_bias = F.pad(torch.where(torch.cat(p, dim=1), 0.0, NEG), (1, 0))
        key_bias = key_bias.reshape(-1, 1, 1, t)
        for layer in self.layers[:-1]:
            x = layer(x, x, key_bias, t)
        # only the summary token is read, so the last layer updates only it; as the
        # only layer, its query comes from the parameter (constant-folded in the graph)
        summary = self.summary[None] if len(self.layers) == 1 else x.reshape(-1, t, d)[:, 0]
        return torch.relu(self.out(self.norm(self.layers[-1](summary, x, key_bias, 1))))
