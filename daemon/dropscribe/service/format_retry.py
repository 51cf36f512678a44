"""One more send, re-encoded, for a file the backend refused for its format when sent as it was.

The decision is :mod:`dropscribe.core.format_fallback`; this carries it out for sync requests and
file-transcription tasks alike. The re-encoding is staged as the whole-file FLAC, so a restart after a
crash finds it and sends it again instead of the refused original.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from dropscribe.adapters import audio
from dropscribe.core.errors import RemoteRejectedError
from dropscribe.core.format_fallback import refused_twice_message, retry_reencoded
from dropscribe.core.formats import Encoding, FormatPolicy
from dropscribe.logs import get_logger
from dropscribe.service.objects import Staged

log = get_logger()


def takes_as_is(formats: FormatPolicy, probe: audio.Probe) -> bool:
    """Whether ``formats`` sends this file as it is (the policy of the way it is sent, sync or task)."""
    return audio.is_sendable_as_is(probe, formats)


def earns_reencoding(exc: RemoteRejectedError, *, sent_as_is: bool, chunk: int) -> bool:
    """Whether the refusal ``exc`` of a send earns one re-encoded send; logs it when it does."""
    if not retry_reencoded(exc.remote_code, exc.message, sent_as_is=sent_as_is):
        return False
    log.warning("format_refused_reencoding", chunk=chunk, request_id=exc.request_id,
                remote_code=exc.remote_code, error=exc.message)  # fmt: skip
    return True


def staged_whole(handle: BinaryIO, staging: Path, formats: FormatPolicy) -> Staged:
    """The whole recording re-encoded as ``formats`` says, written once and reused after a restart."""
    whole = Staged.whole(staging, formats.transcode_to)
    if not whole.path.exists():
        audio.transcode(handle, whole.path, whole.encoding)
    return whole


def describe(encoding: Encoding) -> str:
    """``16 kHz mono FLAC``: how a failure message names the re-encoding."""
    return f"{encoding.sample_rate // 1000} kHz mono {encoding.codec.upper()}"


def refused_again(
    first: RemoteRejectedError | None, second: RemoteRejectedError, encoding: Encoding
) -> RemoteRejectedError:
    """The error a refused re-encoded send fails the file with; it names both refusals.

    ``first`` is None when the refusal of the original was seen before a restart.
    """
    before = "an earlier attempt" if first is None else f"{first.remote_code}: {first.message}"
    message = refused_twice_message(before, f"{second.remote_code}: {second.message}", describe(encoding))
    return RemoteRejectedError(second.remote_code, message, second.request_id)
