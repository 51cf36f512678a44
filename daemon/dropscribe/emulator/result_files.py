"""Result files of finished file-transcription tasks: the signed link and the JSON document behind it.

The real service hands out a presigned OSS link that expires a day after the task ended, and OSS
answers a bad or stale link in XML; the emulator does the same under ``/_emulator/results/``.
"""

from __future__ import annotations

import time
import urllib.parse
from datetime import timedelta

from dropscribe.emulator.http_messages import HttpRequest, Reply, json_reply
from dropscribe.emulator.language import detected_language
from dropscribe.emulator.paths import RESULTS_PREFIX
from dropscribe.emulator.protocol import OssError
from dropscribe.emulator.request_log import Trace
from dropscribe.emulator.signing import OSS_ACCESS_KEY_ID, Signer
from dropscribe.emulator.tasks import Task, TaskStore
from dropscribe.emulator.transcripts import Transcriber


class ResultFiles:
    """Links to result files, and ``GET /_emulator/results/{task_id}.json`` serving them."""

    def __init__(self, tasks: TaskStore, signer: Signer, transcriber: Transcriber | None = None) -> None:
        self._tasks = tasks
        self._signer = signer
        self._transcriber = transcriber or Transcriber()

    def url_for(self, origin: str, task: Task) -> str:
        expires = int((task.ended_at() + timedelta(days=1)).timestamp())
        signature = self._signer.sign(f"{task.task_id}\n{expires}")
        query = urllib.parse.urlencode(
            {"Expires": expires, "OSSAccessKeyId": OSS_ACCESS_KEY_ID, "Signature": signature}
        )
        return f"{origin}{RESULTS_PREFIX}{task.task_id}.json?{query}"

    def serve(self, request: HttpRequest, trace: Trace, task_id: str) -> Reply:
        trace.task_id = task_id
        expires = request.query_value("Expires") or ""
        signature = request.query_value("Signature") or ""
        if not expires.isdigit() or not self._signer.verify(f"{task_id}\n{expires}", signature):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if int(expires) < time.time():
            raise OssError(403, "AccessDenied", "Request has expired.")
        task = self._tasks.get(task_id)
        if (
            task is None
            or task.audio is None
            or task.sha256 is None
            or task.status(self._tasks.clock()) != "SUCCEEDED"
        ):
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        trace.model = task.model
        language = detected_language(task.model, task.options.language, task.audio.language_tag)
        found = self._transcriber.sentences(
            task.audio.duration_s, task.sha256, language, with_words=task.options.enable_words
        )
        transcripts = [
            {
                "channel_id": channel,
                "text": " ".join(sentence["text"] for sentence in found),
                "sentences": found,
            }
            for channel in task.options.channel_ids
        ]
        document = {
            "file_url": task.file_url,
            "audio_info": {"format": task.audio.format, "sample_rate": task.audio.sample_rate},
            "transcripts": transcripts,
        }
        return json_reply(200, document)
