"""Long audio sent while it is still being split: each chunk goes to the pool the moment it is cut.

The split runs in the job's thread and is held back by a fixed number of slots: a chunk takes one
before it is encoded and gives it back once its answer is journaled and its file removed, so the
staging folder never holds more than that many chunks, however long the recording.

The plan is recorded in ``spans.txt`` one span at a time, before the chunk is sent; a restart keeps
the recorded spans and lets the planner derive the rest, which it does exactly as the first run did.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from dropscribe.adapters import audio
from dropscribe.core.formats import Encoding
from dropscribe.logs import get_logger
from dropscribe.service.crashpoints import crash_point
from dropscribe.service.objects import Staged
from dropscribe.service.outcomes import park_if_stopping

Span = tuple[float, float]
#: Sends one staged chunk (index, file, seconds) and returns its journaled answer.
SendChunk = Callable[[int, Staged, float], dict[str, Any]]

SPANS_FILE = "spans.txt"
#: The plan made after a length refusal; its existence alone tells a restart that the file was re-planned.
REPLANNED_FILE = "spans-replanned.txt"
#: Chunks of the second plan are numbered from here: their answers, calls, files and objects stay apart
#: from the first plan's, which may already have some.
REPLANNED_FIRST_INDEX = 100_000
_SLOT_POLL_S = 0.5  # how often a wait for a slot looks at the stop flag

log = get_logger()


class SpanRecord:
    """The spans decided so far, one ``start end`` line each, appended and synced as they come."""

    def __init__(self, staging: Path, name: str = SPANS_FILE) -> None:
        self.path = staging / name

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> list[Span]:
        """Recorded spans; a last line cut short by a crash is not a span and is dropped."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        spans: list[Span] = []
        for line in text.splitlines(keepends=True):
            parts = line.split()
            if not line.endswith("\n") or len(parts) != 2:
                break
            spans.append((float(parts[0]), float(parts[1])))
        return spans

    def append(self, span: Span) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{span[0]!r} {span[1]!r}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)


class ChunkFeed:
    """Feeds one long file's chunks to ``pool`` as they are cut, at most ``ahead`` staged at a time."""

    def __init__(self, pool: ThreadPoolExecutor, stopping: threading.Event, ahead: int) -> None:
        self.pool = pool
        self.stopping = stopping
        self.ahead = max(1, ahead)

    def run(
        self, handle: BinaryIO, staging: Path, encoding: Encoding, chunk_max_s: float,
        done: dict[int, dict[str, Any]], send: SendChunk, record: SpanRecord, first_index: int = 0,
    ) -> tuple[list[int], list[Span], list[BaseException]]:  # fmt: skip
        """The chunk indices and spans of the whole plan, with ``done`` filled with every answer; the
        errors met on the way.

        ``done`` holds the answers journaled before (never sent again). After the first error no
        further chunk is sent; chunks already in flight are waited for so their answers are kept.
        """
        slots = threading.Semaphore(self.ahead)
        failed = threading.Event()
        errors: list[BaseException] = []
        futures: dict[int, Future[dict[str, Any]]] = {}
        spans: list[Span] = []
        indices: list[int] = []
        present = _Present(staging, encoding, done)
        stream = audio.stream_chunks(
            handle, staging, encoding, chunk_max_s,
            planned=record.read(), skip=present, first_index=first_index,
        )  # fmt: skip
        try:
            for chunk in self._paced(stream, slots, failed):
                if chunk.new:
                    record.append((chunk.start_s, chunk.end_s))
                spans.append((chunk.start_s, chunk.end_s))
                indices.append(chunk.index)
                staged = Staged.chunk(staging, chunk.index, encoding)
                if chunk.path is not None:
                    crash_point("after_encode")
                if chunk.index in done:
                    staged.path.unlink(missing_ok=True)  # left by a crash after its answer was stored
                    slots.release()
                    continue
                # the file's lease goes with its chunks, so a lost lease stops their requests too
                future = self.pool.submit(
                    contextvars.copy_context().run, self._send, send, chunk.index, staged,
                    chunk.end_s - chunk.start_s,
                )  # fmt: skip
                future.add_done_callback(lambda f: _settled(f, slots, failed))
                futures[chunk.index] = future
        except Exception as exc:  # noqa: BLE001 - reported with the chunks' errors once they are in
            errors.append(exc)
        finally:
            stream.close()
        for index, future in futures.items():
            try:
                done[index] = future.result()
            except Exception as exc:  # noqa: BLE001 - collected; the caller raises the most severe
                errors.append(exc)
        return indices, spans, errors

    def _paced(
        self, stream: Iterator[audio.StreamedChunk], slots: threading.Semaphore, failed: threading.Event
    ) -> Iterator[audio.StreamedChunk]:
        """The stream's chunks, each pulled only once a slot is free; none after a stop or an error."""
        while True:
            while not slots.acquire(timeout=_SLOT_POLL_S):
                park_if_stopping(self.stopping)
            park_if_stopping(self.stopping)
            chunk = None if failed.is_set() else next(stream, None)
            if chunk is None:
                slots.release()
                return
            yield chunk

    @staticmethod
    def _send(send: SendChunk, index: int, staged: Staged, seconds: float) -> dict[str, Any]:
        stored = send(index, staged, seconds)
        staged.path.unlink(missing_ok=True)  # journaled: never sent again, so its file has done its work
        return stored


def _settled(future: Future[dict[str, Any]], slots: threading.Semaphore, failed: threading.Event) -> None:
    if future.cancelled() or future.exception() is not None:
        failed.set()
    slots.release()


class _Present:
    """Chunk indices not to encode: answered already, or staged whole by an earlier run."""

    def __init__(self, staging: Path, encoding: Encoding, done: dict[int, dict[str, Any]]) -> None:
        self._staging = staging
        self._encoding = encoding
        self._done = done

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        return index in self._done or Staged.chunk(self._staging, index, self._encoding).path.exists()
