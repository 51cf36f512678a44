"""Long recordings through the real service: chunks go out while the file is still being split,
the staging folder stays bounded, and a chunk refused for its length gets the file re-planned."""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dropscribe.emulator import Emulator, EmulatorConfig
from dropscribe.emulator.faults import Fault
from tests.support.audio import make_noise, make_speechlike
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

CONCURRENCY = 2
STAGED_BOUND = CONCURRENCY + 2  # the pool's workers, plus two chunks ready for them


def recognitions(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if "generation" in r["path"] and r["status"] == 200]


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class StagingSampler:
    """Counts the chunk files in the staging folder every few milliseconds while the service runs."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StagingSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            count = 0
            for _root, _dirs, names in os.walk(self.staging):
                count += sum(1 for n in names if n.startswith(("chunk-", ".chunk-")))
            self.most = max(self.most, count)
            self.samples += 1


def test_long_file_is_sent_while_it_is_split_and_staging_stays_bounded(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """10 minutes at 60 s chunks: the first request leaves before the last chunk is encoded, never more
    than concurrency + 2 chunks are staged, and the transcript joins the chunks in order."""
    layout = Layout(tmp_path / "site", emulator.base_url, defaults={"chunk_max_s": 60})
    layout.data["dashscope"]["concurrency"] = CONCURRENCY
    layout.write()
    # recognition slower than the split, as the real one is: the split has to wait for free slots
    emulator.add_fault(Fault(delay_s=1.0, times=None))
    source = make_speechlike(tmp_path / "lecture.wav", 600.0, "wav")
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)

    with StagingSampler(layout.state.parent / "staging") as sampler:
        os.rename(source, layout.inbox / "lecture.wav")
        wait_for(lambda: (layout.done / "lecture.json").exists(), timeout=120)

    sent = recognitions(emulator)
    encoded = [e for e in service.events if e.get("event") == "chunk_encoded"]
    assert len(sent) == len(encoded) >= 10
    assert at(sent[0]["time"]) < at(encoded[-1]["timestamp"]), "nothing was sent before the split ended"
    assert sampler.samples > 50
    assert sampler.most <= STAGED_BOUND
    assert sampler.most >= STAGED_BOUND - 1, "the split never ran ahead: the bound was not exercised"
    doc = json.loads((layout.done / "lecture.json").read_text())
    segments = doc["segments"]
    assert len(segments) == len(encoded)
    assert [s["start_s"] for s in segments] == pytest.approx([e["start_s"] for e in encoded], abs=0.001)
    assert segments[0]["start_s"] == 0.0
    assert segments[-1]["end_s"] == pytest.approx(600.0, abs=0.2)
    for before, after in itertools.pairwise(segments):
        assert after["start_s"] > before["start_s"]
        assert after["start_s"] - before["start_s"] <= 60.0 + 1e-6
        # cut in a pause of the speech-like audio: a 0.5 s gap ends every 5 s
        assert after["start_s"] % 5.0 >= 4.5 - 0.05 or after["start_s"] % 5.0 <= 0.05
    assert sum(r["duration_s"] for r in sent) == pytest.approx(600.0, abs=0.5)
    assert doc["text"] == " ".join(s["text"] for s in segments)
    assert not any((layout.state.parent / "staging").glob("*/chunk-*"))


@pytest.fixture
def short_model_emulator() -> Iterator[Emulator]:
    """A model that takes at most 40 s of audio per request."""
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_keys={API_KEY}, max_sync_duration_s=40.0))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def test_a_chunk_refused_for_its_length_gets_the_file_replanned_shorter(
    tmp_path: Path, short_model_emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """60 s chunks against a 40 s model limit: the file is planned again at 30 s and comes back done."""
    emulator = short_model_emulator
    layout = Layout(tmp_path / "site", emulator.base_url, defaults={"chunk_max_s": 60})
    source = make_speechlike(tmp_path / "talk.wav", 150.0, "wav")
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)

    os.rename(source, layout.inbox / "talk.wav")
    wait_for(lambda: (layout.done / "talk.json").exists() or layout.failed_files(), timeout=60)

    assert layout.failed_files() == []
    assert service.saw("chunk_too_long_replanning", chunk_max_s=60.0, replanned_chunk_max_s=30.0)
    refused = [r for r in emulator.requests() if "generation" in r["path"] and r["status"] == 400]
    assert refused, "no chunk was refused: the case did not happen"
    sent = recognitions(emulator)
    assert all(r["duration_s"] <= 30.0 for r in sent)
    assert sum(r["duration_s"] for r in sent) == pytest.approx(150.0, abs=0.5)
    doc = json.loads((layout.done / "talk.json").read_text())
    assert doc["segments"][0]["start_s"] == 0.0
    assert doc["segments"][-1]["end_s"] == pytest.approx(150.0, abs=0.2)
    assert [s["start_s"] for s in doc["segments"]] == sorted(s["start_s"] for s in doc["segments"])


def test_a_chunk_too_big_for_an_inline_request_gets_the_file_replanned_shorter(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """Noise at 16 kHz does not compress: a 290 s chunk is over 7 MiB, more than a data URL may carry in a
    10 MB request. The file is planned again at 145 s instead of failing as too large."""
    layout = Layout(tmp_path / "site", emulator.base_url, defaults={"chunk_max_s": 290})
    source = make_noise(tmp_path / "hiss.wav", 400.0)
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)

    os.rename(source, layout.inbox / "hiss.wav")
    wait_for(lambda: (layout.done / "hiss.json").exists() or layout.failed_files(), timeout=120)

    assert layout.failed_files() == []
    assert service.saw("chunk_too_long_replanning", chunk_max_s=290.0, replanned_chunk_max_s=145.0,
                       code="too_large")  # fmt: skip
    assert all(r["duration_s"] <= 145.0 for r in recognitions(emulator)), "no chunk over the limit went out"
    doc = json.loads((layout.done / "hiss.json").read_text())
    assert all(s["end_s"] - s["start_s"] <= 145.0 + 0.1 for s in doc["segments"])
    assert doc["segments"][-1]["end_s"] == pytest.approx(400.0, abs=0.2)
