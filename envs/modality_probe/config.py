"""Settings of ModalityProbe, one documented field each."""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.modality_probe.render import KINDS, OBS_KEYS, Renderer, make_renderer, tone_bins
from perception.settings import require, require_float, require_int

WHERE = "env ModalityProbe"

INTERACTIONS = ("redundant", "unique_a", "unique_b", "synergy", "mixed")
"""Values of ``interaction``."""
COMPONENTS = ("redundant", "unique_a", "unique_b", "synergy")
"""Answer components, in the order their bits are packed into a ``mixed`` action."""
ROLES = ("a", "b", "distractor")
"""What a modality is to the task: carrier a, carrier b, or a distractor."""


@dataclass
class MixedWeights:
    """Weights of the answer components under ``interaction="mixed"``; 0 leaves one out."""

    redundant: float = 1.0
    """Weight of y_redundant = r, the bit both modalities show."""
    unique_a: float = 1.0
    """Weight of y_unique_a = u_a, the bit only modality a shows."""
    unique_b: float = 1.0
    """Weight of y_unique_b = u_b, the bit only modality b shows."""
    synergy: float = 1.0
    """Weight of y_synergy = s_a XOR s_b (each modality shows one side)."""


@dataclass
class ModalityProbeConfig:
    """ModalityProbe settings; ``gymnasium.make`` keyword arguments have these names."""

    id: str = "sensorium/ModalityProbe-v0"
    """gymnasium id these settings build (the factory strips it)."""
    interaction: str = "synergy"
    """What the answer depends on: redundant, unique_a, unique_b, synergy or mixed."""
    weights: MixedWeights = field(default_factory=MixedWeights)
    """Component weights for ``mixed`` (ignored otherwise); normalised to sum 1."""
    modality_a: str = "image"
    """Kind of modality a: image (key rgb), audio (key audio) or vector (key vector)."""
    modality_b: str = "audio"
    """Kind of modality b; a kind other than modality_a."""
    distractor: str = ""
    """Kind of an extra modality that carries no information ("" = none)."""
    noise_a: float = 0.05
    """Noise of modality a, per bit: noise std over signal RMS where a bit is read."""
    noise_b: float = 0.05
    """Noise of modality b, per bit (see noise_a)."""
    noise_distractor: float = 0.05
    """Noise of the distractor modality, per bit (see noise_a)."""
    image_size: int = 32
    """Side of the square rgb image, pixels; a 2x2 grid of patches of side image_size // 2."""
    audio_samples: int = 1600
    """Waveform samples in the audio observation."""
    sample_rate: int = 16000
    """Audio samples per second."""
    vector_dim: int = 8
    """Length of the vector observation; the first 3 entries carry the bits."""
    episode_steps: int = 1
    """Steps per episode: 1 is a contextual bandit; more shows the same world with fresh
    noise each step, and only the answer at the last step counts."""
    control_hz: float = 10.0
    """Steps per second (the modalities' rate in the observation spec)."""

    @property
    def kinds(self) -> dict[str, str]:
        """Modality kind of each role present: ``{"a": ..., "b": ..., ["distractor": ...]}``."""
        out = {"a": self.modality_a, "b": self.modality_b}
        if self.distractor:
            out["distractor"] = self.distractor
        return out

    @property
    def keys(self) -> dict[str, str]:
        """Observation key of each role present, e.g. ``{"a": "rgb", "b": "audio"}``."""
        return {role: OBS_KEYS[kind] for role, kind in self.kinds.items()}

    @property
    def noises(self) -> dict[str, float]:
        """Noise of each role present."""
        all_ = {"a": self.noise_a, "b": self.noise_b, "distractor": self.noise_distractor}
        return {role: float(all_[role]) for role in self.kinds}

    def renderers(self) -> dict[str, Renderer]:
        """The renderer of each role present (derived sizes and noise scales)."""
        return {
            role: make_renderer(kind, self.noises[role], self.image_size, self.audio_samples,
                                self.sample_rate, self.vector_dim)
            for role, kind in self.kinds.items()
        }

    @property
    def components(self) -> tuple[str, ...]:
        """Answer components the action answers, in packing order (bit k = component k)."""
        if self.interaction != "mixed":
            return (self.interaction,)
        return tuple(c for c in COMPONENTS if getattr(self.weights, c) > 0)

    @property
    def component_weights(self) -> tuple[float, ...]:
        """Reward weight of each of ``components``, summing to 1."""
        if self.interaction != "mixed":
            return (1.0,)
        raw = [float(getattr(self.weights, c)) for c in self.components]
        total = sum(raw)
        return tuple(w / total for w in raw)

    @property
    def num_actions(self) -> int:
        return 2 ** len(self.components)

    def validate(self) -> None:
        require(WHERE, "interaction", self.interaction, self.interaction in INTERACTIONS,
                "one of " + ", ".join(INTERACTIONS))
        require(WHERE, "weights", self.weights, isinstance(self.weights, MixedWeights),
                "a MixedWeights (or a mapping of redundant, unique_a, unique_b, synergy)")
        for c in COMPONENTS:
            require_float(WHERE, f"weights.{c}", getattr(self.weights, c), 0.0)
        if self.interaction == "mixed":
            require(WHERE, "weights", self.weights, any(
                getattr(self.weights, c) > 0 for c in COMPONENTS),
                "positive for at least one component under interaction='mixed'")
        kinds = ", ".join(KINDS)
        require(WHERE, "modality_a", self.modality_a, self.modality_a in KINDS,
                f"one of {kinds}")
        require(WHERE, "modality_b", self.modality_b, self.modality_b in KINDS,
                f"one of {kinds}")
        require(WHERE, "modality_b", self.modality_b, self.modality_b != self.modality_a,
                f"a kind other than modality_a={self.modality_a!r} (one of {kinds})")
        require(WHERE, "distractor", self.distractor,
                self.distractor in ("",) + KINDS
                and self.distractor not in (self.modality_a, self.modality_b),
                f"'' (none) or a kind in {kinds} other than modality_a and modality_b")
        require_float(WHERE, "noise_a", self.noise_a, 0.0, 1e6)
        require_float(WHERE, "noise_b", self.noise_b, 0.0, 1e6)
        require_float(WHERE, "noise_distractor", self.noise_distractor, 0.0, 1e6)
        require_int(WHERE, "image_size", self.image_size, 8, 1024)
        require_int(WHERE, "audio_samples", self.audio_samples, 64, 1_000_000)
        require_int(WHERE, "sample_rate", self.sample_rate, 1000, 1_000_000)
        bins = tone_bins(self.audio_samples, self.sample_rate).ravel()
        require(WHERE, "sample_rate", self.sample_rate,
                len(set(bins.tolist())) == bins.size and bins.min() >= 1
                and 2 * bins.max() < self.audio_samples,
                f"with audio_samples={self.audio_samples} such that the six tones "
                "(500-2800 Hz) fall in distinct frequency bins below Nyquist; "
                "raise audio_samples or sample_rate (e.g. 1600 at 16000)")
        require_int(WHERE, "vector_dim", self.vector_dim, 3, 1_000_000)
        require_int(WHERE, "episode_steps", self.episode_steps, 1)
        require_float(WHERE, "control_hz", self.control_hz, 0.0, lo_open=True)
