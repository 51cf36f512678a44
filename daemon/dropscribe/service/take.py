"""Taking a settled file: opened safely, refused while a writer holds it, hashed, journaled, checked.

Every check that can refuse a file runs before anything is sent; a file that only looks unfinished is
given time instead (see ``core.readiness``).
"""

from __future__ import annotations

import os
import time
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from dropscribe.adapters import audio, files, sniff, writers
from dropscribe.config.model import InboxSettings
from dropscribe.core.errors import InputRejectedError, RemoteRejectedError
from dropscribe.core.jobs import Job
from dropscribe.core.naming import short_format_name
from dropscribe.core.ports.journal import Journal
from dropscribe.core.readiness import busy_wait_s, unfinished_wait_s
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.logs import get_logger
from dropscribe.service.crashpoints import crash_point
from dropscribe.service.finish import Finisher
from dropscribe.service.outcomes import BusyError, ChangedError, IncompleteError, Outcome
from dropscribe.service.recognize import Recognition

log = get_logger()


class Taker:
    def __init__(self, *, journal: Journal, recognition: Recognition, finisher: Finisher) -> None:
        self.journal = journal
        self.recognition = recognition
        self.finisher = finisher

    def take(self, inbox: InboxSettings, relpath: str, rules: EffectiveRules, changed_at: float) -> Outcome:
        path = inbox.path / relpath
        active = self.journal.active_job(str(inbox.path), relpath)
        if active is not None and active.state == "finishing":
            return self.finisher.finish(active, inbox, rules)
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
            return self.finisher.reject(job, inbox, rules, exc)
        with handle:
            if writers.held_for_writing(handle.fileno()):
                log.info("job_waiting", inbox=str(inbox.path), relpath=relpath,
                         reason="another process has it open for writing")  # fmt: skip
                raise BusyError(busy_wait_s(inbox.settle_s))
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
            probe = self._check_media(handle, relpath, rules, meta)
        except InputRejectedError as exc:
            # only the head of real media is worth waiting for; text or random bytes stay what they are
            young = kind is not None
            return self._reject_unless_young(self.journal.get(job.id), inbox, rules, exc, changed_at, young)
        crash_point("after_probe")
        try:
            key = self.recognition.obtain(sha, handle, probe, rules, meta, job_id=job.id)
        except (RemoteRejectedError, InputRejectedError) as exc:
            self.journal.set_result_key(job.id, meta.get("result_key", ""), meta)
            if isinstance(exc, InputRejectedError):
                return self._reject_unless_young(self.journal.get(job.id), inbox, rules, exc, changed_at)
            return self.finisher.reject(self.journal.get(job.id), inbox, rules, exc)
        self.journal.set_result_key(job.id, key, meta)
        return self.finisher.finish(self.journal.get(job.id), inbox, rules)

    @staticmethod
    def _check_media(
        handle: BinaryIO, relpath: str, rules: EffectiveRules, meta: dict[str, Any]
    ) -> audio.Probe:
        """The probe of a file fit to be sent; ``meta`` receives its duration and format even if it is not."""
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
        return probe

    def _reject_unless_young(
        self, job: Job, inbox: InboxSettings, rules: EffectiveRules, exc: InputRejectedError,
        changed_at: float, looks_like_media: bool = True,
    ) -> Outcome:  # fmt: skip
        """A stalled upload looks just like a broken file; only time tells them apart."""
        wait_s = unfinished_wait_s(
            exc.code, looks_like_media=looks_like_media, quiet_s=time.monotonic() - changed_at,
            incomplete_wait_s=inbox.incomplete_wait_s,
        )  # fmt: skip
        if wait_s is None:
            return self.finisher.reject(job, inbox, rules, exc)
        log.info(
            "job_waiting",
            job_id=job.id,
            relpath=job.relpath,
            code=exc.code,
            reason="looks unfinished, changed recently",
            retry_in_s=round(wait_s, 1),
        )
        raise IncompleteError(exc.code, wait_s)
