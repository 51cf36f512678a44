"""Formats checked against each model's documented list and against a data URL's declared MIME type.

See docs/dashscope.md, "Sync recognition" (limits) and "File transcription".
"""

from __future__ import annotations

import httpx
import pytest

from dropscribe.emulator.media_formats import data_url_mime
from tests.emulator.emulator_helpers import (
    GENERATION,
    FileServer,
    data_url,
    sine,
    submit_task,
    sync_body,
    wait_for_task,
)


def _error(reply: httpx.Response) -> tuple[int, str]:
    return reply.status_code, reply.json()["code"]


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("wav", "audio/wav"), ("mp3", "audio/mpeg"), ("flac", "audio/flac"), ("aiff", "audio/aiff")],
)
def test_sync_accepts_listed_formats_declared_truthfully(client: httpx.Client, fmt: str, mime: str) -> None:
    reply = client.post(GENERATION, json=sync_body(data_url(sine(0.5, fmt=fmt), mime)))

    assert reply.status_code == 200, reply.text


def test_m4a_left_the_sync_list_in_2026(client: httpx.Client) -> None:
    """An M4A is decodable, but not on the sync models' list any more: refused as a format."""
    reply = client.post(GENERATION, json=sync_body(data_url(sine(0.5, fmt="m4a"), "audio/mp4")))

    assert _error(reply) == (415, "BadRequest.UnsupportedFileFormat")
    assert "mov" in reply.json()["message"]


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("mp3", "audio/wav"), ("wav", "audio/mpeg"), ("flac", "audio/ogg"), ("wav", "text/plain")],
)
def test_a_declared_type_that_names_other_bytes_fails_inspection(
    client: httpx.Client, fmt: str, mime: str
) -> None:
    reply = client.post(GENERATION, json=sync_body(data_url(sine(0.5, fmt=fmt), mime)))

    assert _error(reply) == (400, "InvalidParameter.DataInspection")
    assert mime in reply.json()["message"]


@pytest.mark.parametrize("mime", ["application/octet-stream", ""])
def test_a_generic_declared_type_cannot_disagree(client: httpx.Client, mime: str) -> None:
    reply = client.post(GENERATION, json=sync_body(data_url(sine(0.5, fmt="mp3"), mime)))

    assert reply.status_code == 200, reply.text


def test_mime_parameters_and_case_are_ignored() -> None:
    assert data_url_mime("data:Audio/OGG;codecs=opus;base64,AAAA") == "audio/ogg"
    assert data_url_mime("data:;base64,AAAA") == ""


def test_filetrans_takes_m4a_but_not_aiff(client: httpx.Client, file_server: FileServer) -> None:
    """The file-transcription list differs: m4a/mp4/mov are on it, aiff is not."""
    m4a = submit_task(client, file_server.put("/a.m4a", sine(1.0, fmt="m4a")))
    aiff = submit_task(client, file_server.put("/a.aiff", sine(1.0, fmt="aiff")))

    assert wait_for_task(client, m4a)["output"]["task_status"] == "SUCCEEDED"
    failed = wait_for_task(client, aiff)["output"]
    assert (failed["task_status"], failed["code"]) == ("FAILED", "FILE_CHECK_FAILED")
