"""R5/R6: slow, concurrent writers never get a partial file recognized, and a change after the take is redone.

The service runs for real against the emulator. The emulator's log says exactly which bytes were
recognized (``audio_sha256``), so "never a partial file" is checked by comparing every SHA it received
with the SHA each writer finally left behind.

What the completeness gate can promise is "size, mtime and inode unchanged for settle_s". A writer
that pauses for less than that must never have its file taken early. A writer that pauses for longer
produces a file that looks finished and may be taken; the service must then notice the change
before it finishes the file and process the final content instead (README "How a file travels" 6).
That second property is tested deterministically by slowing the first recognition and changing the
file while it is in flight.

When the pause is long enough for the service to finish the head before the rest arrives, no change
happens while the file is in the service's hands; only a content check can catch that, for formats
that state their own length, and only if an unfinished-looking file is given time (incomplete_wait_s)
before it is failed.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dropscribe.emulator import Emulator, Fault, emulated_text
from tests.support.audio import make_speechlike, make_tone, sha256_file
from tests.support.service import Layout, ServiceProcess, wait_for
from tests.support.writers import (
    STYLES,
    Transfer,
    chunked_copy,
    held_open_then_close,
    rsync_style,
    run_transfers,
)

SETTLE_S = 1.0
RESCAN_S = 0.3
FILES_PER_STYLE = 7
MAX_PAUSE_S = 0.8 * SETTLE_S
SEED = 20261125
# formats the sync model takes as they are, so the bytes it receives are the writer's own (an M4A would
# be re-encoded first, and its partial contents could not be told by their hash)
FORMATS = ("wav", "wav", "mp3", "flac", "webm", "ogg")


def generation_requests(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if r["path"].endswith("/generation")]


def is_temp_name(relpath: str) -> bool:
    """The in-progress names our writers use: rsync's ``.<name>.XXXXXX`` and WinSCP's ``.filepart``."""
    name = relpath.rsplit("/", 1)[-1]
    return name.startswith(".") or name.endswith(".filepart")


def wait_quietly(predicate: Callable[[], bool], timeout: float) -> bool:
    """Like ``wait_for``, but a timeout returns False so the caller can report what it found."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def events(service: ServiceProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in list(service.events) if e.get("event") == name]


