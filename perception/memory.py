"""Optional recurrent memory after fusion: a GRU cell written in plain ops for ONNX export."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Memory(nn.Module):
    """A GRU cell; its parameters are laid out as ``nn.GRUCell``'s (state dicts interchange).

    ``forward`` is one step, exported to ONNX with the state as an input and an
    output; ``forward_sequence`` unrolls it over a rollout for truncated BPTT.
    """

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.in_dim, self.hidden = in_dim, hidden
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden, in_dim))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden))
        bound = 1.0 / math.sqrt(hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def initial_state(self, batch: int) -> Tensor:
        """The state at the start of an episode: zeros (batch, hidden)."""
        return torch.zeros(batch, self.hidden, device=self.weight_hh.device)

    def _step(self, gi: Tensor, h: Tensor) -> Tensor:
        """h_new from the input part of the gates gi = W_ih x + b_ih (B, 3H) and h (B, H)."""
        gh = h @ self.weight_hh.t() + self.bias_hh
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return n + z * (h - n)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step: x (B, in_dim), h (B, hidden) -> (out, h_new), both (B, hidden), out = h_new."""
        h_new = self._step(x @ self.weight_ih.t() + self.bias_ih, h)
        return h_new, h_new

    def forward_sequence(self, x: Tensor, h0: Tensor | None, starts: Tensor) -> Tensor:
        """Unroll over x (T, B, in_dim) from h0 (B, hidden; None = zeros).

        starts (T, B) bool: True where an episode starts at that step; the state
        entering that step is zeroed there. Returns the outputs (T, B, hidden);
        the last one is the state to carry into the next segment.
        """
        gi = x @ self.weight_ih.t() + self.bias_ih  # all steps at once
        h = self.initial_state(x.shape[1]) if h0 is None else h0
        outs = []
        for t in range(x.shape[0]):
            h = self._step(gi[t], torch.where(starts[t][:, None], 0.0, h))
            outs.append(h)
        return torch.stack(outs)
