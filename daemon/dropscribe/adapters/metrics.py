"""A small Prometheus text endpoint (``/metrics``) and a health check (``/healthz``) on a thread.

Operators of an unattended service want to be paged when the queue is stuck, the share is gone or the
account is paused, not to read logs; these two URLs are what monitoring scrapes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Snapshot:
    """Numbers at one moment; ``healthy`` False makes /healthz answer 503 with ``problems``."""

    # name -> (help text, value); labelled: name -> (help text, {label text: value})
    gauges: dict[str, tuple[str, float]] = field(default_factory=dict)
    labelled: dict[str, tuple[str, dict[str, float]]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems


def render(snapshot: Snapshot) -> str:
    lines = []
    for name, (text, value) in sorted(snapshot.gauges.items()):
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
    for name, (text, series) in sorted(snapshot.labelled.items()):
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
        lines += [f"{name}{{{labels}}} {value:g}" for labels, value in sorted(series.items())]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Bound when built, served once started: the numbers come from whoever starts it."""

    def __init__(self, listen: str, snapshot: Callable[[], Snapshot] | None = None) -> None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        server = self
        self._source = snapshot

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source = server._source
                snap = source() if source is not None else Snapshot(problems=("starting",))
                if self.path.split("?")[0] == "/metrics":
                    self._reply(200, render(snap), "text/plain; version=0.0.4")
                elif self.path.split("?")[0] == "/healthz":
                    body = "ok\n" if snap.healthy else "\n".join(snap.problems) + "\n"
                    self._reply(200 if snap.healthy else 503, body, "text/plain")
                else:
                    self._reply(404, "not found\n", "text/plain")

            def _reply(self, status: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the service's own log

        self._server = ThreadingHTTPServer((host, int(port)), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self, snapshot: Callable[[], Snapshot] | None = None) -> None:
        if snapshot is not None:
            self._source = snapshot
        self._thread.start()

    def stop(self) -> None:
        """Idempotent; a server that was bound but never started is only closed."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():  # shutdown() would wait forever for a loop that never ran
            self._server.shutdown()
        self._server.server_close()
