"""Sensor sources on their real paths: a video file and an HTTP MJPEG stream through
cv2.VideoCapture, a PulseAudio virtual microphone through sounddevice, UDP on 127.0.0.1,
and a source whose thread keeps failing."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from deploy.clock import now
from deploy.sources import CallbackSource, CameraSource, MicrophoneSource, SourceError
from deploy.sources.base import Source
from deploy.sources.camera import to_spec
from deploy.sources.udp import HEADER, UdpVectorSource, pack_vector
from perception.spec import ModalitySpec

RGB = ModalitySpec("rgb", "image", (64, 64, 3), "uint8", 10.0, 0, 255)
AUDIO = ModalitySpec("audio", "audio", (2, 1600), "float32", 10.0, -1, 1, sample_rate=16000)
PROPRIO = ModalitySpec("proprio", "vector", (6,), "float32", 10.0)


def wait_for(cond, timeout: float = 10.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def write_video(path: Path, frames: int = 30, fps: float = 30.0) -> Path:
    """640x480 frames, BGR (0, 0, 150 + i % 100): red in RGB, brightening."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[:, :, 2] = 150 + i % 100
        frame[200:280, 280:360] = (255, 0, 0)  # a blue square in the middle
        writer.write(frame)
    writer.release()
    return path


def test_to_spec_crops_resizes_and_turns_bgr_into_rgb() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :, 2] = 200  # BGR red
    frame[:, :80] = (0, 255, 0)  # green bands outside the centred 480x480 window
    frame[:, -80:] = (0, 255, 0)
    out = to_spec(frame, RGB)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], 200)  # red first: RGB order, bands cropped
    assert out[..., 1].max() == 0 and out[..., 2].max() == 0
    grey = ModalitySpec("cam", "image", (32, 48, 1), "uint8", 10.0, 0, 255)
    assert to_spec(frame, grey).shape == (32, 48, 1)


def test_camera_reads_a_video_file_with_capture_stamps(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi")
    with CameraSource(RGB, str(video), loop=True, realtime=True) as cam:
        assert wait_for(lambda: cam.latest() is not None and cam.latest().seq >= 10)
        s = cam.latest()
        assert s.data.shape == (64, 64, 3) and s.data.dtype == np.uint8
        assert s.data[2, 2, 0] > 140 and s.data[2, 2, 2] < 20  # red corner (RGB)
        assert s.data[32, 32, 2] > 200 and s.data[32, 32, 0] < 40  # blue centre
        assert s.t_capture <= s.t_recv <= now() and now() - s.t_capture < 1.0
        first = s.seq
        time.sleep(0.2)
        later = cam.latest()
        assert later.seq > first and later.t_capture > s.t_capture
        # realtime at 30 fps: ~6 frames in 0.2 s, not hundreds
        assert later.seq - first < 20
    assert cam.stats.failures == 0 and cam.stats.samples > 10
    assert len(cam.convert_s) > 5


class _Mjpeg(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[:, :, 1] = 180
        jpg = cv2.imencode(".jpg", frame)[1].tobytes()
        try:
            while not self.server.stopping.is_set():
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                time.sleep(0.03)
        except (BrokenPipeError, ConnectionResetError):
            pass


def serve_mjpeg(port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Mjpeg)
    server.daemon_threads = True
    server.stopping = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def kill(server: ThreadingHTTPServer) -> None:
    server.stopping.set()
    server.shutdown()
    server.server_close()


def test_camera_on_an_http_mjpeg_stream_reconnects_after_the_server_dies() -> None:
    server = serve_mjpeg()
    port = server.server_address[1]
    cam = CameraSource(RGB, f"http://127.0.0.1:{port}/stream.mjpg", backoff_s=0.05,
                       max_backoff_s=0.2)
    with cam:
        assert wait_for(lambda: cam.latest() is not None and cam.latest().seq >= 5)
        assert cam.latest().data[..., 1].mean() > 150  # green, RGB order
        kill(server)
        assert wait_for(lambda: cam.stats.failures >= 1, 10)
        stalled = cam.latest().seq
        time.sleep(0.3)
        assert cam.latest().seq == stalled  # nothing new while the server is gone
        server = serve_mjpeg(port)  # back on the same port
        try:
            assert wait_for(lambda: cam.latest().seq > stalled + 3, 15), cam.stats
            assert cam.stats.restarts >= 1
        finally:
            kill(server)


def test_microphone_records_the_virtual_mic_with_adc_stamps(pulse_mic) -> None:
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * 2.5)) / 16000)
    player = threading.Thread(target=pulse_mic.play, args=(tone,), daemon=True)
    mic = MicrophoneSource(AUDIO, device="pulse", channels=1)  # the virtual mic is mono
    with mic:
        t_start = now()
        player.start()

        def has_tone() -> bool:
            s = mic.latest()
            return s is not None and np.abs(s.data).max() > 0.3 and \
                np.abs(s.data[:, :200]).max() > 0.3

        assert wait_for(has_tone, 10), mic.stats
        s = mic.latest()
        assert s.data.shape == (2, 1600) and s.data.dtype == np.float32
        np.testing.assert_array_equal(s.data[0], s.data[1])  # a mono device fills both ears
        assert any("channel 0 fills every ear" in n for n in mic.stats.notes)
        spectrum = np.abs(np.fft.rfft(s.data[0] * np.hanning(1600)))
        peak = np.argmax(spectrum) * 16000 / 1600
        assert abs(peak - 440) <= 10
        # stamped with the ADC time, on the runtime's clock: recent, and not in the future
        assert t_start - 0.5 < s.t_capture <= s.t_recv <= now() + 1e-3
        assert now() - s.t_capture < 0.5
        seq = s.seq
        assert wait_for(lambda: mic.latest().seq > seq + 5, 5)  # blocks keep coming
        player.join(10)


