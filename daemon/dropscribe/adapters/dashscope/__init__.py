"""DashScope (Alibaba Cloud Model Studio) over HTTP, as described in ``docs/dashscope.md``.

:class:`DashScopeClient` is the one entry point; the modules beside it hold one idea each: the
connection pool (:mod:`.connection`), error mapping (:mod:`.failures`), file-transcription tasks
(:mod:`.filetrans`), the temporary upload (:mod:`.upload`) and redaction (:mod:`.redaction`). Request
bodies and answer parsing are pure and live in :mod:`dropscribe.core.dashscope_wire`.

Secrets: the API key is sent only to the API host, never to the upload host or the result URL, and
never appears in a message, log line or repr; neither does the query string of a presigned URL.
"""

from dropscribe.adapters.dashscope.client import DashScopeClient
from dropscribe.adapters.dashscope.redaction import redact_text, redact_url
from dropscribe.adapters.dashscope.upload import is_safe_object_name
from dropscribe.core.dashscope_wire import UploadPolicy, make_filetrans_body, make_generation_body
from dropscribe.core.recognition import ResultExpiredError

__all__ = [
    "DashScopeClient",
    "ResultExpiredError",
    "UploadPolicy",
    "is_safe_object_name",
    "make_filetrans_body",
    "make_generation_body",
    "redact_text",
    "redact_url",
]
