"""Finishing a job: its sidecars written beside the recording's new name, then the recording moved.

The destination name is journaled before anything is written, and every step can be repeated: a restart
that finds the recording already moved (whole, or as a complete cross-device copy) only completes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
from pathlib import Path, PurePosixPath
from typing import Any

from dropscribe import version
from dropscribe.adapters import files
from dropscribe.config.model import InboxSettings
from dropscribe.core import documents
from dropscribe.core.errors import (
    InputRejectedError,
    OutputFullError,
    RemoteRejectedError,
    ShareUnavailableError,
)
from dropscribe.core.jobs import Job
from dropscribe.core.naming import sidecar_name
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.logs import get_logger
from dropscribe.service.crashpoints import crash_point
from dropscribe.service.leases import confirm_lease, lease_token
from dropscribe.service.objects import SourceObjects
from dropscribe.service.outcomes import ChangedError, GoneError, Outcome

log = get_logger()


class Finisher:
    def __init__(self, *, journal: Journal, objects: SourceObjects, staging_dir: Path) -> None:
        self.journal = journal
        self.objects = objects
        self.staging_dir = staging_dir

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

    @staticmethod
    def target_dir(relpath: str, outcome: str, inbox: InboxSettings) -> Path:
        """``done/<relpath's folder>`` or ``failed/<relpath's folder>``."""
        return (inbox.done if outcome == "done" else inbox.failed) / PurePosixPath(relpath).parent

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
                self.journal.decide(job.id, outcome=outcome, final_name=final_name, error=error,
                                    token=lease_token())  # fmt: skip
                job = self.journal.get(job.id)
                crash_point("after_decide")
            assert job.final_name is not None
            target = target_dir / job.final_name
            moved = _already_moved(job, source, target)
            if moved is not None:
                try:
                    return self._write_and_move(job, inbox, rules, outcome, error, source, target, moved)
                except FileExistsError:
                    pass  # the sidecars written for that name were removed again
            # another file took the chosen name since it was chosen: choose again
            log.warning("name_taken", job_id=job.id, final=str(target),
                        action="choosing another name in the same folder")  # fmt: skip
            self.journal.restart(job.id)
            job = self.journal.get(job.id)
        raise ShareUnavailableError(f"could not find a free name in {target_dir}")

    def _write_and_move(
        self, job: Job, inbox: InboxSettings, rules: EffectiveRules, outcome: str,
        error: dict[str, Any] | None, source: Path, target: Path, moved: bool,
    ) -> Outcome:  # fmt: skip
        assert job.final_name is not None
        target_dir = target.parent
        if not moved:
            self._verify_unchanged(job, source)
        if outcome == "done":
            sidecars = self._done_documents(job, rules, target)
        else:
            sidecars = {".error.json": self._error_document(job, target)}
        written = [target_dir / sidecar_name(job.final_name, suffix) for suffix in sidecars]
        mode, group = _sidecar_mode(inbox, target if moved else source)
        confirm_lease()  # several processes: only the one holding the file's claim writes for it
        try:
            for path, body in zip(written, sidecars.values(), strict=True):
                files.atomic_write(path, body, mode=mode, group=group)
                crash_point("mid_sidecars")
            crash_point("after_sidecars")
            if not moved:
                confirm_lease()
                self._verify_unchanged(job, source, written=written)
                files.move_no_clobber(source, target, after_copy=lambda: crash_point("mid_move"))
        except FileExistsError:
            _remove(written)
            raise
        except FileNotFoundError as exc:
            # the source went away while its sidecars were written: no transcript without its recording;
            # unless a process that took the file over moved it, and the sidecars are now its own
            confirm_lease()
            _remove(written)
            raise GoneError() from exc
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            _remove(written)  # a transcript never waits in done/ for a recording that cannot follow
            message = f"no space left in {target_dir} ({exc.strerror}); the file waits in its inbox"
            raise OutputFullError(str(target_dir), message) from exc
        crash_point("after_move")
        # objects go before the job is marked finished: a crash in between repeats an idempotent
        # delete, where the other order would leave them in the bucket for good
        self.objects.remove_all(job.sha256 or "")
        self.journal.finish(job.id, final_identity=_identity_of(target), token=lease_token())
        crash_point("after_finish")
        log.info("job_done" if outcome == "done" else "job_failed", job_id=job.id, relpath=job.relpath,
                 final=str(target), code=(error or {}).get("code"))  # fmt: skip
        return Outcome(outcome, job.id, target)

    def _verify_unchanged(self, job: Job, source: Path, written: list[Path] | None = None) -> None:
        try:
            st = os.lstat(source)
        except FileNotFoundError as exc:
            confirm_lease()  # moved by a process that took the file over? then what is written is its own
            _remove(written or [])
            raise GoneError() from exc
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != (job.dev, job.ino, job.size, job.mtime_ns):
            _remove(written or [])
            self.journal.restart(job.id)
            raise ChangedError()

    def _done_documents(self, job: Job, rules: EffectiveRules, target: Path) -> dict[str, bytes]:
        assert job.result_key is not None
        result = self.journal.result(job.result_key)
        assert result is not None, "a job is only finished as done once its result is stored"
        return documents.done_documents(
            result, _source_facts(job, target), outputs=rules.outputs, language=rules.language,
            enable_itn=rules.enable_itn, context_sha256=job.meta.get("context_sha256"),
            reused=bool(job.meta.get("reused")), started_at=job.started_at or job.created_at,
            finished_at=time.time(), version=version(),
        )  # fmt: skip

    def _error_document(self, job: Job, target: Path) -> bytes:
        return documents.error_document(
            job.error, _source_facts(job, target), attempts=job.attempts + 1,
            request_ids=self.journal.request_ids(job.result_key) if job.result_key else [],
            failed_at=time.time(), version=version(),
        )  # fmt: skip


def _source_facts(job: Job, target: Path) -> documents.SourceFacts:
    return documents.SourceFacts(
        name=target.name, original_name=PurePosixPath(job.relpath).name, relpath=job.relpath,
        size_bytes=job.size, sha256=job.sha256 or "", duration_s=job.meta.get("duration_s"),
        format=job.meta.get("format"),
    )  # fmt: skip


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


def _sidecar_mode(inbox: InboxSettings, recording: Path) -> tuple[int, int | None]:
    """Sidecars are readable by whoever may read the recording: its group and mode, or file_mode."""
    try:
        st = os.lstat(recording)
    except OSError:
        return (inbox.file_mode if inbox.file_mode is not None else 0o640), None
    if inbox.file_mode is not None:
        return inbox.file_mode, st.st_gid
    return stat.S_IMODE(st.st_mode) & 0o666, st.st_gid


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _identity_of(path: Path) -> dict[str, int] | None:
    """What the finished recording in done/ looked like, to notice a writer that resumes later."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
