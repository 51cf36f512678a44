"""Synchronous recognition: a short file in one request, a long one in chunks split at silences.

Chunks are recognized concurrently while the file is still being split (:mod:`.chunk_stream`); each
answer is journaled the moment it arrives, so a restart sends only the chunks that have none yet.
"""

from __future__ import annotations

import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from dropscribe.adapters import audio
from dropscribe.core.chunking import REPLAN_FACTOR, refused_for_length
from dropscribe.core.errors import AccountError, InputRejectedError, RemoteRejectedError, TransientError
from dropscribe.core.formats import FormatPolicy
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.recognizer import Recognizer
from dropscribe.core.ports.storage import Storage
from dropscribe.core.recognition import AsrOptions, AsrResult
from dropscribe.core.result_checks import TRUNCATED_OUTCOME, refusal, truncated_answers, truncation
from dropscribe.core.results import Piece, answer_from_stored, answer_to_stored
from dropscribe.logs import get_logger
from dropscribe.service.chunk_stream import REPLANNED_FILE, REPLANNED_FIRST_INDEX, ChunkFeed, SpanRecord
from dropscribe.service.crashpoints import crash_point
from dropscribe.service.format_retry import earns_reencoding, refused_again, staged_whole, takes_as_is
from dropscribe.service.objects import SourceObjects, Staged
from dropscribe.service.outcomes import ParkedError, park_if_stopping
from dropscribe.service.paid_answers import record_paid

# A data URL grows by 4/3; staying under this keeps the encoded request within DashScope's 10 MB.
INLINE_RAW_MAX_BYTES = 7 * 1024 * 1024
SYNC_MAX_BYTES = 10 * 1024 * 1024

Span = tuple[float, float]

log = get_logger()


