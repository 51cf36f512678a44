"""The emulator's pure pieces: transcript text, token counts, the multipart reader, audio probing."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator

import pytest

from dropscribe.emulator import Emulator, EmulatorConfig, emulated_text
from dropscribe.emulator.audio import UndecodableAudioError, probe_audio
from dropscribe.emulator.multipart import parse_form
from dropscribe.emulator.transcripts import approx_tokens, billed_seconds, sentences, split_for_stream
from tests.emulator.emulator_helpers import GENERATION, api_client, data_url, sha, sine, sync_body


def test_emulated_text_format() -> None:
    assert emulated_text(2.0, "ab" * 32) == "emulated transcript 2.00s sha256:abababababab"


def test_split_for_stream_keeps_the_text() -> None:
    text = emulated_text(12.345, "f" * 64)

    pieces = split_for_stream(text)

    assert 2 <= len(pieces) <= 3
    assert "".join(pieces) == text
    assert split_for_stream("") == [""]


@pytest.mark.parametrize(
    ("text", "tokens"), [("", 0), ("two words", 2), ("阿里云", 3), ("Qwen 阿里云 ASR", 5)]
)
def test_approx_tokens(text: str, tokens: int) -> None:
    assert approx_tokens(text) == tokens


def test_billing_ignores_float_noise() -> None:
    assert (billed_seconds(2.0000000000013), billed_seconds(2.0011), billed_seconds(0.0)) == (2, 3, 0)


def test_one_sentence_per_started_ten_seconds() -> None:
    found = sentences(25.5, "0" * 64, "en", with_words=False)

    assert [(s["begin_time"], s["end_time"]) for s in found] == [(0, 10000), (10000, 20000), (20000, 25500)]
    assert "words" not in found[0]


def test_multipart_keeps_binary_content_and_order() -> None:
    payload = b"\r\n--not-the-boundary\r\n\x00\xff" + b"--b\r" + b"\r\n"
    body = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="key"\r\n\r\n'
        b"dir/a.wav\r\n"
        b"--b\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + payload + b"\r\n--b--\r\n"
    )

    key, file = parse_form("multipart/form-data; boundary=b", body)

    assert (key.name, key.text) == ("key", "dir/a.wav")
    assert (file.name, file.filename, file.content_type, file.data) == ("file", "a.wav", "audio/wav", payload)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{}"),
        ("multipart/form-data; boundary=b", b"no boundary here"),
        ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nopen'),
    ],
)
def test_multipart_rejects_malformed_bodies(content_type: str, body: bytes) -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_form(content_type, body)


def test_probe_measures_wav_and_mp3_exactly() -> None:
    for fmt in ("wav", "mp3"):
        info = probe_audio(io.BytesIO(sine(1.5, fmt=fmt)), full_decode=True)
        assert (info.format, round(info.duration_s, 2), info.sample_rate, info.channels) == (
            fmt,
            1.5,
            16000,
            1,
        )


def test_probe_from_the_header_for_long_files() -> None:
    info = probe_audio(io.BytesIO(sine(3.0, rate=8000)), full_decode=False)

    assert info.duration_s == pytest.approx(3.0)


def test_probe_refuses_non_audio() -> None:
    with pytest.raises(UndecodableAudioError):
        probe_audio(io.BytesIO(b"%PDF-1.7 not audio" * 20), full_decode=True)


def test_lifecycle_and_urls() -> None:
    emulator = Emulator(EmulatorConfig(port=0))
    with pytest.raises(RuntimeError):
        _ = emulator.port
    with emulator:
        assert emulator.base_url == f"http://127.0.0.1:{emulator.port}/api/v1"
        assert emulator.root_url == f"http://127.0.0.1:{emulator.port}"
    emulator.stop()


def test_oversized_declared_body_is_refused_unread_and_logged(emulator: Emulator) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as connection:
        connection.sendall(
            b"POST /api/v1/services/aigc/multimodal-generation/generation HTTP/1.1\r\n"
            b"Host: x\r\nAuthorization: Bearer sk-x\r\nContent-Length: 99999999999\r\n\r\n"
        )
        status_line = connection.makefile("rb").readline()

    assert status_line.split()[1] == b"413"
    (record,) = emulator.requests()
    assert (record["status"], record["code"], record["headers"]["Authorization"]) == (
        413,
        "BadRequest.TooLarge",
        "Bearer ***",
    )


def test_chunked_request_body(emulator: Emulator, wav2: bytes) -> None:
    body = json.dumps(sync_body(data_url(wav2))).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    with api_client(emulator) as http:
        reply = http.post(GENERATION, content=chunks(), headers={"Content-Type": "application/json"})

    assert reply.status_code == 200
    assert emulator.requests()[0]["audio_sha256"] == sha(wav2)
