"""Writers that pause for longer than the settle time: never a half recording transcribed and finished.

A file that still looks the same after ``settle_s`` may only be resting: a recorder holding it open, a
copy that stalled. The service asks the kernel whether anyone still has the file open for writing,
looks at the file's tail for signs of a cut transfer, and watches finished files for a while in case
their writer resumes after all. Each case is checked against the emulator's log of the exact bytes it
was asked to recognize.
"""

from __future__ import annotations

import json
import os
import random
import struct
import threading
import time
from pathlib import Path

import pytest

from dropscribe.emulator import Emulator
from tests.support.audio import make_tone, sha256_file
from tests.support.checker import recognition_requests
from tests.support.service import Layout, ServiceProcess, wait_for
from tests.support.writers import held_open_then_close

SETTLE_S = 0.3


def start(layout: Layout, services: list[ServiceProcess]) -> ServiceProcess:
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    return service


def recognized_shas(emulator: Emulator) -> set[str]:
    return {r["audio_sha256"] for r in recognition_requests(emulator)}


def test_a_file_held_open_for_writing_is_never_taken(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """A recorder keeps its file open and goes quiet for 10x settle_s: nothing is taken until it closes."""
    src = make_tone(tmp_path / "talk.wav", seconds=4.0, fmt="wav")
    service = start(layout, services)
    resume = threading.Event()
    result: list[str] = []
    writer = threading.Thread(
        target=lambda: result.append(
            held_open_then_close(src, layout.inbox / "talk.wav", pause_s=0.0, hold_s=30.0, resume=resume)
        )
    )
    writer.start()
    try:
        wait_for(lambda: service.saw("job_waiting", reason="another process has it open for writing"), 30)
        time.sleep(10 * SETTLE_S)
        assert recognition_requests(emulator) == [], "a file still open for writing was recognized"
        assert not layout.done.exists()
    finally:
        resume.set()
        writer.join()
    wait_for(lambda: (layout.done / "talk.json").exists(), timeout=60)
    assert recognized_shas(emulator) == {result[0]}
    assert json.loads((layout.done / "talk.json").read_text())["source"]["sha256"] == result[0]


def _wav_header(data_bytes: int, rate: int = 16000) -> bytes:
    return (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", data_bytes)
    )  # fmt: skip


def test_a_finished_file_that_grows_in_done_is_processed_again(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """A writer that resumes after its file was finished (a recorder updating its WAV header as it goes):
    the stale sidecars go at once, and the whole recording comes back with sidecars describing it."""
    pcm = make_tone(tmp_path / "tone.wav", seconds=4.0, fmt="wav").read_bytes()[44:]
    half = len(pcm) // 2
    (layout.inbox / "rec.wav").write_bytes(_wav_header(half) + pcm[:half])
    first_sha = sha256_file(layout.inbox / "rec.wav")
    service = start(layout, services)
    wait_for(lambda: service.saw("job_done"))
    assert json.loads((layout.done / "rec.json").read_text())["source"]["sha256"] == first_sha

    # the writer's handle still points at the file, which now lies in done/: it goes on writing there
    with open(layout.done / "rec.wav", "r+b") as resumed:
        resumed.seek(0, os.SEEK_END)
        resumed.write(pcm[half:])
        resumed.seek(0)
        resumed.write(_wav_header(len(pcm)))
    whole_sha = sha256_file(layout.done / "rec.wav")
    wait_for(lambda: service.saw("finished_file_changed"), timeout=30)
    wait_for(lambda: (layout.done / "rec.json").exists()
             and json.loads((layout.done / "rec.json").read_text())["source"]["sha256"] == whole_sha,
             timeout=60)  # fmt: skip
    assert sha256_file(layout.done / "rec.wav") == whole_sha
    assert sorted(p.name for p in layout.done.iterdir()) == ["rec.json", "rec.txt", "rec.wav"]
    assert recognized_shas(emulator) == {first_sha, whole_sha}
    assert not list(layout.inbox.iterdir())


def _stalled_then_completed(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], whole: bytes, stalled: bytes,
    name: str,
) -> None:  # fmt: skip
    """``stalled`` lies in the inbox, closed, for many settle times; then the writer completes it."""
    layout.data["inboxes"][0]["incomplete_wait_s"] = 120
    layout.write()
    target = layout.inbox / name
    target.write_bytes(stalled)
    service = start(layout, services)
    wait_for(lambda: service.saw("job_waiting", code="truncated_audio"), timeout=30)
    time.sleep(10 * SETTLE_S)
    assert recognition_requests(emulator) == [], "a recording cut off mid-transfer was recognized"
    assert not layout.done.exists()
    assert not layout.failed.exists()
    # the writer comes back: the rest of the bytes (or, for a pre-allocated file, the real ones)
    with open(target, "r+b") as out:
        out.write(whole)
    wait_for(lambda: service.saw("job_done"), timeout=60)
    whole_sha = sha256_file(layout.done / name)
    assert recognized_shas(emulator) == {whole_sha}
    assert json.loads((layout.done / name).with_suffix(".json").read_text())["source"]["sha256"] == whole_sha


def test_an_mp3_upload_that_stalls_mid_frame_waits(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    whole = make_tone(tmp_path / "talk.mp3", seconds=6.0, fmt="mp3").read_bytes()
    _stalled_then_completed(layout, emulator, services, whole, whole[: len(whole) // 2 + 7], "talk.mp3")


def test_an_ogg_upload_that_stalls_waits(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    whole = make_tone(tmp_path / "talk.ogg", seconds=6.0, fmt="ogg").read_bytes()
    _stalled_then_completed(layout, emulator, services, whole, whole[: len(whole) * 2 // 3], "talk.ogg")


def test_a_preallocated_copy_that_stalls_waits(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """A Windows/SMB copy reserves the full size (zeros), writes in 64 KiB blocks, then stalls."""
    whole = make_tone(tmp_path / "talk.wav", seconds=8.0, fmt="wav").read_bytes()
    written = (len(whole) // 2) // 65536 * 65536
    stalled = whole[:written] + bytes(len(whole) - written)
    _stalled_then_completed(layout, emulator, services, whole, stalled, "talk.wav")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.mp3", b"Meeting notes, not a recording.\n" * 200),
        ("noise.wav", random.Random(5).randbytes(100_000)),
    ],
)
def test_garbage_fails_at_once(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], name: str, data: bytes
) -> None:
    """No known media signature at its head: waiting will not make it a recording."""
    layout.data["inboxes"][0]["incomplete_wait_s"] = 300
    layout.write()
    (layout.inbox / name).write_bytes(data)
    started = time.monotonic()
    start(layout, services)
    error = layout.failed / Path(name).with_suffix(".error.json").name
    wait_for(error.exists, timeout=30)
    assert time.monotonic() - started < 20
    assert json.loads(error.read_text())["code"] == "not_audio"
    assert recognition_requests(emulator) == []
