"""Answers checked before they are kept: short answers are retried then refused, silence is a transcript."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dropscribe.emulator import Emulator, Fault
from tests.e2e.test_explain import document, steps
from tests.support.audio import make_speechlike, make_tone
from tests.support.service import Layout, ServiceProcess, wait_for


def start(layout: Layout, services: list[ServiceProcess]) -> ServiceProcess:
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    return service


def recognitions(emulator: Emulator, path_part: str) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if path_part in r["path"] and r["method"] == "POST"]


def call_outcomes(layout: Layout, final: Path) -> list[str]:
    (entry,) = document(layout, str(final))["files"]
    return [s["outcome"] for s in steps(entry) if s["step"] == "call"]


def test_a_short_answer_is_not_kept_and_the_retry_is(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    emulator.add_fault(Fault(truncate=True, path="generation", times=1))
    make_tone(layout.inbox / "talk.wav", seconds=6.0, fmt="wav")
    service = start(layout, services)
    wait_for(lambda: (layout.done / "talk.wav").exists())

    sent = recognitions(emulator, "generation")
    assert [r["fault"] for r in sent] == ["truncate", None]
    doc = json.loads((layout.done / "talk.json").read_text())
    assert doc["usage_seconds"] == 6  # the full answer's seconds, not the short one's
    assert doc["text"] == (layout.done / "talk.txt").read_text().strip()
    assert "6.00s" in doc["text"]  # the emulator names the duration it heard
    assert "no_speech" not in doc
    assert len(doc["request_ids"]) == 1
    assert call_outcomes(layout, layout.done / "talk.wav") == ["TruncatedAnswerError", "ok"]
    assert service.saw("answer_truncated", usage_seconds=3.0)
    assert service.saw("job_deferred", attempt=1)


def test_always_short_answers_fail_the_file_with_asr_truncated(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    emulator.add_fault(Fault(truncate=True, path="generation", times=None))
    make_tone(layout.inbox / "talk.wav", seconds=6.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: (layout.failed / "talk.wav").exists())

    error = json.loads((layout.failed / "talk.error.json").read_text())
    assert error["code"] == "asr_truncated"
    assert "3 s processed of 6.0 s sent" in error["message"]
    assert "3 answers in a row" in error["message"]
    assert len(recognitions(emulator, "generation")) == 3  # bounded: no fourth payment
    assert call_outcomes(layout, layout.failed / "talk.wav") == ["TruncatedAnswerError"] * 3
    assert layout.done_files() == []


def test_a_short_file_transcription_task_is_submitted_again(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    layout.data["storage"] = {"type": "dashscope"}
    layout.data["defaults"] = {"long_audio": "filetrans", "chunk_max_s": 11}
    layout.write()
    emulator.add_fault(Fault(truncate=True, path="transcription", times=1))
    make_tone(layout.inbox / "meeting.wav", seconds=14.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: (layout.done / "meeting.wav").exists(), timeout=60)

    assert [r["fault"] for r in recognitions(emulator, "transcription")] == ["truncate", None]
    doc = json.loads((layout.done / "meeting.json").read_text())
    assert doc["model"] == "qwen3-asr-flash-filetrans"
    assert doc["usage_seconds"] == 14
    assert call_outcomes(layout, layout.done / "meeting.wav") == ["TruncatedAnswerError", "submitted"]


def test_a_silent_recording_is_done_with_an_empty_transcript(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    make_speechlike(layout.inbox / "quiet.wav", 3.0, "wav", gaps=[(0.0, 3.0)])
    start(layout, services)
    wait_for(lambda: (layout.done / "quiet.wav").exists())

    assert (layout.done / "quiet.txt").read_bytes() == b""
    doc = json.loads((layout.done / "quiet.json").read_text())
    assert doc["no_speech"] is True
    assert doc["text"] == ""
    assert doc["usage_seconds"] == 3
    assert layout.failed_files() == []
