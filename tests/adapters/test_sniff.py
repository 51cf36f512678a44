"""The sniff adapter on real files on disk: finished, cut, pre-allocated, still arriving, huge and sparse."""

from __future__ import annotations

import os
import random
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from dropscribe.adapters.files import open_input
from dropscribe.adapters.sniff import look
from tests.support.audio import FORMATS, make_tone
from tests.support.service import wait_for
from tests.support.writers import held_open_then_close

GRAIN = 64 * 1024
TWO_GB = 2 * 1024**3

KINDS = {
    "wav": "wav", "mp3": "mp3", "m4a": "mp4", "flac": "flac", "ogg": "ogg", "opus": "ogg",
    "aac": "aac", "webm": "matroska", "aiff": "aiff",
}  # fmt: skip


def look_at(path: Path) -> tuple[str | None, str | None]:
    with open_input(path) as handle:
        return look(handle)


def bytes_read_by_process() -> int:
    """What this process has read through read-like system calls so far (pread included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


class TestFinished:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_real_file_is_media_and_finished(self, tmp_path: Path, fmt: str) -> None:
        """A complete recording of every fixture format: its kind, nothing unfinished."""
        path = make_tone(tmp_path / f"tone.{fmt}", seconds=20.0, fmt=fmt)

        assert look_at(path) == (KINDS[fmt], None)

    def test_file_position_is_left_alone(self, tmp_path: Path) -> None:
        """The caller hashes and decodes through the same handle: looking must not move it."""
        path = make_tone(tmp_path / "tone.mp3", seconds=20.0, fmt="mp3")
        with open_input(path) as handle:
            handle.seek(1234)
            assert look(handle) == ("mp3", None)
            assert handle.tell() == 1234
            assert handle.read(4) == path.read_bytes()[1234:1238]


class TestUnfinished:
    @pytest.mark.parametrize("fmt", ["mp3", "ogg", "m4a", "aac", "flac", "webm", "wav"])
    def test_upload_cut_on_disk(self, tmp_path: Path, fmt: str) -> None:
        """A file whose transfer stopped part-way: its kind, and a reason."""
        path = make_tone(tmp_path / f"tone.{fmt}", seconds=20.0, fmt=fmt)
        os.truncate(path, path.stat().st_size * 2 // 3 + 11)

        kind, reason = look_at(path)
        assert kind == KINDS[fmt]
        assert reason

    def test_writer_holding_back_its_tail(self, tmp_path: Path, pool: ThreadPoolExecutor) -> None:
        """A real writer stops before the last 4 KiB: unfinished; once it writes them: finished."""
        src = make_tone(tmp_path / "src.mp3", seconds=20.0, fmt="mp3")
        dst = tmp_path / "inbox.mp3"
        resume = threading.Event()
        writer: Future[str] = pool.submit(
            held_open_then_close, src, dst, 64 * 1024, 0.0, hold_s=30.0, tail_bytes=4096, resume=resume
        )
        try:
            wait_for(lambda: dst.exists() and dst.stat().st_size == src.stat().st_size - 4096)
            kind, reason = look_at(dst)
            assert kind == "mp3"
            assert reason
        finally:
            resume.set()
        writer.result(timeout=30)

        assert look_at(dst) == ("mp3", None)

    @pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "m4a"])
    def test_preallocated_copy_that_stalled(self, tmp_path: Path, fmt: str) -> None:
        """The final size is set first, then data arrives in 64 KiB blocks and stops: unfinished."""
        src = make_tone(tmp_path / f"src.{fmt}", seconds=60.0, fmt=fmt)
        data = src.read_bytes()
        dst = tmp_path / f"copy.{fmt}"
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, len(data))
            kind, reason = look_at(dst)
            assert kind is None
            assert reason  # nothing written yet: reserved zeros, not garbage
            written = len(data) // GRAIN // 2 * GRAIN
            os.pwrite(fd, data[:written], 0)

            kind, reason = look_at(dst)
            assert kind == KINDS[fmt]
            assert reason

            os.pwrite(fd, data[written:], written)
        finally:
            os.close(fd)
        assert look_at(dst) == (KINDS[fmt], None)


class TestGarbage:
    def test_text_and_random_bytes_are_not_media(self, tmp_path: Path) -> None:
        """No signature, nothing to wait for: the caller may fail these at once."""
        text = tmp_path / "notes.mp3"
        text.write_text("Agenda\n- budget\n- hiring\n" * 500)
        noise = tmp_path / "noise.wav"
        noise.write_bytes(random.Random(3).randbytes(300_000))

        assert look_at(text) == (None, None)
        assert look_at(noise) == (None, None)

    def test_empty_file(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.mp3"
        path.touch()

        assert look_at(path) == (None, None)


class TestHugeFiles:
    @pytest.mark.timing
    def test_2gb_files_are_judged_from_a_few_hundred_kib(self, tmp_path: Path) -> None:
        """Sparse 2 GB files: the process reads a few hundred KiB for each, in milliseconds."""
        wav = make_tone(tmp_path / "src.wav", seconds=30.0, fmt="wav").read_bytes()
        mp3 = make_tone(tmp_path / "src.mp3", seconds=90.0, fmt="mp3").read_bytes()
        header = bytearray(wav[: 5 * GRAIN])
        data_at = header.index(b"data")
        struct.pack_into("<I", header, 4, TWO_GB - 8)
        struct.pack_into("<I", header, data_at + 4, TWO_GB - data_at - 8)
        cases = {
            "stalled.wav": ([(0, bytes(header))], ("wav", True)),
            "whole.wav": ([(0, bytes(header)), (TWO_GB - 3 * GRAIN, wav[-3 * GRAIN :])], ("wav", False)),
            "whole.mp3": ([(0, mp3[:GRAIN]), (TWO_GB - 200_000, mp3[-200_000:])], ("mp3", False)),
            "cut.mp3": ([(0, mp3[:GRAIN]), (TWO_GB - 200_000, mp3[-200_000:-1500])], ("mp3", True)),
        }
        for name, (parts, (kind, unfinished)) in cases.items():
            path = tmp_path / name
            with path.open("wb") as out:
                for offset, chunk in parts:
                    out.seek(offset)
                    out.write(chunk)
                out.truncate(TWO_GB)
            assert path.stat().st_blocks * 512 < 10 * 1024**2  # really sparse

            before, started = bytes_read_by_process(), time.perf_counter()
            found = look_at(path)
            elapsed, read = time.perf_counter() - started, bytes_read_by_process() - before

            assert found[0] == kind, name
            assert (found[1] is not None) is unfinished, (name, found)
            assert read <= 400 * 1024, (name, read)
            assert elapsed < 2.0, (name, elapsed)
