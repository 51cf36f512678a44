"""End-of-run checker: compare what was dropped with what the service left behind and what was paid.

Every harness that drops files, disturbs the service and lets it recover ends with
:func:`check_outcome`. It reads only the disk (inbox, ``done/``, ``failed/``, the state folder), the
journal (read-only) and the emulator's request log, so it judges the promise (README "Operating
notes", reliability goals R1-R3 and R16), not the code path:

* every input ends in exactly one of ``done/`` (with ``.txt`` and ``.json`` naming its sha) or
  ``failed/`` (with ``.error.json``), under its own name; nothing is left in the inbox, lost,
  duplicated, or orphaned;
* no temp file of an atomic write and no staged chunk outlives the run; the journal passes
  ``PRAGMA integrity_check``, holds no unfinished job and no upload that was never deleted;
* no recognition is paid for after its answer (or its task id) was committed to the journal.

Recognitions are counted per input sha. A split recording is recognized as several *pieces* (its
chunks), so the report keeps both numbers: ``recognitions[sha]`` paid requests and ``pieces[sha]``
distinct audio sent; ``duplicates(sha)`` is what was paid beyond one request per piece.
"""

from __future__ import annotations

import collections
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dropscribe.emulator import Emulator
from tests.support.audio import sha256_file
from tests.support.service import Layout

GENERATION_SUFFIX = "/services/aigc/multimodal-generation/generation"
TRANSCRIPTION_SUFFIX = "/services/audio/asr/transcription"
# The emulator stamps a request when it arrives (millisecond precision) and the journal stamps a
# row just before its commit; both read the same wall clock, so a few ms cover rounding and jitter.
CLOCK_SLACK_S = 0.010
SIDECAR_SUFFIXES = (".txt", ".json", ".srt", ".vtt", ".error.json")
# Rows of one SELECT on the journal, by column name: how the checker reads a journal that is not the
# layout's SQLite file (a PostgreSQL one shared by several services)
JournalQuery = Callable[[str], Sequence[Mapping[str, Any]]]


@dataclass
class Report:
    """What a run left behind, for assertions beyond the invariants :func:`check_outcome` enforces."""

    outcomes: dict[str, str] = field(default_factory=dict)  # input relpath -> "done" | "failed"
    final_paths: dict[str, Path] = field(default_factory=dict)  # input relpath -> moved source
    recognitions: dict[str, int] = field(default_factory=dict)  # input sha -> paid requests
    pieces: dict[str, int] = field(default_factory=dict)  # input sha -> distinct audio sent
    unattributed: list[dict[str, Any]] = field(default_factory=list)  # paid, matching no input
    # every paid request by the sha of the audio it carried (a whole file or one chunk), oldest first
    paid_by_audio: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    gone_jobs: int = 0  # journal jobs abandoned because their file left by other hands

    def duplicates(self, sha: str) -> int:
        """Requests paid for ``sha`` beyond one per piece of audio it was sent as."""
        return self.recognitions.get(sha, 0) - self.pieces.get(sha, 0)

    @property
    def total_recognitions(self) -> int:
        return sum(self.recognitions.values()) + len(self.unattributed)

    @property
    def duplicates_paid(self) -> int:
        """Every paid request beyond one per piece, over all inputs, plus the unattributed ones."""
        return sum(self.duplicates(sha) for sha in self.recognitions) + len(self.unattributed)

    def summary(self) -> str:
        done = sum(1 for o in self.outcomes.values() if o == "done")
        return (
            f"{len(self.outcomes)} files ({done} done, {len(self.outcomes) - done} failed), "
            f"{len(self.recognitions)} distinct shas recognized, {self.total_recognitions} recognitions, "
            f"{self.duplicates_paid} duplicates paid"
        )


def recognition_requests(emulator: Emulator) -> list[dict[str, Any]]:
    """Requests that cost money: answered sync recognitions and accepted file-transcription submits."""
    return [
        r for r in emulator.requests()
        if r["status"] == 200 and r["method"] == "POST" and r.get("audio_sha256")
        and (r["path"].endswith(GENERATION_SUFFIX) or r["path"].endswith(TRANSCRIPTION_SUFFIX))
    ]  # fmt: skip


def request_time(record: dict[str, Any]) -> float:
    """The emulator's arrival stamp (ISO 8601 with offset) as a Unix timestamp."""
    return datetime.fromisoformat(record["time"]).timestamp()


