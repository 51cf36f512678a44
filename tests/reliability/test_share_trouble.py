"""Share trouble: an inbox that vanishes or is unmounted fails nothing, and is picked up when it returns."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dropscribe.emulator import Emulator, Fault
from tests.support.audio import make_tone
from tests.support.service import Layout, ServiceProcess, wait_for


def test_inbox_that_disappears_and_returns(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """While the inbox folder is gone nothing fails; when it is back every file is transcribed."""
    emulator.add_fault(Fault(path="generation", delay_s=1.5, times=1))
    for index in range(3):
        make_tone(layout.inbox / f"f{index}.wav", seconds=1.0, fmt="wav", freq=300 + 100 * index)
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    wait_for(lambda: service.saw("job_taken"))
    away = tmp_path / "share-offline"
    layout.inbox.rename(away)  # the share goes away mid-job
    wait_for(lambda: service.saw("inbox_unavailable"), timeout=15)
    assert not layout.failed.exists()
    away.rename(layout.inbox)
    wait_for(lambda: len([n for n in layout.done_files() if n.endswith(".wav")]) == 3, timeout=30)
    wait_for(lambda: list(layout.inbox.iterdir()) == [])  # the move is link, fsync, then unlink
    assert not layout.failed.exists()


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


def test_unmounted_share_is_not_an_empty_folder(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """After the inbox's mount goes away, the bare mount point is reported, not scanned as empty."""
    share = tmp_path / "nas"
    share.mkdir()
    if not _mount("--bind", str(share), str(layout.inbox)):
        pytest.skip("bind mounts are not allowed here (needs root and CAP_SYS_ADMIN)")
    try:
        make_tone(share / "before.wav", seconds=1.0, fmt="wav")
        service = ServiceProcess(layout.config).wait_started()
        services.append(service)
        # the move is the last step: until then the service may hold the file open on the share
        wait_for(lambda: service.saw("job_done"))
        subprocess.run(["umount", str(layout.inbox)], check=True)
        wait_for(lambda: service.saw("inbox_unavailable"), timeout=15)
        assert any("not mounted" in str(e.get("problem")) for e in service.events)
        # while unmounted, the share's new files wait; nothing fails, nothing is lost
        make_tone(share / "while-away.wav", seconds=1.0, fmt="wav", freq=600)
        assert _mount("--bind", str(share), str(layout.inbox))
        wait_for(lambda: (layout.done / "while-away.txt").exists(), timeout=30)
        assert not layout.failed.exists()
    finally:
        for running in services:  # a watch on the mount point keeps it busy
            running.stop()
        if subprocess.run(["umount", str(layout.inbox)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "--lazy", str(layout.inbox)], capture_output=True, check=False)