class SyncRecognition:
    def __init__(
        self, *, journal: Journal, client: Recognizer, storage: Storage, objects: SourceObjects,
        formats: FormatPolicy, pool: ThreadPoolExecutor, stopping: threading.Event, concurrency: int,
        max_upload_bytes: int | None = None,
    ) -> None:  # fmt: skip
        """``concurrency``: the pool's workers; ``max_upload_bytes``: the backend's own cap on one upload
        (sent as bytes, not as a data URL)."""
        self.journal = journal
        self.max_upload_bytes = max_upload_bytes
        self.client = client
        self.storage = storage
        self.objects = objects
        self.formats = formats
        self.pool = pool
        self.stopping = stopping
        # a few chunks staged ahead of the requests keep every worker busy without filling the disk
        self.feed = ChunkFeed(pool, stopping, concurrency + 2)

    def run(
        self, key: str, sha: str, handle: BinaryIO, probe: audio.Probe, model: str, options: AsrOptions,
        mode: str, chunk_max_s: float, staging: Path,
    ) -> list[Piece]:  # fmt: skip
        """Each piece's answer with where it lies in the source, in order."""
        if mode != "single":
            return self._split(key, sha, handle, probe, model, options, chunk_max_s, staging)
        spans, staged = self._prepare_single(handle, probe, staging)
        results = self._run_chunks(key, sha, model, options, spans, staged, handle, probe, staging)
        return [(results[i], spans[i][0], spans[i][1]) for i in range(len(spans))]

    def _split(
        self, key: str, sha: str, handle: BinaryIO, probe: audio.Probe, model: str, options: AsrOptions,
        chunk_max_s: float, staging: Path,
    ) -> list[Piece]:  # fmt: skip
        """Long audio: chunks cut, sent and answered while the file is still being decoded.

        A chunk refused for its length (size or duration) has the file planned once more with shorter
        chunks, numbered apart; answers of the first plan are not used then.
        """
        done = self.journal.chunk_results(key)
        encoding = self.formats.chunk_encoding

        def send(index: int, staged: Staged, seconds: float) -> dict[str, Any]:
            return self._one_chunk(key, sha, index, model, options, staged, handle, probe, seconds, staging)

        replanned = SpanRecord(staging, REPLANNED_FILE)
        if not replanned.exists():
            indices, spans, errors = self.feed.run(
                handle, staging, encoding, chunk_max_s, done, send, SpanRecord(staging)
            )  # fmt: skip
            refused = [e for e in errors if _too_long(e)]
            if not refused or len(refused) < len(errors):  # anything else is dealt with first
                return _pieces(indices, spans, done, errors)
            first = refused[0]
            remote = first if isinstance(first, RemoteRejectedError) else None
            log.warning("chunk_too_long_replanning", chunk_max_s=chunk_max_s,
                        replanned_chunk_max_s=chunk_max_s * REPLAN_FACTOR,
                        remote_code=remote.remote_code if remote else None,
                        request_id=remote.request_id if remote else None,
                        code=None if remote else "too_large")  # fmt: skip
            replanned.path.touch()
        shorter_s = chunk_max_s * REPLAN_FACTOR
        indices, spans, errors = self.feed.run(
            handle, staging, encoding, shorter_s, done, send, replanned, REPLANNED_FIRST_INDEX
        )  # fmt: skip
        return _pieces(indices, spans, done, errors)

    def _prepare_single(
        self, handle: BinaryIO, probe: audio.Probe, staging: Path
    ) -> tuple[list[Span], list[Staged | None]]:
        """The one request; ``None`` means "send the source bytes as they are"."""
        # a staged re-encoding means an earlier run decided (or was refused) already: send it again
        encoded = Staged.whole(staging, self.formats.transcode_to).path.exists()
        if not encoded and self._as_is(handle, probe):
            return [(0.0, probe.duration_s)], [None]
        whole = staged_whole(handle, staging, self.formats)
        crash_point("after_encode")
        return [(0.0, probe.duration_s)], [whole]

    def _run_chunks(
        self, key: str, sha: str, model: str, options: AsrOptions, spans: list[Span],
        staged: list[Staged | None], handle: BinaryIO, probe: audio.Probe, staging: Path,
    ) -> list[AsrResult]:  # fmt: skip
        done = self.journal.chunk_results(key)
        futures = {}
        for i in (i for i in range(len(spans)) if i not in done):
            park_if_stopping(self.stopping)
            futures[i] = self.pool.submit(
                contextvars.copy_context().run, self._one_chunk, key, sha, i, model, options, staged[i],
                handle, probe, spans[i][1] - spans[i][0], staging,
            )  # fmt: skip
        errors: list[BaseException] = []
        for i, future in futures.items():
            try:
                done[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - collected; the most severe is re-raised, Ctrl-C is not caught
                errors.append(exc)
        if errors:
            raise _most_severe(errors)
        return [answer_from_stored(done[i]) for i in range(len(spans))]

    def _as_is(self, handle: BinaryIO, probe: audio.Probe) -> bool:
        """Whether the policy sends this whole file as it is, and it fits one request."""
        limit = INLINE_RAW_MAX_BYTES if self.storage.sync_only else SYNC_MAX_BYTES
        if self.max_upload_bytes is not None:
            limit = self.max_upload_bytes
        return takes_as_is(self.formats, probe) and os.fstat(handle.fileno()).st_size <= limit

    def sent_as(self, key: str) -> str | None:
        """The re-encoding a single request fell back to after a format refusal; None when it did not."""
        stored = self.journal.chunk_results(key).get(0) or {}
        sent_as = stored.get("sent_as")
        return sent_as if isinstance(sent_as, str) else None

    def _one_chunk(
        self, key: str, sha: str, index: int, model: str, options: AsrOptions, staged: Staged | None,
        handle: BinaryIO, probe: audio.Probe, sent_s: float, staging: Path,
    ) -> dict[str, Any]:  # fmt: skip
        park_if_stopping(self.stopping)
        # a whole-file re-encoding of a file the policy sends as it is exists only after a refusal
        fallback = staged is not None and staged.part == "whole" and self._as_is(handle, probe)
        try:
            result, call_id = self._send(key, sha, index, model, options, staged, handle, probe)
        except RemoteRejectedError as exc:
            if fallback and staged is not None:
                raise refused_again(None, exc, staged.encoding) from exc
            if not earns_reencoding(exc, sent_as_is=staged is None, chunk=index):
                raise
            staged = staged_whole(handle, staging, self.formats)
            crash_point("after_encode")
            try:
                result, call_id = self._send(key, sha, index, model, options, staged, handle, probe)
            except RemoteRejectedError as again:
                raise refused_again(exc, again, staged.encoding) from again
            fallback = True
        crash_point("after_call")
        # a backend without a seconds report gives 0 here: nothing to hold the answer against
        short = truncation(sent_s, result.usage_seconds or None)
        if short is not None:  # not stored: the next attempt asks again
            self.journal.call_ended(call_id, TRUNCATED_OUTCOME, result.request_id)
            log.warning("answer_truncated", chunk=index, request_id=result.request_id,
                        sent_s=round(sent_s, 3), usage_seconds=result.usage_seconds)  # fmt: skip
            raise refusal(short, truncated_answers(self.journal.calls_of(key), index), result.request_id)
        stored = answer_to_stored(result)
        if fallback and staged is not None:
            stored["sent_as"] = staged.encoding.container
        record_paid(
            lambda: self.journal.store_chunk_result(key, index, stored, call_id=call_id,
                                                    request_id=result.request_id),
            self.stopping, chunk=index, request_id=result.request_id,
        )  # fmt: skip
        log.info("chunk_recognized", chunk=index, request_id=result.request_id,
                 usage_seconds=result.usage_seconds)  # fmt: skip
        crash_point("after_chunk_stored")
        return stored

    def _send(
        self, key: str, sha: str, index: int, model: str, options: AsrOptions, staged: Staged | None,
        handle: BinaryIO, probe: audio.Probe,
    ) -> tuple[AsrResult, int]:  # fmt: skip
        """One journaled call with the source (``staged`` None) or a re-encoding; its answer and call id."""
        url = self.objects.upload(sha, model, handle, probe, staged)
        crash_point("after_upload")
        call_id = self.journal.call_started(key, index, "sync")
        crash_point("before_call")
        try:
            result = self.client.recognize(
                model, url, options, oss_resolve=self.storage.oss_resolve,
                before_send=lambda: park_if_stopping(self.stopping),
            )  # fmt: skip
        except ParkedError:
            self.journal.call_ended(call_id, "parked", None)  # never sent
            raise
        except (TransientError, RemoteRejectedError) as exc:
            self.journal.call_ended(call_id, type(exc).__name__, getattr(exc, "request_id", None))
            raise
        return result, call_id


def _pieces(
    indices: list[int], spans: list[Span], done: dict[int, dict[str, Any]], errors: list[BaseException]
) -> list[Piece]:
    if errors:
        raise _most_severe(errors)
    return [(answer_from_stored(done[i]), a, b) for i, (a, b) in zip(indices, spans, strict=True)]


def _most_severe(errors: list[BaseException]) -> BaseException:
    """Account problems first (pause), then rejections, then parking, then transient errors."""
    for kind in (AccountError, InputRejectedError, RemoteRejectedError, ParkedError, TransientError):
        for exc in errors:
            if isinstance(exc, kind):
                return exc
    return errors[0]


def _too_long(error: BaseException) -> bool:
    """A chunk the API refused for its length, or too big for an inline request: shorter ones would go."""
    if isinstance(error, RemoteRejectedError):
        return refused_for_length(error.remote_code, error.message)
    return isinstance(error, InputRejectedError) and error.code == "too_large"