@dataclass(frozen=True)
class KillAccount:
    """Paid repeats set against the kills of a kill -9 loop."""

    unexplained: list[dict[str, Any]]  # repeated recognitions no kill can account for
    kills_on_calls: int  # kills that landed while a paid request was in its exposure window


def account_for_kills(
    report: Report, emulator: Emulator, kill_times: Sequence[float], exposure_s: float
) -> KillAccount:
    """Why duplicates can be non-zero, and which ones may not be there.

    A recognition is paid when the API accepts it, but the service learns the answer only when the reply
    arrives and remembers it only once its commit is on disk. A kill inside that window (``exposure_s``
    from the request's arrival) cannot be known to the next run, which pays once more. So every repeated
    recognition of a piece of audio needs a kill inside its window; one without is a replay of a
    committed answer.
    """
    kills = sorted(kill_times)
    repeated = [r for requests in report.paid_by_audio.values() for r in requests[:-1]]
    repeated += report.unattributed
    unexplained = [
        r for r in repeated
        if not any(request_time(r) <= k <= request_time(r) + exposure_s for k in kills)
    ]  # fmt: skip
    paid_times = [request_time(r) for r in recognition_requests(emulator)]
    on_calls = sum(1 for k in kills if any(k - exposure_s <= t <= k for t in paid_times))
    return KillAccount(unexplained, on_calls)


def unexplained_repeats(account: KillAccount) -> str:
    """The assertion message for repeats no kill explains."""
    return "recognized again although no kill cut the earlier call:\n" + "\n".join(
        f"  {r['time']} audio {r['audio_sha256'][:12]}" for r in account.unexplained
    )


def open_journal(path: Path) -> sqlite3.Connection:
    """The journal opened read-only, so the checker can never repair what it is judging."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    return db


def journal_integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of the journal: ``"ok"`` or SQLite's list of problems."""
    db = open_journal(path)
    try:
        return "; ".join(str(row[0]) for row in db.execute("PRAGMA integrity_check"))
    finally:
        db.close()


def _text(value: bytes | str | None) -> str:
    # jobs.relpath is stored as raw bytes by newer journals, as text by older ones
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value or ""


def _files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _stem(name: str) -> str:
    dot = name.rfind(".")
    return name if dot <= 0 else name[:dot]


def _load(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("source"), dict) else None


def check_outcome(
    layout: Layout,
    inputs: dict[str, str],
    emulator: Emulator,
    *,
    journal: JournalQuery | None = None,
    staging: Iterable[Path] = (),
) -> Report:
    """Assert the end state of a run that was dropped ``inputs`` (relpath -> sha256 of its bytes).

    Call it once the service has stopped. Every broken invariant is listed in one AssertionError.
    ``journal`` reads another journal than the layout's SQLite file; ``staging`` names further staging
    folders (one per host) that must be empty.
    """
    problems: list[str] = []
    report = Report()
    _check_files(layout, inputs, report, problems)
    _check_leftovers(layout, problems, [layout.state.parent / "staging", *staging])
    _check_journal_and_payments(layout, inputs, emulator, report, problems, journal)
    assert not problems, "end-of-run check failed:\n  " + "\n  ".join(problems)
    return report


