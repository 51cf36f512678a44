"""R2/R3: die at every named crash point, restart, and prove the file converges and is paid for once.

Each case starts the real service with ``DROPSCRIBE_CRASH_AT=<point>[:n]``, drops one recording, waits
for the process to exit 137 at that point, restarts it without the variable and lets the end-of-run
checker judge the result. Only (point, mode) pairs that the pipeline really passes through are listed;
a listed point that is not reached fails the case instead of passing silently.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dropscribe.emulator import Emulator
from dropscribe.service.crashpoints import POINTS
from tests.support.audio import make_speechlike, make_tone, sha256_file
from tests.support.checker import check_outcome, journal_integrity
from tests.support.service import Layout, ServiceProcess, wait_for

CRASH_EXIT = 137  # crashpoints.crash_point: os._exit(137); a real SIGKILL would read -9
REACH_TIMEOUT_S = 30.0
RECOVER_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Mode:
    """One way a file travels: how it is made, the config it needs, how many pieces of audio it is sent as."""

    name: str
    make: Callable[[Path], Path]
    config: dict[str, Any]
    pieces: int
    outcome: str = "done"
    done_elsewhere: bool = False  # done/ on another filesystem: the move is a copy, then a removal


def _tone(fmt: str) -> Callable[[Path], Path]:
    return lambda folder: make_tone(folder / f"talk.{fmt}", seconds=2.0, fmt=fmt)


SINGLE_WAV = Mode("single-wav", _tone("wav"), {}, 1)
SINGLE_MP3 = Mode("single-mp3", _tone("mp3"), {}, 1)
# With a budget the audio is reserved before anything is sent ("after_reserve").
BUDGETED = Mode("budgeted", _tone("wav"), {"defaults": {"budget": {"daily_audio_h": 1}}}, 1)
SPLIT = Mode(
    "split",
    lambda folder: make_speechlike(folder / "lecture.mp3", 150.0, "mp3", gaps=[(50.0, 51.0), (100.0, 101.0)]),
    # one chunk at a time, so a crash in one chunk's thread never also cuts another chunk's call in
    # flight: each case then has exactly one well-defined window (the kill loop covers concurrency)
    {"defaults": {"chunk_max_s": 60}, "dashscope": {"concurrency": 1}},
    3,
)
FILETRANS = Mode(
    "filetrans",
    lambda folder: make_speechlike(folder / "meeting.wav", 45.0, "wav", gaps=[(20.0, 21.0)]),
    {"defaults": {"long_audio": "filetrans", "chunk_max_s": 30}, "storage": {"type": "dashscope"}},
    1,
)


def _not_audio(folder: Path) -> Path:
    path = folder / "notes.mp3"
    path.write_text("minutes of the meeting, not a recording\n" * 40)
    return path


# done/ on another filesystem (/dev/shm): the move copies, and "mid_move" lies between copy and removal.
CROSS_DEVICE = Mode("cross-device", _tone("wav"), {}, 1, done_elsewhere=True)

# Rejected on probe: the failed/ side of the finishing steps, with an .error.json instead of sidecars.
REJECTED = Mode("not-audio", _not_audio, {}, 0, outcome="failed")

# Points every file passes, whatever its mode.
COMMON = ("after_take", "after_probe", "after_result_stored", "after_decide", "mid_sidecars",
          "after_sidecars", "after_move", "after_finish")  # fmt: skip
# Points of the synchronous call path. A 2 s WAV or MP3 is sent as it is, so "after_encode" is only
# reached by split (and re-encoded) audio; the submit points belong to file transcription only.
SYNC_CALL = ("after_upload", "before_call", "after_call", "after_chunk_stored")
SPLIT_POINTS = ("after_encode", "after_upload", "before_call", "after_call", "after_call:2",
                "after_chunk_stored:1", "after_chunk_stored:2", "after_result_stored")  # fmt: skip
# A file-transcription task has no "after_upload" point (the upload precedes the submit intent).
FILETRANS_POINTS = ("before_submit", "after_submit", "after_task_stored", "after_result_stored")
# A file that is not audio is rejected by the probe: it never reaches "after_probe" or a call.
REJECTED_POINTS = ("after_take", "after_decide", "mid_sidecars", "after_sidecars", "after_move",
                   "after_finish")  # fmt: skip

# The documented windows: the API answered (or accepted a task) but the process died before the
# journal recorded it, so the restart has no way to know and pays once more.
ONE_EXTRA_ALLOWED = {"after_call", "after_submit"}

CASES = [
    *[(SINGLE_WAV, p) for p in (*COMMON[:2], *SYNC_CALL, *COMMON[2:])],
    *[(SINGLE_MP3, p) for p in (*COMMON[:2], *SYNC_CALL, *COMMON[2:])],
    *[(SPLIT, p) for p in SPLIT_POINTS],
    *[(FILETRANS, p) for p in FILETRANS_POINTS],
    *[(REJECTED, p) for p in REJECTED_POINTS],
    *[(CROSS_DEVICE, p) for p in ("after_sidecars", "mid_move", "after_move")],
    (BUDGETED, "after_reserve"),
]


def test_every_crash_point_has_a_case() -> None:
    """A crash point added to the pipeline without a case here fails instead of going untested."""
    covered = {point.partition(":")[0] for _mode, point in CASES}
    assert covered == set(POINTS), f"no case for {sorted(set(POINTS) - covered)}"


def _configure(layout: Layout, mode: Mode) -> None:
    for section, values in mode.config.items():
        current = layout.data.get(section)
        if isinstance(current, dict):
            current.update(values)
        else:
            layout.data[section] = dict(values)
    layout.write()


def _tail(service: ServiceProcess, lines: int = 25) -> str:
    return "\n".join(line[:300] for line in service.lines[-lines:])


def _params() -> list[Any]:
    """Every case; the default run takes each crash point once (its first case), CI=true all of them."""
    seen: set[str] = set()
    params = []
    for mode, point in CASES:
        name = point.partition(":")[0]
        marks = (pytest.mark.thorough,) if name in seen else ()
        seen.add(name)
        params.append(pytest.param(mode, point, id=f"{mode.name}-{point}", marks=marks))
    return params


@pytest.mark.parametrize(("mode", "point"), _params())
def test_crash_point_recovers(
    mode: Mode, point: str, tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """Dying at this point and restarting ends with the file in place exactly once and paid for once."""
    layout = Layout(tmp_path / "site", emulator.base_url, inbox={"settle_s": 0.2, "rescan_s": 0.3})
    _configure(layout, mode)
    if mode.done_elsewhere:
        elsewhere = Path("/dev/shm")
        if not elsewhere.is_dir() or os.stat(elsewhere).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("no second filesystem (/dev/shm) to move across")
        layout.done = Path(tempfile.mkdtemp(prefix="dropscribe-crash-", dir=elsewhere)) / "done"
        layout.data["inboxes"][0]["done"] = str(layout.done)
        layout.write()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    source = mode.make(scratch)
    sha = sha256_file(source)
    name = source.name

    crashing = ServiceProcess(layout.config, {"DROPSCRIBE_CRASH_AT": point}).wait_started()
    services.append(crashing)
    os.rename(source, layout.inbox / name)  # atomic: the service never sees a partial file
    deadline = time.monotonic() + REACH_TIMEOUT_S
    while crashing.proc.poll() is None:
        if crashing.saw("job_done") or crashing.saw("job_failed"):
            pytest.fail(f"crash point {point!r} was never reached in {mode.name} mode: the file was "
                        f"finished without passing it\n{_tail(crashing)}")  # fmt: skip
        if time.monotonic() > deadline:
            pytest.fail(f"crash point {point!r} not reached in {mode.name} mode within "
                        f"{REACH_TIMEOUT_S:.0f} s, nor the file finished\n{_tail(crashing)}")  # fmt: skip
        time.sleep(0.02)
    crashing.kill()  # reaps the process and its log reader
    assert crashing.proc.returncode == CRASH_EXIT, (
        f"the service exited {crashing.proc.returncode}, not at the crash point\n{_tail(crashing)}"
    )
    assert journal_integrity(layout.state) == "ok", "the journal is damaged right after the crash"

    # an empty value disables crash points, whatever the environment running the tests holds
    service = ServiceProcess(layout.config, {"DROPSCRIBE_CRASH_AT": ""}).wait_started()
    services.append(service)
    stem = name.rsplit(".", 1)[0]
    folder, documents = (
        (layout.done, [f"{stem}.json", f"{stem}.txt"]) if mode.outcome == "done"
        else (layout.failed, [f"{stem}.error.json"])
    )  # fmt: skip
    wait_for(
        lambda: all((folder / n).exists() for n in [name, *documents]) and not (layout.inbox / name).exists(),
        timeout=RECOVER_TIMEOUT_S,
    )
    assert service.stop() == 0, _tail(service)

    report = check_outcome(layout, {name: sha}, emulator)
    assert report.outcomes == {name: mode.outcome}
    assert report.pieces.get(sha, 0) == mode.pieces, (
        f"expected {mode.pieces} piece(s) of audio recognized, got {report.pieces.get(sha, 0)}"
    )
    allowed = 1 if point.partition(":")[0] in ONE_EXTRA_ALLOWED else 0
    assert report.duplicates(sha) <= allowed, (
        f"{report.recognitions[sha]} paid requests for {mode.pieces} piece(s) after a crash at {point}"
    )
    if mode.done_elsewhere:
        shutil.rmtree(layout.done.parent, ignore_errors=True)
