"""The sidecars written beside a finished recording: transcripts in done/, ``.error.json`` in failed/."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dropscribe.core import transcript
from dropscribe.core.recognition import Sentence
from dropscribe.core.routing import DEFAULT_BACKEND

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SourceFacts:
    """What is known about the recording a sidecar describes.

    ``sha256`` is empty for a file refused before it was read (too large, empty, not a regular file).
    """

    name: str  # its name in done/ or failed/
    original_name: str
    relpath: str
    size_bytes: int | None
    sha256: str
    duration_s: float | None
    format: str | None


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def json_bytes(doc: Mapping[str, Any]) -> bytes:
    # a name that was not UTF-8 holds lone surrogates; backslashreplace turns them into JSON escapes
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8", "backslashreplace")


def no_speech(text: str) -> bool:
    """Whether the recognizer heard nothing: the file is done, with an empty ``.txt``."""
    return not text.strip()


def source_doc(source: SourceFacts) -> dict[str, Any]:
    return {
        "name": source.name,
        "original_name": source.original_name,
        "relpath": source.relpath,
        "size_bytes": source.size_bytes,
        "sha256": source.sha256 or None,
        "duration_s": source.duration_s,
        "format": source.format,
    }


def transcript_doc(
    result: Mapping[str, Any], source: SourceFacts, *, language: str | None, enable_itn: bool,
    context_sha256: str | None, reused: bool, started_at: float, finished_at: float, version: str,
) -> dict[str, Any]:  # fmt: skip
    """The ``.json`` sidecar. A file whose answer was bought for other bytes' job reports 0 s used."""
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "text": result["text"],
        "language": result["language"],
        "emotion": result["emotion"],
        "segments": result["segments"],
        "model": result["model"],
        "backend": result.get("backend", DEFAULT_BACKEND),  # results stored before backends existed
        "options": {"language": language, "enable_itn": enable_itn, "context_sha256": context_sha256},
        "source": source_doc(source),
        "mode": result["mode"],
        "chunks": result["chunks"],
        "request_ids": result["request_ids"],
        "usage_seconds": 0 if reused else result["usage_seconds"],
        "started_at": utc_iso(started_at),
        "finished_at": utc_iso(finished_at),
        "dropscribe_version": version,
    }
    if no_speech(result["text"]):  # a silent recording is a finished transcript with nothing in it
        doc["no_speech"] = True
    if result.get("sent_as"):  # the backend refused the file's own format; this re-encoding was heard
        doc["sent_as"] = result["sent_as"]
    if reused:
        paid_by = result.get("paid_by") or {}
        doc["reused"] = True
        doc["reused_from"] = {"sha256": paid_by.get("sha256") or source.sha256, "name": paid_by.get("name"),
                              "usage_seconds": result["usage_seconds"]}  # fmt: skip
    return doc


def done_documents(
    result: Mapping[str, Any], source: SourceFacts, *, outputs: Sequence[str], language: str | None,
    enable_itn: bool, context_sha256: str | None, reused: bool, started_at: float, finished_at: float,
    version: str,
) -> dict[str, bytes]:  # fmt: skip
    """Sidecar suffix → bytes, in the order they are written, for the outputs the rules ask for."""
    segments = [Sentence(s["start_s"], s["end_s"], s["text"]) for s in result["segments"]]
    out: dict[str, bytes] = {}
    if "txt" in outputs:
        out[".txt"] = b"" if no_speech(result["text"]) else transcript.render_txt(result["text"]).encode()
    if "json" in outputs:
        doc = transcript_doc(
            result, source, language=language, enable_itn=enable_itn, context_sha256=context_sha256,
            reused=reused, started_at=started_at, finished_at=finished_at, version=version,
        )  # fmt: skip
        out[".json"] = json_bytes(doc)
    if "srt" in outputs:
        out[".srt"] = transcript.render_srt(segments).encode()
    if "vtt" in outputs:
        out[".vtt"] = transcript.render_vtt(segments).encode()
    return out


def error_document(
    error: Mapping[str, Any] | None, source: SourceFacts, *, attempts: int, request_ids: Sequence[str],
    failed_at: float, version: str,
) -> bytes:  # fmt: skip
    """The ``.error.json`` sidecar: what was refused and why; it is final, so never retryable."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        **(error or {"code": "unknown", "message": ""}),
        "retryable": False,
        "attempts": attempts,
        "request_ids": list(request_ids),
        "source": source_doc(source),
        "failed_at": utc_iso(failed_at),
        "dropscribe_version": version,
    }
    return json_bytes(doc)
