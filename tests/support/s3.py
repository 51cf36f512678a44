"""A real S3 endpoint for tests: moto in server mode on 127.0.0.1, plus a fresh bucket per test.

The fixtures are registered under short names (``moto_endpoint``, ``aws_credentials``,
``s3_bucket``) and defined under ``fixture_*`` names, so a test module can import them without its
test parameters shadowing the imports::

    from tests.support.s3 import fixture_aws_credentials, fixture_moto_endpoint, fixture_s3_bucket

(or the root conftest lists this module in ``pytest_plugins`` and nobody imports anything).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import boto3
import pytest
from moto.server import ThreadedMotoServer

__all__ = [
    "REGION",
    "S3Target",
    "fixture_aws_credentials",
    "fixture_moto_endpoint",
    "fixture_s3_bucket",
    "unused_port",
]

REGION = "us-east-1"


class S3Target(NamedTuple):
    endpoint_url: str
    bucket: str


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (a moment ago): an endpoint that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session", name="moto_endpoint")
def fixture_moto_endpoint() -> Iterator[str]:
    """One moto S3 server for the whole session; tests isolate themselves by bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(name="aws_credentials")
def fixture_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials in the environment, where boto3's default chain finds them.

    The developer's own ~/.aws files and profile are hidden, so a test can neither use nor touch
    a real account.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="s3_bucket")
def fixture_s3_bucket(moto_endpoint: str, aws_credentials: None) -> S3Target:
    """A new, empty bucket on the moto server: ``(endpoint_url, bucket)``."""
    bucket = f"dropscribe-test-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    client.create_bucket(Bucket=bucket)
    client.close()
    return S3Target(moto_endpoint, bucket)
