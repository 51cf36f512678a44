"""What belongs to an account: its temporary uploads and its task list; and the detected language.

See docs/dashscope.md, "Temporary upload", "File transcription" and "Sync recognition".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dropscribe.emulator import Emulator
from tests.emulator.emulator_helpers import (
    GENERATION,
    TRANSCRIPTION,
    FileServer,
    api_client,
    data_url,
    sine,
    submit_task,
    sync_body,
    wait_for_task,
)
from tests.emulator.test_emulator_uploads import RESOLVE, get_policy, oss_url, upload

FILETRANS = "qwen3-asr-flash-filetrans"


@pytest.fixture
def other(emulator: Emulator) -> Iterator[httpx.Client]:
    """A client with another account's key."""
    with api_client(emulator, "sk-another-account-9876") as http:
        yield http


def _annotation_language(reply: httpx.Response) -> str:
    assert reply.status_code == 200, reply.text
    language: str = reply.json()["output"]["choices"][0]["message"]["annotations"][0]["language"]
    return language


class TestUploadsBelongToTheirAccount:
    def test_sync_refuses_another_accounts_oss_url(
        self, client: httpx.Client, other: httpx.Client, wav2: bytes
    ) -> None:
        policy = get_policy(client)
        assert upload(policy, wav2).status_code == 200

        theirs = other.post(GENERATION, json=sync_body(oss_url(policy)), headers=RESOLVE)
        mine = client.post(GENERATION, json=sync_body(oss_url(policy)), headers=RESOLVE)

        assert (theirs.status_code, theirs.json()["code"]) == (400, "InvalidParameter.DataInspection")
        assert "account" in theirs.json()["message"]
        assert mine.status_code == 200

    def test_a_task_of_another_account_cannot_download_it(
        self, client: httpx.Client, other: httpx.Client, wav2: bytes
    ) -> None:
        policy = get_policy(client, FILETRANS)
        assert upload(policy, wav2).status_code == 200
        body = {"model": FILETRANS, "input": {"file_url": oss_url(policy)}}

        submitted = other.post(TRANSCRIPTION, json=body, headers={"X-DashScope-Async": "enable", **RESOLVE})

        assert submitted.status_code == 200
        output = wait_for_task(other, submitted.json()["output"]["task_id"])["output"]
        assert (output["task_status"], output["code"]) == ("FAILED", "FILE_DOWNLOAD_FAILED")


class TestTaskListing:
    @pytest.fixture
    def slow(self, start_emulator: Callable[..., Emulator]) -> Emulator:
        """Tasks stay PENDING for a minute, so their states are fixed while the test lists them."""
        return start_emulator(task_run_s=120.0)

    def _list(self, http: httpx.Client, **params: Any) -> httpx.Response:
        return http.get("/tasks", params=params)

    def test_lists_filters_and_pages_the_accounts_own_tasks(
        self, slow: Emulator, file_server: FileServer, wav2: bytes
    ) -> None:
        url = file_server.put("/a.wav", wav2)
        with api_client(slow) as mine, api_client(slow, "sk-someone-else-1234") as theirs:
            ids = [submit_task(mine, url) for _ in range(3)]
            dated = mine.post(
                TRANSCRIPTION,
                json={"model": f"{FILETRANS}-2025-11-17", "input": {"file_url": url}},
                headers={"X-DashScope-Async": "enable"},
            ).json()["output"]["task_id"]
            foreign = submit_task(theirs, url)
            assert mine.post(f"/tasks/{ids[0]}/cancel").status_code == 200

            everything = self._list(mine).json()
            first_page = self._list(mine, page_no=1, page_size=3).json()
            second_page = self._list(mine, page_no=2, page_size=3).json()
            by_model = self._list(mine, model_name=f"{FILETRANS}-2025-11-17").json()
            canceled = self._list(mine, status="CANCELED").json()
            foreign_view = theirs.get(f"/tasks/{ids[1]}").json()["output"]["task_status"]
            their_list = self._list(theirs).json()

        assert [row["task_id"] for row in everything["data"]] == [dated, ids[2], ids[1], ids[0]], (
            "newest first"
        )
        assert (everything["total"], everything["page_no"], everything["page_size"]) == (4, 1, 10)
        assert {row["status"] for row in everything["data"]} == {"PENDING", "CANCELED"}
        assert everything["data"][0]["model_name"] == f"{FILETRANS}-2025-11-17"
        assert isinstance(everything["data"][0]["gmt_create"], int)
        assert (first_page["total_page"], len(first_page["data"]), len(second_page["data"])) == (2, 3, 1)
        assert second_page["data"][0]["task_id"] == ids[0]
        assert [row["task_id"] for row in by_model["data"]] == [dated]
        assert [row["task_id"] for row in canceled["data"]] == [ids[0]]
        assert "end_time" in canceled["data"][0]
        assert foreign_view == "UNKNOWN", "another account's task is invisible"
        assert [row["task_id"] for row in their_list["data"]] == [foreign]

    def test_time_window(self, client: httpx.Client, file_server: FileServer, wav2: bytes) -> None:
        task_id = submit_task(client, file_server.put("/a.wav", wav2))
        now = datetime.now(UTC)

        def window(start: datetime, end: datetime) -> list[str]:
            reply = self._list(client, start_time=f"{start:%Y%m%d%H%M%S}", end_time=f"{end:%Y%m%d%H%M%S}")
            assert reply.status_code == 200, reply.text
            return [row["task_id"] for row in reply.json()["data"]]

        assert window(now - timedelta(minutes=5), now) == [task_id]
        assert window(now - timedelta(hours=20), now - timedelta(hours=10)) == []

    @pytest.mark.parametrize(
        "params",
        [
            {"page_size": "0"},
            {"page_size": "101"},
            {"page_no": "first"},
            {"status": "DONE"},
            {"start_time": "2026-01-01"},
            {"start_time": "20260101000000", "end_time": "20260103000000"},
            {"start_time": "20260102000000", "end_time": "20260101000000"},
        ],
    )
    def test_bad_parameters(self, client: httpx.Client, params: dict[str, str]) -> None:
        reply = self._list(client, **params)

        assert (reply.status_code, reply.json()["code"]) == (400, "InvalidParameter")
        assert reply.json()["message"]


class TestDetectedLanguage:
    @pytest.mark.parametrize(("tag", "language"), [("deu", "de"), ("ja", "ja"), ("und", "en"), (None, "en")])
    def test_from_the_audio_when_none_is_requested(
        self, client: httpx.Client, tag: str | None, language: str
    ) -> None:
        audio = data_url(sine(0.5, fmt="mka", language=tag), "audio/webm")

        assert _annotation_language(client.post(GENERATION, json=sync_body(audio))) == language

    def test_a_requested_language_is_echoed(self, client: httpx.Client) -> None:
        audio = data_url(sine(0.5, fmt="mka", language="deu"), "audio/webm")
        body = sync_body(audio, asr_options={"language": "fr"})

        assert _annotation_language(client.post(GENERATION, json=body)) == "fr"

    def test_file_transcription_sentences_carry_it(
        self, client: httpx.Client, file_server: FileServer
    ) -> None:
        task_id = submit_task(client, file_server.put("/a.m4a", sine(1.0, fmt="m4a", language="kor")))
        result_url = wait_for_task(client, task_id)["output"]["result"]["transcription_url"]

        document = httpx.get(result_url, timeout=10).json()

        assert {s["language"] for s in document["transcripts"][0]["sentences"]} == {"ko"}
