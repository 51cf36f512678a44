"""One file's way through the service: take, verify, recognize, write sidecars, move.

Every step that has an effect outside the process is preceded by a committed journal entry, so that a
restart at any point (see ``crashpoints``) knows what was done and never repeats a paid recognition
whose answer was recorded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from dropscribe import __version__
from dropscribe.adapters import audio, files, sniff, writers
from dropscribe.adapters.dashscope import DashScopeClient, ResultExpiredError
from dropscribe.adapters.journal import Job, Journal
from dropscribe.adapters.storage import PayloadTooLargeError, Storage
from dropscribe.config.model import EffectiveRules, InboxSettings
from dropscribe.core import transcript
from dropscribe.core.chunking import plan_chunks
from dropscribe.core.errors import (
    AsrUnavailableError,
    InputRejectedError,
    OutputFullError,
    RemoteRejectedError,
    ShareUnavailableError,
    TransientError,
)
from dropscribe.core.gate import result_key_material
from dropscribe.core.naming import object_key, short_format_name, sidecar_name
from dropscribe.core.recognition import (
    FILETRANS_MODEL,
    AsrOptions,
    AsrResult,
    Sentence,
    accepts_options,
    is_filetrans_model,
)
from dropscribe.logs import get_logger
from dropscribe.service.crashpoints import crash_point

# A data URL grows by 4/3; staying under this keeps the encoded request within DashScope's 10 MB.
INLINE_RAW_MAX_BYTES = 7 * 1024 * 1024
SYNC_MAX_BYTES = 10 * 1024 * 1024
POLL_FIRST_S, POLL_FACTOR, POLL_MAX_S = 2.0, 1.5, 30.0

log = get_logger()


class ParkedError(Exception):
    """The service is stopping: leave the job as it is, the journal lets a restart resume it."""


class ChangedError(Exception):
    """The source changed after it was taken; its results are stale and it must be gated again."""


class GoneError(Exception):
    """The source disappeared from the inbox before it was finished."""


class BusyError(Exception):
    """Another process still has the file open for writing: it is looked at again after ``wait_s``."""

    def __init__(self, wait_s: float) -> None:
        super().__init__("open for writing")
        self.wait_s = wait_s


class IncompleteError(Exception):
    """The file looks unfinished and changed recently: it waits ``wait_s`` and is gated again."""

    def __init__(self, code: str, wait_s: float) -> None:
        super().__init__(code)
        self.code = code
        self.wait_s = wait_s


# what a transfer that stalled half-way looks like; other rejections do not depend on time
INCOMPLETE_CODES = frozenset({"empty_file", "empty_audio", "not_audio", "truncated_audio", "corrupt_audio"})


class ContentLocks:
    """Same bytes under two names are recognized once: the second waits and reuses the answer.

    One instance serves the whole process, across reloads (a reload builds a new pipeline while the old
    one still finishes its files); entries go with their last user, since the service runs for months.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(frozen=True)