def _check_files(layout: Layout, inputs: dict[str, str], report: Report, problems: list[str]) -> None:
    claimed: set[Path] = set()
    placed: dict[str, list[str]] = collections.defaultdict(list)
    output_shas: collections.Counter[str] = collections.Counter()
    docs: list[tuple[str, Path, dict[str, Any]]] = []
    for path in _files(layout.done):
        if path.suffix == ".json" and not path.name.startswith(".") and (doc := _load(path)):
            docs.append(("done", path, doc))
    for path in _files(layout.failed):
        if path.name.endswith(".error.json") and (doc := _load(path)):
            docs.append(("failed", path, doc))

    for outcome, doc_path, doc in docs:
        source = doc["source"]
        relpath = str(source.get("relpath"))
        name = str(source.get("name"))
        moved = doc_path.parent / name
        where = f"{outcome}/{moved.relative_to(layout.done if outcome == 'done' else layout.failed)}"
        placed[relpath].append(where)
        claimed.update(doc_path.parent / (_stem(name) + s) for s in SIDECAR_SUFFIXES)
        claimed.add(moved)
        if relpath not in inputs:
            problems.append(f"{where}: an output for {relpath!r}, which was never dropped")
            continue
        expected = inputs[relpath]
        if name != Path(relpath).name:
            problems.append(f"{where}: {relpath!r} was renamed on the way (a replay collided with itself?)")
        if not os.path.lexists(moved):
            problems.append(f"{where}: the sidecar {doc_path.name} exists, the source it describes does not")
            continue
        actual = sha256_file(moved) if moved.is_file() and not moved.is_symlink() else expected
        output_shas[actual] += 1
        if actual != expected:
            problems.append(f"{where}: content sha {actual[:12]} differs from the dropped {expected[:12]}")
        if outcome == "done":
            if source.get("sha256") != expected:
                problems.append(f"{where}: json source.sha256 {source.get('sha256')!r} is not {expected}")
            if not (doc_path.parent / (_stem(name) + ".txt")).is_file():
                problems.append(f"{where}: no .txt sidecar")
        elif not doc.get("code"):
            problems.append(f"{where}: .error.json has no code")
        report.outcomes[relpath] = outcome
        report.final_paths[relpath] = moved

    for relpath in sorted(inputs):
        places = placed.get(relpath, [])
        if not places:
            still = " (still in the inbox)" if os.path.lexists(layout.inbox / relpath) else ""
            problems.append(f"{relpath!r} is LOST: not in done/ or failed/{still}")
        elif len(places) > 1:
            problems.append(f"{relpath!r} is DUPLICATED: {', '.join(sorted(places))}")
        if os.path.lexists(layout.inbox / relpath) and places:
            problems.append(f"{relpath!r} has an outcome but is also still in the inbox")
    expected_shas = collections.Counter(inputs.values())
    for sha in sorted(set(expected_shas) | set(output_shas)):
        if output_shas[sha] > expected_shas[sha]:
            problems.append(
                f"sha {sha[:12]} appears {output_shas[sha]} times among done/failed sources "
                f"but was dropped {expected_shas[sha]} times"
            )
    for root in (layout.done, layout.failed):
        for path in _files(root):
            if path not in claimed and not _is_temp(path.name):  # temps are reported on their own
                problems.append(f"{path.relative_to(layout.root)}: belongs to no outcome (orphan or copy)")


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _check_leftovers(layout: Layout, problems: list[str], stagings: list[Path]) -> None:
    for root in (layout.inbox, layout.done, layout.failed):
        for path in _files(root):
            if _is_temp(path.name):
                problems.append(f"{path.relative_to(layout.root)}: temp file left behind")
    for staging in stagings:
        leftovers = _files(staging)
        if leftovers:
            shown = ", ".join(str(p.relative_to(staging)) for p in leftovers[:5])
            problems.append(f"{staging} still holds {len(leftovers)} file(s): {shown}")


def _sqlite_query(path: Path) -> JournalQuery:
    def query(statement: str) -> Sequence[Mapping[str, Any]]:
        db = open_journal(path)
        try:
            return list(db.execute(statement))
        finally:
            db.close()

    return query


