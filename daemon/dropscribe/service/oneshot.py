"""``dropscribe transcribe``: the service's recognition path for files named on the command line.

Runs on a journal that outlives the command: the config's own (``state.path``; SQLite in WAL mode lets
a running service share it), or a per-user one under ``$XDG_STATE_HOME`` without a config. Chunk answers
are journaled as they arrive and whole results are stored by content and options, so a retry, a rerun
after Ctrl-C or a give-up, or a second run of the same file pays only for what is missing.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from dropscribe.adapters import allocator, files
from dropscribe.adapters.journal import SqliteJournal
from dropscribe.config.model import (
    DashScopeSettings,
    LoggingSettings,
    MetricsSettings,
    Settings,
    StateSettings,
    StorageSettings,
)
from dropscribe.core.attempts import RetryPolicy, after_failure
from dropscribe.core.errors import (
    AccountError,
    InputRejectedError,
    RemoteRejectedError,
    ShareUnavailableError,
    TransientError,
)
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.storage import Storage
from dropscribe.core.rules import effective_rules
from dropscribe.core.ruleset import EffectiveRules, RuleSet
from dropscribe.logs import configure, get_logger
from dropscribe.service.compose import wire
from dropscribe.service.outcomes import ParkedError
from dropscribe.service.pipeline import Pipeline
from dropscribe.service.rule_cache import RuleCache, RulesHeld
from dropscribe.service.settings_files import load_settings, resolve_api_key

# A file is given up after this many failed attempts in a row without a new chunk answered, or once
# the waits since the last chunk answered would exceed MAX_WAIT_S. Giving up loses nothing paid: a
# rerun resumes from the journal.
MAX_FAILURES = 8
MAX_WAIT_S = 1800.0
# A rate-quota refusal says "not now", not "this file fails": such attempts are not counted against
# MAX_FAILURES (a quota below the configured rate refuses many in a row until its window moves on), and
# their wait stops growing at the quota's window, a minute, since waiting longer only loses time.
THROTTLE_CODES = frozenset({"Throttling", "Throttling.RateQuota", "rate_limit_exceeded"})
THROTTLE_WAIT_CAP_S = 60.0

log = get_logger()


def user_journal_path(env: dict[str, str]) -> Path:
    """``$XDG_STATE_HOME/dropscribe/transcribe.db``, by default under ``~/.local/state``."""
    state_home = env.get("XDG_STATE_HOME", "")
    # the XDG spec says a relative path there is invalid and must be ignored
    if state_home and Path(state_home).is_absolute():
        base = Path(state_home)
    else:
        home = env.get("HOME")
        base = (Path(home) if home else Path.home()) / ".local" / "state"
    return base / "dropscribe" / "transcribe.db"


def _bare_settings(state: Path) -> Settings:
    return Settings(
        dashscope=DashScopeSettings(), storage=StorageSettings(), state=StateSettings(path=state),
        inboxes=(), defaults=RuleSet(), logging=LoggingSettings(format="console", level="warning"),
        metrics=MetricsSettings(),
    )  # fmt: skip


class RunJournal(SqliteJournal):
    """The journal as one transcribe run uses it: it notes what this run paid for.

    The pipeline journals each chunk answer the moment it arrives (and a file-transcription result as
    a whole), so what this process stored is exactly what it paid for; a result found already stored
    costs nothing. With ``fresh``, the stored answer for a result key is forgotten the first time the
    pipeline looks it up in this run, so it is recognized again, and only once even across retries.
    """

    def __init__(self, path: Path, *, fresh: bool) -> None:
        super().__init__(path)
        self._fresh = fresh
        self._looked_up: set[str] = set()
        self._paid_lock = threading.Lock()
        self.paid_calls = 0
        self.paid_s = 0.0

    def result(self, result_key: str) -> dict[str, Any] | None:
        if self._fresh:
            with self._paid_lock:
                first = result_key not in self._looked_up
                self._looked_up.add(result_key)
            if first:
                self.forget_result(result_key)
                return None
        return super().result(result_key)

    def store_chunk_result(
        self, result_key: str, chunk: int, result: dict[str, Any], *, call_id: int | None = None,
        request_id: str | None = None,
    ) -> None:  # fmt: skip
        super().store_chunk_result(result_key, chunk, result, call_id=call_id, request_id=request_id)
        self._paid(result)

    def store_result(self, result_key: str, result: dict[str, Any]) -> None:
        super().store_result(result_key, result)
        if result.get("mode") == "filetrans":  # one task, no chunk answers of its own
            self._paid(result)

    def _paid(self, result: dict[str, Any]) -> None:
        with self._paid_lock:
            self.paid_calls += 1
            self.paid_s += float(result.get("usage_seconds") or 0.0)

    def paid(self) -> tuple[int, float]:
        with self._paid_lock:
            return self.paid_calls, self.paid_s


def transcribe_files(
    paths: list[Path], config: Path | None, env: dict[str, str], *, fresh: bool = False
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Recognize each file with the config's defaults (or the rules of the inbox it lies in).

    Yields each file's result as soon as it is known. On KeyboardInterrupt no new request is sent,
    requests in flight are waited for so their answers are journaled, and the interrupt propagates.
    """
    settings = load_settings(config, env) if config else _bare_settings(user_journal_path(env))
    configure("console", "warning")
    allocator.map_large_blocks()  # chunk after chunk of base64 would otherwise stay in the heaps
    resolve_api_key(settings.dashscope, env)  # a missing key is reported before a journal is created
    journal = RunJournal(settings.state.path, fresh=fresh)
    stopping = _SignalSafeStop()
    try:
        wiring = wire(settings, env, journal=journal, stopping=stopping, with_scanners=False)
    except BaseException:
        journal.close()
        raise
    pipeline, storage = wiring.pipeline, wiring.storage
    restore_sigint = _stop_on_sigint(stopping)
    try:
        for path in paths:
            yield path, _one(path.absolute(), settings, pipeline, journal, storage)
    except KeyboardInterrupt:
        stopping.set()
        log.warning("transcribe_interrupted", action="waiting for requests in flight so their answers "
                    "are kept; Ctrl-C again stops at once")  # fmt: skip
        raise
    finally:
        restore_sigint()
        wiring.close()  # waits for the requests in flight, whose answers still go to the open journal
        journal.close()


