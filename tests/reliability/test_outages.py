"""R8 in compressed time: API outages delay files, never fail or lose them, and retries back off.

Backoff is configured at ``retry_base_s`` 0.2 and ``retry_max_s`` 1.0 (production: 2 and 300), so a
five-second outage walks the whole curve: 0.2, 0.4, 0.8, then 1.0 capped, each ±25 % jitter. The
client-side rate limit is set far above anything a backoff produces, so a hot loop would show up in
the request counts instead of being hidden by the limiter.

Two logs are read. The emulator's says what reached the API and when. A failed request carries no
audio (the emulator answers a fault without looking at the audio), so which file made it is unknown
there; per-file spacing is therefore read from the service's ``job_deferred`` lines (one per failed
attempt, with the attempt number and the announced wait), and the two logs are checked to agree on
the number of attempts.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dropscribe.emulator import Emulator, Fault
from tests.support.audio import make_tone, sha256_file
from tests.support.service import Layout, ServiceProcess, wait_for

# each test times how fast the queue comes back; they run one at a time (see ./scripts/test)
pytestmark = pytest.mark.timing
# one kind of each class (an error status, a timeout, a broken answer; a bad key, arrears) in every run,
# the other kinds in CI's
THOROUGH = pytest.mark.thorough

RETRY_BASE_S = 0.2
RETRY_MAX_S = 1.0
TIMEOUT_S = 1.0
SETTLE_S = 0.2
CONCURRENCY = 2
FILES = 5
OUTAGE_S = 5.0
# After the API is back: the next scan (every 0.2 s while something waits), the re-gate of a file
# after each failed attempt (settle_s), hashing, and five recognitions through two workers.
ALLOWANCE_S = 1.5
JITTER = 0.25
LOG_ROUNDING_S = 0.05  # job_deferred reports retry_in_s rounded to 0.1 s


def make_layout(tmp_path: Path, emulator: Emulator, **dashscope: Any) -> Layout:
    settings = {
        "retry_base_s": RETRY_BASE_S, "retry_max_s": RETRY_MAX_S, "timeout_s": TIMEOUT_S,
        "concurrency": CONCURRENCY, "requests_per_minute": 60000, "pause_probe_s": 600,
    }  # fmt: skip
    settings.update(dashscope)
    return Layout(tmp_path / "site", emulator.base_url,
                  inbox={"settle_s": SETTLE_S, "rescan_s": 0.5, "polling": True},
                  dashscope=settings)  # fmt: skip


def start(layout: Layout, services: list[ServiceProcess]) -> ServiceProcess:
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    return service


def drop_files(layout: Layout, tmp_path: Path, count: int = FILES) -> dict[str, str]:
    """``count`` distinct one-second recordings, each renamed into the inbox whole; name -> sha."""
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    shas = {}
    for i in range(count):
        src = make_tone(staging / f"call-{i}.wav", seconds=1.0, fmt="wav", freq=300 + 50 * i)
        shas[src.name] = sha256_file(src)
        src.rename(layout.inbox / src.name)
    return shas


def generation_requests(emulator: Emulator, since: float = 0.0) -> list[dict[str, Any]]:
    """Recognition requests the emulator received at or after ``since`` (epoch seconds)."""
    return [r for r in emulator.requests()
            if r["path"].endswith("/generation") and epoch(r["time"]) >= since]  # fmt: skip


def epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def events(service: ServiceProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in list(service.events) if e.get("event") == name]


def inbox_names(layout: Layout) -> list[str]:
    return sorted(p.name for p in layout.inbox.iterdir())


def watch_outage(layout: Layout, names: list[str], seconds: float) -> None:
    """For ``seconds``, keep checking that nothing failed and every file is still waiting in the inbox."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not layout.failed.exists(), f"an outage sent files to failed/: {layout.failed_files()}"
        assert inbox_names(layout) == names, "a file left the inbox during the outage"
        time.sleep(0.2)


def wait_all_done(layout: Layout, shas: dict[str, str], timeout: float = 20.0) -> float:
    """Seconds until every file is in done/ with its transcript (the source is moved last)."""
    started = time.monotonic()

    def all_done() -> bool:
        return all((layout.done / n).exists() and not (layout.inbox / n).exists() for n in shas)

    wait_for(all_done, timeout=timeout)
    return time.monotonic() - started


def expected_wait(attempt: int) -> tuple[float, float]:
    """The range the announced wait after failed attempt ``attempt`` must fall in (jitter ±25 %, capped)."""
    nominal = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (attempt - 1))
    return nominal * (1 - JITTER) - LOG_ROUNDING_S, min(RETRY_MAX_S, nominal * (1 + JITTER)) + LOG_ROUNDING_S


def most_attempts(window_s: float) -> int:
    """The most attempts one file can make in ``window_s`` if every wait is the shortest allowed."""
    attempts, elapsed = 1, 0.0
    while True:
        elapsed += expected_wait(attempts)[0] + LOG_ROUNDING_S
        if elapsed > window_s:
            return attempts
        attempts += 1


