"""Hostile and broken inputs: each ends in failed/ with a stable code, secrets never leave, the service
stays up."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dropscribe.emulator import Emulator
from tests.support.audio import make_tone, make_video_without_audio, sha256_file
from tests.support.service import Layout, ServiceProcess, wait_for


def truncated(fmt: str) -> Callable[[Path, Path], None]:
    def make(path: Path, scratch: Path) -> None:
        whole = make_tone(scratch / f"whole.{fmt}", seconds=3.0, fmt=fmt)
        data = whole.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return make


def symlink_to_secret(path: Path, scratch: Path) -> None:
    os.symlink(make_tone(scratch / "secret.wav", seconds=1.0, fmt="wav", freq=999), path)


def hardlink_to_secret(path: Path, scratch: Path) -> None:
    os.link(make_tone(scratch / "secret.wav", seconds=1.0, fmt="wav", freq=999), path)


def fifo(path: Path, scratch: Path) -> None:
    os.mkfifo(path)


def unix_socket(path: Path, scratch: Path) -> None:
    # a bound socket leaves a socket inode behind; it stays after the socket object is closed
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


def sparse_10_gb(path: Path, scratch: Path) -> None:
    with open(path, "wb") as out:
        out.truncate(10 * 1024**3)


CASES: dict[str, tuple[str, Callable[[Path, Path], object], str]] = {
    "symlink": ("link.wav", symlink_to_secret, "symlink"),
    "hard-link": ("hard.wav", hardlink_to_secret, "hard_link"),
    "fifo": ("pipe.wav", fifo, "not_regular_file"),
    "socket": ("sock.wav", unix_socket, "not_regular_file"),
    "zero-byte": ("empty.mp3", lambda p, s: p.write_bytes(b""), "empty_file"),
    "text-as-mp3": ("notes.mp3", lambda p, s: p.write_text("meeting notes\n" * 200), "not_audio"),
    "garbage": ("noise.wav", lambda p, s: p.write_bytes(os.urandom(200_000)), "not_audio"),
    # the head of real media cut short: told apart from garbage by its signature, so "truncated"
    "riff-header-only": (
        "head.wav",
        lambda p, s: p.write_bytes(b"RIFF\x24\0\0\0WAVEfmt "),
        "truncated_audio",
    ),
    "truncated-flac": ("cut.flac", truncated("flac"), "truncated_audio"),
    "truncated-wav": ("cut.wav", truncated("wav"), "truncated_audio"),
    "truncated-m4a": ("cut.m4a", truncated("m4a"), "truncated_audio"),
    "video-no-audio": ("clip.mp4", lambda p, s: make_video_without_audio(p), "no_audio_stream"),
    "too-long": ("long.flac", lambda p, s: make_tone(p, seconds=95.0, fmt="flac"), "too_long"),
    "over-size-cap": ("big.wav", lambda p, s: make_tone(p, seconds=70.0, fmt="wav"), "too_large"),
    "sparse-10GB": ("huge.wav", sparse_10_gb, "too_large"),
}


def test_every_hostile_input_fails_safely(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """Each bad input lands in failed/ with its code; none is sent; the service keeps working."""
    layout.data["defaults"] = {"max_duration_s": 90, "max_size_mb": 2}
    layout.write()
    scratch = tmp_path / "outside"
    scratch.mkdir()
    for case, (name, make, _code) in CASES.items():
        folder = layout.inbox / case
        folder.mkdir()
        (scratch / case).mkdir()
        make(folder / name, scratch / case)
    secret_sha = sha256_file(next(scratch.rglob("secret.wav")))
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)

    def reports() -> dict[str, dict[str, Any]]:
        found = {}
        for case, (name, _make, _code) in CASES.items():
            report = layout.failed / case / (name.rsplit(".", 1)[0] + ".error.json")
            # the report is written first, the file moved last
            if report.exists() and not os.path.lexists(layout.inbox / case / name):
                found[case] = json.loads(report.read_text())
        return found

    wait_for(lambda: len(reports()) == len(CASES), timeout=60)
    codes = {case: report["code"] for case, report in reports().items()}
    assert codes == {case: code for case, (_n, _m, code) in CASES.items()}
    for case, (name, _make, _code) in CASES.items():
        assert os.path.lexists(layout.failed / case / name), case
        assert not os.path.lexists(layout.inbox / case / name), case
    assert os.path.islink(layout.failed / "symlink" / "link.wav")
    # the secret's bytes never left the machine, whichever way it was linked
    assert all(r["audio_sha256"] != secret_sha for r in emulator.requests())
    assert [r for r in emulator.requests() if "generation" in r["path"]] == []

    make_tone(layout.inbox / "after.wav", seconds=1.0, fmt="wav")
    wait_for(lambda: (layout.done / "after.txt").exists())
    assert service.proc.poll() is None


ODD_NAMES = {
    "newline": "line1\nline2.wav",
    "escape": "bell\x07 and \x1b[31mred.wav",
    "leading-dash": "-rf --help.wav",
    "latin1": "M\xfcller.wav",  # becomes a non-UTF-8 byte name below
    "bidi": "invoice\u202egnp.wav",
    "long": "x" * 251 + ".wav",
}


def test_odd_names_are_transcribed_and_logged_escaped(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """Recordings with odd names are still recordings: transcribed, and their names never forge a log line."""
    inbox = os.fsencode(layout.inbox)
    names: dict[str, str] = {}
    for case, name in ODD_NAMES.items():
        raw = name.encode("latin-1") if case == "latin1" else name.encode()
        make_tone(Path(os.fsdecode(inbox + b"/" + raw)), seconds=1.0, fmt="wav", freq=300 + len(names) * 50)
        names[case] = os.fsdecode(raw)
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    wait_for(lambda: os.listdir(layout.inbox) == [], timeout=30)
    assert os.listdir(layout.inbox) == []
    assert not layout.failed.exists()
    done = set(os.listdir(layout.done))
    for case, name in names.items():
        if case == "long":
            (final,) = [n for n in done if n.startswith("xxxx") and n.endswith(".wav")]
            assert len(os.fsencode(final)) <= 255
            assert final.endswith("….wav")
            doc = json.loads((layout.done / (final[:-4] + ".json")).read_text())
            assert doc["source"]["original_name"] == name
        else:
            assert name in done, case
            assert name[:-4] + ".txt" in done, case
    service.stop()
    # one JSON object per line: no name could split or colour a log line
    for line in service.lines:
        json.loads(line)
        assert "\x1b" not in line
        assert "\u202e" not in line
