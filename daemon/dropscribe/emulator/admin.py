"""The emulator's own endpoints under ``/_emulator/``: the request log, faults, and reset."""

from __future__ import annotations

from collections.abc import Callable

from dropscribe.emulator.faults import FaultBook, faults_from_json
from dropscribe.emulator.http_messages import HttpRequest, Reply, json_reply
from dropscribe.emulator.protocol import ApiError
from dropscribe.emulator.request_log import RequestLog


class Admin:
    """``GET /_emulator/requests``, ``GET|POST|DELETE /_emulator/faults``, ``POST /_emulator/reset``."""

    def __init__(self, request_log: RequestLog, faults: FaultBook, reset: Callable[[], None]) -> None:
        self._request_log = request_log
        self._faults = faults
        self._reset = reset

    def handle(self, request: HttpRequest) -> Reply:
        path, method = request.path, request.method
        if path == "/_emulator/requests" and method == "GET":
            return json_reply(200, self._request_log.snapshot())
        if path == "/_emulator/faults" and method == "GET":
            return json_reply(200, [fault.to_dict() for fault in self._faults.active()])
        if path == "/_emulator/faults" and method == "POST":
            try:
                added = faults_from_json(request.json)
            except (ValueError, TypeError) as exc:
                raise ApiError(400, "InvalidParameter", f"Bad fault: {exc}") from exc
            for fault in added:
                self._faults.add(fault)
            return json_reply(200, {"added": [fault.to_dict() for fault in added]})
        if path == "/_emulator/faults" and method == "DELETE":
            self._faults.clear()
            return json_reply(200, {"cleared": True})
        if path == "/_emulator/reset" and method == "POST":
            self._reset()
            return json_reply(200, {"reset": True})
        raise ApiError(404, "InvalidURL", f"No such emulator endpoint: {method} {path}")
