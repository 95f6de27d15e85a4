"""Settings of ``sensorium run`` and ``sensorium record`` (torch-free; Hydra registers them).

The modality-keyed settings (``sources``, ``max_age``, ``sim.gain``,
``sim.noise``) list the modalities of sensorium's worlds so that
``sources.rgb=camera:0`` works without Hydra's ``+``; another modality is
added with ``+sources.<name>=...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploy.loop import RealtimeSettings
from deploy.watchdog import WatchdogSettings
from perception.settings import require, require_float, require_int

MODALITIES = ("rgb", "depth", "audio", "proprio", "touch")
SOURCES = ("", "sim", "replay")


def _per_modality(value: Any) -> Any:
    return lambda: dict.fromkeys(MODALITIES, value)


@dataclass
class SimSettings:
    """The ``sim`` source: a world as a stand-in robot, with real sensors' faults."""

    env: dict[str, Any] = field(default_factory=dict)
    """Overrides of the model's training env config (``+sim.env.map_size=9``)."""
    off: list[str] = field(default_factory=list)
    """Modalities never published (a sensor that is not there), e.g. [depth]."""
    gain: dict[str, float] = field(default_factory=_per_modality(1.0))
    """Per modality, a factor on the data (an uncalibrated microphone: sim.gain.audio=2)."""
    noise: dict[str, float] = field(default_factory=_per_modality(0.0))
    """Per modality, Gaussian noise in its units (sim.noise.rgb=10, sim.noise.audio=0.01)."""
    seed: int = 12345
    """Seed of the world (12345: the evaluation worlds of ``sensorium eval``)."""
    lockstep: bool = False
    """Each tick waits for the world's answer to the last action, ticks unpaced (as fast as
    the world steps): the policy judged as in evaluation, without the stale observations a
    world stepped faster than its rate gives. Off: ticks paced at ``hz``, as on a robot."""


@dataclass
class CameraOptions:
    loop: bool = False
    """A video file starts again at its end."""
    realtime: bool = True
    """A video file plays at its frame rate (else as fast as it decodes)."""


@dataclass
class MicOptions:
    device_rate: int | None = None
    """Open the device at this rate (None: the spec's if the device takes it)."""
    channels: int | None = None
    """Device channels to open (None: the spec's, or what the device has)."""
    block_s: float = 0.01
    """PortAudio block length."""


@dataclass
class UdpOptions:
    sender_clock: bool = False
    """The sender stamps with this host's time.monotonic() (else: receive time)."""


@dataclass
class RunCommandSettings:
    """``sensorium run model=FILE``: the robot runtime; ``sensorium record``: sensors only."""

    model: str = ""
    """The exported file (its spec, rate and safe action drive everything)."""
    source: str = ""
    """'sim' or 'replay' fill every modality; '' = each from ``sources``."""
    sources: dict[str, str] = field(default_factory=_per_modality(""))
    """Per modality: camera:0 / camera:FILE / camera:URL, mic[:DEVICE], udp:PORT, none."""
    hz: float = 0.0
    """Control rate (0 = the model's)."""
    duration: float = 10.0
    """Seconds to run (0 = until ticks, episodes, the replay's end, or Ctrl-C)."""
    ticks: int = 0
    """Stop after this many ticks (0 = no limit)."""
    episodes: int = 0
    """source=sim: stop after this many finished episodes (0 = no limit)."""
    actuators: list[str] = field(default_factory=list)
    """Where actions go besides the sim: udp:PORT, udp:HOST:PORT, jsonl:FILE."""
    record: str = ""
    """Record samples, ticks and telemetry to this MCAP file."""
    file: str = ""
    """source=replay: the recording to play."""
    timing: str = "realtime"
    """source=replay: 'realtime' (its own timing) or 'ticks' (lockstep, as fast as possible)."""
    safe_action: Any = None
    """Override of the file's safe action."""
    max_age: dict[str, float | None] = field(default_factory=_per_modality(None))
    """Per modality, the max sample age in seconds (None: the spec's)."""
    threads: int = 1
    """onnxruntime intra-op threads."""
    watchdog: WatchdogSettings = field(default_factory=WatchdogSettings)
    rt: RealtimeSettings = field(default_factory=RealtimeSettings)
    sim: SimSettings = field(default_factory=SimSettings)
    camera: CameraOptions = field(default_factory=CameraOptions)
    mic: MicOptions = field(default_factory=MicOptions)
    udp: UdpOptions = field(default_factory=UdpOptions)
    status: bool = True
    """Show a live status line."""
    out: str = "reports/run.json"
    """The telemetry report (JSON; its plot: same name, .png)."""

    def validate(self) -> None:
        w = "run"
        require(w, "source", self.source, self.source in SOURCES, "'', 'sim' or 'replay'")
        require_float(w, "hz", self.hz, 0.0)
        require_float(w, "duration", self.duration, 0.0)
        require_int(w, "ticks", self.ticks, 0)
        require_int(w, "episodes", self.episodes, 0)
        require_int(w, "threads", self.threads, 0)
        require(w, "timing", self.timing, self.timing in ("realtime", "ticks"),
                "'realtime' or 'ticks'")
