"""A recording's result: looked up by its key, or bought once and stored before anything else happens."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dropscribe.adapters import audio, files
from dropscribe.core.errors import InputRejectedError
from dropscribe.core.ports.journal import Journal
from dropscribe.core.recognition import AsrOptions, accepts_options
from dropscribe.core.results import chunk_segments, task_segments, whole_result
from dropscribe.core.routing import Route, route
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.logs import get_logger
from dropscribe.service.content_locks import ContentLocks
from dropscribe.service.crashpoints import crash_point
from dropscribe.service.filetrans_task import FiletransRecognition
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
        backends: Mapping[str, Backend],
    ) -> None:  # fmt: skip
        self.journal = journal
        self.staging_dir = staging_dir
        self.content_locks = content_locks
        self.backends = backends

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

        ``meta`` receives the route (and ``reused`` when another job paid), even if recognition fails.
        """
        options = AsrOptions(rules.language, rules.enable_itn, rules.context)
        backend = self.backend(rules.backend)
        chunk_max_s = rules.chunk_max_s
        if backend.chunk_cap_s is not None:
            chunk_max_s = min(chunk_max_s, backend.chunk_cap_s)
        way = route(
            sha, model=backend.model or rules.model, long_audio=rules.long_audio, language=rules.language,
            enable_itn=rules.enable_itn, context=rules.context, chunk_max_s=chunk_max_s,
            duration_s=probe.duration_s, backend=backend.name, filetrans=backend.filetrans is not None,
        )  # fmt: skip
        key = way.result_key
        meta.update(model=way.model, mode=way.mode, context_sha256=way.context_sha256, result_key=key,
                    backend=backend.name)  # fmt: skip
        with self.content_locks.hold(key):
            stored = self.journal.result(key)
            if stored is None:
                result = self._recognize(backend, way, sha, handle, probe, options, chunk_max_s)
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

    def _recognize(
        self, backend: Backend, way: Route, sha: str, handle: BinaryIO, probe: audio.Probe,
        options: AsrOptions, chunk_max_s: float,
    ) -> dict[str, Any]:  # fmt: skip
        staging = self.staging_dir / way.result_key[:32]
        staging.mkdir(parents=True, exist_ok=True)
        if backend.model is None and not accepts_options(way.model):
            options = AsrOptions()
        if way.mode == "filetrans" and backend.filetrans is not None:
            answer = backend.filetrans.run(way.result_key, sha, handle, probe, way.model, options, staging)
            pieces = [(answer, 0.0, probe.duration_s)]
            segments = task_segments(answer, probe.duration_s)
        else:
            pieces = backend.sync.run(
                way.result_key, sha, handle, probe, way.model, options, way.mode, chunk_max_s, staging
            )
            segments = chunk_segments(pieces)
        shutil.rmtree(staging, ignore_errors=True)
        result = whole_result(pieces, segments, model=way.model, mode=way.mode)
        result["backend"] = backend.name
        return result