def check_backoff(deferred: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per file: attempts count up, each announced wait fits the capped curve and is really waited."""
    by_file: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in deferred:
        by_file[event["relpath"]].append(event)
    gaps: dict[str, list[float]] = {}
    for relpath, seq in by_file.items():
        assert [e["attempt"] for e in seq] == list(range(1, len(seq) + 1)), f"{relpath}: attempts not counted"
        times = [epoch(e["timestamp"]) for e in seq]
        gaps[relpath] = [b - a for a, b in itertools.pairwise(times)]
        for event, gap in zip(seq, gaps[relpath] + [None], strict=True):
            low, high = expected_wait(event["attempt"])
            assert low <= event["retry_in_s"] <= high, f"{relpath}: wait {event} outside [{low}, {high}]"
            if gap is not None:
                # the next failure comes one request after the announced wait, never before it
                assert gap >= event["retry_in_s"] - LOG_ROUNDING_S, f"{relpath}: retried early ({gap:.2f} s)"
    return gaps


def forever(**kind: Any) -> Fault:
    """A fault on every recognition request until ``clear_faults``."""
    return Fault(path="generation", times=None, **kind)


TRANSIENT = [
    pytest.param(
        forever(status=429, code="Throttling.RateQuota"), id="429-Throttling.RateQuota", marks=THOROUGH
    ),
    pytest.param(forever(status=500, code="InternalError"), id="500-InternalError", marks=THOROUGH),
    pytest.param(forever(status=503, code="ServiceUnavailable"), id="503-ServiceUnavailable"),
    pytest.param(forever(delay_s=3 * TIMEOUT_S), id="read-timeout"),
    pytest.param(forever(reset=True), id="connection-reset", marks=THOROUGH),
    pytest.param(forever(malformed=True), id="malformed-json"),
    pytest.param(forever(html=True), id="html-502", marks=THOROUGH),
]


@pytest.mark.parametrize("fault", TRANSIENT)
def test_transient_outage_delays_files_and_recovers_within_two_backoffs(
    fault: Fault, request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator,
    services: list[ServiceProcess],
) -> None:  # fmt: skip
    """Files wait in the inbox through the outage, retries back off up to the cap, all finish soon after."""
    layout = make_layout(tmp_path, emulator)
    emulator.add_fault(fault)
    service = start(layout, services)
    outage_from = time.time()
    shas = drop_files(layout, tmp_path)
    watch_outage(layout, sorted(shas), OUTAGE_S)

    # both logs at one instant (the service's first: every deferral it logged has its request in the
    # emulator's log already), then the API comes back
    deferred = events(service, "job_deferred")
    attempts_seen = generation_requests(emulator)
    emulator.clear_faults()
    cleared_at = time.time()
    recovery_s = wait_all_done(layout, shas)
    outage_s = cleared_at - outage_from

    assert not layout.failed.exists()
    assert inbox_names(layout) == []
    # a request that arrived just before the clearing may have met no fault: the fault, not its arrival
    # time, says whether it was part of the outage
    after = [r for r in generation_requests(emulator) if r["fault"] is None]
    for name, sha in shas.items():
        assert sha256_file(layout.done / name) == sha
        got = [r for r in after if r["audio_sha256"] == sha and r["status"] == 200]
        assert len(got) == 1, f"{name} was recognized {len(got)} times after the outage"

    # not a hot loop: no more attempts than the backoff curve allows, and the two logs agree
    bound = FILES * most_attempts(outage_s)
    assert len(attempts_seen) <= bound, f"{len(attempts_seen)} requests in {outage_s:.1f} s (at most {bound})"
    in_flight_limit = 2 * CONCURRENCY
    assert len(deferred) <= len(attempts_seen) <= len(deferred) + in_flight_limit
    assert {e["relpath"] for e in deferred} == set(shas), "every file was tried and kept for later"
    gaps = check_backoff(deferred)
    # the last stretch of the outage runs at the capped rate: roughly one attempt per file per second
    tail_from = cleared_at - 2.0
    tail = [r for r in attempts_seen if epoch(r["time"]) >= tail_from]
    tail_bound = FILES * (2.0 / ((1 - JITTER) * RETRY_MAX_S) + 1)
    assert len(tail) <= tail_bound, f"{len(tail)} requests in the last 2 s (at most {tail_bound:.0f})"

    limit = 2 * RETRY_MAX_S + ALLOWANCE_S
    if fault.delay_s:
        limit += TIMEOUT_S  # an attempt sent just before the API came back still runs out its timeout
    longest = max(gaps.values(), key=len)
    # a timed-out request was still answered (and, on the real service, billed) after we gave up
    answered_late = sum(1 for r in attempts_seen if r["fault"] == "delay" and r["status"] == 200)
    print(
        f"\noutage[{request.node.callspec.id}]: {len(attempts_seen)} requests in {outage_s:.1f} s "
        f"for {FILES} files "
        f"(bound {bound}; last 2 s: {len(tail)}), attempts per file "
        f"{sorted(collections.Counter(e['relpath'] for e in deferred).values())}, "
        f"gaps of one file {[round(g, 2) for g in longest]}, answered after we gave up {answered_late}; "
        f"recovery {recovery_s:.2f} s (limit {limit:.1f} s)"
    )  # fmt: skip
    assert recovery_s <= limit, f"recovery took {recovery_s:.2f} s, more than {limit:.1f} s"


def dropscribe_status(layout: Layout) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dropscribe", "status", "-c", str(layout.config)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return done.stdout


ACCOUNT = [
    pytest.param(forever(status=401, code="InvalidApiKey"), id="401-InvalidApiKey"),
    pytest.param(forever(status=403, code="AccessDenied"), id="403-AccessDenied", marks=THOROUGH),
    pytest.param(forever(status=400, code="Arrearage"), id="400-Arrearage"),
]
PAUSE_WATCH_S = 3.0


@pytest.mark.parametrize("fault", ACCOUNT)
def test_account_error_pauses_the_queue_until_reload(
    fault: Fault, request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator,
    services: list[ServiceProcess],
) -> None:  # fmt: skip
    """An account error pauses everything (no storm, nothing failed); SIGHUP after the fix resumes all."""
    layout = make_layout(tmp_path, emulator)
    emulator.add_fault(fault)
    service = start(layout, services)
    shas = drop_files(layout, tmp_path)
    wait_for(lambda: service.saw("queue_paused", code=fault.code), timeout=15)
    assert f"PAUSED: {fault.code}:" in dropscribe_status(layout)
    watch_outage(layout, sorted(shas), PAUSE_WATCH_S)
    assert f"PAUSED: {fault.code}:" in dropscribe_status(layout)

    during = generation_requests(emulator)
    # what was already handed to the workers when the first refusal came back, and nothing after
    assert len(during) <= 2 * CONCURRENCY, f"{len(during)} requests while paused"
    assert not events(service, "job_deferred"), "an account error is not retried per file"

    emulator.clear_faults()
    reloaded = time.monotonic()
    service.signal(signal.SIGHUP)
    resume_s = wait_all_done(layout, shas)
    assert service.saw("queue_resumed")
    assert not layout.failed.exists()
    assert inbox_names(layout) == []
    assert "PAUSED" not in dropscribe_status(layout)
    sent = collections.Counter(r["audio_sha256"] for r in generation_requests(emulator) if r["status"] == 200)
    assert all(sent[sha] == 1 for sha in shas.values())
    print(f"\npause[{request.node.callspec.id}]: {len(during)} requests before and during "
          f"{PAUSE_WATCH_S:.0f} s of pause, all {FILES} done {resume_s:.2f} s after SIGHUP "
          f"({time.monotonic() - reloaded:.2f} s)")  # fmt: skip
    assert resume_s <= ALLOWANCE_S + 1.0


def test_account_pause_lifts_itself_when_a_probe_succeeds(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """While paused, one file is tried every pause_probe_s; once one goes through, the queue resumes."""
    probe_s = 1.5
    layout = make_layout(tmp_path, emulator, pause_probe_s=probe_s)
    emulator.add_fault(forever(status=400, code="Arrearage"))
    service = start(layout, services)
    shas = drop_files(layout, tmp_path)
    wait_for(lambda: service.saw("queue_paused", code="Arrearage"), timeout=15)
    paused_at = time.time()
    watch_outage(layout, sorted(shas), 3 * probe_s)
    probes = generation_requests(emulator, since=paused_at + 0.5)
    # one request per probe period, not one per file
    assert 1 <= len(probes) <= 4, f"{len(probes)} probes in {3 * probe_s} s"

    emulator.clear_faults()
    resume_s = wait_all_done(layout, shas)
    assert service.saw("queue_resumed")
    assert not layout.failed.exists()
    print(f"\nprobe: {len(probes)} probes in {3 * probe_s:.1f} s of pause (pause_probe_s {probe_s}), "
          f"all done {resume_s:.2f} s after the fix")  # fmt: skip
    assert resume_s <= probe_s + ALLOWANCE_S


@pytest.mark.parametrize(
    "retry_after",
    [pytest.param(1.5, id="retry-after-1.5s"), pytest.param(3.0, id="retry-after-3s", marks=THOROUGH)],
)
def test_retry_after_is_honoured(
    retry_after: float, tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A 429 with Retry-After is retried no sooner than the server asked, though our backoff is shorter."""
    # retry_max_s above the header: the product caps Retry-After at retry_max_s (core/retry.py)
    layout = make_layout(tmp_path, emulator, retry_max_s=5.0)
    emulator.add_fault(Fault(path="generation", status=429, code="Throttling.RateQuota",
                             retry_after=retry_after, times=1))  # fmt: skip
    start(layout, services)
    shas = drop_files(layout, tmp_path, count=1)
    wait_all_done(layout, shas)
    first, second = generation_requests(emulator)
    assert (first["status"], second["status"]) == (429, 200)
    gap = epoch(second["time"]) - epoch(first["time"])
    print(f"\nretry-after {retry_after} s: next attempt {gap:.2f} s later (own backoff ~{RETRY_BASE_S} s)")
    assert retry_after <= gap <= retry_after + ALLOWANCE_S