def _check_journal_and_payments(
    layout: Layout,
    inputs: dict[str, str],
    emulator: Emulator,
    report: Report,
    problems: list[str],
    journal: JournalQuery | None,
) -> None:
    if journal is None:
        if not layout.state.exists():
            problems.append(f"no journal at {layout.state}")
            return
        integrity = journal_integrity(layout.state)
        if integrity != "ok":
            problems.append(f"journal integrity_check: {integrity}")
        journal = _sqlite_query(layout.state)
    jobs = journal("SELECT relpath, state, sha256, result_key FROM jobs")
    results = journal("SELECT result_key, created_at FROM results")
    chunks = journal("SELECT result_key, chunk, result_json, created_at FROM chunk_results")
    calls = journal("SELECT result_key, kind, outcome, ended_at, request_id FROM calls")
    live = journal("SELECT object_key FROM objects WHERE deleted_at IS NULL")
    live_objects = [r["object_key"] for r in live]

    for job in jobs:
        if job["state"] in ("working", "finishing"):
            problems.append(f"journal: job for {_text(job['relpath'])!r} is still {job['state']}")
    report.gone_jobs = sum(1 for job in jobs if job["state"] == "gone")
    # uploads are deleted once their file is finished (README "Configuration"); the journal marks
    # each deletion, also for stores where deleting is a no-op, so a live row is a leaked object
    if live_objects:
        problems.append(
            f"journal: {len(live_objects)} uploaded object(s) never deleted, e.g. {live_objects[0]}"
        )

    paid = recognition_requests(emulator)
    by_request_id = {r["request_id"]: r for r in emulator.requests() if r.get("request_id")}
    sha_of_key: dict[str, str] = {}
    for job in jobs:
        if job["result_key"] and job["sha256"]:
            sha_of_key[job["result_key"]] = job["sha256"]

    # Which audio (by the emulator's sha of the bytes it received) belongs to which input: the source
    # itself when it was sent as it is, and whatever the journal's calls name for its result key
    # (re-encoded whole files and chunks). A request whose answer was never committed carries the
    # same bytes as the retry that was, so it is attributed through the retry.
    audio_owner: dict[str, str] = {sha: sha for sha in inputs.values()}
    audio_of_key: dict[str, set[str]] = collections.defaultdict(set)
    for call in calls:
        sent = by_request_id.get(call["request_id"]) if call["request_id"] else None
        key = call["result_key"]
        if sent and sent.get("audio_sha256") and key in sha_of_key:
            audio_owner.setdefault(sent["audio_sha256"], sha_of_key[key])
            audio_of_key[key].add(sent["audio_sha256"])
    for key, sha in sha_of_key.items():
        audio_of_key[key].add(sha)

    pieces: dict[str, set[str]] = collections.defaultdict(set)
    for request in paid:
        owner = audio_owner.get(request["audio_sha256"])
        if owner is None:
            report.unattributed.append(request)
            continue
        report.recognitions[owner] = report.recognitions.get(owner, 0) + 1
        pieces[owner].add(request["audio_sha256"])
        report.paid_by_audio.setdefault(request["audio_sha256"], []).append(request)
    report.pieces = {sha: len(audio) for sha, audio in pieces.items()}
    for requests in report.paid_by_audio.values():
        requests.sort(key=request_time)
    for request in report.unattributed:
        problems.append(
            f"a recognition at {request['time']} sent audio {request['audio_sha256'][:12]} that belongs to "
            "no dropped file (re-encoded differently after a crash?)"
        )

    # R3: nothing recognized again once its answer was committed. Three kinds of commit count: a whole
    # result, one chunk's result, and a file-transcription task id (after which polling, never a
    # new submission, must follow).
    def paid_after(audio: Iterable[str], committed_at: float, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        wanted = set(audio)
        return [
            r for r in paid
            if r["audio_sha256"] in wanted and r["path"].endswith(kinds)
            and request_time(r) > committed_at + CLOCK_SLACK_S
        ]  # fmt: skip

    both = (GENERATION_SUFFIX, TRANSCRIPTION_SUFFIX)
    for row in results:
        for late in paid_after(audio_of_key.get(row["result_key"], ()), row["created_at"], both):
            problems.append(
                f"PAID TWICE: audio {late['audio_sha256'][:12]} of sha "
                f"{sha_of_key.get(row['result_key'], '?')[:12]} recognized at {late['time']}, after its "
                f"result was committed at {datetime.fromtimestamp(row['created_at'], UTC).isoformat()}"
            )
    for row in chunks:
        request_id = json.loads(row["result_json"]).get("request_id")
        sent = by_request_id.get(request_id) if request_id else None
        if not sent or not sent.get("audio_sha256"):
            continue
        for late in paid_after([sent["audio_sha256"]], row["created_at"], (GENERATION_SUFFIX,)):
            problems.append(
                f"PAID TWICE: chunk {row['chunk']} (audio {late['audio_sha256'][:12]}) recognized at "
                f"{late['time']}, after its answer was committed"
            )
    for call in calls:
        # a submit's call row is closed right after its task id is committed, so its end time errs
        # on the late side: it can miss a resubmission by milliseconds, never raise a false alarm
        if call["kind"] != "submit" or call["outcome"] != "submitted" or call["ended_at"] is None:
            continue
        audio = audio_of_key.get(call["result_key"], set())
        for late in paid_after(audio, call["ended_at"], (TRANSCRIPTION_SUFFIX,)):
            problems.append(
                f"PAID TWICE: a second task was submitted at {late['time']} for audio "
                f"{late['audio_sha256'][:12]} after a task id had been committed"
            )