class _SignalSafeStop(threading.Event):
    """A stop event that a signal handler may set: ``signalled`` is a plain attribute, no lock taken.

    The handler's KeyboardInterrupt does not always arrive: raised while the main thread is inside
    PyAV's own C code (its filter graph's error check), it is printed and dropped there. The flag stays,
    and the next look at the event before a request stops the run all the same.
    """

    signalled = False

    def is_set(self) -> bool:
        return self.signalled or super().is_set()


def _stop_on_sigint(stopping: _SignalSafeStop) -> Callable[[], None]:
    """Ctrl-C stops new requests at once, whichever thread notices it first; returns the undo.

    The KeyboardInterrupt alone reaches only the main thread, and a wait for chunk answers may hold it
    until every queued chunk was sent; the event makes the chunk workers stop before sending.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers can only be set from the main thread

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        # no stopping.set() here: the main thread may hold that event's lock right now (in wait()), and
        # a handler that takes it would deadlock; the interrupt reaches transcribe_files, which sets it
        stopping.signalled = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)

    def restore() -> None:
        # None: the previous handler was not set from Python; Python's own is the closest to it
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)

    return restore


def _rules_for(path: Path, settings: Settings) -> EffectiveRules | RulesHeld:
    for inbox in settings.inboxes:
        if path.is_relative_to(inbox.path):
            return RuleCache.for_inbox(settings, inbox).rules_for(path.parent.relative_to(inbox.path))
    return effective_rules([settings.defaults], default_model=settings.dashscope.model)


def _one(
    path: Path, settings: Settings, pipeline: Pipeline, journal: RunJournal, storage: Storage
) -> dict[str, Any]:
    rules = _rules_for(path, settings)
    if isinstance(rules, RulesHeld):
        return {"error": {"code": "rules_invalid", "message": "; ".join(rules.messages)}}
    calls_before, paid_before = journal.paid()
    try:
        result = _recognize_with_retries(path, rules, settings.dashscope, pipeline, journal)
    except FileNotFoundError:
        return {"error": {"code": "not_found", "message": "no such file"}}
    except ShareUnavailableError as exc:
        return {"error": {"code": "unreadable", "message": exc.message}}
    except InputRejectedError as exc:
        return {"error": {"code": exc.code, "message": exc.message}}
    except RemoteRejectedError as exc:
        return {"error": {"code": "asr_rejected", "message": exc.message, "remote_code": exc.remote_code}}
    except AccountError as exc:
        return {"error": {"code": "account_error", "message": exc.message, "remote_code": exc.remote_code}}
    except _GaveUpError as exc:
        return {"error": {"code": "gave_up", "message": str(exc), "remote_code": exc.remote_code}}
    _delete_uploads(result["sha256"], journal, storage)
    calls, paid_s = journal.paid()
    paid_now = paid_s - paid_before
    return {
        **result,
        "reused": calls == calls_before,
        "usage_seconds": int(paid_now) if paid_now.is_integer() else round(paid_now, 3),
    }


class _GaveUpError(Exception):
    def __init__(self, message: str, remote_code: str | None) -> None:
        super().__init__(message)
        self.remote_code = remote_code


def _recognize_with_retries(
    path: Path, rules: EffectiveRules, ds: DashScopeSettings, pipeline: Pipeline, journal: RunJournal
) -> dict[str, Any]:
    """Transient errors are retried like the service does, with the file's paid chunks kept between tries.

    Throttling is waited out; other transient errors end the run after MAX_FAILURES in a row.
    """
    policy = RetryPolicy(base_s=ds.retry_base_s, cap_s=ds.retry_max_s, max_failures=MAX_FAILURES,
                         max_wait_s=MAX_WAIT_S)  # fmt: skip
    throttle_policy = RetryPolicy(base_s=ds.retry_base_s, cap_s=min(ds.retry_max_s, THROTTLE_WAIT_CAP_S),
                                  max_wait_s=MAX_WAIT_S)  # fmt: skip
    failures = throttles = 0
    waited_s = 0.0
    while True:
        calls_before, _ = journal.paid()
        try:
            with files.open_input(path) as handle:
                return pipeline.recognize_open(handle, rules)
        except ParkedError:
            raise KeyboardInterrupt from None  # the stop event is set only by Ctrl-C here
        except ShareUnavailableError:
            raise  # the file named on the command line cannot be read: say so now, not minutes later
        except TransientError as exc:
            if journal.paid()[0] > calls_before:
                # chunks were answered this time: the trouble is not the same as before
                failures = throttles = 0
                waited_s = 0.0
            throttled = exc.remote_code in THROTTLE_CODES
            step = after_failure(throttle_policy if throttled else policy,
                                 throttles if throttled else failures, jitter=random.random(),
                                 retry_after_s=exc.retry_after_s, waited_s=waited_s)  # fmt: skip
            if throttled:
                throttles = step.failures
            else:
                failures = step.failures
            delay = step.delay_s
            if step.give_up:
                why = (f"gave up after {failures} failed attempt(s) in a row" if failures >= MAX_FAILURES
                       else f"gave up after waiting {waited_s:.0f} s without an answer")  # fmt: skip
                raise _GaveUpError(
                    f"{exc.message} ({why}; what was recognized is kept, run the command again to pay "
                    "only for the rest)",
                    exc.remote_code,
                ) from exc
            log.warning("transcribe_retrying", file=str(path), error=exc.message, remote_code=exc.remote_code,
                        attempt=step.failures, throttled=throttled, retry_in_s=round(delay, 2))  # fmt: skip
            # each attempt decodes on new threads, whose memory lands in new malloc arenas that stay
            # mapped once freed: a 1 h file with two throttled attempts peaked at 293 MiB, not 127 MiB
            allocator.return_freed_memory()
            time.sleep(delay)
            waited_s += delay


def _delete_uploads(sha: str, journal: Journal, storage: Storage) -> None:
    """Objects uploaded for these bytes go once the answer is stored, as the service's own do.

    Not while a service job for the same bytes is still at work: it may be about to send their URLs.
    """
    if any(job.sha256 == sha for job in journal.jobs_in("working", "finishing")):
        return
    for okey in journal.live_objects(f"{sha[:2]}/{sha}/"):
        try:
            storage.delete(okey)
        except TransientError as exc:
            log.warning("object_delete_failed", object_key=okey, error=exc.message)
            continue
        journal.object_deleted(okey)
