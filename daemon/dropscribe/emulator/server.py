"""The HTTP side of the emulator: a ThreadingHTTPServer in a background thread."""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import structlog

from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.faults import Fault
from dropscribe.emulator.http_messages import HttpRequest, Reply
from dropscribe.emulator.protocol import ApiError
from dropscribe.emulator.routing import Router
from dropscribe.emulator.transcripts import Transcriber

log = structlog.get_logger()

# Far above any legitimate body (10 MB sync audio as base64, 100 MB uploads); only guards memory.
_MAX_BODY_BYTES = 512 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients vanishing mid-request is routine for a fault injector; keep stderr quiet.
        log.debug("emulator.connection_error", client=str(client_address), error=repr(sys.exc_info()[1]))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # idle keep-alive connections free their thread eventually

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm holds the body back
        # for the client's delayed ACK (about 40 ms per request on a kept-alive connection).
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            with contextlib.suppress(OSError):
                super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # Requests are logged once, with their outcome, by Router.record.
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        router = self.server.router
        host = self.headers.get("Host")
        if host:
            origin = f"http://{host}"
        else:
            address = self.server.server_address
            origin = f"http://{_public_host(str(address[0]))}:{address[1]}"
        headers = list(self.headers.items())
        try:
            body = self._read_body()
        except ApiError as exc:
            # The rest of the body is unread, so this connection cannot carry another request.
            self.close_connection = True
            reply, trace = router.refuse(HttpRequest(self.command, self.path, headers, b"", origin), exc)
        else:
            reply, trace = router.handle(HttpRequest(self.command, self.path, headers, body, origin))
        # Recorded before answering, so a client that has its reply can rely on finding it logged.
        router.record(trace)
        self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError as exc:
            raise ApiError(400, "InvalidParameter", "Bad Content-Length.") from exc
        if length < 0:
            raise ApiError(400, "InvalidParameter", "Bad Content-Length.")
        if length > _MAX_BODY_BYTES:
            raise ApiError(413, "BadRequest.TooLarge", "Payload Too Large.")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise ApiError(400, "InvalidParameter", "Bad chunked encoding.") from exc
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_BODY_BYTES:
                raise ApiError(413, "BadRequest.TooLarge", "Payload Too Large.")
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, reply: Reply) -> None:
        if reply.delay_s > 0:
            self.server.stopping.wait(reply.delay_s)
        try:
            if reply.reset:
                self._reset_connection()
                return
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.events is not None:
                self._send_stream(reply.events)
                return
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True

    def _send_stream(self, events: list[bytes]) -> None:
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _reset_connection(self) -> None:
        self.close_connection = True
        # Linger 0 turns the close into a TCP RST, what a crashed proxy or load balancer sends.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


def _public_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


class Emulator:
    """A local DashScope-compatible server for tests and trials; it does not recognise speech.

    For example::

        with Emulator(EmulatorConfig()) as emu:
            httpx.post(emu.base_url + "/services/aigc/multimodal-generation/generation", ...)
            assert emu.requests()[-1]["status"] == 200
    """

    def __init__(self, config: EmulatorConfig | None = None, recognizer: str = "placeholder") -> None:
        """``recognizer`` "pocketsphinx" answers the words it hears (needs ``dropscribe[hear]``)."""
        self.config = config or EmulatorConfig()
        self._router = Router(self.config, Transcriber(recognizer))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a daemon thread; returns once the port is known."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._router.request_log.open()
        server = _Server((self.config.host, self.config.port), self._router)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="dropscribe-emulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, drop open connections and close the log file; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        with server.connections_lock:
            connections = list(server.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._router.request_log.close()

    def __enter__(self) -> Emulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://host:port`` without the API prefix; the admin endpoints live under it."""
        return f"http://{_public_host(self.config.host)}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a DashScope client takes as its base URL: ``http://host:port/api/v1``."""
        return f"{self.root_url}/api/v1"

    @property
    def openai_base_url(self) -> str:
        """What an OpenAI client takes as its base URL (the vLLM side): ``http://host:port/v1``."""
        return f"{self.root_url}/v1"

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far, oldest first, as the JSON-ready records of the log."""
        return self._router.request_log.snapshot()

    def add_fault(self, fault: Fault) -> None:
        self._router.faults.add(fault)

    def clear_faults(self) -> None:
        self._router.faults.clear()

    def faults(self) -> list[Fault]:
        """Faults that still have uses left."""
        return self._router.faults.active()

    def reset(self) -> None:
        """Forget the request log, the faults and the rate-limit windows (tasks and uploads stay)."""
        self._router.reset()
