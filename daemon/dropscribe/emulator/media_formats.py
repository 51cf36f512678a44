"""Which audio formats each model takes, and whether a data URL's declared MIME type fits its bytes.

See docs/dashscope.md, "Sync recognition" (limits) and "File transcription".
"""

from __future__ import annotations

from dropscribe.emulator.protocol import ApiError, is_filetrans_model

# The documented lists (2026). m4a and mp4 left the sync list in 2026; aiff is only on the sync list.
SYNC_FORMATS = (
    "aac", "amr", "avi", "aiff", "flac", "flv", "mkv", "mp3", "mpeg", "ogg", "opus", "wav", "webm", "wma",
    "wmv",
)  # fmt: skip
FILETRANS_FORMATS = (
    "aac", "amr", "avi", "flac", "flv", "m4a", "mkv", "mov", "mp3", "mp4", "mpeg", "ogg", "opus", "wav",
    "webm", "wma", "wmv",
)  # fmt: skip

# FFmpeg's demuxer (first name of the list PyAV reports) for each documented name. One demuxer reads
# several names (mp4/m4a/mov, mkv/webm, ogg/opus, wma/wmv), so a list is checked by demuxer.
_DEMUXER = {
    "aac": "aac", "amr": "amr", "avi": "avi", "aiff": "aiff", "flac": "flac", "flv": "flv",
    "mkv": "matroska", "webm": "matroska", "mp3": "mp3", "mpeg": "mpeg", "ogg": "ogg", "opus": "ogg",
    "wav": "wav", "wma": "asf", "wmv": "asf", "m4a": "mov", "mp4": "mov", "mov": "mov",
}  # fmt: skip
_SYNC_DEMUXERS = frozenset(_DEMUXER[name] for name in SYNC_FORMATS)
_FILETRANS_DEMUXERS = frozenset(_DEMUXER[name] for name in FILETRANS_FORMATS)

# MIME types a client may declare, and the demuxers whose bytes each may describe.
_MIME_DEMUXERS: dict[str, frozenset[str]] = {}
for _names, _demuxers in (
    (("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"), {"wav"}),
    (("audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg", "audio/x-mp3"), {"mp3", "mpeg"}),
    (("video/mpeg",), {"mpeg"}),
    (("audio/flac", "audio/x-flac"), {"flac"}),
    (("audio/ogg", "audio/opus", "video/ogg", "application/ogg"), {"ogg"}),
    (("audio/webm", "video/webm", "audio/x-matroska", "video/x-matroska"), {"matroska"}),
    (("audio/mp4", "audio/m4a", "audio/x-m4a", "video/mp4", "video/quicktime"), {"mov"}),
    (("audio/aac", "audio/x-aac", "audio/aacp"), {"aac"}),
    (("audio/amr", "audio/amr-wb"), {"amr"}),
    (("audio/x-ms-wma", "video/x-ms-wmv", "video/x-ms-asf", "audio/x-ms-asf"), {"asf"}),
    (("audio/aiff", "audio/x-aiff"), {"aiff"}),
    (("video/x-msvideo", "video/avi", "video/msvideo"), {"avi"}),
    (("video/x-flv", "video/flv"), {"flv"}),
):
    for _name in _names:
        _MIME_DEMUXERS[_name] = frozenset(_demuxers)

# Declarations that name no format, so they cannot contradict the bytes.
_GENERIC_MIME = frozenset({"", "application/octet-stream"})


def data_url_mime(url: str) -> str:
    """The MIME type a ``data:`` URL declares, lower-cased and without parameters ("" when none)."""
    header = url.partition(",")[0].removeprefix("data:")
    return header.split(";")[0].strip().lower()


def model_accepts(model: str, demuxer: str) -> bool:
    """True when ``model``'s documented format list holds the container PyAV found."""
    accepted = _FILETRANS_DEMUXERS if is_filetrans_model(model) else _SYNC_DEMUXERS
    return demuxer in accepted


def check_sync_format(model: str, demuxer: str, declared_mime: str | None) -> None:
    """Refuse audio outside ``model``'s list, or a data URL whose declared type does not describe it.

    Two refusals, as the notes' error table separates them: bytes in a format the model does not
    take are 415 ``BadRequest.UnsupportedFileFormat`` ("Input file format is not supported."), while
    a declared type that names another format than the bytes is a failed media inspection, 400
    ``InvalidParameter.DataInspection`` ("The media format is not supported or incorrect for the
    data inspection."): the format itself would be accepted, its description is what is incorrect.
    """
    if not model_accepts(model, demuxer):
        raise ApiError(
            415,
            "BadRequest.UnsupportedFileFormat",
            f"Input file format is not supported. (model '{model}' does not take {demuxer} audio)",
        )
    if declared_mime is None or declared_mime in _GENERIC_MIME:
        return
    if demuxer not in _MIME_DEMUXERS.get(declared_mime, frozenset()):
        raise ApiError(
            400,
            "InvalidParameter.DataInspection",
            "The media format is not supported or incorrect for the data inspection. "
            f"(declared {declared_mime}, the data is {demuxer})",
        )
