"""The parts of the DashScope contract the emulator checks against: model ids, language codes, error codes.

Everything here follows ``docs/dashscope.md``; the sections named below are in that file.
"""

from __future__ import annotations

import re
import uuid

# Dated snapshots keep appearing ("Models"), so the families are patterns rather than fixed lists.
_QWEN3_SYNC = re.compile(r"qwen3-asr-flash(-\d{4}-\d{2}-\d{2})?(-us)?")
_QWEN_AUDIO = re.compile(r"qwen-audio-asr(-latest|-\d{4}-\d{2}-\d{2})?")
_FILETRANS = re.compile(r"qwen3-asr-flash-filetrans(-\d{4}-\d{2}-\d{2})?")

# "Sync recognition", 2026 list.
LANGUAGES = frozenset(
    {
        "zh", "yue", "en", "ja", "de", "ko", "ru", "fr", "pt", "ar", "it", "es", "hi", "id",
        "th", "tr", "uk", "vi", "cs", "da", "fil", "fi", "is", "ms", "no", "pl", "sv",
    }
)  # fmt: skip

CONTEXT_TOKEN_LIMIT = 10_000
# Recognition calls per minute, per account and model, for qwen3-asr-flash and -filetrans ("Rate limits").
DOCUMENTED_RPM = 100
AUDIO_TOKENS_PER_SECOND = 25  # qwen-audio-asr meters audio in tokens ("qwen-audio-asr")
QWEN_AUDIO_MAX_INPUT_TOKENS = 6144  # its input cap, audio included ("qwen-audio-asr")
UPLOAD_VALIDITY_S = 48 * 3600  # lifetime of an oss:// temporary URL ("Temporary upload")
TASK_RETENTION_S = 24 * 3600  # finished tasks and result links vanish after a day ("File transcription")
FILETRANS_MAX_BYTES = 2 * 1024**3
FILETRANS_MAX_DURATION_S = 12 * 3600.0


def is_sync_model(model: str) -> bool:
    """True for models the synchronous generation endpoint serves."""
    return bool(_QWEN3_SYNC.fullmatch(model) or _QWEN_AUDIO.fullmatch(model))


def is_qwen_audio_asr(model: str) -> bool:
    """True for the older beta model that takes neither context nor ``asr_options`` ("qwen-audio-asr")."""
    return bool(_QWEN_AUDIO.fullmatch(model))


def is_filetrans_model(model: str) -> bool:
    """True for models the asynchronous transcription endpoint serves."""
    return bool(_FILETRANS.fullmatch(model))


def new_request_id() -> str:
    return str(uuid.uuid4())


# Status and stock message per code ("Errors"), so a fault given only a code or only a status still
# produces a reply that looks like the real service.
KNOWN_CODES: dict[str, tuple[int, str]] = {
    "InvalidParameter": (
        400,
        "Required parameter(s) missing or invalid, please check the request parameters.",
    ),
    "DataInspectionFailed": (400, "Input or output data may contain inappropriate content."),
    "InvalidParameter.DataInspection": (
        400,
        "The media format is not supported or incorrect for the data inspection.",
    ),
    "BadRequest.EmptyInput": (400, "Required input parameter missing from request."),
    "BadRequest.EmptyParameters": (400, 'Required parameter "parameters" missing from request.'),
    "BadRequest.EmptyModel": (400, 'Required parameter "model" missing from request.'),
    "InvalidURL": (400, "Invalid URL provided in your request."),
    "Arrearage": (400, "Access denied, please make sure your account is in good standing."),
    "UnsupportedOperation": (400, "The operation is not supported by the task in its current state."),
    "InvalidApiKey": (401, "Invalid API-key provided."),
    "AccessDenied": (403, "Access denied."),
    "Model.AccessDenied": (403, "Model access denied."),
    "Workspace.AccessDenied": (403, "Workspace access denied."),
    "AccessDenied.Unpurchased": (403, "Access to model denied. Please make sure you are eligible."),
    "ModelNotFound": (404, "Model not exist."),
    "WorkSpaceNotFound": (404, "WorkSpace can not be found."),
    "RequestTimeOut": (408, "Request timed out, please try again later."),
    "BadRequest.TooLarge": (413, "Payload Too Large."),
    "BadRequest.InputDownloadFailed": (415, "Failed to download the input file."),
    "BadRequest.UnsupportedFileFormat": (415, "Input file format is not supported."),
    "Throttling": (429, "Requests throttling triggered."),
    "Throttling.RateQuota": (429, "Requests rate limit exceeded, please try again later."),
    "Throttling.AllocationQuota": (429, "Allocated quota exceeded, please increase your quota limit."),
    "LimitRequests": (429, "You exceeded your current requests list."),
    "PrepaidBillOverdue": (429, "The prepaid bill is overdue."),
    "PostpaidBillOverdue": (429, "The postpaid bill is overdue."),
    "CommodityNotPurchased": (429, "Commodity has not purchased yet."),
    "InternalError": (
        500,
        "An internal error has occured, please try again later or contact service support.",
    ),
    "InternalError.Algo": (500, "An internal error has occured during execution."),
    "InternalError.Timeout": (500, "An internal timeout error has occured during execution."),
    "SystemError": (500, "An system error has occured, please try again later."),
    "BadGateway": (502, "Bad gateway."),
    "ModelUnavailable": (503, "Model is unavailable, please try again later."),
    "ServiceUnavailable": (503, "Service is unavailable, please try again later."),
    "GatewayTimeout": (504, "Gateway timeout."),
}

_CODE_FOR_STATUS = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "ModelNotFound",
    408: "RequestTimeOut",
    413: "BadRequest.TooLarge",
    415: "BadRequest.UnsupportedFileFormat",
    429: "Throttling.RateQuota",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def default_code(status: int) -> str:
    """The code the real service most often sends with ``status``."""
    return _CODE_FOR_STATUS.get(status, "InternalError" if status >= 500 else "InvalidParameter")


def default_message(code: str) -> str:
    return KNOWN_CODES.get(code, (0, "An error occurred (emulated)."))[1]


class ApiError(Exception):
    """Raised inside an endpoint to answer with the DashScope JSON error envelope ("Errors")."""

    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message if message is not None else default_message(code)
        super().__init__(f"{status} {code}: {self.message}")


class OssError(Exception):
    """Raised inside the object-storage endpoints, which answer in OSS's XML ("Temporary upload")."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}: {message}")