def test_microphone_at_another_rate_is_resampled_with_soxr(pulse_mic) -> None:
    """The device opened at 48 kHz (PulseAudio converts), resampled back to 16 kHz here."""
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(int(16000 * 2.0)) / 16000)
    player = threading.Thread(target=pulse_mic.play, args=(tone,), daemon=True)
    mic = MicrophoneSource(AUDIO, device="pulse", device_rate=48000)
    with mic:
        player.start()
        assert wait_for(lambda: mic.latest() is not None and
                        np.abs(mic.latest().data[:, :200]).max() > 0.3, 10), mic.stats
        s = mic.latest().data[0]
        assert mic.device_rate == 48000 and any("soxr" in n for n in mic.stats.notes)
        peak = np.argmax(np.abs(np.fft.rfft(s * np.hanning(1600)))) * 16000 / 1600
        assert abs(peak - 1000) <= 10
        player.join(10)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_udp_takes_binary_and_json_and_drops_what_is_malformed() -> None:
    port = _free_udp_port()
    src = UdpVectorSource(PROPRIO, port)
    with src, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        assert src.wait_connected(2)
        dest = ("127.0.0.1", port)
        tx.sendto(pack_vector(np.arange(6), seq=1, t_sender=1.5), dest)
        assert wait_for(lambda: src.latest() is not None)
        np.testing.assert_array_equal(src.latest().data, np.arange(6, dtype=np.float32))
        tx.sendto(json.dumps({"seq": 2, "values": [6, 5, 4, 3, 2, 1]}).encode(), dest)
        assert wait_for(lambda: src.latest().seq == 1)
        np.testing.assert_array_equal(src.latest().data, [6, 5, 4, 3, 2, 1])
        bad = [
            b"hello",  # too short for the header
            b"XXXX" + pack_vector(np.zeros(6), 3, 0.0)[4:],  # wrong magic
            pack_vector(np.zeros(5), 4, 0.0),  # 5 values for a 6-vector
            pack_vector(np.zeros(6), 5, 0.0)[:-3],  # truncated
            pack_vector(np.full(6, np.nan), 6, 0.0),  # NaN
            pack_vector(np.zeros(6), 2, 0.0),  # an old seq: out of order
            b"{not json",
            json.dumps({"values": [1, 2]}).encode(),
            pack_vector(np.zeros(16000), 7, 0.0),  # oversized: 64 kB of values
        ]
        for datagram in bad:
            tx.sendto(datagram, dest)
        tx.sendto(pack_vector(np.ones(6), seq=10, t_sender=0.0), dest)
        assert wait_for(lambda: src.latest().seq == 2)
        np.testing.assert_array_equal(src.latest().data, np.ones(6))
    assert src.stats.dropped == len(bad)
    assert src.drop_reasons["out of order"] == 1
    assert HEADER.size == 20


def test_udp_binds_127_0_0_1_unless_told_and_checks_its_port() -> None:
    src = UdpVectorSource(PROPRIO, _free_udp_port())
    assert src.host == "127.0.0.1"
    with pytest.raises(SourceError, match="udp port 70000 is invalid"):
        UdpVectorSource(PROPRIO, 70000)
    with pytest.raises(SourceError, match="udp fills vector or touch modalities"):
        UdpVectorSource(RGB, 9100)


class Flaky(Source):
    """A device that opens, gives two samples, then raises; every time."""

    def __init__(self) -> None:
        super().__init__([PROPRIO], "flaky", backoff_s=0.01, max_backoff_s=0.02)

    def _open(self) -> None:
        pass

    def _read_loop(self) -> None:
        for _ in range(2):
            self.publish("proprio", np.zeros(6, np.float32), now())
            time.sleep(0.005)
        raise RuntimeError("the device fell over")


def test_a_source_that_keeps_failing_is_restarted_and_counted() -> None:
    src = Flaky()
    with src:
        assert wait_for(lambda: src.stats.restarts >= 5)
    assert src.stats.failures >= 5 and "the device fell over" in src.stats.last_error
    assert src.latest().seq >= 9  # it kept publishing between failures


def test_callback_source_checks_what_is_pushed() -> None:
    src = CallbackSource(PROPRIO)
    s = src.push([1, 2, 3, 4, 5, 6], t_capture=12.0)
    assert s.data.dtype == np.float32 and s.t_capture == 12.0 and src.latest() is s
    with pytest.raises(SourceError, match=r"expected shape \(6,\)"):
        src.push(np.zeros(5))
    assert src.stats.dropped == 1
