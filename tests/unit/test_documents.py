"""Sidecar documents: job facts in, the exact bytes written beside the recording out.

Users' tools parse these files, so the expected documents are spelled out in full: any change of a
key, its order, the indentation or the encoding shows up here.
"""

from __future__ import annotations

import json
from typing import Any

from dropscribe.core.documents import (
    SourceFacts,
    done_documents,
    error_document,
    json_bytes,
    source_doc,
    utc_iso,
)

SHA = "5e" * 32
SOURCE = SourceFacts(
    name="talk (2).mp3", original_name="talk.mp3", relpath="team/talk.mp3", size_bytes=48_000, sha256=SHA,
    duration_s=3.0, format="mp3",
)  # fmt: skip
RESULT: dict[str, Any] = {
    "text": "Hello there. 你好",
    "language": "en",
    "emotion": "neutral",
    "segments": [
        {"start_s": 0.0, "end_s": 1.5, "text": "Hello there."},
        {"start_s": 1.5, "end_s": 3.0, "text": "你好"},
    ],
    "request_ids": ["r-1", "r-2"],
    "usage_seconds": 3.0,
    "model": "qwen3-asr-flash",
    "mode": "split",
    "chunks": 2,
    "paid_by": {"job_id": 4, "name": "first.mp3", "sha256": "aa" * 32},
}
STARTED, FINISHED = 1_767_225_600.0, 1_767_225_661.9  # 2026-01-01T00:00:00Z, a minute later


def _done(outputs: tuple[str, ...] = ("txt", "json", "srt", "vtt"), **changes: Any) -> dict[str, bytes]:
    values: dict[str, Any] = {
        "outputs": outputs, "language": None, "enable_itn": False, "context_sha256": None, "reused": False,
        "started_at": STARTED, "finished_at": FINISHED, "version": "1.2.3",
    }  # fmt: skip
    values.update(changes)
    result = values.pop("result", RESULT)
    return done_documents(result, SOURCE, **values)


def test_the_transcript_document_byte_for_byte() -> None:
    expected = f"""{{
  "schema_version": 1,
  "text": "Hello there. 你好",
  "language": "en",
  "emotion": "neutral",
  "segments": [
    {{
      "start_s": 0.0,
      "end_s": 1.5,
      "text": "Hello there."
    }},
    {{
      "start_s": 1.5,
      "end_s": 3.0,
      "text": "你好"
    }}
  ],
  "model": "qwen3-asr-flash",
  "backend": "dashscope",
  "options": {{
    "language": null,
    "enable_itn": false,
    "context_sha256": null
  }},
  "source": {{
    "name": "talk (2).mp3",
    "original_name": "talk.mp3",
    "relpath": "team/talk.mp3",
    "size_bytes": 48000,
    "sha256": "{SHA}",
    "duration_s": 3.0,
    "format": "mp3"
  }},
  "mode": "split",
  "chunks": 2,
  "request_ids": [
    "r-1",
    "r-2"
  ],
  "usage_seconds": 3.0,
  "started_at": "2026-01-01T00:00:00Z",
  "finished_at": "2026-01-01T00:01:01Z",
  "dropscribe_version": "1.2.3"
}}
"""
    assert _done(("json",)) == {".json": expected.encode()}


def test_the_transcript_document_names_the_backend_that_answered() -> None:
    """A result from another backend says so; a result stored before backends existed is DashScope's."""
    onprem = json.loads(
        _done(("json",), result={**RESULT, "backend": "onprem", "model": "Qwen/Qwen3-ASR-1.7B"})[".json"]
    )
    assert (onprem["backend"], onprem["model"]) == ("onprem", "Qwen/Qwen3-ASR-1.7B")
    assert json.loads(_done(("json",))[".json"])["backend"] == "dashscope"


def test_sidecars_come_in_a_fixed_order_for_the_outputs_asked_for() -> None:
    """txt, json, srt, vtt, whatever order the rules list them in; none that were not asked for."""
    assert list(_done(("vtt", "srt", "json", "txt"))) == [".txt", ".json", ".srt", ".vtt"]
    assert list(_done(("srt",))) == [".srt"]
    out = _done(("txt", "srt", "vtt"))
    assert out[".txt"] == "Hello there. 你好\n".encode()
    srt = "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:01,500 --> 00:00:03,000\n你好\n"
    assert out[".srt"] == srt.encode()
    assert out[".vtt"].startswith(b"WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n")


def test_options_report_what_was_asked() -> None:
    doc = _json(_done(("json",), language="zh", enable_itn=True, context_sha256="c" * 64))
    assert doc["options"] == {"language": "zh", "enable_itn": True, "context_sha256": "c" * 64}


def test_a_reused_answer_costs_nothing_and_names_who_paid() -> None:
    """Same bytes under a second name: 0 s used here, the paying file and its usage named."""
    doc = _json(_done(("json",), reused=True))
    assert doc["usage_seconds"] == 0
    assert doc["reused"] is True
    assert doc["reused_from"] == {"sha256": "aa" * 32, "name": "first.mp3", "usage_seconds": 3.0}
    assert list(doc)[-2:] == ["reused", "reused_from"]


def test_a_reused_answer_without_its_payer_names_these_bytes() -> None:
    result = {k: v for k, v in RESULT.items() if k != "paid_by"}
    doc = _json(_done(("json",), reused=True, result=result))
    assert doc["reused_from"] == {"sha256": SHA, "name": None, "usage_seconds": 3.0}


def test_the_error_document_byte_for_byte() -> None:
    refused = SourceFacts(
        name="notes.mp3", original_name="notes.mp3", relpath="notes.mp3", size_bytes=1_640, sha256="",
        duration_s=None, format=None,
    )  # fmt: skip
    body = error_document(
        {"code": "asr_rejected", "message": "bad audio", "remote_code": "InvalidParameter"}, refused,
        attempts=2, request_ids=["r-9"], failed_at=STARTED, version="1.2.3",
    )  # fmt: skip
    expected = """{
  "schema_version": 1,
  "code": "asr_rejected",
  "message": "bad audio",
  "remote_code": "InvalidParameter",
  "retryable": false,
  "attempts": 2,
  "request_ids": [
    "r-9"
  ],
  "source": {
    "name": "notes.mp3",
    "original_name": "notes.mp3",
    "relpath": "notes.mp3",
    "size_bytes": 1640,
    "sha256": null,
    "duration_s": null,
    "format": null
  },
  "failed_at": "2026-01-01T00:00:00Z",
  "dropscribe_version": "1.2.3"
}
"""
    assert body == expected.encode()


def test_an_error_without_its_reason_still_says_unknown() -> None:
    doc = _json({"x": error_document(None, SOURCE, attempts=1, request_ids=[], failed_at=0.0, version="v")})
    assert (doc["code"], doc["message"], doc["retryable"]) == ("unknown", "", False)


def test_a_name_that_is_not_utf8_becomes_a_json_escape() -> None:
    """Lone surrogates from a non-UTF-8 file name are written as \\udcXX escapes, never as bad bytes."""
    assert json_bytes({"name": "caf\udce9.wav"}) == b'{\n  "name": "caf\\udce9.wav"\n}\n'
    assert source_doc(SOURCE)["sha256"] == SHA


def test_times_are_utc_to_the_second() -> None:
    assert utc_iso(0.0) == "1970-01-01T00:00:00Z"
    assert utc_iso(FINISHED) == "2026-01-01T00:01:01Z"


def _json(documents: dict[str, bytes]) -> dict[str, Any]:
    (body,) = documents.values()
    parsed: dict[str, Any] = json.loads(body)
    return parsed
