"""Sensor sources: one file per kind, one interface (:class:`deploy.sources.base.Source`).

A modality's source is named by a short string, as in
``sources.rgb=camera:0 sources.audio=mic sources.proprio=udp:9100``:

| string | source |
|---|---|
| ``camera:<index>``, ``camera:<file>``, ``camera:<url>`` | :class:`CameraSource` |
| ``mic``, ``mic:<device name or index>`` | :class:`MicrophoneSource` |
| ``udp:<port>``, ``udp:<host>:<port>`` | :class:`UdpVectorSource` |
| ``none`` | nothing: the modality is absent every tick |

``source=sim`` and ``source=replay`` fill every modality at once
(:class:`SimSource`, :class:`ReplaySource`); :class:`CallbackSource` is for
code that embeds the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deploy.sources.base import Sample, Source, SourceError, SourceStats
from deploy.sources.callback import CallbackSource
from deploy.sources.camera import CameraSource
from deploy.sources.microphone import MicrophoneSource
from deploy.sources.udp import UdpVectorSource
from perception.spec import ModalitySpec

KINDS = ("camera", "mic", "udp", "none")


def _int_or_str(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def make_source(text: str, spec: ModalitySpec, options: Mapping[str, Mapping[str, Any]]
                | None = None) -> Source | None:
    """The source `text` names, for modality `spec` (None for ``none``).

    `options` holds per-kind keyword arguments (``{"camera": {"loop": True}}``).
    """
    kind, _, rest = str(text).partition(":")
    opts = dict((options or {}).get(kind, {}))
    if kind == "none":
        return None
    if kind == "camera":
        if not rest:
            raise SourceError(f"sources.{spec.name}=camera needs a device: camera:0, "
                              "camera:video.mp4 or camera:http://host/stream")
        return CameraSource(spec, _int_or_str(rest), **opts)
    if kind == "mic":
        return MicrophoneSource(spec, _int_or_str(rest) if rest else None, **opts)
    if kind == "udp":
        host, _, port = rest.rpartition(":")
        if not port.isdigit():
            raise SourceError(f"sources.{spec.name}={text}: udp needs a port, e.g. udp:9100 "
                              "or udp:0.0.0.0:9100")
        return UdpVectorSource(spec, int(port), host or "127.0.0.1", **opts)
    raise SourceError(f"sources.{spec.name}={text!r}: unknown source {kind!r}; use one of "
                      f"{', '.join(k + ':...' if k != 'none' else k for k in KINDS)} (or "
                      "source=sim / source=replay for every modality)")


__all__ = ["KINDS", "CallbackSource", "CameraSource", "MicrophoneSource", "Sample", "Source",
           "SourceError", "SourceStats", "UdpVectorSource", "make_source"]
