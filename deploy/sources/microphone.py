"""Microphone: ``sounddevice.InputStream``, a callback into a ring buffer at the spec's rate.

Each PortAudio block is stamped with the callback's ADC time (when its first
sample was digitised), converted to the runtime's clock, resampled to the
spec's sample rate with soxr when the device runs at another rate (a
streaming resampler, so block edges leave no seams), mapped to the spec's
channels (a mono device fills every ear, said once in the notes) and
appended to a ring buffer. After each block the newest window (the spec's
``(channels, samples)``) is published as one sample whose capture time is
that of its last audio sample. All of this runs in PortAudio's callback
thread; the control tick only takes the newest window.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from deploy.clock import now
from deploy.sources.base import Source, SourceError
from perception.spec import ModalityKind, ModalitySpec


class Ring:
    """The last `size` frames of a (channels, time) float32 signal."""

    def __init__(self, channels: int, size: int) -> None:
        self.buf = np.zeros((channels, 2 * size), np.float32)
        self.size, self.filled, self.pos = size, 0, 0

    def push(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if n >= self.size:
            block, n = block[:, -self.size:], self.size
        end = self.pos + n
        if end > self.buf.shape[1]:  # move the tail to the front, then append
            keep = self.size - n
            self.buf[:, :keep] = self.buf[:, self.pos - keep:self.pos]
            self.pos = keep
            end = self.pos + n
        self.buf[:, self.pos:end] = block
        self.pos = end
        self.filled = min(self.size, self.filled + n)

    def window(self) -> np.ndarray:
        """A copy of the last `size` frames (zeros before the buffer first fills)."""
        out = np.zeros((self.buf.shape[0], self.size), np.float32)
        out[:, self.size - self.filled:] = self.buf[:, self.pos - self.filled:self.pos]
        return out


def map_channels(block: np.ndarray, want: int) -> np.ndarray:
    """(frames, got) device channels -> (want, frames): mono repeated, extra ones dropped."""
    got = block.shape[1]
    if got == want:
        return block.T
    if got == 1:
        return np.repeat(block.T, want, axis=0)
    return block[:, :want].T


class MicrophoneSource(Source):
    """Audio of one input device as the audio modality `spec`.

    Args:
        device: a sounddevice device name or index (None: the default input;
            ``"pulse"`` for PulseAudio, whose source ``PULSE_SOURCE`` picks).
        device_rate: the rate to open the device at (None: the spec's rate if the
            device takes it, else the device's default, resampled).
        channels: device channels to open (None: the spec's, or 1 if the device
            has fewer).
        block_s: PortAudio block length.
    """

    def __init__(self, spec: ModalitySpec, device: int | str | None = None,
                 device_rate: int | None = None, channels: int | None = None,
                 block_s: float = 0.01, **kwargs: float) -> None:
        if spec.kind is not ModalityKind.AUDIO:
            raise SourceError(f"a microphone fills audio modalities; {spec.name!r} is "
                              f"{spec.kind.value}")
        super().__init__([spec], f"mic:{device if device is not None else 'default'}", **kwargs)
        self.spec, self.device, self.block_s = spec, device, block_s
        self.want_rate, self.device_rate, self.channels = device_rate, None, channels
        self.ring = Ring(spec.shape[0], spec.shape[1])
        self.stream: Any = None
        self.resampler: Any = None
        self._ended = threading.Event()
        self._offset = 0.0  # runtime clock - PortAudio stream clock
        self.overflows = 0

    def _open(self) -> None:
        import sounddevice as sd

        try:
            info = sd.query_devices(self.device, "input")
        except (ValueError, sd.PortAudioError):
            # PortAudio lists devices once, when it starts: one plugged in (or a sound
            # server started) later is only seen after a restart of PortAudio
            sd._terminate()
            sd._initialize()
            try:
                info = sd.query_devices(self.device, "input")
            except (ValueError, sd.PortAudioError) as e:
                raise OSError(f"no input device {self.device!r} ({e}); list them with "
                              "`python -m sounddevice`") from None
        rate = self.want_rate or self.spec.sample_rate
        try:
            sd.check_input_settings(self.device, samplerate=rate)
        except (ValueError, sd.PortAudioError):
            if self.want_rate:
                raise
            rate = int(info["default_samplerate"])
        channels = self.channels or min(self.spec.shape[0], int(info["max_input_channels"]))
        if channels < 1:
            raise OSError(f"device {info['name']!r} has no input channels")
        if channels < self.spec.shape[0]:
            self.note(f"{self.label}: {channels} device channel(s) for {self.spec.shape[0]} "
                      f"spec channels: channel 0 fills every ear")
        self.device_rate = int(rate)
        self.resampler = None
        if self.device_rate != self.spec.sample_rate:
            import soxr

            self.resampler = soxr.ResampleStream(self.device_rate, self.spec.sample_rate,
                                                 channels, dtype="float32", quality="HQ")
            self.note(f"{self.label}: device at {self.device_rate} Hz, resampled to "
                      f"{self.spec.sample_rate} Hz (soxr HQ)")
        self._ended.clear()
        self.stream = sd.InputStream(device=self.device, channels=channels,
                                     samplerate=self.device_rate, dtype="float32",
                                     blocksize=max(1, int(self.block_s * self.device_rate)),
                                     callback=self._callback,
                                     finished_callback=self._ended.set)
        self.stream.start()

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        t_now = now()
        if status.input_overflow:
            self.overflows += 1
        # the block's first sample was digitised at inputBufferAdcTime (stream clock)
        lag = max(0.0, time_info.currentTime - time_info.inputBufferAdcTime)
        if time_info.currentTime == 0.0:  # some hosts give no times: the callback's time
            lag = 0.0
        t_last = t_now - lag + (frames - 1) / self.device_rate
        block = indata
        if self.resampler is not None:
            block = self.resampler.resample_chunk(np.ascontiguousarray(indata))
            if len(block) == 0:
                return
        self.ring.push(map_channels(np.asarray(block, np.float32), self.spec.shape[0]))
        self.publish(self.spec.name, self.ring.window(), min(t_last, t_now), t_now)

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            if self._ended.wait(0.1):
                raise OSError(f"microphone {self.device!r}: the stream stopped")
            if self.stream is not None and not self.stream.active:
                raise OSError(f"microphone {self.device!r}: the stream is no longer active")

    def _close(self) -> None:
        if self.stream is not None:
            try:
                self.stream.abort(ignore_errors=True)
                self.stream.close(ignore_errors=True)
            finally:
                self.stream = None
