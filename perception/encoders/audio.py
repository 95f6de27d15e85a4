"""Audio: an in-graph log-mel front-end, per-band running normalisation, a 1-D conv over time."""

from __future__ import annotations

from torch import Tensor, nn

from perception.configs.model import AudioEncoderConfig
from perception.encoders.base import Encoder, register_encoder
from perception.encoders.image import conv_out
from perception.preprocess.audio import LogMel
from perception.preprocess.normalize import RunningNorm
from perception.spec import ModalityKind, ModalitySpec


@register_encoder(ModalityKind.AUDIO)
class AudioEncoder(Encoder):
    """(B, channels, samples) float32 waveform -> (B, out_dim).

    The log-mel of every channel is stacked band-wise, so the first conv sees
    level differences between the ears in each band (the binaural cue).
    """

    def __init__(self, spec: ModalitySpec, cfg: AudioEncoderConfig) -> None:
        super().__init__(spec)
        channels, samples = spec.shape
        self.log_mel = LogMel(int(spec.sample_rate), cfg.log_mel)
        self.gain_invariant = cfg.gain_invariant
        _, frames, mels = self.log_mel.out_shape(channels, samples)
        self.norm = RunningNorm((mels,))
        self.conv = nn.Sequential(
            nn.Conv1d(channels * mels, cfg.channels, 3, 2, 1), nn.ReLU(), nn.Flatten()
        )
        self._bands, self._frames = channels * mels, frames  # constants of the exported graph
        steps = conv_out(frames, 3, 2, 1)
        self.head = nn.Sequential(nn.Linear(cfg.channels * steps, cfg.out_dim), nn.ReLU())
        self.out_dim = cfg.out_dim

    def frontend(self, x: Tensor) -> Tensor:
        """(B, C, frames, mels) log-mel (minus its mean if gain-invariant): parameter-free,
        the costly part (a DFT)."""
        z = self.log_mel(x)
        if self.gain_invariant:
            z = z - z.mean(dim=(1, 2, 3), keepdim=True)
        return z

    def from_frontend(self, z: Tensor) -> Tensor:
        m = self.norm(z).transpose(2, 3).reshape(-1, self._bands, self._frames)
        return self.head(self.conv(m))

    def forward(self, x: Tensor) -> Tensor:
        return self.from_frontend(self.frontend(x))

    def update_normalizer(self, x: Tensor, frontend_done: bool = False) -> None:
        m = x if frontend_done else self.frontend(x)
        self.norm.update(m.reshape(-1, m.shape[-1]))
