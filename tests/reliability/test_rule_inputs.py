"""Rule files and the context files they name are inputs from the share too: a FIFO, a sparse giant or a
link swapped in at the right moment holds its folder and never hangs the service, bloats it, or sends a
file from outside the inbox to the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dropscribe.emulator import Emulator
from tests.support.audio import make_tone
from tests.support.service import Layout, ServiceProcess, wait_for

RULES = "asr-rules.yaml"
NOTE = RULES + ".error.txt"

# argv: the context file, the secret, the harmless text, the stop file; prints how many flips it made
FLIPPER = """
import os, sys
ctx, secret, harmless, stop = sys.argv[1:]
folder = os.path.dirname(ctx)
link, regular = os.path.join(folder, ".ctx-link"), os.path.join(folder, ".ctx-regular")
flips = 0
while not os.path.exists(stop):
    os.symlink(secret, link)
    os.replace(link, ctx)
    with open(regular, "w", encoding="utf-8") as out:
        out.write(harmless + "\\n")
    os.replace(regular, ctx)
    flips += 1
print(flips)
"""


def peak_rss_mb(pid: int) -> float:
    """The most resident memory the process ever had (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def note_says(folder: Path, text: str) -> bool:
    note = folder / NOTE
    return note.exists() and text in note.read_text(encoding="utf-8")


def test_fifo_rule_file_holds_its_folder_only(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A named pipe called asr-rules.yaml is refused without blocking; other folders carry on."""
    piped = layout.inbox / "piped"
    piped.mkdir()
    os.mkfifo(piped / RULES)
    make_tone(piped / "waits.wav", seconds=1.0, fmt="wav", freq=500)
    (layout.inbox / "other").mkdir()
    make_tone(layout.inbox / "other" / "fine.wav", seconds=1.0, fmt="wav", freq=700)
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)

    # fine.wav was made after waits.wav: once it is done, waits.wav was seen and is held
    wait_for(lambda: (layout.done / "other" / "fine.txt").exists(), timeout=20)
    wait_for(lambda: note_says(piped, "is not a regular file"), timeout=10)
    assert service.saw("rules_invalid", rule_file=str(piped / RULES))
    assert (piped / "waits.wav").exists()
    assert not (layout.done / "piped").exists()
    assert not layout.failed.exists()
    assert service.proc.poll() is None


def test_sparse_giant_rule_file_is_refused_unread(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A 3 GB (sparse) rule file is refused by its size, before a byte is read: the service stays small."""
    big = layout.inbox / "big"
    big.mkdir()
    with open(big / RULES, "wb"):
        pass
    os.truncate(big / RULES, 3 * 1024**3)
    make_tone(big / "waits.wav", seconds=1.0, fmt="wav", freq=500)
    (layout.inbox / "other").mkdir()
    make_tone(layout.inbox / "other" / "fine.wav", seconds=1.0, fmt="wav", freq=700)
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)

    wait_for(lambda: (layout.done / "other" / "fine.txt").exists(), timeout=20)
    wait_for(lambda: note_says(big, "too large"), timeout=10)
    assert "3,221,225,472 bytes" in (big / NOTE).read_text(encoding="utf-8")
    assert (big / "waits.wav").exists()
    assert peak_rss_mb(service.proc.pid) < 200
    assert service.proc.poll() is None


def test_context_file_swapped_for_a_link_never_sends_the_secret(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """ctx.txt flipped between a harmless file and a link to a secret outside the inbox, while 20
    recordings go through: every request carries the harmless context, none the secret; a link that
    stays is refused and holds the folder."""
    harmless, secret = "harmless glossary: Ada Lovelace", "TOP-SECRET-7f3a9c launch codes"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(secret + "\n", encoding="utf-8")
    team = layout.inbox / "team"
    team.mkdir()
    ctx = team / "ctx.txt"
    ctx.write_text(harmless + "\n", encoding="utf-8")
    (team / RULES).write_text("context_file: ctx.txt\n", encoding="utf-8")
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)

    # a separate process flips as fast as the machine lets it (a thread would wait for the GIL); links
    # and files are prepared under dot names (never taken) and swapped in by rename, as a share user could
    stop = tmp_path / "stop-flipping"
    flipper = subprocess.Popen(
        [sys.executable, "-c", FLIPPER, str(ctx), str(outside / "secret.txt"), harmless, str(stop)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for index in range(20):
            make_tone(team / f"r{index:02d}.wav", seconds=0.5, fmt="wav", freq=300 + 37 * index)
        # while it flips, a file goes through whenever the harmless file is what was read; a few are
        # enough to show requests were made during the race (how many depends on the machine's load)
        wait_for(lambda: len(list((layout.done / "team").glob("r*.txt"))) >= 3, timeout=90)
    finally:
        stop.touch()
        flips = int(flipper.communicate(timeout=10)[0])
    assert flips > 20
    assert not ctx.is_symlink()  # the flipper always stops on the harmless file
    wait_for(lambda: len(list((layout.done / "team").glob("r*.txt"))) == 20, timeout=60)
    # the race was run: some reads met the link and held the folder for a moment
    assert service.saw("rules_invalid", rule_file=str(team / RULES))

    contexts = [r.get("context") for r in emulator.requests() if "generation" in r["path"]]
    assert len(contexts) >= 20
    assert [c for c in contexts if c is not None and "TOP-SECRET" in c] == []
    assert set(contexts) == {harmless}

    # a link that stays is refused with a clear message and holds the folder
    os.symlink(outside / "secret.txt", team / ".ctx-link")
    os.replace(team / ".ctx-link", ctx)
    make_tone(team / "late.wav", seconds=0.5, fmt="wav", freq=1900)
    wait_for(lambda: note_says(team, "ctx.txt is a symbolic link"), timeout=20)
    # made after late.wav and done: late.wav was seen too, and waits because its folder is held
    make_tone(layout.inbox / "sentinel.wav", seconds=0.5, fmt="wav", freq=2100)
    wait_for(lambda: (layout.done / "sentinel.txt").exists(), timeout=20)
    assert (team / "late.wav").exists()
    assert not (layout.done / "team" / "late.txt").exists()
    assert "TOP-SECRET" not in json.dumps(emulator.requests())
    assert service.proc.poll() is None
