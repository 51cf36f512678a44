"""Fault injection: each kind once, matching rules, the compact string form, the admin endpoints."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from dropscribe.emulator import Emulator, Fault
from tests.emulator.emulator_helpers import GENERATION, data_url, sync_body


@pytest.fixture
def body(wav2: bytes) -> dict[str, object]:
    return sync_body(data_url(wav2))


class TestKinds:
    def test_status_with_retry_after_for_the_next_n_requests(
        self, client: httpx.Client, emulator: Emulator, body: dict[str, object]
    ) -> None:
        emulator.add_fault(
            Fault(path="generation", status=503, code="ServiceUnavailable", retry_after=2, times=2)
        )

        replies = [client.post(GENERATION, json=body) for _ in range(3)]

        assert [r.status_code for r in replies] == [503, 503, 200]
        assert replies[0].json()["code"] == "ServiceUnavailable"
        assert {"request_id", "code", "message"} == set(replies[0].json())
        assert replies[0].headers["retry-after"] == "2"
        assert emulator.faults() == []

    def test_code_alone_picks_its_status(
        self, client: httpx.Client, emulator: Emulator, body: dict[str, object]
    ) -> None:
        emulator.add_fault(Fault(code="Throttling.AllocationQuota", message="Free allocated quota exceeded."))

        reply = client.post(GENERATION, json=body)

        assert reply.status_code == 429
        assert reply.json()["message"] == "Free allocated quota exceeded."

    def test_html_gateway_page(
        self, client: httpx.Client, emulator: Emulator, body: dict[str, object]
    ) -> None:
        emulator.add_fault(Fault(html=True))

        reply = client.post(GENERATION, json=body)

        assert reply.status_code == 502
        assert reply.headers["content-type"].startswith("text/html")
        assert "<html>" in reply.text

    def test_ok_error(self, client: httpx.Client, emulator: Emulator, body: dict[str, object]) -> None:
        emulator.add_fault(Fault(ok_error=True, code="InternalError.Algo"))

        reply = client.post(GENERATION, json=body)

        assert reply.status_code == 200
        assert reply.json()["code"] == "InternalError.Algo"
        assert "output" not in reply.json()

    def test_malformed_json(self, client: httpx.Client, emulator: Emulator, body: dict[str, object]) -> None:
        emulator.add_fault(Fault(malformed=True))

        reply = client.post(GENERATION, json=body)

        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            reply.json()

    def test_delay_alone_answers_normally_but_late(
        self, client: httpx.Client, emulator: Emulator, body: dict[str, object]
    ) -> None:
        emulator.add_fault(Fault(delay_s=0.3))

        started = time.monotonic()
        reply = client.post(GENERATION, json=body)

        assert reply.status_code == 200
        assert time.monotonic() - started >= 0.3

    def test_delay_can_outlast_the_client_timeout(
        self, client: httpx.Client, emulator: Emulator, body: dict[str, object]
    ) -> None:
        emulator.add_fault(Fault(delay_s=1.0, status=500))

        with pytest.raises(httpx.ReadTimeout):
            client.post(GENERATION, json=body, timeout=0.2)

    def test_reset_drops_the_connection(
        self, client: httpx.Client, emulator: Emulator, body: dict[str, object]
    ) -> None:
        emulator.add_fault(Fault(reset=True))

        with pytest.raises(httpx.TransportError):
            client.post(GENERATION, json=body)
        assert client.post(GENERATION, json=body).status_code == 200
        assert [r["status"] for r in emulator.requests()] == [None, 200]
        assert emulator.requests()[0]["fault"] == "reset"

    def test_sse_cut_ends_before_stop(
        self, client: httpx.Client, emulator: Emulator, body: dict[str, object]
    ) -> None:
        emulator.add_fault(Fault(sse_cut=True))

        plain = client.post(GENERATION, json=body)
        streamed = client.post(GENERATION, json=body, headers={"X-DashScope-SSE": "enable"})

        assert plain.status_code == 200, "a stream fault leaves non-streaming calls alone"
        assert streamed.status_code == 200
        assert "event:result" in streamed.text
        assert '"finish_reason": "stop"' not in streamed.text

    def test_sse_error_event(self, client: httpx.Client, emulator: Emulator, body: dict[str, object]) -> None:
        emulator.add_fault(Fault(sse_error=True, status=500, code="InternalError.Timeout"))

        streamed = client.post(GENERATION, json=body, headers={"X-DashScope-SSE": "enable"})

        last = streamed.text.strip().split("\n\n")[-1].splitlines()
        assert last[1] == "event:error"
        assert last[2] == ":HTTP_STATUS/500"
        assert json.loads(last[3].removeprefix("data:"))["code"] == "InternalError.Timeout"

    def test_status_on_an_upload_path_answers_in_xml(self, client: httpx.Client, emulator: Emulator) -> None:
        emulator.add_fault(Fault(path="oss", status=403, code="AccessDenied", message="Policy expired."))

        reply = httpx.post(f"{emulator.root_url}/_emulator/oss", files={"file": ("a", b"x")})

        assert reply.status_code == 403
        assert "<Code>AccessDenied</Code>" in reply.text


class TestMatching:
    def test_model_filter(self, client: httpx.Client, emulator: Emulator, wav2: bytes) -> None:
        emulator.add_fault(Fault(model="qwen-audio-asr", status=503, times=None))

        other = client.post(GENERATION, json=sync_body(data_url(wav2)))
        hit = client.post(GENERATION, json=sync_body(data_url(wav2), model="qwen-audio-asr"))
        again = client.post(GENERATION, json=sync_body(data_url(wav2), model="qwen-audio-asr"))

        assert (other.status_code, hit.status_code, again.status_code) == (200, 503, 503)
        emulator.clear_faults()
        assert (
            client.post(GENERATION, json=sync_body(data_url(wav2), model="qwen-audio-asr")).status_code == 200
        )

    def test_path_filter(self, client: httpx.Client, emulator: Emulator, body: dict[str, object]) -> None:
        emulator.add_fault(Fault(path="tasks", status=500))

        assert client.post(GENERATION, json=body).status_code == 200
        assert client.get("/tasks/abc").status_code == 500

    def test_faulted_requests_are_logged_with_their_status(
        self, client: httpx.Client, emulator: Emulator, body: dict[str, object]
    ) -> None:
        emulator.add_fault(Fault(status=429, code="Throttling"))

        client.post(GENERATION, json=body)

        (record,) = emulator.requests()
        assert (
            record["status"],
            record["code"],
            record["fault"],
            record["model"],
        ) == (429, "Throttling", "status", "qwen3-asr-flash")


class TestCompactForm:
    def test_example_from_the_cli_help(self) -> None:
        fault = Fault.parse("status=503,code=ServiceUnavailable,times=3,path=generation")

        assert Fault(status=503, code="ServiceUnavailable", times=3, path="generation") == fault

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("reset,path=tasks", Fault(reset=True, path="tasks")),
            ("html,times=forever", Fault(html=True, times=None)),
            ("delay_s=2.5,model=qwen3-asr-flash", Fault(delay_s=2.5, model="qwen3-asr-flash")),
            ("task_fail,code=FILE_DOWNLOAD_FAILED", Fault(task_fail=True, code="FILE_DOWNLOAD_FAILED")),
            (
                "status=429,retry_after=3,message=Slow down, please",
                Fault(status=429, retry_after=3, message="Slow down, please"),
            ),
            ("sse_cut=true", Fault(sse_cut=True)),
        ],
    )
    def test_parse(self, spec: str, expected: Fault) -> None:
        assert expected == Fault.parse(spec)

    @pytest.mark.parametrize(
        "spec", ["", "bogus", "status=abc", "times=0", "reset,html", "colour=red", "code=NotAThing"]
    )
    def test_bad_specs(self, spec: str) -> None:
        with pytest.raises(ValueError, match=r".+"):
            Fault.parse(spec)

    def test_dict_round_trip(self) -> None:
        fault = Fault(path="uploads", status=429, code="Throttling.RateQuota", times=None, delay_s=0.5)

        assert fault == Fault.from_dict(json.loads(json.dumps(fault.to_dict())))


class TestAdminEndpoints:
    def test_add_list_clear_and_reset(
        self, emulator: Emulator, client: httpx.Client, body: dict[str, object]
    ) -> None:
        admin = httpx.Client(base_url=emulator.root_url + "/_emulator")

        added = admin.post("/faults", json=[{"status": 500, "path": "generation"}, "reset,path=tasks"])
        listed = admin.get("/faults").json()
        faulted = client.post(GENERATION, json=body)
        bad = admin.post("/faults", json={"colour": "red"})
        cleared = admin.delete("/faults")
        ok = client.post(GENERATION, json=body)
        log_before = admin.get("/requests").json()
        reset = admin.post("/reset")
        log_after = admin.get("/requests").json()

        assert added.status_code == 200
        assert listed == [
            {"status": 500, "path": "generation", "times": 1},
            {"reset": True, "path": "tasks", "times": 1},
        ]
        assert faulted.status_code == 500
        assert bad.status_code == 400
        assert cleared.status_code == 200
        assert ok.status_code == 200
        assert [r["path"].removeprefix("/api/v1") for r in log_before] == [
            "/_emulator/faults",
            "/_emulator/faults",
            GENERATION,
            "/_emulator/faults",
            "/_emulator/faults",
            GENERATION,
        ]
        assert reset.status_code == 200
        assert log_after == []
        assert emulator.faults() == []
        admin.close()
