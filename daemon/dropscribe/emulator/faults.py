"""Fault injection: make the next matching requests fail the way the real service sometimes does.

A :class:`Fault` says *which* requests (``path`` substring, ``model``), *how many* (``times``), and
*what* goes wrong. Exactly one kind per fault, optionally combined with ``delay_s``:

=============  ===============================================================================
kind           effect
=============  ===============================================================================
``status``     JSON error envelope with ``status``/``code``/``message`` (OSS XML on upload and
               result paths); ``retry_after`` adds a ``Retry-After`` header
``html``       a gateway's ``text/html`` page, HTTP 502 unless ``status`` says otherwise
``ok_error``   HTTP 200 carrying ``{code, message, request_id}`` and no ``output``
``malformed``  HTTP 200, ``application/json``, body cut off mid-object
``reset``      the connection is closed (RST) without any answer
``task_fail``  the file-transcription task is accepted, then ends ``FAILED`` with ``code``
``task_stuck`` the file-transcription task stays ``RUNNING`` forever
``sse_cut``    a streamed reply ends cleanly after its first event, before ``finish_reason: stop``
``sse_error``  a streamed reply sends one event, then an ``event:error`` with ``status``/``code``
``truncate``   the answer covers only the first half of the audio: ``usage.seconds`` and the text
               (or the task's sentences) are those of half the duration, as if the rest was not heard
(delay only)   ``delay_s`` alone: the request is answered normally, late
=============  ===============================================================================

The compact string form (``dropscribe emulate --fault``) is comma-separated ``key=value`` pairs and
bare kind flags, e.g. ``status=503,code=ServiceUnavailable,times=3,path=generation`` or
``reset,path=tasks``. ``times=forever`` means until cleared. Because messages may contain commas,
``message=`` must come last and takes the rest of the string.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from dropscribe.emulator.protocol import KNOWN_CODES, default_code, default_message

_FLAG_KINDS = (
    "html",
    "ok_error",
    "malformed",
    "reset",
    "task_fail",
    "task_stuck",
    "sse_cut",
    "sse_error",
    "truncate",
)
TASK_KINDS = frozenset({"task_fail", "task_stuck"})
STREAM_KINDS = frozenset({"sse_cut", "sse_error"})


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; see the module docstring for the kinds."""

    path: str | None = None
    model: str | None = None
    times: int | None = 1
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    html: bool = False
    ok_error: bool = False
    malformed: bool = False
    reset: bool = False
    task_fail: bool = False
    task_stuck: bool = False
    sse_cut: bool = False
    sse_error: bool = False
    truncate: bool = False

    def __post_init__(self) -> None:
        flags = [name for name in _FLAG_KINDS if getattr(self, name)]
        if len(flags) > 1:
            raise ValueError(f"a fault has one kind, got {', '.join(flags)}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or None for 'until cleared'")
        if self.delay_s < 0:
            raise ValueError("delay_s must not be negative")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status")
        if not flags and self.status is None and self.code is None and self.delay_s == 0:
            raise ValueError("a fault needs a kind, a status or code, or a delay_s")
        if not flags and self.status is None and self.code is not None and self.code not in KNOWN_CODES:
            raise ValueError(f"code {self.code!r} is not a known DashScope code; give a status too")

    @property
    def kind(self) -> str:
        """``status``, one of the flag kinds, or ``delay`` for a fault that only slows the answer."""
        for name in _FLAG_KINDS:
            if getattr(self, name):
                return name
        if self.status is not None or self.code is not None:
            return "status"
        return "delay"

    def error_status(self, fallback: int) -> int:
        if self.status is not None:
            return self.status
        if self.code is not None and self.code in KNOWN_CODES:
            return KNOWN_CODES[self.code][0]
        return fallback

    def error_code(self, fallback: str | None = None) -> str:
        if self.code is not None:
            return self.code
        if self.status is not None:
            return default_code(self.status)
        return fallback or "InternalError"

    def error_message(self, code: str) -> str:
        return self.message if self.message is not None else default_message(code)

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults, as JSON-ready values."""
        default = _DEFAULTS
        return {k: v for k, v in asdict(self).items() if v != default[k] or k == "times"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build from a JSON object with the field names; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        for name in ("times", "status"):
            if values.get(name) is not None and not isinstance(values[name], int):
                raise ValueError(f"{name} must be an integer")
        for name in _FLAG_KINDS:
            if name in values and not isinstance(values[name], bool):
                raise ValueError(f"{name} must be true or false")
        return cls(**values)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Build from the compact string form, e.g. ``status=503,code=ServiceUnavailable,times=3``."""
        values: dict[str, Any] = {}
        rest = spec.strip()
        while rest:
            if rest.startswith("message="):
                values["message"] = rest[len("message=") :]
                break
            item, _, rest = rest.partition(",")
            item = item.strip()
            if not item:
                continue
            key, eq, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not eq:
                if key not in _FLAG_KINDS:
                    raise ValueError(f"unknown fault flag {key!r} in {spec!r}")
                values[key] = True
            else:
                values[key] = _convert(key, raw)
        if not values:
            raise ValueError("an empty fault specification")
        return cls(**values)


_DEFAULTS = {f.name: f.default for f in fields(Fault)}


def _convert(key: str, raw: str) -> Any:
    try:
        if key in ("path", "model", "code", "message"):
            return raw or None
        if key == "times":
            return None if raw.lower() in ("forever", "none", "inf", "always") else int(raw)
        if key == "status":
            return int(raw)
        if key in ("retry_after", "delay_s"):
            return float(raw)
        if key in _FLAG_KINDS:
            return raw.lower() in ("1", "true", "yes", "on")
    except ValueError as exc:
        raise ValueError(f"fault field {key}={raw!r}: {exc}") from exc
    raise ValueError(f"unknown fault field {key!r}")


def faults_from_json(payload: Any) -> list[Fault]:
    """Faults from an admin request body: one object or string, or a list of them."""
    items = payload if isinstance(payload, list) else [payload]
    result = []
    for item in items:
        if isinstance(item, str):
            result.append(Fault.parse(item))
        elif isinstance(item, dict):
            result.append(Fault.from_dict(item))
        else:
            raise ValueError("a fault is a JSON object or a compact string")
    return result


@dataclass
class _Entry:
    fault: Fault
    remaining: int | None


class FaultBook:
    """The active faults and how many uses each has left; shared by all request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._entries.append(_Entry(fault, fault.times))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [entry.fault for entry in self._entries]

    def take(
        self,
        path: str,
        model: Callable[[], str | None],
        usable: Callable[[Fault], bool],
    ) -> Fault | None:
        """Consume one use of the first fault that matches this request, if any.

        ``model`` is called only when a candidate fault filters on the model, because finding the
        model may mean parsing the body.
        """
        with self._lock:
            for entry in self._entries:
                fault = entry.fault
                if fault.path is not None and fault.path not in path:
                    continue
                if not usable(fault):
                    continue
                if fault.model is not None and fault.model != model():
                    continue
                if entry.remaining is not None:
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        self._entries.remove(entry)
                return fault
        return None