def make_source(path: Path, index: int, rng: random.Random) -> Path:
    """A recording unique to ``index`` (its own pitch and length), from a few to ~90 seconds long."""
    # formats rotate once per round of styles, so every style writes every format
    fmt = FORMATS[(index // len(STYLES)) % len(FORMATS)]
    # WAV grows 32 kB per second at 16 kHz mono: the long ones are the multi-megabyte, slow writes
    seconds = rng.uniform(30.0, 90.0) if fmt == "wav" else rng.uniform(5.0, 60.0)
    seconds = round(seconds, 1) + index / 1000
    target = path / f"source-{index:03d}.{fmt}"
    if rng.random() < 0.3:
        return make_speechlike(target, seconds, fmt)
    return make_tone(target, seconds=seconds, fmt=fmt, freq=200 + 7 * index)


def plan(sources: list[Path], inbox: Path, rng: random.Random) -> list[Transfer]:
    """Spread the sources over every writer style, with random chunk sizes and pauses below settle_s."""
    styles = list(STYLES)
    transfers = []
    for index, src in enumerate(sources):
        style = styles[index % len(styles)]
        folder = inbox / ("alice" if index % 4 == 1 else "bob/2026" if index % 4 == 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        dst = folder / f"rec-{index:03d}{src.suffix}"
        size = src.stat().st_size
        chunks = rng.randint(4, 12)
        kwargs: dict[str, Any] = {
            "chunk_bytes": max(1024, -(-size // chunks)),
            "pause_s": rng.uniform(0.05, MAX_PAUSE_S),
        }
        if style == "held_open":
            kwargs["hold_s"] = rng.uniform(0.3, MAX_PAUSE_S)
            kwargs["tail_bytes"] = min(4096, size // 4)
        elif style == "scp_in_place":
            kwargs["preserve_times"] = index % 2 == 0
        transfers.append(Transfer(style, dst, functools.partial(STYLES[style], src, dst, **kwargs)))
    return transfers


@pytest.mark.parametrize(
    "polling",
    [
        pytest.param(True, id="scans-only-like-a-share"),
        pytest.param(False, id="inotify-hints", marks=pytest.mark.thorough),  # in CI's run
    ],
)
def test_concurrent_slow_writers_are_never_taken_early(
    polling: bool, tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """Dozens of slow transfers of every style at once: each recognized once, from its final bytes only."""
    layout = Layout(
        tmp_path / "site", emulator.base_url,
        inbox={"settle_s": SETTLE_S, "rescan_s": RESCAN_S, "polling": polling},
        dashscope={"concurrency": 4, "requests_per_minute": 6000},
    )  # fmt: skip
    rng = random.Random(SEED)
    source_dir = tmp_path / "sources"
    source_dir.mkdir()
    sources = [make_source(source_dir, i, rng) for i in range(FILES_PER_STYLE * len(STYLES))]
    transfers = plan(sources, layout.inbox, rng)

    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    written = run_transfers(transfers)
    writers_done = time.monotonic()
    finals = {w.sha256: w for w in written if not w.error}
    by_relpath = {w.dst.relative_to(layout.inbox).as_posix(): w for w in written}

    # every file ends somewhere; failures are waited for too, so a broken gate shows up as a report
    # of what went wrong rather than as a timeout
    def settled_down() -> bool:
        ended = len(events(service, "job_done")) + len(events(service, "job_failed"))
        return ended >= len(written)

    finished_in_time = wait_quietly(settled_down, timeout=90)
    drained_s = time.monotonic() - writers_done

    # A writer whose real pause reached settle_s (the machine stalled it) may legitimately be taken
    # early; it is left out of the per-file checks, and there must be few of them for the run to count.
    stalled = {rel for rel, w in by_relpath.items() if w.longest_gap_s >= SETTLE_S}
    requests = generation_requests(emulator)
    received = collections.Counter(r["audio_sha256"] for r in requests if r["audio_sha256"])
    partial_sent = sorted(set(received) - set(finals))
    taken = events(service, "job_taken")
    changed = events(service, "source_changed")
    styles = collections.Counter(w.style for w in written)
    sizes = [src.stat().st_size for src in sources]
    print(
        f"\nwriters[{'scans' if polling else 'inotify'}]: {len(written)} files written "
        f"({', '.join(f'{s}={n}' for s, n in sorted(styles.items()))}), "
        f"{sum(sizes) / 1e6:.1f} MB, largest {max(sizes) / 1e6:.1f} MB, "
        f"writers took {max(w.finished_at for w in written) - min(w.started_at for w in written):.1f} s, "
        f"longest real pause {max(w.longest_gap_s for w in written):.2f} s (settle_s {SETTLE_S}), "
        f"stalled {len(stalled)}; recognitions {sum(received.values())}, "
        f"partial SHAs sent {len(partial_sent)} (must be 0), re-gated {len(changed)}, "
        f"all ended {drained_s:.1f} s after the last writer"
    )

    failed_writers = [(w.dst.name, w.style, w.error) for w in written if w.error]
    assert not failed_writers, f"files were taken from under their writers: {failed_writers}"
    assert len(finals) == len(written), "every source is unique, so no recognition is shared"
    assert partial_sent == [], f"{len(partial_sent)} partial contents were recognized"
    assert finished_in_time, "not every file ended in done/ or failed/"
    assert len(stalled) <= len(written) // 10, f"too many stalled writers for a meaningful run: {stalled}"
    for rel, w in sorted(by_relpath.items()):
        if rel in stalled:
            continue
        takes = [e for e in taken if e["relpath"] == rel]
        assert [e["sha256"] for e in takes] == [w.sha256], f"{rel} ({w.style}) taken before it was complete"
        assert not [e for e in changed if e["relpath"] == rel], f"{rel} ({w.style}) passed the gate mid-write"
        done_file = layout.done / rel
        assert done_file.exists(), f"{rel} ({w.style}) is not in done/"
        assert sha256_file(done_file) == w.sha256, f"{rel} ({w.style}) moved with other bytes"
        assert received[w.sha256] == 1, f"{rel} ({w.style}) recognized {received[w.sha256]} times"
        (request,) = [r for r in requests if r["audio_sha256"] == w.sha256]
        doc = json.loads(done_file.with_suffix(".json").read_text())
        assert doc["source"]["sha256"] == w.sha256
        assert done_file.with_suffix(".txt").read_text() == emulated_text(
            request["duration_s"], w.sha256) + "\n"  # fmt: skip

    assert not [e["relpath"] for e in taken if is_temp_name(e["relpath"])], "a temp name was taken"
    assert not any(is_temp_name(f) for f in layout.done_files())
    assert not layout.failed.exists() or layout.failed_files() == []
    assert [p for p in layout.inbox.rglob("*") if p.is_file()] == [], "something was left in the inbox"


def _rewrite_in_place(dst: Path, new: Path) -> str:
    """A recorder that overwrites its file with a new take of the same length: same size, new mtime."""
    data = new.read_bytes()
    with dst.open("wb") as out:  # O_TRUNC on the same inode
        out.write(data)
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("change", ["rewritten-in-place", "replaced-by-rename", "touched-same-bytes"])
def test_change_while_in_flight_is_redone_with_the_final_content(
    change: str, tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A file that changes while its recognition is in flight is not finished with the stale result."""
    layout = Layout(tmp_path / "site", emulator.base_url,
                    inbox={"settle_s": 0.5, "rescan_s": RESCAN_S, "polling": True})  # fmt: skip
    # the first recognition answers 2 s late: the window in which the file changes
    emulator.add_fault(Fault(path="generation", delay_s=2.0, times=1))
    first = make_tone(tmp_path / "first.wav", seconds=20.0, fmt="wav", freq=440)
    second = make_tone(tmp_path / "second.wav", seconds=20.0, fmt="wav", freq=660)
    assert first.stat().st_size == second.stat().st_size
    dst = layout.inbox / "memo.wav"
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)

    def in_flight() -> bool:
        return bool(generation_requests(emulator))

    # (a writer that keeps the file open while it pauses is never taken at all: test_paused_writers.py)
    rsync_style(first, dst, pause_s=0.0)  # complete, and in place at once
    wait_for(in_flight, timeout=15)
    if change == "rewritten-in-place":
        final_sha = _rewrite_in_place(dst, second)
    elif change == "replaced-by-rename":
        final_sha = rsync_style(second, dst, pause_s=0.0)
    else:
        # only the mtime moves (a backup tool, a `touch`): gated again, but not paid for again
        os.utime(dst)
        final_sha = sha256_file(dst)
    changed_at = time.monotonic()
    stale_sha = generation_requests(emulator)[0]["audio_sha256"]
    # the stale bytes cost exactly the one call that was in flight, and their answer was dropped;
    # the same bytes under a new mtime reuse the stored answer
    expected = [final_sha] if change == "touched-same-bytes" else [stale_sha, final_sha]

    # sidecars are written before the source is moved: wait for the move, the last step
    wait_for(lambda: (layout.done / "memo.json").exists() and not dst.exists(), timeout=30)
    doc = json.loads((layout.done / "memo.json").read_text())
    received = [(r["audio_sha256"], r["status"], r["fault"]) for r in generation_requests(emulator)]
    print(f"\nR6[{change}]: emulator received {[(s[:12], st, f) for s, st, f in received]}; "
          f"done {time.monotonic() - changed_at:.1f} s after the change")  # fmt: skip
    assert sha256_file(layout.done / "memo.wav") == final_sha
    assert doc["source"]["sha256"] == final_sha
    final_request = [r for r in generation_requests(emulator) if r["audio_sha256"] == final_sha]
    assert len(final_request) == 1
    assert (layout.done / "memo.txt").read_text() == emulated_text(
        final_request[0]["duration_s"], final_sha) + "\n"  # fmt: skip
    assert [s for s, _, _ in received] == expected
    assert service.saw("source_changed")
    assert layout.done_files() == ["memo.json", "memo.txt", "memo.wav"]
    assert not layout.failed.exists()
    assert list(layout.inbox.iterdir()) == []


# R6's other half: the writer goes idle mid-file for longer than settle_s and the service finishes the
# head before the rest arrives, so there is no change to detect while the file is in its hands. Only
# a content check can tell, and only for containers that state their own length (WAV, FLAC, MP4); such
# a young file is put back to wait (incomplete_wait_s), not finished or failed (R6; README.md, "Writers
# that pause").
_LONG_HOLD_S = 4.0
_TRUNCATED = [
    pytest.param("wav", 2 / 3, id="wav-head"),
    pytest.param("flac", 2 / 3, id="flac-head"),
    pytest.param("m4a", 2 / 3, id="m4a-head"),
    pytest.param("wav", 0.0, id="created-empty"),
]


@pytest.mark.parametrize(("fmt", "head"), _TRUNCATED)
def test_head_taken_during_a_long_pause_is_not_finished_as_the_recording(
    fmt: str, head: float, tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A writer idle mid-file for longer than settle_s: its truncated head is never finished (R6)."""
    layout = Layout(tmp_path / "site", emulator.base_url,
                    inbox={"settle_s": 0.5, "rescan_s": RESCAN_S, "polling": True,
                           "incomplete_wait_s": 3 * _LONG_HOLD_S})  # fmt: skip
    src = make_tone(tmp_path / f"take.{fmt}", seconds=20.0, fmt=fmt)
    data = src.read_bytes()
    cut = round(len(data) * head)
    head_sha = hashlib.sha256(data[:cut]).hexdigest()
    dst = layout.inbox / f"memo.{fmt}"
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    if cut:
        final_sha = held_open_then_close(src, dst, chunk_bytes=len(data), pause_s=0.0,
                                         hold_s=_LONG_HOLD_S, tail_bytes=len(data) - cut)  # fmt: skip
    else:  # created, then nothing for a while, then the whole recording at once
        final_sha = chunked_copy(src, dst, chunk_bytes=len(data), pause_s=_LONG_HOLD_S)

    def ended() -> bool:
        return (layout.done / "memo.json").exists() or (layout.failed / "memo.error.json").exists()

    wait_quietly(ended, timeout=15)
    time.sleep(1.0)  # let a second round, if any, show up
    received = [r["audio_sha256"] for r in generation_requests(emulator) if r["audio_sha256"]]
    outcome = [e.get("code") for e in events(service, "job_failed")]
    print(f"\nR6 long pause [{fmt}, head {head:.0%}]: head recognized {received.count(head_sha)}x, "
          f"final {received.count(final_sha)}x, failed codes {outcome}, "
          f"done {layout.done_files()}")  # fmt: skip
    assert not (layout.failed / "memo.error.json").exists(), f"the head was failed as {outcome}"
    assert head_sha not in received, "the truncated head was recognized"
    doc = json.loads((layout.done / "memo.json").read_text())
    assert doc["source"]["sha256"] == final_sha
    assert sha256_file(layout.done / f"memo.{fmt}") == final_sha
