"""Camera: ``cv2.VideoCapture`` on a device index, a video file or a URL (HTTP MJPEG, RTSP).

The capture thread grabs, stamps (right after ``read`` returns), converts to
the modality's spec (centre crop to its aspect, antialiased downscale, BGR ->
RGB after downscaling; see :func:`downscale`) and publishes. Nothing of this runs in the control
tick. A stream that fails (a camera unplugged, a server gone) is reopened
with backoff by the base class; a video file plays once or loops.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from deploy.clock import now
from deploy.sources.base import Source, SourceError
from perception.spec import ModalityKind, ModalitySpec


def crop_to_aspect(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centred window of `frame` with the target's aspect ratio (a view, no copy)."""
    h, w = frame.shape[:2]
    if h * width > w * height:  # too tall
        ch = max(1, round(w * height / width))
        top = (h - ch) // 2
        return frame[top:top + ch]
    cw = max(1, round(h * width / height))
    left = (w - cw) // 2
    return frame[:, left:left + cw]


def downscale(image: np.ndarray, height: int, width: int,
              scratch: dict[tuple[int, int], np.ndarray] | None = None) -> np.ndarray:
    """Resize to (height, width), antialiased, within ~100 µs for 640x480 -> 64x64.

    ``INTER_AREA`` straight from 480x480 to 64x64 (a 7.5x factor) takes its slow
    generic path (~1 ms here); exact 2x ``INTER_AREA`` is fast. So an image at
    least twice the target is first resized with ``INTER_LINEAR`` to exactly
    twice the target (it aliases a little at factors above 2), then halved with
    ``INTER_AREA``, which averages each 2x2. Measured here (one thread): ~60-90
    µs for the 480x480 centre of a 640x480 frame, mean error 1.2 grey levels
    against a full ``INTER_AREA``. Smaller images: one ``INTER_AREA`` (down) or
    ``INTER_LINEAR`` (up). `scratch` holds reusable intermediate buffers.
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if h >= 2 * height and w >= 2 * width:
        if (h, w) != (2 * height, 2 * width):
            key = (2 * height, 2 * width)
            buf = None if scratch is None else scratch.get(key)
            if buf is None or buf.shape[2:] != image.shape[2:]:
                buf = np.empty((2 * height, 2 * width, *image.shape[2:]), image.dtype)
                if scratch is not None:
                    scratch[key] = buf
            image = cv2.resize(image, (2 * width, 2 * height), dst=buf,
                               interpolation=cv2.INTER_LINEAR)
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    interp = cv2.INTER_AREA if h >= height and w >= width else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def to_spec(frame: np.ndarray, spec: ModalitySpec,
            scratch: dict[tuple[int, int], np.ndarray] | None = None) -> np.ndarray:
    """A BGR (or grey) camera frame as the spec's (H, W, C) uint8 image, RGB order.

    Colour is converted after downscaling (at 64x64 it costs ~1.5 µs, at 640x480 36).
    """
    height, width, channels = spec.shape
    if frame.ndim == 2:
        frame = frame[:, :, None]
    small = downscale(crop_to_aspect(frame, height, width), height, width, scratch)
    if small.ndim == 2:
        small = small[:, :, None]
    if channels == 3:
        if small.shape[2] == 1:
            return np.repeat(small, 3, axis=2)
        return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)  # after downscaling: 64x64 is cheap
    if small.shape[2] == 3:
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)[:, :, None]
    return np.ascontiguousarray(small)


class CameraSource(Source):
    """Frames of one camera as the image modality `spec`.

    Args:
        device: a device index (``0``), a file path, or a URL (``http://...``,
            ``rtsp://...``).
        loop: for a video file: start again at the end (else the source ends,
            the modality goes absent, and the base class retries the open).
        realtime: for a video file: pace frames at the file's frame rate (a file
            otherwise reads as fast as it decodes).
    """

    def __init__(self, spec: ModalitySpec, device: int | str, loop: bool = False,
                 realtime: bool = True, **kwargs: float) -> None:
        if spec.kind is not ModalityKind.IMAGE:
            raise SourceError(f"camera can fill image modalities; {spec.name!r} is "
                              f"{spec.kind.value}")
        super().__init__([spec], f"camera:{device}", **kwargs)
        self.spec, self.device, self.loop, self.realtime = spec, device, loop, realtime
        self.cap: cv2.VideoCapture | None = None
        self.convert_s: list[float] = []  # conversion time of recent frames (telemetry)
        self._scratch: dict[tuple[int, int], np.ndarray] = {}

    @property
    def is_file(self) -> bool:
        return isinstance(self.device, str) and "://" not in self.device

    def _open(self) -> None:
        if isinstance(self.device, str) and "://" in self.device:
            # a stream that stalls must not block the thread forever: time out, reopen
            cap = cv2.VideoCapture(self.device, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2000])
        else:
            cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cv2.VideoCapture({self.device!r}) did not open; check the device "
                          "index, file path or URL")
        self.cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._period = 1.0 / fps if self.is_file and self.realtime and fps > 0 else 0.0

    def _read_loop(self) -> None:
        assert self.cap is not None
        next_t = now()
        while not self._stopping.is_set():
            ok, frame = self.cap.read()
            t_capture = now()
            if not ok:
                if self.is_file and self.loop:
                    self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                raise OSError(f"camera {self.device!r} gave no frame (stream ended or lost)")
            image = to_spec(frame, self.spec, self._scratch)
            self.convert_s.append(now() - t_capture)
            if len(self.convert_s) > 1000:
                del self.convert_s[:500]
            self.publish(self.spec.name, image, t_capture)
            if self._period:
                next_t += self._period
                delay = next_t - now()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_t = now()

    def _close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
