"""Streamed sync replies: the transcript as server-sent events, and the stream faults that cut them."""

from __future__ import annotations

import json
from typing import Any

from dropscribe.emulator.faults import Fault
from dropscribe.emulator.http_messages import Reply
from dropscribe.emulator.transcripts import split_for_stream


def sse_event(number: int, event: str, status: int, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, ensure_ascii=False)
    return f"id:{number}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{data}\n\n".encode()


def stream_reply(
    request_id: str,
    text: str,
    annotation: dict[str, str],
    usage: dict[str, Any],
    *,
    incremental: bool,
    fault: Fault | None,
) -> Reply:
    """``text`` in a few events; ``annotation`` rides on the last one, as on a whole reply's message.

    ``incremental`` sends each piece alone instead of the text so far; a stream ``fault``
    (``sse_cut``/``sse_error``) ends the stream early.
    """
    pieces = split_for_stream(text)
    events: list[bytes] = []
    sent = ""
    for number, piece in enumerate(pieces, start=1):
        last = number == len(pieces)
        sent += piece
        message: dict[str, Any] = {
            "role": "assistant",
            "content": [{"text": piece if incremental else sent}],
        }
        if last:
            message["annotations"] = [annotation]
        choice = {"finish_reason": "stop" if last else "null", "message": message}
        payload = {"output": {"choices": [choice]}, "usage": usage, "request_id": request_id}
        events.append(sse_event(number, "result", 200, payload))
    error_code: str | None = None
    if fault is not None:
        # Keep only what precedes the final event, so the client never sees finish_reason "stop".
        events = events[: min(1, len(events) - 1)]
        if fault.kind == "sse_error":
            error_code = fault.error_code("InternalError")
            error = {
                "code": error_code,
                "message": fault.error_message(error_code),
                "request_id": request_id,
            }
            status = fault.error_status(500)
            events.append(sse_event(len(events) + 1, "error", status, error))
    return Reply(
        200,
        content_type="text/event-stream;charset=UTF-8",
        headers={"Cache-Control": "no-cache"},
        events=events,
        error_code=error_code,
    )
