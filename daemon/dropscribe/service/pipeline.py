"""One file's way through the service: take, verify, recognize, write sidecars, move.

Every step that has an effect outside the process is preceded by a committed journal entry, so that a
restart at any point (see ``crashpoints``) knows what was done and never repeats a paid recognition
whose answer was recorded. This module wires the steps together; each lives in its own module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dropscribe.config.model import InboxSettings
from dropscribe.core.errors import InputRejectedError, RemoteRejectedError
from dropscribe.core.formats import FormatPolicy
from dropscribe.core.jobs import Job
from dropscribe.core.openai_wire import upload_chunk_max_s, upload_max_bytes
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.recognizer import Recognizer
from dropscribe.core.ports.storage import Storage
from dropscribe.core.routing import DEFAULT_BACKEND
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.service.backend_health import BackendHealth
from dropscribe.service.budgets import BudgetGate
from dropscribe.service.content_locks import ContentLocks
from dropscribe.service.filetrans_task import FiletransRecognition
from dropscribe.service.finish import Finisher
from dropscribe.service.leases import Leases, holding
from dropscribe.service.objects import SourceObjects
from dropscribe.service.outcomes import ClaimedElsewhereError, Outcome, RetryLaterError
from dropscribe.service.recognize import Backend, Recognition
from dropscribe.service.sync_requests import SyncRecognition
from dropscribe.service.take import Taker


@dataclass(frozen=True)
class BackendSpec:
    """A backend besides the default one: its client, format policy and limits."""

    client: Recognizer
    formats: FormatPolicy
    concurrency: int
    model: str | None = None  # the one model it serves; None: the folder's rule ``model``
    filetrans: bool = False  # whether it runs file-transcription tasks
    max_upload_mb: float | None = None  # its cap on one upload; long audio is chunked to stay under it


class Pipeline:
    def __init__(
        self,
        *,
        journal: Journal,
        client: Recognizer,
        storage: Storage,
        formats: FormatPolicy,
        staging_dir: Path,
        concurrency: int,
        stopping: threading.Event,
        content_locks: ContentLocks | None = None,
        backends: Mapping[str, BackendSpec] | None = None,
        health: BackendHealth | None = None,
        budget: BudgetGate | None = None,
        leases: Leases | None = None,
    ) -> None:
        """``client`` is the ``dashscope`` backend; ``backends`` are the others, by name.

        ``health`` (what each backend did lately) enables failover; ``budget`` caps paid audio;
        ``leases`` (several processes on one journal) has each file claimed before it is touched.
        """
        self.journal = journal
        self.leases = leases
        self.client = client
        self.storage = storage
        self.staging_dir = staging_dir
        self.stopping = stopping
        self.content_locks = content_locks if content_locks is not None else ContentLocks()
        specs = {
            DEFAULT_BACKEND: BackendSpec(client, formats, concurrency, filetrans=True),
            **(backends or {}),
        }
        # one chunk pool per backend: a slow backend's chunks never hold up another's
        self._pools = [
            ThreadPoolExecutor(max(1, spec.concurrency), thread_name_prefix=f"chunk-{name}")
            for name, spec in specs.items()
        ]
        objects = SourceObjects(journal, storage)
        ways: dict[str, Backend] = {}
        for (name, spec), pool in zip(specs.items(), self._pools, strict=True):
            cap = spec.max_upload_mb
            sync = SyncRecognition(
                journal=journal, client=spec.client, storage=storage, objects=objects, formats=spec.formats,
                pool=pool, stopping=stopping, concurrency=max(1, spec.concurrency),
                max_upload_bytes=None if cap is None else upload_max_bytes(cap),
            )  # fmt: skip
            filetrans = FiletransRecognition(
                journal=journal, client=spec.client, storage=storage, objects=objects, formats=spec.formats,
                stopping=stopping,
            )  # fmt: skip
            ways[name] = Backend(name, sync, filetrans if spec.filetrans else None, spec.model,
                                 None if cap is None else upload_chunk_max_s(cap))  # fmt: skip
        self._recognition = Recognition(
            journal=journal, staging_dir=staging_dir, content_locks=self.content_locks, backends=ways,
            health=health, budget=budget,
        )  # fmt: skip
        self._finisher = Finisher(journal=journal, objects=objects, staging_dir=staging_dir)
        self._taker = Taker(journal=journal, recognition=self._recognition, finisher=self._finisher)

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)

    def take(
        self, inbox: InboxSettings, relpath: str, rules: EffectiveRules, *, changed_at: float | None = None
    ) -> Outcome:
        """Process one settled file from ``inbox``; raises TransientError/AccountError to retry later.

        ``changed_at`` is when the service last saw the file change, on ``time.monotonic()``: how long an
        unfinished-looking file has been quiet is measured on the service's clock, never by comparing
        the share's mtime with local time (a NAS clock may lag by minutes).
        """
        changed = time.monotonic() if changed_at is None else changed_at
        if self.leases is None:
            return self._taker.take(inbox, relpath, rules, changed)
        lease = self.leases.claim(str(inbox.path), relpath)
        if lease is None:  # another process works on it; looked at again in case that one dies
            raise ClaimedElsewhereError(self.leases.lease_s / 2)
        try:
            with holding(lease):
                active = self.journal.active_job(str(inbox.path), relpath)
                due_in_s = 0.0 if active is None else active.next_attempt_at - time.time()
                if due_in_s > 0:  # another process put it off after a failure: its backoff holds here too
                    raise RetryLaterError(due_in_s)
                return self._taker.take(inbox, relpath, rules, changed)
        finally:
            self.leases.release(lease)

    def recognize_open(self, handle: BinaryIO, rules: EffectiveRules) -> dict[str, Any]:
        """The recognition part of a take, for one-shot use: no job, no sidecars, no move."""
        return self._recognition.recognize_open(handle, rules)

    def reject(
        self, job: Job, inbox: InboxSettings, rules: EffectiveRules,
        exc: InputRejectedError | RemoteRejectedError,
    ) -> Outcome:  # fmt: skip
        return self._finisher.reject(job, inbox, rules, exc)

    def finish(self, job: Job, inbox: InboxSettings, rules: EffectiveRules) -> Outcome:
        return self._finisher.finish(job, inbox, rules)

    @staticmethod
    def target_dir(relpath: str, outcome: str, inbox: InboxSettings) -> Path:
        """``done/<relpath's folder>`` or ``failed/<relpath's folder>``."""
        return Finisher.target_dir(relpath, outcome, inbox)
