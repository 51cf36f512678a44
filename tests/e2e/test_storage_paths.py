"""How audio reaches the API: S3 presigned URLs, the temporary oss:// upload, and file transcription."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3

from dropscribe.emulator import Emulator
from tests.support.audio import make_speechlike, make_tone, sha256_file
from tests.support.s3 import (  # noqa: F401 - fixtures
    S3Target,
    fixture_aws_credentials,
    fixture_moto_endpoint,
    fixture_s3_bucket,
)
from tests.support.service import Layout, ServiceProcess, wait_for


def start(layout: Layout, services: list[ServiceProcess]) -> ServiceProcess:
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    return service


def objects(target: S3Target) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=target.endpoint_url)
    return [o["Key"] for o in s3.list_objects_v2(Bucket=target.bucket).get("Contents", [])]


def use_s3(layout: Layout, target: S3Target, **extra: object) -> None:
    layout.data["storage"] = {"type": "s3", "endpoint_url": target.endpoint_url, "bucket": target.bucket,
                              "prefix": "asr/", "addressing_style": "path", **extra}  # fmt: skip
    layout.write()


def test_s3_presigned_url_and_cleanup(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], s3_bucket: S3Target
) -> None:
    """With S3 storage the API fetches a presigned URL; the object is deleted once the result is in."""
    use_s3(layout, s3_bucket)
    source = make_tone(layout.root / "m.mp3", seconds=2.0, fmt="mp3")
    sha = sha256_file(source)
    source.rename(layout.inbox / "m.mp3")
    service = start(layout, services)
    wait_for(lambda: (layout.done / "m.mp3").exists())
    (sent,) = [r for r in emulator.requests() if "generation" in r["path"]]
    assert sent["audio_kind"] == "http"
    assert sent["audio_sha256"] == sha
    wait_for(lambda: objects(s3_bucket) == [])  # deleted once the result is stored, after the move
    # presigned URLs are bearer tokens: never in logs or sidecars
    # (libraries' debug lines name the header fields; the values must be masked)
    for text in [service.output(), (layout.done / "m.json").read_text()]:
        assert not re.search(r"Signature=(?!<redacted>)", text)
        assert not re.search(r"Credential=(?!<redacted>)", text)


def test_s3_keep_leaves_objects_under_content_keys(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], s3_bucket: S3Target
) -> None:
    """keep: true leaves the upload in place, under a key made from the content hash only."""
    use_s3(layout, s3_bucket, keep=True)
    make_tone(layout.inbox / "secret-meeting-name.wav", seconds=1.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: (layout.done / "secret-meeting-name.wav").exists())  # the move is the last step
    sha = sha256_file(layout.done / "secret-meeting-name.wav")
    (key,) = objects(s3_bucket)
    assert key.startswith("asr/")
    assert sha in key
    assert "secret" not in key


def test_dashscope_temporary_upload(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """storage: dashscope uploads through getPolicy and sends oss:// with the resolve header."""
    layout.data["storage"] = {"type": "dashscope"}
    layout.write()
    make_tone(layout.inbox / "a.flac", seconds=1.0, fmt="flac")
    start(layout, services)
    wait_for(lambda: (layout.done / "a.txt").exists())
    paths = [r["path"] for r in emulator.requests()]
    assert any("uploads" in p for p in paths)
    (sent,) = [r for r in emulator.requests() if "generation" in r["path"]]
    assert sent["audio_kind"] == "oss"
    assert sent["status"] == 200
    assert sent["headers"].get("X-DashScope-OssResourceResolve") == "enable"


def test_long_audio_through_file_transcription(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], s3_bucket: S3Target
) -> None:
    """long_audio: filetrans submits one task, polls it, and uses its sentence timestamps."""
    use_s3(layout, s3_bucket)
    layout.data["defaults"] = {
        "long_audio": "filetrans", "chunk_max_s": 30, "outputs": ["txt", "json", "srt"],
    }  # fmt: skip
    layout.write()
    make_speechlike(layout.inbox / "meeting.wav", 45.0, "wav", gaps=[(20.0, 21.0)])
    service = start(layout, services)
    wait_for(lambda: (layout.done / "meeting.wav").exists(), timeout=60)
    submits = [r for r in emulator.requests() if "transcription" in r["path"] and r["method"] == "POST"]
    assert len(submits) == 1
    doc = json.loads((layout.done / "meeting.json").read_text())
    assert doc["model"] == "qwen3-asr-flash-filetrans"
    assert len(doc["segments"]) >= 4
    assert doc["segments"][-1]["end_s"] <= 45.5
    assert (layout.done / "meeting.srt").read_text().count(" --> ") == len(doc["segments"])
    assert service.saw("task_submitted")
    wait_for(lambda: objects(s3_bucket) == [])


def test_missing_key_refuses_to_start(layout: Layout, tmp_path: Path) -> None:
    """A service configured for DashScope without a key exits 78 with a clear message, never falls back."""
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "dropscribe", "run", "-c", str(layout.config)],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 78
    assert "DASHSCOPE_API_KEY" in done.stderr


def test_object_keys_stay_what_earlier_journals_name(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], s3_bucket: S3Target
) -> None:
    """Uploads keep their names across releases: ``source.<format>`` and ``chunk-NNNN.flac`` under the hash.

    A journal written by an earlier release lists its uploads by these keys, and the cleanup after a
    restart finds them only if the names never change.
    """
    use_s3(layout, s3_bucket, keep=True)
    layout.data["defaults"] = {"chunk_max_s": 30}
    layout.write()
    make_tone(layout.inbox / "short.wav", seconds=1.0, fmt="wav")
    make_speechlike(layout.inbox / "long.wav", 45.0, "wav", gaps=[(20.0, 21.0)])
    start(layout, services)
    wait_for(lambda: (layout.done / "short.wav").exists() and (layout.done / "long.wav").exists(), timeout=60)
    short = sha256_file(layout.done / "short.wav")
    long = sha256_file(layout.done / "long.wav")
    assert sorted(objects(s3_bucket)) == sorted(
        [
            f"asr/{short[:2]}/{short}/source.wav",
            f"asr/{long[:2]}/{long}/chunk-0000.flac",
            f"asr/{long[:2]}/{long}/chunk-0001.flac",
        ]
    )
