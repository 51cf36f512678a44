"""Temporary upload: certificate, OSS PostObject, and the oss:// URL it yields.

See docs/dashscope.md, "Temporary upload".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dropscribe.emulator import Emulator, emulated_text
from tests.emulator.emulator_helpers import (
    GENERATION,
    TRANSCRIPTION,
    api_client,
    sha,
    sync_body,
    wait_for_task,
)

RESOLVE = {"X-DashScope-OssResourceResolve": "enable"}


def get_policy(http: httpx.Client, model: str = "qwen3-asr-flash") -> dict[str, Any]:
    reply = http.get("/uploads", params={"action": "getPolicy", "model": model})
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


def upload(
    policy: dict[str, Any],
    data: bytes,
    *,
    name: str = "a.wav",
    overrides: dict[str, str | None] | None = None,
) -> httpx.Response:
    """POST the form the way the SDK does, ``file`` last; an override of None drops a field."""
    fields: dict[str, str | None] = {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": f"{policy['upload_dir']}/{name}",
        "x-oss-object-acl": policy["x_oss_object_acl"],
        "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        "x-oss-content-type": "audio/wav",
    }
    fields.update(overrides or {})
    form = {k: v for k, v in fields.items() if v is not None}
    return httpx.post(policy["upload_host"], data=form, files={"file": (name, data, "audio/wav")})


def oss_url(policy: dict[str, Any], name: str = "a.wav") -> str:
    return f"oss://{policy['upload_dir']}/{name}"


def xml_code(reply: httpx.Response) -> str:
    assert reply.headers["content-type"].startswith("application/xml")
    return reply.text.split("<Code>")[1].split("</Code>")[0]


def test_policy_shape(client: httpx.Client, emulator: Emulator) -> None:
    """The certificate names the emulator itself as upload host and a dashscope-instant folder."""
    policy = get_policy(client)

    assert f"http://127.0.0.1:{emulator.port}/_emulator/oss" == policy["upload_host"]
    assert policy["expire_in_seconds"] == 300
    parts = policy["upload_dir"].split("/")
    assert parts[0] == "dashscope-instant"
    assert len(parts) == 4
    assert {"policy", "signature", "oss_access_key_id", "max_file_size_mb"} <= set(policy)


def test_round_trip_into_sync_recognition(client: httpx.Client, wav2: bytes) -> None:
    """Upload, then recognise the oss:// URL: only with the resolve header, only for that model."""
    policy = get_policy(client)
    stored = upload(policy, wav2)
    assert stored.status_code == 200
    assert stored.content == b""

    with_header = client.post(GENERATION, json=sync_body(oss_url(policy)), headers=RESOLVE)
    without_header = client.post(GENERATION, json=sync_body(oss_url(policy)))
    other_model = client.post(
        GENERATION, json=sync_body(oss_url(policy), model="qwen-audio-asr"), headers=RESOLVE
    )

    assert with_header.status_code == 200
    text = with_header.json()["output"]["choices"][0]["message"]["content"][0]["text"]
    assert emulated_text(2.0, sha(wav2)) == text
    assert without_header.status_code == 400
    assert without_header.json()["code"] == "InvalidParameter.DataInspection"
    assert other_model.status_code == 400
    assert other_model.json()["code"] == "InvalidParameter.DataInspection"


def test_unknown_oss_key(client: httpx.Client) -> None:
    body = sync_body("oss://dashscope-instant/nope/2026-01-01/x/a.wav")

    assert client.post(GENERATION, json=body, headers=RESOLVE).status_code == 400


def test_round_trip_into_file_transcription(client: httpx.Client, emulator: Emulator, wav2: bytes) -> None:
    """A file uploaded for the filetrans model can be its task's input."""
    policy = get_policy(client, "qwen3-asr-flash-filetrans")
    assert upload(policy, wav2).status_code == 200

    submit = client.post(
        TRANSCRIPTION,
        json={"model": "qwen3-asr-flash-filetrans", "input": {"file_url": oss_url(policy)}},
        headers={"X-DashScope-Async": "enable", **RESOLVE},
    )

    assert submit.status_code == 200
    final = wait_for_task(client, submit.json()["output"]["task_id"])
    assert final["output"]["task_status"] == "SUCCEEDED"
    record = emulator.requests()[2]
    assert ("oss", sha(wav2)) == (record["audio_kind"], record["audio_sha256"])


def test_second_upload_to_the_same_key_is_refused(client: httpx.Client, wav2: bytes) -> None:
    policy = get_policy(client)
    assert upload(policy, wav2).status_code == 200

    again = upload(policy, wav2)

    assert again.status_code == 409
    assert xml_code(again) == "FileAlreadyExists"


def test_expired_policy(start_emulator: Callable[..., Emulator], wav2: bytes) -> None:
    emulator = start_emulator(policy_expire_s=0)
    with api_client(emulator) as http:
        policy = get_policy(http)

    reply = upload(policy, wav2)

    assert reply.status_code == 403
    assert xml_code(reply) == "AccessDenied"
    assert "Invalid according to Policy: Policy expired." in reply.text


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        pytest.param({"key": "dashscope-instant/elsewhere/a.wav"}, 403, "AccessDenied", id="key-outside-dir"),
        pytest.param({"Signature": "Zm9yZ2Vk"}, 403, "SignatureDoesNotMatch", id="bad-signature"),
        pytest.param({"OSSAccessKeyId": "LTAIother"}, 403, "InvalidAccessKeyId", id="bad-access-key"),
        pytest.param({"success_action_status": None}, 400, "InvalidArgument", id="missing-field"),
    ],
)
def test_upload_rejections(
    client: httpx.Client, wav2: bytes, overrides: dict[str, str | None], status: int, code: str
) -> None:
    reply = upload(get_policy(client), wav2, overrides=overrides)

    assert status == reply.status_code
    assert code == xml_code(reply)


def test_file_must_be_the_last_field(client: httpx.Client, wav2: bytes) -> None:
    """Built by hand because every client library puts files after plain fields."""
    policy = get_policy(client)
    boundary = "emulatorboundary"
    fields = [
        ("file", wav2),
        ("OSSAccessKeyId", policy["oss_access_key_id"].encode()),
        ("Signature", policy["signature"].encode()),
        ("policy", policy["policy"].encode()),
        ("key", f"{policy['upload_dir']}/a.wav".encode()),
        ("x-oss-object-acl", b"private"),
        ("x-oss-forbid-overwrite", b"true"),
        ("success_action_status", b"200"),
    ]
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
            for name, value in fields
        )
        + f"--{boundary}--\r\n".encode()
    )

    reply = httpx.post(
        policy["upload_host"],
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )

    assert reply.status_code == 400
    assert xml_code(reply) == "InvalidArgument"


def test_policy_requests_are_rate_limited(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(policy_qps=2)
    with api_client(emulator) as http:
        statuses = [
            http.get("/uploads", params={"action": "getPolicy", "model": "qwen3-asr-flash"}).status_code
            for _ in range(3)
        ]
        refused = http.get("/uploads", params={"action": "getPolicy", "model": "qwen3-asr-flash"})

    assert statuses == [200, 200, 429]
    assert refused.json()["code"] == "Throttling.RateQuota"


def test_policy_needs_a_key_and_a_model(emulator: Emulator) -> None:
    no_key = httpx.get(emulator.base_url + "/uploads", params={"action": "getPolicy", "model": "m"})
    with api_client(emulator) as http:
        no_model = http.get("/uploads", params={"action": "getPolicy"})

    assert no_key.status_code == 401
    assert no_model.json()["code"] == "BadRequest.EmptyModel"
