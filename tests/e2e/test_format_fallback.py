"""Formats: what each way of sending takes as it is, and one re-encoded send after a format refusal.

The real service against the emulator. Which bytes each request carried is told by their SHA-256 in the
emulator's request log: the source's own, or those of its 16 kHz mono FLAC re-encoding (made here with
the same adapter, which writes the same bytes for the same audio).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dropscribe.adapters import audio
from dropscribe.core.formats import format_policy
from dropscribe.emulator import Emulator, Fault
from tests.e2e.test_backends import OPENAI_PATH, openai_calls, two_backends
from tests.e2e.test_explain import document, steps
from tests.support.audio import make_tone, sha256_file
from tests.support.service import Layout, ServiceProcess, wait_for

UNSUPPORTED = Fault(path="generation", status=415, code="BadRequest.UnsupportedFileFormat", times=1)


def start(layout: Layout, services: list[ServiceProcess]) -> ServiceProcess:
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    return service


def recognitions(emulator: Emulator, path_part: str = "generation") -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if path_part in r["path"] and r["method"] == "POST"]


def flac_sha(source: Path, tmp_path: Path) -> str:
    """SHA-256 of ``source`` re-encoded as the service re-encodes a whole file."""
    out = tmp_path / "expected" / f"{source.stem}.flac"
    audio.transcode(source, out, format_policy("dashscope").transcode_to)
    return sha256_file(out)


def call_outcomes(layout: Layout, final: Path) -> list[str]:
    (entry,) = document(layout, str(final))["files"]
    return [s["outcome"] for s in steps(entry) if s["step"] == "call"]


def test_m4a_is_re_encoded_for_the_sync_model_but_goes_as_it_is_to_file_transcription(
    tmp_path: Path, layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """The sync models' list lost m4a in 2026; file transcription still documents it."""
    layout.data["storage"] = {"type": "dashscope"}
    tasks = tmp_path / "tasks" / "inbox"
    tasks.mkdir(parents=True)
    layout.data["inboxes"].append({**layout.data["inboxes"][0], "path": str(tasks), "long_audio": "filetrans",
                                   "chunk_max_s": 11})  # fmt: skip
    layout.write()
    short = make_tone(tmp_path / "memo.m4a", seconds=3.0, fmt="m4a", freq=330.0)
    long = make_tone(tmp_path / "meeting.m4a", seconds=14.0, fmt="m4a", freq=550.0)
    short_flac, long_sha = flac_sha(short, tmp_path), sha256_file(long)
    start(layout, services)
    short.rename(layout.inbox / "memo.m4a")
    long.rename(tasks / "meeting.m4a")
    wait_for(lambda: (layout.done / "memo.m4a").exists() and (tasks.parent / "done" / "meeting.m4a").exists(),
             timeout=60)  # fmt: skip

    assert [r["audio_sha256"] for r in recognitions(emulator)] == [short_flac]  # one request, FLAC
    uploads = [r["audio_sha256"] for r in emulator.requests() if r["audio_sha256"] and r["method"] == "POST"]
    assert long_sha in uploads  # the task's object is the recording's own bytes
    assert flac_sha(tmp_path / "tasks" / "done" / "meeting.m4a", tmp_path) not in uploads
    assert len(recognitions(emulator, "transcription")) == 1
    memo = json.loads((layout.done / "memo.json").read_text())
    assert "sent_as" not in memo  # re-encoded by the list, not after a refusal
    assert "sent_as" not in json.loads((tasks.parent / "done" / "meeting.json").read_text())


