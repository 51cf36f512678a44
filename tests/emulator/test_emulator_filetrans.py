"""File transcription: submit, the task clock, the result file, cancel.

See docs/dashscope.md, "File transcription".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from dropscribe.emulator import Emulator, Fault
from tests.emulator.emulator_helpers import (
    TRANSCRIPTION,
    FileServer,
    api_client,
    sha,
    sine,
    submit_task,
    wait_for_task,
)

TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}")


@pytest.fixture(scope="module")
def wav12() -> bytes:
    """Twelve seconds, so the result has two sentences (one per started 10 s)."""
    return sine(12.0, rate=8000)


# The task clock starts before the submit fetches and probes the audio, so on a loaded machine a
# short run time can pass PENDING before the reply arrives; tests that must see PENDING use this.
SLOW_TASK_S = 1.5


@pytest.fixture
def slow_client(start_emulator: Callable[..., Emulator]) -> Iterator[httpx.Client]:
    with api_client(start_emulator(task_run_s=SLOW_TASK_S)) as http:
        yield http


@pytest.mark.timing  # sees a pending phase of a fraction of a second
def test_task_runs_to_success_and_the_result_describes_the_file(
    slow_client: httpx.Client, file_server: FileServer, wav12: bytes
) -> None:
    client = slow_client
    task_id = submit_task(
        client, file_server.put("/meeting.wav", wav12), channel_id=[0], language="zh", enable_words=True
    )

    seen = set()
    while True:
        output = client.get(f"/tasks/{task_id}").json()["output"]
        seen.add(output["task_status"])
        if output["task_status"] == "SUCCEEDED":
            break
        assert {"PENDING", "RUNNING"} >= seen
        time.sleep(0.06)
    final = client.get(f"/tasks/{task_id}").json()

    assert {"PENDING", "RUNNING", "SUCCEEDED"} == seen
    for name in ("submit_time", "scheduled_time", "end_time"):
        assert TIME.fullmatch(final["output"][name]), name
    assert final["usage"]["seconds"] == 12
    url = final["output"]["result"]["transcription_url"]
    assert url.startswith(f"{client.base_url.scheme}://{client.base_url.host}:{client.base_url.port}/")
    assert "Expires=" in url
    assert "Signature=" in url

    result = httpx.get(url).json()

    digest = sha(wav12)[:12]
    assert result["audio_info"] == {"format": "wav", "sample_rate": 8000}
    (channel,) = result["transcripts"]
    assert channel["channel_id"] == 0
    sentences = channel["sentences"]
    assert [(s["begin_time"], s["end_time"]) for s in sentences] == [(0, 10_000), (10_000, 12_000)]
    assert [f"emulated sentence {i} sha256:{digest}" for i in range(2)] == [s["text"] for s in sentences]
    assert " ".join(s["text"] for s in sentences) == channel["text"]
    assert {"zh"} == {s["language"] for s in sentences}
    assert all(s["words"] for s in sentences)


def test_each_channel_is_billed(client: httpx.Client, file_server: FileServer, wav2: bytes) -> None:
    task_id = submit_task(client, file_server.put("/a.wav", wav2), channel_id=[0, 1])

    final = wait_for_task(client, task_id)

    assert final["usage"]["seconds"] == 4
    assert len(httpx.get(final["output"]["result"]["transcription_url"]).json()["transcripts"]) == 2


def test_download_failure_fails_the_task(client: httpx.Client, file_server: FileServer) -> None:
    task_id = submit_task(client, file_server.url("/gone.wav"))

    output = wait_for_task(client, task_id)["output"]

    assert output["task_status"] == "FAILED"
    assert output["code"] == "FILE_DOWNLOAD_FAILED"
    assert output["message"]


def test_undecodable_file_fails_the_task(client: httpx.Client, file_server: FileServer) -> None:
    task_id = submit_task(client, file_server.put("/x.wav", b"\x00garbage" * 300))

    assert wait_for_task(client, task_id)["output"]["code"] == "FILE_CHECK_FAILED"


def test_task_fail_fault(
    client: httpx.Client, emulator: Emulator, file_server: FileServer, wav2: bytes
) -> None:
    """The task is accepted, then fails with the injected code; the next task is unaffected."""
    emulator.add_fault(Fault(path="transcription", task_fail=True, code="FILE_DOWNLOAD_FAILED"))
    url = file_server.put("/a.wav", wav2)

    failed = wait_for_task(client, submit_task(client, url))["output"]
    succeeded = wait_for_task(client, submit_task(client, url))["output"]

    assert (failed["task_status"], failed["code"]) == ("FAILED", "FILE_DOWNLOAD_FAILED")
    assert succeeded["task_status"] == "SUCCEEDED"
    assert [r["fault"] for r in emulator.requests() if r["path"].endswith("transcription")] == [
        "task_fail",
        None,
    ]


def test_task_stuck_fault(
    client: httpx.Client, emulator: Emulator, file_server: FileServer, wav2: bytes
) -> None:
    emulator.add_fault(Fault(task_stuck=True))
    task_id = submit_task(client, file_server.put("/a.wav", wav2))

    time.sleep(0.4)

    assert client.get(f"/tasks/{task_id}").json()["output"]["task_status"] == "RUNNING"


@pytest.mark.timing  # sees a pending phase of a fraction of a second
def test_cancel_only_while_pending(
    start_emulator: Callable[..., Emulator], file_server: FileServer, wav2: bytes
) -> None:
    emulator = start_emulator(task_run_s=SLOW_TASK_S)
    url = file_server.put("/a.wav", wav2)
    with api_client(emulator) as http:
        pending = submit_task(http, url)
        canceled = http.post(f"/tasks/{pending}/cancel")
        status = http.get(f"/tasks/{pending}").json()["output"]["task_status"]
        finished = submit_task(http, url)
        wait_for_task(http, finished)
        refused = http.post(f"/tasks/{finished}/cancel")

    assert canceled.status_code == 200
    assert status == "CANCELED"
    assert (refused.status_code, refused.json()["code"]) == (400, "UnsupportedOperation")


def test_unknown_task(client: httpx.Client) -> None:
    reply = client.get("/tasks/no-such-task")

    assert reply.status_code == 200
    assert reply.json()["output"] == {"task_id": "no-such-task", "task_status": "UNKNOWN"}


def test_result_link_is_signed(client: httpx.Client, file_server: FileServer, wav2: bytes) -> None:
    final = wait_for_task(client, submit_task(client, file_server.put("/a.wav", wav2)))
    url = final["output"]["result"]["transcription_url"]

    forged = httpx.get(re.sub(r"Signature=[^&]+", "Signature=Zm9yZ2Vk", url))

    assert forged.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in forged.text


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        pytest.param(
            {"model": "qwen3-asr-flash-filetrans", "input": {"file_url": "https://x/a.wav"}},
            {},
            (400, "InvalidParameter"),
            id="no-async-header",
        ),
        pytest.param(
            {"model": "qwen3-asr-flash", "input": {"file_url": "https://x/a.wav"}},
            {"X-DashScope-Async": "enable"},
            (400, "InvalidParameter"),
            id="sync-model",
        ),
        pytest.param(
            {"model": "paraformer-v2", "input": {"file_url": "https://x/a.wav"}},
            {"X-DashScope-Async": "enable"},
            (404, "ModelNotFound"),
            id="unknown-model",
        ),
        pytest.param(
            {"model": "qwen3-asr-flash-filetrans", "input": {"file_urls": ["https://x/a.wav"]}},
            {"X-DashScope-Async": "enable"},
            (400, "InvalidParameter"),
            id="url-list",
        ),
        pytest.param(
            {
                "model": "qwen3-asr-flash-filetrans",
                "input": {"file_url": "https://x/a.wav"},
                "parameters": {"channel_id": "0"},
            },
            {"X-DashScope-Async": "enable"},
            (400, "InvalidParameter"),
            id="channel-id-not-a-list",
        ),
        pytest.param(
            {"model": "qwen3-asr-flash-filetrans", "input": {"file_url": "ftp://x/a.wav"}},
            {"X-DashScope-Async": "enable"},
            (400, "InvalidURL"),
            id="bad-scheme",
        ),
    ],
)
def test_submit_rejections(
    client: httpx.Client, body: dict[str, object], headers: dict[str, str], expected: tuple[int, str]
) -> None:
    reply = client.post(TRANSCRIPTION, json=body, headers=headers)

    assert expected == (reply.status_code, reply.json()["code"])


def test_missing_async_header_message(client: httpx.Client) -> None:
    body = {"model": "qwen3-asr-flash-filetrans", "input": {"file_url": "https://x/a.wav"}}

    reply = client.post(TRANSCRIPTION, json=body)

    assert reply.json()["message"] == "current user api does not support synchronous calls"


def test_polls_are_limited_per_key(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(task_qps=3)
    with api_client(emulator) as http:
        statuses = [http.get("/tasks/t1").status_code for _ in range(4)]
        last = http.get("/tasks/t1")

    assert statuses == [200, 200, 200, 429]
    assert last.json()["code"] == "Throttling.RateQuota"
