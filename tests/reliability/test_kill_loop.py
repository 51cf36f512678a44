"""R1/R3/R16: kill -9 the service at random moments while files arrive; nothing is lost or paid twice.

A mixed corpus (five formats, duplicated bytes under other names, files that are not audio, one long
recording that is split) is dropped in batches while the service is started and SIGKILLed over and
over. Every recognition is slowed down by the emulator so that many kills land while a call is in
flight. Then the service runs undisturbed to completion and the end-of-run checker judges the result.

``DROPSCRIBE_KILLS`` sets the number of kills (default 200, what CI runs; e.g. 2000 for a long run)
and ``DROPSCRIBE_SEED`` replays a given run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dropscribe.emulator import Emulator, Fault
from tests.support.audio import make_speechlike, make_tone, sha256_file
from tests.support.checker import account_for_kills, check_outcome, unexplained_repeats
from tests.support.service import Layout, ServiceProcess, wait_for

KILLS = int(os.environ.get("DROPSCRIBE_KILLS", "200"))
CALL_DELAY_S = 0.15
KILL_AFTER_S = (0.05, 1.2)
EARLY_KILLS = 0.25  # the share of kills timed from the process start, not from "service_started"
SETTLE_S, RESCAN_S = 0.2, 0.3
BATCHES = 5
# A call is "exposed" to a kill from the moment the emulator logged it until its answer is
# committed: the delay, plus generous room for the reply to be parsed and the commit to reach disk.
EXPOSURE_S = CALL_DELAY_S + 0.35
IDLE_RESTARTS = 5
FORMATS = ("wav", "mp3", "flac", "m4a", "ogg")
FOLDERS = ("", "alice/", "bob/2026/")
NO_CRASH_POINT = {"DROPSCRIBE_CRASH_AT": ""}  # only the loop's own kills, whatever the environment says


@dataclass
class Corpus:
    """Files prepared outside the inbox, by relpath, with the sha of their bytes."""

    scratch: Path
    files: dict[str, Path] = field(default_factory=dict)
    shas: dict[str, str] = field(default_factory=dict)

    def add(self, relpath: str, path: Path) -> None:
        self.files[relpath] = path
        self.shas[relpath] = sha256_file(path)


def build_corpus(scratch: Path, rng: random.Random) -> Corpus:
    """40 inputs: 33 short tones, 4 byte-identical copies, 2 non-audio files, 1 recording to split."""
    corpus = Corpus(scratch)
    tones: list[str] = []
    for i in range(33):
        fmt = FORMATS[i % len(FORMATS)]
        relpath = f"{FOLDERS[i % len(FOLDERS)]}memo-{i:02d}.{fmt}"
        seconds = round(rng.uniform(1.0, 3.0), 1)
        # a distinct integral pitch per file, so no two recordings share bytes by accident
        path = make_tone(scratch / f"{i:02d}.{fmt}", seconds=seconds, fmt=fmt, freq=200.0 + 13 * i)
        corpus.add(relpath, path)
        tones.append(relpath)
    for n, original in enumerate(rng.sample(tones, 4)):
        copy = scratch / f"copy-{n}{Path(original).suffix}"
        shutil.copyfile(corpus.files[original], copy)  # separate inode: a hard link would be refused
        corpus.add(f"copies/again-{n}{Path(original).suffix}", copy)
    notes = scratch / "notes.mp3"
    notes.write_text("minutes of the meeting, not a recording\n" * 40)
    corpus.add("notes.mp3", notes)
    noise = scratch / "noise.wav"
    # fixed bytes, not the run's seed, so its expected fate (not_audio) never depends on how FFmpeg
    # probes whatever random data a seed produced
    noise.write_bytes(random.Random(0).randbytes(64_000))
    corpus.add("alice/noise.wav", noise)
    corpus.add("lecture.mp3", make_speechlike(scratch / "lecture.mp3", 150.0, "mp3"))
    return corpus


def drop(corpus: Corpus, relpaths: list[str], inbox: Path) -> None:
    for relpath in relpaths:
        target = inbox / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(corpus.files[relpath], target)  # atomic: partial writes are another harness's topic


def all_outcomes_in(layout: Layout, inputs: dict[str, str]) -> bool:
    """No input is left in the inbox and there are as many outcome documents as inputs."""
    if any(os.path.lexists(layout.inbox / relpath) for relpath in inputs):
        return False
    return outcome_documents(layout) >= len(inputs)


def outcome_documents(layout: Layout) -> int:
    return len([*layout.done.rglob("*.json"), *layout.failed.rglob("*.error.json")])


def _started_or_gone(service: ServiceProcess) -> bool:
    return service.saw("service_started") or service.proc.poll() is not None


def outputs_listing(layout: Layout) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(layout.root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for root in (layout.done, layout.failed) for p in root.rglob("*") if p.is_file()
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(300 + 2 * KILLS)
def test_random_kills_lose_nothing_and_pay_once(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """Hundreds of random kill -9s while files arrive: every file ends once in done/ or failed/, paid once."""
    seed = int(os.environ.get("DROPSCRIBE_SEED", str(random.SystemRandom().randrange(2**32))))
    print(f"\nkill loop: seed={seed} kills={KILLS} (replay with DROPSCRIBE_SEED={seed})")
    rng = random.Random(seed)
    started = time.monotonic()

    layout = Layout(
        tmp_path / "site", emulator.base_url,
        inbox={"settle_s": SETTLE_S, "rescan_s": RESCAN_S}, defaults={"chunk_max_s": 60},
    )  # fmt: skip
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    corpus = build_corpus(scratch, rng)
    order = list(corpus.files)
    rng.shuffle(order)
    batches = [order[b::BATCHES] for b in range(BATCHES)]
    # batches arrive over the first 60 % of the loop, so the rest of it works through a backlog
    drop_at: dict[int, list[str]] = {}
    for b, batch in enumerate(batches):
        drop_at.setdefault(round(b * KILLS * 0.6 / BATCHES), []).extend(batch)
    emulator.add_fault(Fault(path="generation", delay_s=CALL_DELAY_S, times=None))

    kill_times: list[float] = []
    died_alone: list[str] = []
    crashed_jobs: list[dict[str, Any]] = []
    for iteration in range(KILLS):
        if iteration in drop_at:
            drop(corpus, drop_at.pop(iteration), layout.inbox)
        service = ServiceProcess(layout.config, NO_CRASH_POINT)
        services.append(service)
        # most kills land while the service works; some during start-up and recovery. Counting from the
        # process start alone would, on a loaded machine, kill most runs before Python has imported.
        if rng.random() >= EARLY_KILLS:
            with contextlib.suppress(AssertionError):  # one that died by itself is reported below
                wait_for(functools.partial(_started_or_gone, service), 30)
        time.sleep(rng.uniform(*KILL_AFTER_S))
        if service.proc.poll() is not None:
            tail = service.output()[-2000:]
            died_alone.append(f"iteration {iteration}: exit {service.proc.returncode}\n{tail}")
        kill_times.append(time.time())
        service.kill()
        crashed_jobs += [e for e in service.events if e.get("event") == "job_crashed"]
    for batch in drop_at.values():  # fewer kills than batches: the rest arrives now
        drop(corpus, batch, layout.inbox)
    loop_s = time.monotonic() - started
    finished_in_loop = outcome_documents(layout)

    final = ServiceProcess(layout.config, NO_CRASH_POINT).wait_started()
    services.append(final)
    inputs = corpus.shas
    with contextlib.suppress(AssertionError):  # on timeout the checker says precisely what is missing
        wait_for(lambda: all_outcomes_in(layout, inputs), timeout=120)
    assert final.stop() == 0
    crashed_jobs += [e for e in final.events if e.get("event") == "job_crashed"]
    report = check_outcome(layout, inputs, emulator)

    # R16: restarts while idle do nothing at all: no request, no file touched
    requests_before = len(emulator.requests())
    listing_before = outputs_listing(layout)
    for _ in range(IDLE_RESTARTS):
        idle = ServiceProcess(layout.config, NO_CRASH_POINT).wait_started()
        services.append(idle)
        time.sleep(SETTLE_S + 3 * RESCAN_S)  # long enough for several scans and a settle period
        assert idle.stop() == 0
    assert len(emulator.requests()) == requests_before, "an idle restart sent requests"
    assert outputs_listing(layout) == listing_before, "an idle restart touched done/ or failed/"
    check_outcome(layout, inputs, emulator)

    account = account_for_kills(report, emulator, kill_times, EXPOSURE_S)
    kills_on_calls = account.kills_on_calls
    total_s = time.monotonic() - started
    outcomes = list(report.outcomes.values())
    print(
        f"kill-loop summary: seed={seed} kills={len(kill_times)} kills_during_calls={kills_on_calls} "
        f"files={len(inputs)} finished_during_loop={finished_in_loop} "
        f"distinct_shas={len(set(inputs.values()))} done={outcomes.count('done')} "
        f"failed={outcomes.count('failed')} recognitions={report.total_recognitions} "
        f"duplicates_paid={report.duplicates_paid} jobs_crashed={len(crashed_jobs)} "
        f"loop={loop_s:.0f}s total={total_s:.0f}s"
    )
    assert not died_alone, "the service died by itself:\n" + "\n".join(died_alone)
    if KILLS >= 50:  # a loop whose kills never meet a call proves nothing about the paid window
        assert kills_on_calls > 0, "no kill landed during a call"
        assert finished_in_loop > 0, "the service never finished a file between kills"
    assert not account.unexplained, unexplained_repeats(account)
    # each kill cuts at most the calls then in flight (concurrency 2); nothing else may cost money
    assert report.duplicates_paid <= 2 * kills_on_calls
    # a restart must understand every state a kill can leave; an exception means it did not
    assert not crashed_jobs, "jobs crashed after kills:\n" + "\n".join(
        f"  {e.get('relpath')}: {e.get('error')}" for e in crashed_jobs
    )
    assert {r for r, o in report.outcomes.items() if o == "failed"} == {"notes.mp3", "alice/noise.wav"}
