"""A recording's result: looked up by its key, or bought once and stored before anything else happens.

Which backend buys it is decided here, per file, from the folder's ``backend`` and ``fallback_backend``
and what :class:`BackendHealth` knows (see :mod:`dropscribe.core.failover`); every answer, transient
failure and account problem is reported back to it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dropscribe.adapters import audio, files
from dropscribe.core.errors import AccountError, InputRejectedError, ShareUnavailableError, TransientError
from dropscribe.core.ports.journal import Journal
from dropscribe.core.recognition import AsrOptions, accepts_options
from dropscribe.core.results import chunk_segments, task_segments, whole_result
from dropscribe.core.routing import Route, route
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.logs import get_logger
from dropscribe.service.backend_health import BackendAccountError, BackendHealth
from dropscribe.service.budgets import BudgetGate, spending
from dropscribe.service.content_locks import ContentLocks
from dropscribe.service.crashpoints import crash_point
from dropscribe.service.filetrans_task import FiletransRecognition
from dropscribe.service.staging_sweep import note_owner
from dropscribe.service.sync_requests import SyncRecognition

log = get_logger()


@dataclass(frozen=True)
class Backend:
    """One configured backend as recognition uses it."""

    name: str
    sync: SyncRecognition
    filetrans: FiletransRecognition | None  # None: the backend has no file transcription
    model: str | None = None  # the model the backend serves; None: the folder's rule ``model``
    chunk_cap_s: float | None = None  # the longest chunk its upload cap allows


class Recognition:
    def __init__(
        self, *, journal: Journal, staging_dir: Path, content_locks: ContentLocks,
        backends: Mapping[str, Backend], health: BackendHealth | None = None,
        budget: BudgetGate | None = None,
    ) -> None:  # fmt: skip
        self.journal = journal
        self.staging_dir = staging_dir
        self.content_locks = content_locks
        self.backends = backends
        self.health = health  # None: no failover, and an account problem is the primary's as before
        self.budget = budget  # None: no budgets (one-shot use)

    def backend(self, name: str) -> Backend:
        """The backend a rule names; one that is not configured (a rule file's typo) refuses the file."""
        try:
            return self.backends[name]
        except KeyError:
            configured = ", ".join(sorted(self.backends))
            raise InputRejectedError(
                "unknown_backend", f"the rules name backend {name!r}, which is not configured ({configured})"
            ) from None

    def obtain(
        self, sha: str, handle: BinaryIO, probe: audio.Probe, rules: EffectiveRules, meta: dict[str, Any],
        *, job_id: int | None = None,
    ) -> str:  # fmt: skip
        """The key of the stored result for these bytes and rules, recognizing only if there is none yet.

        ``meta`` receives the route (and ``reused`` when another job paid), even if recognition fails;
        its ``backend`` is the one that answered.
        """
        primary = self.backend(rules.backend)
        if self.health is None:
            return self._obtain_on(primary, sha, handle, probe, rules, meta, job_id)
        begun = self._begun(primary, sha, probe, rules)
        choice = self.health.route(rules, begun_on=primary.name if begun else None)
        backend = self.backend(choice.backend)
        if choice.failed_over or choice.probe:
            log.info("backend_failover", sha256=sha, backend=backend.name, primary=primary.name,
                     probe=choice.probe)  # fmt: skip
        try:
            return self._obtain_on(backend, sha, handle, probe, rules, meta, job_id)
        except (AccountError, TransientError) as exc:
            fallback = self._fallback_after(exc, backend, primary, choice.probe, sha, probe, rules)
            if fallback is None:
                if isinstance(exc, AccountError):
                    raise BackendAccountError(backend.name, exc) from exc
                raise
            log.warning("backend_failover", sha256=sha, backend=fallback.name, primary=primary.name,
                        error=str(exc), reason="the primary failed this file")  # fmt: skip
        try:
            return self._obtain_on(fallback, sha, handle, probe, rules, meta, job_id)
        except AccountError as second:
            raise BackendAccountError(fallback.name, second) from second

    def _fallback_after(
        self, exc: Exception, backend: Backend, primary: Backend, probing: bool, sha: str,
        probe: audio.Probe, rules: EffectiveRules,
    ) -> Backend | None:  # fmt: skip
        """Where a file goes on at once after its primary failed it: the fallback after an account
        problem or a failed probe (the primary is down either way), unless the file has begun there."""
        name = rules.fallback_backend
        if backend is not primary or name is None or name == primary.name or self.health is None:
            return None
        if isinstance(exc, TransientError) and (not probing or isinstance(exc, ShareUnavailableError)):
            return None
        if name in self.health.pauses() or self._begun(primary, sha, probe, rules):
            return None
        return self.backend(name)

    def _begun(self, backend: Backend, sha: str, probe: audio.Probe, rules: EffectiveRules) -> bool:
        """Whether this file has answers bought from ``backend`` (or a stored result): it stays there."""
        key = self._route(backend, sha, probe, rules)[0].result_key
        return (
            self.journal.result(key) is not None
            or bool(self.journal.chunk_results(key))
            or self.journal.task(key) is not None
        )

    def _route(
        self, backend: Backend, sha: str, probe: audio.Probe, rules: EffectiveRules
    ) -> tuple[Route, float]:
        chunk_max_s = rules.chunk_max_s
        if backend.chunk_cap_s is not None:
            chunk_max_s = min(chunk_max_s, backend.chunk_cap_s)
        way = route(
            sha, model=backend.model or rules.model, long_audio=rules.long_audio, language=rules.language,
            enable_itn=rules.enable_itn, context=rules.context, chunk_max_s=chunk_max_s,
            duration_s=probe.duration_s, backend=backend.name, filetrans=backend.filetrans is not None,
        )  # fmt: skip
        return way, chunk_max_s

    def _obtain_on(
        self, backend: Backend, sha: str, handle: BinaryIO, probe: audio.Probe, rules: EffectiveRules,
        meta: dict[str, Any], job_id: int | None,
    ) -> str:  # fmt: skip
        options = AsrOptions(rules.language, rules.enable_itn, rules.context)
        way, chunk_max_s = self._route(backend, sha, probe, rules)
        key = way.result_key
        meta.update(model=way.model, mode=way.mode, context_sha256=way.context_sha256, result_key=key,
                    backend=backend.name)  # fmt: skip
        with self.content_locks.hold(key), spending(self.budget, key, probe.duration_s, rules, backend.name):
            stored = self.journal.result(key)
            if stored is None:
                result = self._recognize_reporting(backend, way, sha, handle, probe, options, chunk_max_s)
                result["paid_by"] = {"job_id": job_id, "name": meta.get("name"), "sha256": sha}
                self.journal.store_result(key, result)
                log.info("result_stored", sha256=sha, usage_seconds=result["usage_seconds"],
                         request_ids=result["request_ids"])  # fmt: skip
                crash_point("after_result_stored")
            elif job_id is None or (stored.get("paid_by") or {}).get("job_id") != job_id:
                meta["reused"] = True  # this file pays nothing: the answer was bought for the same bytes
                log.info("result_reused", sha256=sha, paid_by=(stored.get("paid_by") or {}).get("name"))
        return key

    def recognize_open(self, handle: BinaryIO, rules: EffectiveRules) -> dict[str, Any]:
        """The recognition part of a take, for one-shot use: no job, no sidecars, no move."""
        sha, _size = files.hash_file(handle)
        probe = audio.probe(handle)
        key = self.obtain(sha, handle, probe, rules, {})
        result = self.journal.result(key)
        assert result is not None
        result = {k: v for k, v in result.items() if k != "paid_by"}
        return {**result, "sha256": sha, "duration_s": round(probe.duration_s, 3)}

    def _recognize_reporting(
        self, backend: Backend, way: Route, sha: str, handle: BinaryIO, probe: audio.Probe,
        options: AsrOptions, chunk_max_s: float,
    ) -> dict[str, Any]:  # fmt: skip
        """Recognition, with its outcome told to the backend's health (an account problem by the caller)."""
        try:
            result = self._recognize(backend, way, sha, handle, probe, options, chunk_max_s)
        except TransientError as exc:
            if self.health is not None and not isinstance(exc, ShareUnavailableError):  # the share's fault
                self.health.failed(backend.name)
            raise
        if self.health is not None:
            self.health.succeeded(backend.name)
        return result

    def _recognize(
        self, backend: Backend, way: Route, sha: str, handle: BinaryIO, probe: audio.Probe,
        options: AsrOptions, chunk_max_s: float,
    ) -> dict[str, Any]:  # fmt: skip
        staging = self.staging_dir / way.result_key[:32]
        staging.mkdir(parents=True, exist_ok=True)
        note_owner(staging, way.result_key, sha)
        if backend.model is None and not accepts_options(way.model):
            options = AsrOptions()
        if way.mode == "filetrans" and backend.filetrans is not None:
            answer = backend.filetrans.run(way.result_key, sha, handle, probe, way.model, options, staging)
            pieces = [(answer, 0.0, probe.duration_s)]
            segments = task_segments(answer, probe.duration_s)
            sent_as = backend.filetrans.sent_as(probe, staging)
        else:
            pieces = backend.sync.run(
                way.result_key, sha, handle, probe, way.model, options, way.mode, chunk_max_s, staging
            )
            segments = chunk_segments(pieces)
            sent_as = backend.sync.sent_as(way.result_key) if way.mode == "single" else None
        shutil.rmtree(staging, ignore_errors=True)
        result = whole_result(pieces, segments, model=way.model, mode=way.mode)
        result["backend"] = backend.name
        if sent_as is not None:  # refused as it was for its format, then sent re-encoded
            result["sent_as"] = sent_as
        return result