class Outcome:
    """How a take ended: ``done``, ``failed``, or ``skipped`` (not ready or held)."""

    state: str
    job_id: int | None = None
    final_path: Path | None = None


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Pipeline:
    def __init__(
        self,
        *,
        journal: Journal,
        client: DashScopeClient,
        storage: Storage,
        staging_dir: Path,
        concurrency: int,
        stopping: threading.Event,
        content_locks: ContentLocks | None = None,
    ) -> None:
        self.journal = journal
        self.client = client
        self.storage = storage
        self.staging_dir = staging_dir
        self.stopping = stopping
        self._chunk_pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="chunk")
        self.content_locks = content_locks if content_locks is not None else ContentLocks()

    def close(self) -> None:
        self._chunk_pool.shutdown(wait=True, cancel_futures=True)

    def _check_stop(self) -> None:
        if self.stopping.is_set():
            raise ParkedError()

    # taking a file -----------------------------------------------------------------------------

    def take(
        self, inbox: InboxSettings, relpath: str, rules: EffectiveRules, *, changed_at: float | None = None
    ) -> Outcome:
        """Process one settled file from ``inbox``; raises TransientError/AccountError to retry later.

        ``changed_at`` is when the service last saw the file change, on ``time.monotonic()``: how long an
        unfinished-looking file has been quiet is measured on the service's clock, never by comparing
        the share's mtime with local time (a NAS clock may lag by minutes).
        """
        if changed_at is None:
            changed_at = time.monotonic()
        path = inbox.path / relpath
        active = self.journal.active_job(str(inbox.path), relpath)
        if active is not None and active.state == "finishing":
            return self.finish(active, inbox, rules)
        try:
            handle = files.open_input(path)
        except FileNotFoundError:
            if active is not None:
                self.journal.abandon(active.id, "source disappeared before it was taken")
            return Outcome("skipped")
        except InputRejectedError as exc:
            st = os.lstat(path)
            job = self.journal.start_job(
                str(inbox.path), relpath, sha256="", size=st.st_size, dev=st.st_dev, ino=st.st_ino,
                mtime_ns=st.st_mtime_ns, result_key=None, meta={},
            )  # fmt: skip
            return self.reject(job, inbox, rules, exc)
        with handle:
            if writers.held_for_writing(handle.fileno()):
                log.info("job_waiting", inbox=str(inbox.path), relpath=relpath,
                         reason="another process has it open for writing")  # fmt: skip
                raise BusyError(max(1.0, inbox.settle_s))
            return self._take_open(inbox, relpath, rules, handle, changed_at)

    def _take_open(
        self, inbox: InboxSettings, relpath: str, rules: EffectiveRules, handle: BinaryIO, changed_at: float
    ) -> Outcome:
        ident = files.Identity.of(os.fstat(handle.fileno()))
        meta: dict[str, Any] = {"name": PurePosixPath(relpath).name}
        too_big = ident.size > rules.max_size_mb * 1024 * 1024
        if too_big or ident.size == 0:
            # decided from the size alone: an oversized (or sparse) file is never read, let alone sent
            job = self.journal.start_job(
                str(inbox.path), relpath, sha256="", size=ident.size, dev=ident.dev, ino=ident.ino,
                mtime_ns=ident.mtime_ns, result_key=None, meta=meta,
            )  # fmt: skip
            error = (
                InputRejectedError("too_large", f"{ident.size} bytes is over the "
                                   f"{rules.max_size_mb:g} MB limit (max_size_mb)")
                if too_big else InputRejectedError("empty_file", "the file is empty (0 bytes)")
            )  # fmt: skip
            return self._reject_unless_young(job, inbox, rules, error, changed_at)
        sha, size = files.hash_file(handle)
        after = files.Identity.of(os.fstat(handle.fileno()))
        if size != ident.size or not after.same_content(ident):
            raise ChangedError()  # still being written after all: back to the gate
        job = self.journal.start_job(
            str(inbox.path), relpath, sha256=sha, size=size, dev=ident.dev, ino=ident.ino,
            mtime_ns=ident.mtime_ns, result_key=None, meta=meta,
        )  # fmt: skip
        log.info("job_taken", job_id=job.id, inbox=str(inbox.path), relpath=relpath, sha256=sha,
                 size_bytes=size)  # fmt: skip
        crash_point("after_take")
        kind, unfinished = sniff.look(handle)
        if unfinished is not None:
            # decodable or not, a cut tail is a transfer that stopped; it waits like any unfinished file
            cut = InputRejectedError("truncated_audio", f"the file looks cut off: {unfinished}")
            return self._reject_unless_young(job, inbox, rules, cut, changed_at)
        try:
            probe = audio.probe(handle)
            meta.update(duration_s=round(probe.duration_s, 3),
                        format=short_format_name(probe.format_name, relpath))  # fmt: skip
            if probe.duration_s <= 0:
                raise InputRejectedError("empty_audio", "the audio stream has no duration")
            if probe.duration_s > rules.max_duration_s:
                raise InputRejectedError(
                    "too_long",
                    f"{probe.duration_s:.0f} s is over the {rules.max_duration_s:g} s limit (max_duration_s)",
                )
            if probe.duration_s <= rules.chunk_max_s:
                # a short file is sent as it is, so decode it once first: a truncated or damaged
                # recording must come back as such, not as half a transcript (long files are decoded
                # for splitting anyway, which runs the same checks)
                audio.measure_energy(handle)
        except InputRejectedError as exc:
            # only the head of real media is worth waiting for; text or random bytes stay what they are
            young = kind is not None
            return self._reject_unless_young(self.journal.get(job.id), inbox, rules, exc, changed_at, young)
        crash_point("after_probe")
        try:
            key = self._obtain_result(sha, handle, probe, rules, meta, job_id=job.id)
        except (RemoteRejectedError, InputRejectedError) as exc:
            self.journal.set_result_key(job.id, meta.get("result_key", ""), meta)
            if isinstance(exc, InputRejectedError):
                return self._reject_unless_young(self.journal.get(job.id), inbox, rules, exc, changed_at)
            return self.reject(self.journal.get(job.id), inbox, rules, exc)
        self.journal.set_result_key(job.id, key, meta)
        return self.finish(self.journal.get(job.id), inbox, rules)

    def recognize_open(self, handle: BinaryIO, rules: EffectiveRules) -> dict[str, Any]:
        """The recognition part of a take, for one-shot use: no job, no sidecars, no move."""
        sha, _size = files.hash_file(handle)
        probe = audio.probe(handle)
        meta: dict[str, Any] = {}
        key = self._obtain_result(sha, handle, probe, rules, meta)
        result = self.journal.result(key)
        assert result is not None
        result = {k: v for k, v in result.items() if k != "paid_by"}
        return {**result, "sha256": sha, "duration_s": round(probe.duration_s, 3)}

    def _obtain_result(
        self, sha: str, handle: BinaryIO, probe: audio.Probe, rules: EffectiveRules, meta: dict[str, Any],
        *, job_id: int | None = None,
    ) -> str:  # fmt: skip
        """The stored result for these bytes and options, recognizing only if there is none yet."""
        options = AsrOptions(rules.language, rules.enable_itn, rules.context)
        mode = self._mode(rules, probe.duration_s)
        model = self._model_for(rules, mode)
        context_sha = hashlib.sha256(rules.context.encode()).hexdigest() if rules.context else None
        key = hashlib.sha256(
            result_key_material(
                sha, model=model, language=options.language, enable_itn=options.enable_itn,
                context_sha256=context_sha, mode=mode, chunk_max_s=rules.chunk_max_s,
            ).encode()
        ).hexdigest()  # fmt: skip
        meta.update(model=model, mode=mode, context_sha256=context_sha, result_key=key)
        with self.content_locks.hold(key):
            stored = self.journal.result(key)
            if stored is None:
                result = self._recognize(key, sha, handle, probe, model, options, mode, rules)
                result["paid_by"] = {"job_id": job_id, "name": meta.get("name"), "sha256": sha}
                self.journal.store_result(key, result)
                log.info("result_stored", sha256=sha, usage_seconds=result["usage_seconds"],
                         request_ids=result["request_ids"])  # fmt: skip
                crash_point("after_result_stored")
            elif job_id is None or (stored.get("paid_by") or {}).get("job_id") != job_id:
                meta["reused"] = True  # this file pays nothing: the answer was bought for the same bytes
                log.info("result_reused", sha256=sha, paid_by=(stored.get("paid_by") or {}).get("name"))
        return key

    @staticmethod
    def _mode(rules: EffectiveRules, duration_s: float) -> str:
        if is_filetrans_model(rules.model):
            return "filetrans"
        if duration_s <= rules.chunk_max_s:
            return "single"
        return "filetrans" if rules.long_audio == "filetrans" else "split"

    @staticmethod
    def _model_for(rules: EffectiveRules, mode: str) -> str:
        if mode == "filetrans":
            return rules.model if is_filetrans_model(rules.model) else FILETRANS_MODEL
        return rules.model

    # recognition -------------------------------------------------------------------------------

    def _recognize(
        self, key: str, sha: str, handle: BinaryIO, probe: audio.Probe, model: str,
        options: AsrOptions, mode: str, rules: EffectiveRules,
    ) -> dict[str, Any]:  # fmt: skip
        staging = self.staging_dir / key[:32]
        staging.mkdir(parents=True, exist_ok=True)
        if not accepts_options(model):
            options = AsrOptions()
        if mode == "filetrans":
            result = self._filetrans(key, sha, handle, probe, model, options, staging)
            pieces = [(result, 0.0, probe.duration_s)]
            segments = list(result.sentences) or [Sentence(0.0, probe.duration_s, result.text)]
        else:
            spans, paths = self._prepare_sync(handle, probe, rules, mode, staging)
            results = self._run_chunks(key, sha, model, options, spans, paths, handle, probe)
            pieces = [(results[i], spans[i][0], spans[i][1]) for i in range(len(spans))]
            segments = [Sentence(start, end, r.text) for r, start, end in pieces]
        texts = [r.text for r, _, _ in pieces]
        first = next((r for r, _, _ in pieces if r.language), pieces[0][0])
        shutil.rmtree(staging, ignore_errors=True)
        return {
            "text": transcript.join_texts(texts),
            "language": first.language,
            "emotion": first.emotion,
            "segments": transcript.segments_to_json(segments),
            "request_ids": [r.request_id for r, _, _ in pieces if r.request_id],
            "usage_seconds": sum(r.usage_seconds for r, _, _ in pieces),
            "model": model,
            "mode": mode,
            "chunks": len(pieces),
        }

    def _prepare_sync(
        self, handle: BinaryIO, probe: audio.Probe, rules: EffectiveRules, mode: str, staging: Path
    ) -> tuple[list[tuple[float, float]], list[Path | None]]:
        """Chunks to send; ``None`` as a path means "send the source bytes as they are"."""
        if mode == "single":
            limit = INLINE_RAW_MAX_BYTES if self.storage.sync_only else SYNC_MAX_BYTES
            if audio.is_sendable_as_is(probe) and os.fstat(handle.fileno()).st_size <= limit:
                return [(0.0, probe.duration_s)], [None]
            out = staging / "whole.flac"
            if not out.exists():
                audio.transcode(handle, out)
            crash_point("after_encode")
            return [(0.0, probe.duration_s)], [out]
        spans_file = staging / "spans.txt"
        if spans_file.exists():
            spans = [(float(a), float(b)) for a, b in
                     (line.split() for line in spans_file.read_text().splitlines())]  # fmt: skip
        else:
            energies, duration = audio.measure_energy(handle)
            spans = plan_chunks(energies, 0.1, duration, rules.chunk_max_s)
            files.atomic_write(spans_file, "".join(f"{a!r} {b!r}\n" for a, b in spans).encode())
        paths = [staging / f"chunk-{i:04d}.flac" for i in range(len(spans))]
        if not all(p.exists() for p in paths):
            paths = list(audio.encode_chunks(handle, spans, staging))
        crash_point("after_encode")
        return spans, list(paths)

    def _run_chunks(
        self, key: str, sha: str, model: str, options: AsrOptions, spans: list[tuple[float, float]],
        paths: list[Path | None], handle: BinaryIO, probe: audio.Probe,
    ) -> list[AsrResult]:  # fmt: skip
        done = self.journal.chunk_results(key)
        todo = [i for i in range(len(spans)) if i not in done]
        context = options.context
        futures = {}
        for i in todo:
            self._check_stop()
            futures[i] = self._chunk_pool.submit(
                self._one_chunk, key, sha, i, model, AsrOptions(options.language, options.enable_itn,
                                                                context), paths[i], handle, probe,
            )  # fmt: skip
        errors: list[BaseException] = []
        for i, future in futures.items():
            try:
                done[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - collected; the most severe is re-raised, Ctrl-C is not caught
                errors.append(exc)
        if errors:
            raise _most_severe(errors)
        return [_result_from(done[i]) for i in range(len(spans))]

    def _one_chunk(
        self, key: str, sha: str, index: int, model: str, options: AsrOptions, path: Path | None,
        handle: BinaryIO, probe: audio.Probe,
    ) -> dict[str, Any]:  # fmt: skip
        self._check_stop()
        if path is None:
            suffix = PurePosixPath(probe.format_name.split(",")[0]).name
            okey = object_key(sha, "source", f".{suffix}")
            with os.fdopen(os.dup(handle.fileno()), "rb") as data:
                data.seek(0)
                url = self._put(okey, data, os.fstat(data.fileno()).st_size, audio.mime_type(probe), model)
        else:
            okey = object_key(sha, path.stem, ".flac")
            with open(path, "rb") as data:
                url = self._put(okey, data, path.stat().st_size, "audio/flac", model)
        crash_point("after_upload")
        call_id = self.journal.call_started(key, index, "sync")
        crash_point("before_call")
        try:
            result = self.client.recognize(
                model, url, options, oss_resolve=self.storage.oss_resolve, before_send=self._check_stop
            )
        except ParkedError:
            self.journal.call_ended(call_id, "parked", None)  # never sent
            raise
        except (TransientError, RemoteRejectedError) as exc:
            self.journal.call_ended(call_id, type(exc).__name__, getattr(exc, "request_id", None))
            raise
        crash_point("after_call")
        stored = _result_to(result)
        self.journal.store_chunk_result(key, index, stored)
        self.journal.call_ended(call_id, "ok", result.request_id)
        log.info("chunk_recognized", chunk=index, request_id=result.request_id,
                 usage_seconds=result.usage_seconds)  # fmt: skip
        crash_point("after_chunk_stored")
        return stored

    def _put(self, okey: str, data: BinaryIO, size: int, content_type: str, model: str) -> str:
        self.journal.object_created(okey)
        try:
            return self.storage.put(okey, data, size, content_type, model)
        except PayloadTooLargeError as exc:
            raise InputRejectedError("too_large", str(exc)) from exc

    def _filetrans(
        self, key: str, sha: str, handle: BinaryIO, probe: audio.Probe, model: str,
        options: AsrOptions, staging: Path,
    ) -> AsrResult:  # fmt: skip
        task = self.journal.task(key)
        if task is None or task[0] is None:
            # no task id recorded: either never submitted, or the process died inside the submit
            # round trip; the latter is the one window where a second submission can happen
            if audio.is_sendable_as_is(probe):
                suffix = probe.format_name.split(",")[0]
                okey = object_key(sha, "source", f".{suffix}")
                with os.fdopen(os.dup(handle.fileno()), "rb") as data:
                    data.seek(0)
                    url = self._put(okey, data, os.fstat(data.fileno()).st_size,
                                    audio.mime_type(probe), model)  # fmt: skip
            else:
                out = staging / "whole.flac"
                if not out.exists():
                    audio.transcode(handle, out)
                with open(out, "rb") as data:
                    url = self._put(object_key(sha, "whole", ".flac"), data, out.stat().st_size,
                                    "audio/flac", model)  # fmt: skip
            self.journal.task_submitting(key)
            crash_point("before_submit")
            call_id = self.journal.call_started(key, 0, "submit")
            try:
                task_id, request_id = self.client.submit_filetrans(
                    model, url, options, oss_resolve=self.storage.oss_resolve, before_send=self._check_stop
                )
            except ParkedError:
                self.journal.forget_task(key)  # never sent: nothing to look for after the restart
                self.journal.call_ended(call_id, "parked", None)
                raise
            crash_point("after_submit")
            self.journal.task_submitted(key, task_id, request_id)
            self.journal.call_ended(call_id, "submitted", request_id)
            log.info("task_submitted", task_id=task_id, request_id=request_id)
            crash_point("after_task_stored")
        else:
            task_id = task[0]
        return self._wait_task(key, task_id)

    def _wait_task(self, key: str, task_id: str) -> AsrResult:
        delay = POLL_FIRST_S
        while True:
            self._check_stop()
            state = self.client.poll_task(task_id)
            if state.status == "SUCCEEDED" and state.transcription_url:
                try:
                    result = self.client.fetch_transcription(state.transcription_url)
                except ResultExpiredError:
                    self.journal.forget_task(key)
                    raise
                return AsrResult(
                    text=result.text, language=result.language, emotion=result.emotion,
                    request_id=state.request_id or result.request_id,
                    usage_seconds=state.usage_seconds or result.usage_seconds,
                    sentences=result.sentences,
                )  # fmt: skip
            if state.status in ("FAILED", "CANCELED", "UNKNOWN"):
                self.journal.forget_task(key)
                if state.status == "FAILED" and state.code not in ("FILE_DOWNLOAD_FAILED", None):
                    raise RemoteRejectedError(state.code or "FAILED", state.message or "", state.request_id)
                raise AsrUnavailableError(
                    f"task {state.status.lower()}: {state.code or ''} {state.message or ''}".strip(),
                    remote_code=state.code,
                )
            if self.stopping.wait(delay):
                raise ParkedError()
            delay = min(POLL_MAX_S, delay * POLL_FACTOR)

    # finishing ---------------------------------------------------------------------------------

    def _reject_unless_young(
        self, job: Job, inbox: InboxSettings, rules: EffectiveRules, exc: InputRejectedError,
        changed_at: float, may_grow: bool = True,
    ) -> Outcome:  # fmt: skip
        """A stalled upload looks just like a broken file; only time tells them apart.

        ``may_grow`` is False for a file whose head carries no known media signature: no amount of
        waiting turns it into a recording, so it fails at once.
        """
        if exc.code in INCOMPLETE_CODES and may_grow:
            wait_s = changed_at + inbox.incomplete_wait_s - time.monotonic()
            if wait_s > 0:
                log.info(
                    "job_waiting",
                    job_id=job.id,
                    relpath=job.relpath,
                    code=exc.code,
                    reason="looks unfinished, changed recently",
                    retry_in_s=round(wait_s, 1),
                )
                raise IncompleteError(exc.code, wait_s)
        return self.reject(job, inbox, rules, exc)

    def reject(
        self, job: Job, inbox: InboxSettings, rules: EffectiveRules,
        exc: InputRejectedError | RemoteRejectedError,
    ) -> Outcome:  # fmt: skip
        if isinstance(exc, InputRejectedError):
            error = {"code": exc.code, "message": exc.message}
        else:
            error = {"code": "asr_rejected", "message": exc.message, "remote_code": exc.remote_code}
        log.warning("job_rejected", job_id=job.id, relpath=job.relpath, **error)
        if job.result_key:  # the rejection is final: chunks made for it will never be sent again
            shutil.rmtree(self.staging_dir / job.result_key[:32], ignore_errors=True)
        return self._decide_and_finish(job, inbox, rules, "failed", error)

    def finish(self, job: Job, inbox: InboxSettings, rules: EffectiveRules) -> Outcome:
        return self._decide_and_finish(job, inbox, rules, job.outcome or "done", job.error)

    def _decide_and_finish(
        self, job: Job, inbox: InboxSettings, rules: EffectiveRules, outcome: str,
        error: dict[str, Any] | None,
    ) -> Outcome:  # fmt: skip
        source = inbox.path / job.relpath
        rel = PurePosixPath(job.relpath)
        target_dir = self.target_dir(job.relpath, outcome, inbox)
        for _attempt in range(3):
            if job.final_name is None:
                final_name = files.choose_free_name(target_dir, rel.name)
                self.journal.decide(job.id, outcome=outcome, final_name=final_name, error=error)
                job = self.journal.get(job.id)
                crash_point("after_decide")
            assert job.final_name is not None
            target = target_dir / job.final_name
            moved = self._already_moved(job, source, target)
            if moved is not None:
                try:
                    return self._write_and_move(job, inbox, rules, outcome, error, source, target, moved)
                except FileExistsError:
                    pass  # the sidecars written for that name were removed again
            # another file took the chosen name since it was chosen: choose again
            log.warning("name_taken", job_id=job.id, final=str(target),
                        action="choosing another name in the same folder")  # fmt: skip
            job = self._redecide(job)
        raise ShareUnavailableError(f"could not find a free name in {target_dir}")

    def _redecide(self, job: Job) -> Job:
        self.journal.restart(job.id)
        return self.journal.get(job.id)

    def _write_and_move(
        self, job: Job, inbox: InboxSettings, rules: EffectiveRules, outcome: str,
        error: dict[str, Any] | None, source: Path, target: Path, moved: bool,
    ) -> Outcome:  # fmt: skip
        assert job.final_name is not None
        target_dir = target.parent
        if not moved:
            self._verify_unchanged(job, source)
        if outcome == "done":
            documents = self._done_documents(job, rules, target)
        else:
            documents = {".error.json": self._error_document(job, target)}
        written = [target_dir / sidecar_name(job.final_name, suffix) for suffix in documents]
        mode, group = self._sidecar_mode(inbox, target if moved else source)
        try:
            for path, body in zip(written, documents.values(), strict=True):
                files.atomic_write(path, body, mode=mode, group=group)
                crash_point("mid_sidecars")
            crash_point("after_sidecars")
            if not moved:
                self._verify_unchanged(job, source, written=written)
                files.move_no_clobber(source, target, after_copy=lambda: crash_point("mid_move"))
        except FileExistsError:
            self._remove(written)
            raise
        except FileNotFoundError as exc:
            # the source went away while its sidecars were written: no transcript without its recording
            self._remove(written)
            raise GoneError() from exc
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._remove(written)  # a transcript never waits in done/ for a recording that cannot follow
            message = f"no space left in {target_dir} ({exc.strerror}); the file waits in its inbox"
            raise OutputFullError(str(target_dir), message) from exc
        crash_point("after_move")
        # objects go before the job is marked finished: a crash in between repeats an idempotent
        # delete, where the other order would leave them in the bucket for good
        self._cleanup_objects(job)
        self.journal.finish(job.id, final_identity=_identity_of(target))
        crash_point("after_finish")
        log.info("job_done" if outcome == "done" else "job_failed", job_id=job.id, relpath=job.relpath,
                 final=str(target), code=(error or {}).get("code"))  # fmt: skip
        return Outcome(outcome, job.id, target)

    @staticmethod
    def _sidecar_mode(inbox: InboxSettings, recording: Path) -> tuple[int, int | None]:
        """Sidecars are readable by whoever may read the recording: its group and mode, or file_mode."""
        try:
            st = os.lstat(recording)
        except OSError:
            return (inbox.file_mode if inbox.file_mode is not None else 0o640), None
        if inbox.file_mode is not None:
            return inbox.file_mode, st.st_gid
        return stat.S_IMODE(st.st_mode) & 0o666, st.st_gid

    @staticmethod
    def _remove(paths: list[Path]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    @staticmethod
    def target_dir(relpath: str, outcome: str, inbox: InboxSettings) -> Path:
        """``done/<relpath's folder>`` or ``failed/<relpath's folder>``."""
        return (inbox.done if outcome == "done" else inbox.failed) / PurePosixPath(relpath).parent

    @staticmethod
    def _already_moved(job: Job, source: Path, target: Path) -> bool | None:
        """Whether a crash mid-move left the source in ``target`` already; None if ``target`` is another file.

        A same-filesystem move links the same inode; a cross-device move copies, so the copy is
        recognized by its bytes (size and SHA-256), whether or not the source was removed yet.
        """
        try:
            st_target = os.lstat(target)
        except FileNotFoundError:
            return False
        if st_target.st_ino == job.ino and st_target.st_dev == job.dev:
            if os.path.lexists(source):
                os.unlink(source)  # the link() happened, the unlink() did not
                files.fsync_dir(source.parent)
            return True
        if st_target.st_size != job.size or not job.sha256:
            return None
        with open(target, "rb") as copy:
            if files.hash_file(copy)[0] != job.sha256:
                return None
        with contextlib.suppress(FileNotFoundError):
            st_source = os.lstat(source)
            # a new file that took the source's name since is not ours to remove
            if (st_source.st_dev, st_source.st_ino) == (job.dev, job.ino):
                os.unlink(source)  # the copy was complete and in place; only the removal was missing
                files.fsync_dir(source.parent)
        return True

    def _verify_unchanged(self, job: Job, source: Path, written: list[Path] | None = None) -> None:
        try:
            st = os.lstat(source)
        except FileNotFoundError as exc:
            self._remove(written or [])
            raise GoneError() from exc
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != (job.dev, job.ino, job.size, job.mtime_ns):
            self._remove(written or [])
            self.journal.restart(job.id)
            raise ChangedError()

    def _source_doc(self, job: Job, target: Path) -> dict[str, Any]:
        return {
            "name": target.name,
            "original_name": PurePosixPath(job.relpath).name,
            "relpath": job.relpath,
            "size_bytes": job.size,
            "sha256": job.sha256 or None,
            "duration_s": job.meta.get("duration_s"),
            "format": job.meta.get("format"),
        }

    def _done_documents(self, job: Job, rules: EffectiveRules, target: Path) -> dict[str, bytes]:
        assert job.result_key is not None
        result = self.journal.result(job.result_key)
        assert result is not None, "a job is only finished as done once its result is stored"
        segments = [Sentence(s["start_s"], s["end_s"], s["text"]) for s in result["segments"]]
        reused = bool(job.meta.get("reused"))
        now = time.time()
        doc = {
            "schema_version": transcript.SCHEMA_VERSION,
            "text": result["text"],
            "language": result["language"],
            "emotion": result["emotion"],
            "segments": result["segments"],
            "model": result["model"],
            "options": {
                "language": rules.language,
                "enable_itn": rules.enable_itn,
                "context_sha256": job.meta.get("context_sha256"),
            },
            "source": self._source_doc(job, target),
            "mode": result["mode"],
            "chunks": result["chunks"],
            "request_ids": result["request_ids"],
            "usage_seconds": 0 if reused else result["usage_seconds"],
            "started_at": utc_iso(job.started_at or job.created_at),
            "finished_at": utc_iso(now),
            "dropscribe_version": __version__,
        }
        if reused:
            paid_by = result.get("paid_by") or {}
            doc["reused"] = True
            doc["reused_from"] = {"sha256": paid_by.get("sha256") or job.sha256, "name": paid_by.get("name"),
                                  "usage_seconds": result["usage_seconds"]}  # fmt: skip
        out: dict[str, bytes] = {}
        if "txt" in rules.outputs:
            out[".txt"] = transcript.render_txt(result["text"]).encode()
        if "json" in rules.outputs:
            out[".json"] = _json_bytes(doc)
        if "srt" in rules.outputs:
            out[".srt"] = transcript.render_srt(segments).encode()
        if "vtt" in rules.outputs:
            out[".vtt"] = transcript.render_vtt(segments).encode()
        return out

    def _error_document(self, job: Job, target: Path) -> bytes:
        error = job.error or {"code": "unknown", "message": ""}
        doc = {
            "schema_version": transcript.SCHEMA_VERSION,
            **error,
            "retryable": False,
            "attempts": job.attempts + 1,
            "request_ids": self.journal.request_ids(job.result_key) if job.result_key else [],
            "source": self._source_doc(job, target),
            "failed_at": utc_iso(time.time()),
            "dropscribe_version": __version__,
        }
        return _json_bytes(doc)

    def _cleanup_objects(self, job: Job) -> None:
        if not job.sha256:
            return
        for okey in self.journal.live_objects(f"{job.sha256[:2]}/{job.sha256}/"):
            try:
                self.storage.delete(okey)
            except TransientError as exc:
                log.warning("object_delete_failed", object_key=okey, error=exc.message)
                continue
            self.journal.object_deleted(okey)


def _json_bytes(doc: dict[str, Any]) -> bytes:
    # a name that was not UTF-8 holds lone surrogates; backslashreplace turns them into JSON escapes
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8", "backslashreplace")


def _identity_of(path: Path) -> dict[str, int] | None:
    """What the finished recording in done/ looked like, to notice a writer that resumes later."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _result_to(result: AsrResult) -> dict[str, Any]:
    return {
        "text": result.text,
        "language": result.language,
        "emotion": result.emotion,
        "request_id": result.request_id,
        "usage_seconds": result.usage_seconds,
    }


def _result_from(stored: dict[str, Any]) -> AsrResult:
    return AsrResult(
        text=stored["text"], language=stored.get("language"), emotion=stored.get("emotion"),
        request_id=stored.get("request_id"), usage_seconds=stored.get("usage_seconds", 0.0),
    )  # fmt: skip


def _most_severe(errors: list[BaseException]) -> BaseException:
    """Account problems first (pause), then rejections, then parking, then transient errors."""
    from dropscribe.core.errors import AccountError

    for kind in (AccountError, InputRejectedError, RemoteRejectedError, ParkedError, TransientError):
        for exc in errors:
            if isinstance(exc, kind):
                return exc
    return errors[0]