def test_a_file_refused_for_its_format_is_sent_once_more_as_flac(
    tmp_path: Path, layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    emulator.add_fault(UNSUPPORTED)
    source = make_tone(tmp_path / "talk.mp3", seconds=3.0, fmt="mp3")
    as_is, flac = sha256_file(source), flac_sha(source, tmp_path)
    service = start(layout, services)
    source.rename(layout.inbox / "talk.mp3")
    wait_for(lambda: (layout.done / "talk.mp3").exists())

    sent = recognitions(emulator)
    # a faulted request is answered before its audio is read: MP3 is on the list, so it went as it is
    assert [(r["fault"], r["status"]) for r in sent] == [("status", 415), (None, 200)]
    assert sent[1]["audio_sha256"] == flac != as_is
    doc = json.loads((layout.done / "talk.json").read_text())
    assert doc["sent_as"] == "flac"
    assert doc["request_ids"] == [sent[1]["request_id"]]
    assert doc["usage_seconds"] == 3
    assert service.saw("format_refused_reencoding", request_id=sent[0]["request_id"])
    assert call_outcomes(layout, layout.done / "talk.mp3") == ["RemoteRejectedError", "ok"]
    assert layout.failed_files() == []


@pytest.mark.parametrize("point", ["after_encode", "before_call:2"])
def test_a_crash_between_the_two_sends_resumes_with_the_re_encoding(
    point: str, tmp_path: Path, layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """The staged FLAC survives the crash: the restart sends it, not the refused original, and once."""
    emulator.add_fault(UNSUPPORTED)
    source = make_tone(tmp_path / "talk.mp3", seconds=3.0, fmt="mp3")
    flac = flac_sha(source, tmp_path)
    crashing = ServiceProcess(layout.config, {"DROPSCRIBE_CRASH_AT": point}).wait_started()
    services.append(crashing)
    source.rename(layout.inbox / "talk.mp3")
    wait_for(lambda: crashing.proc.poll() is not None, timeout=60)
    crashing.kill()
    assert crashing.proc.returncode == 137  # crash_point's own exit: it died at the point, not elsewhere
    assert crashing.saw("format_refused_reencoding")
    assert [r["status"] for r in recognitions(emulator)] == [415]

    service = ServiceProcess(layout.config, {"DROPSCRIBE_CRASH_AT": ""}).wait_started()
    services.append(service)
    wait_for(lambda: (layout.done / "talk.mp3").exists())
    sent = recognitions(emulator)
    assert [(r["status"], r["audio_sha256"]) for r in sent[1:]] == [(200, flac)]
    assert json.loads((layout.done / "talk.json").read_text())["sent_as"] == "flac"


def test_a_file_transcription_task_refused_for_its_format_is_submitted_as_flac(
    tmp_path: Path, layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    layout.data["storage"] = {"type": "dashscope"}
    layout.data["defaults"] = {"long_audio": "filetrans", "chunk_max_s": 11}
    layout.write()
    emulator.add_fault(Fault(path="transcription", status=415, code="BadRequest.UnsupportedFileFormat"))
    source = make_tone(tmp_path / "meeting.wav", seconds=14.0, fmt="wav")
    flac = flac_sha(source, tmp_path)
    service = start(layout, services)
    source.rename(layout.inbox / "meeting.wav")
    wait_for(lambda: (layout.done / "meeting.wav").exists(), timeout=60)

    submits = recognitions(emulator, "transcription")
    assert [r["status"] for r in submits] == [415, 200]
    uploads = [r["audio_sha256"] for r in emulator.requests() if r["audio_sha256"]]
    assert uploads[-1] == flac  # the object the accepted task fetched
    doc = json.loads((layout.done / "meeting.json").read_text())
    assert (doc["model"], doc["sent_as"]) == ("qwen3-asr-flash-filetrans", "flac")
    assert service.saw("format_refused_reencoding")
    assert call_outcomes(layout, layout.done / "meeting.wav") == ["RemoteRejectedError", "submitted"]


def test_a_file_refused_as_it_is_and_re_encoded_fails_with_both_reasons(
    tmp_path: Path, layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    emulator.add_fault(
        Fault(path="generation", status=415, code="BadRequest.UnsupportedFileFormat", times=None)
    )
    make_tone(layout.inbox / "talk.wav", seconds=3.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: (layout.failed / "talk.wav").exists())

    assert len(recognitions(emulator)) == 2  # as it is, then once re-encoded: never a third
    error = json.loads((layout.failed / "talk.error.json").read_text())
    assert error["code"] == "asr_rejected"
    assert error["remote_code"] == "BadRequest.UnsupportedFileFormat"
    assert error["message"].startswith("refused as it was (BadRequest.UnsupportedFileFormat: ")
    assert "and again re-encoded to 16 kHz mono FLAC (BadRequest.UnsupportedFileFormat: " in error["message"]
    assert layout.done_files() == []


def test_a_file_refused_for_something_else_is_not_sent_again(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    emulator.add_fault(Fault(path="generation", status=400, code="InvalidParameter", message="bad language"))
    make_tone(layout.inbox / "talk.wav", seconds=3.0, fmt="wav")
    service = start(layout, services)
    wait_for(lambda: (layout.failed / "talk.wav").exists())

    assert len(recognitions(emulator)) == 1
    assert json.loads((layout.failed / "talk.error.json").read_text())["message"] == "bad language"
    assert not service.saw("format_refused_reencoding")


def test_an_openai_compatible_server_that_cannot_decode_the_file_gets_flac(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    layout, onprem = two_backends(tmp_path, emulator)
    emulator.add_fault(
        Fault(path=OPENAI_PATH, status=400, message="Invalid or unsupported audio file.", times=1)
    )
    source = make_tone(tmp_path / "local.wav", seconds=3.0, fmt="wav")
    as_is, flac = sha256_file(source), flac_sha(source, tmp_path)
    service = start(layout, services)
    source.rename(onprem / "local.wav")
    done = onprem.parent / "done"
    wait_for(lambda: (done / "local.wav").exists())

    calls = openai_calls(emulator, None)
    assert [(r["fault"], r["status"]) for r in calls] == [("status", 400), (None, 200)]
    assert calls[1]["audio_sha256"] == flac != as_is
    doc = json.loads((done / "local.json").read_text())
    assert (doc["backend"], doc["sent_as"]) == ("onprem", "flac")
    assert service.saw("format_refused_reencoding")
