"""``dropscribe explain``: a file's history, read back from the journal of a real service run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from dropscribe.adapters.journal import SqliteJournal
from dropscribe.emulator import Emulator, Fault
from tests.support.audio import make_tone, sha256_file
from tests.support.cli import Ran, run_cli
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for


def explain(layout: Layout, target: str, *extra: str, cwd: Path | None = None) -> Ran:
    return run_cli("explain", "-c", str(layout.config), target, *extra, cwd=cwd)


def document(layout: Layout, target: str) -> dict[str, Any]:
    done = explain(layout, target, "--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout.encode("utf-8"))  # strict: the output is valid UTF-8
    return found


def human(layout: Layout, target: str) -> str:
    done = explain(layout, target)
    assert done.returncode == 0, done.stderr
    done.stdout.encode("utf-8")  # strict: fit for any terminal
    return done.stdout


def steps(entry: dict[str, Any], job: int = -1) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = entry["jobs"][job]["steps"]
    return found


def moved(path: Path) -> bool:
    """The source is in place: the move is the last step of finishing."""
    return path.exists()


def test_a_retried_file_a_reused_result_and_a_failure(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    emulator.add_fault(Fault(status=503, times=1))
    (layout.inbox / "alice").mkdir()
    make_tone(layout.inbox / "alice" / "talk.wav", seconds=1.0, fmt="wav")
    (layout.inbox / "bad.wav").write_bytes(b"just some text, not audio at all")
    services.append(ServiceProcess(layout.config).wait_started())
    wait_for(lambda: moved(layout.done / "alice" / "talk.wav") and moved(layout.failed / "bad.wav"))
    shutil.copyfile(layout.done / "alice" / "talk.wav", layout.inbox / "copy.wav")  # the same bytes again
    wait_for(lambda: moved(layout.done / "copy.wav"))

    # the retried file, found by where it ended
    doc = document(layout, str(layout.done / "alice" / "talk.wav"))
    assert doc["found_by"] == "path"
    (entry,) = doc["files"]
    assert (entry["inbox"], entry["relpath"], entry["state"]) == (str(layout.inbox), "alice/talk.wav", "done")
    kinds = [s["step"] for s in steps(entry)]
    assert kinds[:3] == ["taken", "probed", "routed"]
    assert kinds[-4:] == ["result_stored", "decided", "sidecars", "moved"]
    calls = [s for s in steps(entry) if s["step"] == "call"]
    assert [c["outcome"] for c in calls] == ["AsrUnavailableError", "ok"]
    (retry,) = [s for s in steps(entry) if s["step"] == "retry"]
    assert retry["attempts"] == 1
    assert "503" in retry["last_error"]
    sidecar = json.loads((layout.done / "alice" / "talk.json").read_text())
    (stored,) = [s for s in steps(entry) if s["step"] == "result_stored"]
    assert stored["request_ids"] == sidecar["request_ids"] == [calls[1]["request_id"]]
    assert steps(entry)[-1]["to"] == str(layout.done / "alice" / "talk.wav")
    assert [s["at"] for s in steps(entry) if s["at"] is not None] == sorted(
        s["at"] for s in steps(entry) if s["at"] is not None
    )
    text = human(layout, str(layout.done / "alice" / "talk.wav"))
    assert text.startswith("alice/talk.wav  (inbox ")
    assert "HTTP 503" in text
    assert f"request id {calls[1]['request_id']}" in text
    assert "result stored: " in text
    assert f"moved to {layout.done / 'alice' / 'talk.wav'}" in text
    assert "sidecars: talk.txt, talk.json" in text
    assert text.rstrip().endswith(f"now: done ({layout.done / 'alice' / 'talk.wav'})")
    paid_by = doc["files"][0]["jobs"][-1]["job_id"]

    # the same bytes under another name: reused, and which job paid
    copy = document(layout, str(layout.done / "copy.wav"))
    (reused,) = [s for s in steps(copy["files"][0]) if s["step"] == "result_reused"]
    assert (reused["paid_by_job"], reused["paid_by_name"]) == (paid_by, "talk.wav")
    assert not [s for s in steps(copy["files"][0]) if s["step"] in ("call", "result_stored")]
    assert f"result reused: paid by job {paid_by} (talk.wav)" in human(layout, str(layout.done / "copy.wav"))

    # the failure, by its path in failed/ and by its report beside it, from a relative path
    for target in ("failed/bad.wav", "failed/bad.error.json"):
        failed = explain(layout, target, "--json", cwd=layout.root)
        assert failed.returncode == 0, failed.stderr
        (entry,) = json.loads(failed.stdout)["files"]
        assert (entry["relpath"], entry["state"]) == ("bad.wav", "failed")
        (decided,) = [s for s in steps(entry) if s["step"] == "decided"]
        assert (decided["outcome"], decided["code"]) == ("failed", "not_audio")
        assert [s["names"] for s in steps(entry) if s["step"] == "sidecars"] == [["bad.error.json"]]
    assert "decided: failed as bad.wav: not_audio: " in human(layout, str(layout.failed / "bad.wav"))

    # a notification the outbox holds for the failed job is part of its history
    journal = SqliteJournal(layout.state)
    try:
        journal.add_notification(
            "file.failed", ["webhook"], {"relpath": "bad.wav"}, job_id=entry["jobs"][-1]["job_id"]
        )
    finally:
        journal.close()
    (entry,) = document(layout, str(layout.failed / "bad.wav"))["files"]
    (sent,) = [s for s in steps(entry) if s["step"] == "notification"]
    assert (sent["event"], sent["channel"], sent["state"]) == ("file.failed", "webhook", "pending")
    assert steps(entry)[-1] == sent
    assert "notification file.failed: webhook, pending" in human(layout, str(layout.failed / "bad.wav"))


def test_lookup_by_sha_odd_names_and_not_found(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    odd = b"<script>caf\xe9&amp;.wav"
    made = make_tone(layout.root / "made.wav", seconds=1.0, fmt="wav", freq=550.0)  # PyAV wants a UTF-8 name
    os.rename(made, layout.inbox / os.fsdecode(odd))
    sha = sha256_file(layout.inbox / os.fsdecode(odd))
    services.append(ServiceProcess(layout.config).wait_started())
    wait_for(lambda: (layout.done / os.fsdecode(odd)).exists())

    for query in (sha, sha[:12].upper()):
        doc = document(layout, query)
        assert doc["found_by"] == "sha256"
        (entry,) = doc["files"]
        assert entry["relpath"] == "<script>caf\\xe9&amp;.wav"  # bytes that are not UTF-8, escaped
        assert entry["jobs"][-1]["sha256"] == sha
    text = human(layout, sha)
    first = text.splitlines()[0]
    assert first.startswith(repr(os.fsdecode(odd)))  # quoted and escaped, as status shows names
    assert "\udce9" not in text

    # found by the raw name in done/, given as bytes on the command line of the real console script
    by_path = subprocess.run(
        [sys.executable, "-m", "dropscribe", "explain", "-c", str(layout.config), "--json",
         layout.done.as_posix().encode() + b"/" + odd],
        capture_output=True, env={**os.environ, "DASHSCOPE_API_KEY": API_KEY}, timeout=60,
    )  # fmt: skip
    assert by_path.returncode == 0, by_path.stderr
    assert json.loads(by_path.stdout.decode("utf-8"))["files"][0]["jobs"][-1]["sha256"] == sha

    missing = explain(layout, str(layout.inbox / "never.wav"))
    assert missing.returncode == 1
    said = missing.stderr
    assert "no job found" in said
    for folder in (layout.inbox, layout.done, layout.failed, layout.state):
        assert str(folder) in said
    unknown_sha = explain(layout, "0123456789abcdef")
    assert unknown_sha.returncode == 1
    assert "SHA-256" in unknown_sha.stderr
    elsewhere = explain(layout, "/etc/hostname")
    assert elsewhere.returncode == 1
    assert "not inside an inbox" in elsewhere.stderr


def test_a_waiting_file_says_what_it_waits_for(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    layout.data["dashscope"].update(retry_base_s=60, retry_max_s=120)
    layout.write()
    emulator.add_fault(Fault(status=503, times=None))
    make_tone(layout.inbox / "talk.wav", seconds=1.0, fmt="wav")
    services.append(ServiceProcess(layout.config).wait_started())

    def waiting() -> dict[str, Any] | None:
        (entry,) = document(layout, str(layout.inbox / "talk.wav"))["files"]
        # settling comes first; the wait asked about is the one for the retry
        return entry if entry["state"] == "waiting" and entry["waiting"]["reason"] == "retry" else None

    entry = wait_for(waiting)
    assert entry["waiting"]["reason"] == "retry"
    assert entry["in_inbox"] is True
    (retry,) = [s for s in steps(entry) if s["step"] == "retry"]
    assert retry["attempts"] >= 1
    assert retry["next_attempt_at"] is not None
    text = human(layout, str(layout.inbox / "talk.wav"))
    assert "now: waiting in its inbox: retry at " in text
    assert "; next attempt at " in text

    services[0].kill()  # its journaled job stays open; nothing runs it now
    (entry,) = document(layout, str(layout.inbox / "talk.wav"))["files"]
    assert (entry["state"], entry["waiting"]) == ("stopped", None)
    assert "now: unfinished; the service is not running" in human(layout, str(layout.inbox / "talk.wav"))
    ran = run_cli("status", "-c", str(layout.config))
    assert ran.returncode == 0, ran.stderr
    status = ran.stdout
    assert status.startswith("service: not running (last seen ")
    (line,) = [line for line in status.splitlines() if "talk.wav" in line]
    assert line.endswith("; waits for the service to run"), status
