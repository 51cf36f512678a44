"""The reply an injected fault sends in place of the endpoint's own (see :mod:`.faults` for the kinds).

Task and stream faults are not answered here: they change what the endpoint itself does.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from dropscribe.emulator.faults import Fault
from dropscribe.emulator.http_messages import Reply, json_error, json_reply, xml_error


def fault_reply(fault: Fault, request_id: str, *, oss_like: bool) -> Reply | None:
    """The reply for ``fault``, or None when the endpoint must run (delay, task and stream faults).

    ``oss_like`` makes status faults answer in OSS's XML, as the object-storage paths do.
    """
    kind = fault.kind
    reply: Reply
    if kind == "status":
        code = fault.error_code()
        status = fault.error_status(500)
        message = fault.error_message(code)
        if oss_like:
            reply = xml_error(status, code, message, request_id)
        else:
            reply = json_error(status, code, message, request_id)
    elif kind == "html":
        reply = _gateway_page(fault.status or 502)
    elif kind == "ok_error":
        code = fault.error_code("InternalError")
        payload = {"code": code, "message": fault.error_message(code), "request_id": request_id}
        reply = json_reply(200, payload, error_code=code)
    elif kind == "malformed":
        text = json.dumps({"request_id": request_id, "output": {"choices": [{"finish_reason": "stop"}]}})
        reply = Reply(200, text[: len(text) // 2].encode())
    elif kind == "reset":
        reply = Reply(0, reset=True)
    else:
        return None
    if fault.retry_after is not None:
        seconds = float(fault.retry_after)
        reply.headers["Retry-After"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
    return reply


def _gateway_page(status: int) -> Reply:
    """What the gateway in front of the service sends when the service behind it fails."""
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = f"{status} Error"
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n"
        "<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n"
    )
    return Reply(status, page.encode(), content_type="text/html")
