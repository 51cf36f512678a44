"""Helpers shared by the emulator tests: real audio made with PyAV, request bodies, a plain file server."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import struct
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import httpx

from dropscribe.emulator import Emulator

GENERATION = "/services/aigc/multimodal-generation/generation"
TRANSCRIPTION = "/services/audio/asr/transcription"
API_KEY = "sk-emulator-test-key-0123456789"


# fmt -> (FFmpeg muxer, codec, sample format, samples per frame)
_ENCODINGS = {
    "wav": ("wav", "pcm_s16le", "s16", 1024),
    "mp3": ("mp3", "libmp3lame", "s16p", 1152),
    "m4a": ("ipod", "aac", "fltp", 1024),
    "aiff": ("aiff", "pcm_s16be", "s16", 1024),
    "flac": ("flac", "flac", "s16", 1024),
    "mka": ("matroska", "flac", "s16", 1024),
}


def sine(seconds: float, *, fmt: str = "wav", rate: int = 16000, language: str | None = None) -> bytes:
    """A 440 Hz mono sine encoded by PyAV as ``fmt`` (a key of ``_ENCODINGS``).

    ``language`` tags the audio stream's metadata, as FFmpeg's ``-metadata:s:a language=`` does.
    """
    muxer, codec, sample_format, frame_size = _ENCODINGS[fmt]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        if language is not None:
            stream.metadata["language"] = language
        total = round(seconds * rate)
        for start in range(0, total, frame_size):
            count = min(frame_size, total - start)
            wave = [math.sin(2 * math.pi * 440 * i / rate) for i in range(start, start + count)]
            frame = av.AudioFrame(format=sample_format, layout="mono", samples=count)
            if sample_format == "fltp":
                frame.planes[0].update(struct.pack(f"<{count}f", *(0.4 * x for x in wave)))
            else:
                frame.planes[0].update(struct.pack(f"<{count}h", *(round(12000 * x) for x in wave)))
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_url(data: bytes, mime: str = "audio/wav") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def sync_body(
    audio: str,
    *,
    model: str = "qwen3-asr-flash",
    context: str | None = None,
    asr_options: dict[str, Any] | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    """A generation request body shaped like the official SDK's (docs/dashscope.md, "SDK wire behaviour")."""
    messages: list[dict[str, Any]] = []
    if context is not None:
        messages.append({"role": "system", "content": [{"text": context}]})
    messages.append({"role": "user", "content": [{"audio": audio}]})
    params: dict[str, Any] = dict(parameters)
    if asr_options is not None:
        params["asr_options"] = asr_options
    body: dict[str, Any] = {"model": model, "input": {"messages": messages}}
    if params:
        body["parameters"] = params
    return body


def api_client(emulator: Emulator, key: str = API_KEY) -> httpx.Client:
    return httpx.Client(base_url=emulator.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0)


def wait_for_task(http: httpx.Client, task_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """Poll ``GET /tasks/{id}`` (at 10/s, under the 20 QPS limit) until the status is final."""
    deadline = time.monotonic() + timeout_s
    while True:
        reply = http.get(f"/tasks/{task_id}")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        if body["output"]["task_status"] not in ("PENDING", "RUNNING"):
            return body
        assert time.monotonic() < deadline, f"task still {body['output']['task_status']}"
        time.sleep(0.1)


def submit_task(http: httpx.Client, file_url: str, **parameters: Any) -> str:
    """Submit a file-transcription task as the SDK does and return its id."""
    body: dict[str, Any] = {"model": "qwen3-asr-flash-filetrans", "input": {"file_url": file_url}}
    if parameters:
        body["parameters"] = parameters
    reply = http.post(TRANSCRIPTION, json=body, headers={"X-DashScope-Async": "enable"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"]["task_status"] == "PENDING"
    task_id: str = reply.json()["output"]["task_id"]
    return task_id


class FileServer:
    """Serves byte strings at paths, like a bucket with public or presigned URLs."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = files.get(self.path.split("?")[0])
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def put(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}?X-Amz-Signature=secret"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def long_wav(seconds: float, rate: int = 8000) -> bytes:
    """A 400 Hz mono WAV of any length, built by repeating one period (cheap even for minutes)."""
    period = struct.pack("<20h", *(round(12000 * math.sin(2 * math.pi * i / 20)) for i in range(20)))
    frames = round(seconds * rate)
    pcm = (period * (frames // 20 + 1))[: frames * 2]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()
