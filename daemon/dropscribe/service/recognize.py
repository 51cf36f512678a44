"""A recording's result: looked up by its key, or bought once and stored before anything else happens."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, BinaryIO

from dropscribe.adapters import audio, files
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


class Recognition:
    def __init__(
        self, *, journal: Journal, staging_dir: Path, content_locks: ContentLocks, sync: SyncRecognition,
        filetrans: FiletransRecognition,
    ) -> None:  # fmt: skip
        self.journal = journal
        self.staging_dir = staging_dir
        self.content_locks = content_locks
        self.sync = sync
        self.filetrans = filetrans

    def obtain(
        self, sha: str, handle: BinaryIO, probe: audio.Probe, rules: EffectiveRules, meta: dict[str, Any],
        *, job_id: int | None = None,
    ) -> str:  # fmt: skip
        """The key of the stored result for these bytes and rules, recognizing only if there is none yet.

        ``meta`` receives the route (and ``reused`` when another job paid), even if recognition fails.
        """
        options = AsrOptions(rules.language, rules.enable_itn, rules.context)
        way = route(
            sha, model=rules.model, long_audio=rules.long_audio, language=rules.language,
            enable_itn=rules.enable_itn, context=rules.context, chunk_max_s=rules.chunk_max_s,
            duration_s=probe.duration_s,
        )  # fmt: skip
        key = way.result_key
        meta.update(model=way.model, mode=way.mode, context_sha256=way.context_sha256, result_key=key)
        with self.content_locks.hold(key):
            stored = self.journal.result(key)
            if stored is None:
                result = self._recognize(way, sha, handle, probe, options, rules.chunk_max_s)
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
        self, way: Route, sha: str, handle: BinaryIO, probe: audio.Probe, options: AsrOptions,
        chunk_max_s: float,
    ) -> dict[str, Any]:  # fmt: skip
        staging = self.staging_dir / way.result_key[:32]
        staging.mkdir(parents=True, exist_ok=True)
        if not accepts_options(way.model):
            options = AsrOptions()
        if way.mode == "filetrans":
            answer = self.filetrans.run(way.result_key, sha, handle, probe, way.model, options, staging)
            pieces = [(answer, 0.0, probe.duration_s)]
            segments = task_segments(answer, probe.duration_s)
        else:
            pieces = self.sync.run(
                way.result_key, sha, handle, probe, way.model, options, way.mode, chunk_max_s, staging
            )
            segments = chunk_segments(pieces)
        shutil.rmtree(staging, ignore_errors=True)
        return whole_result(pieces, segments, model=way.model, mode=way.mode)
