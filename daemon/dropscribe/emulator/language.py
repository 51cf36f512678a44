"""The language an answer reports: the requested one, else what the audio says about itself.

The real service detects the spoken language (docs/dashscope.md, "Sync recognition": the first
``audio_info`` annotation). The emulator cannot hear, so it reads a stable property of the file instead:
a ``language`` tag in the container or stream metadata (ISO 639-1 or 639-2, as FFmpeg writes it).
Untagged audio is reported as English, which is what the emulated speech claims to be.
"""

from __future__ import annotations

from dropscribe.emulator.protocol import LANGUAGES, is_qwen_audio_asr

DEFAULT_LANGUAGE = "en"

# ISO 639-2 (bibliographic and terminological) codes of the documented languages.
_ISO_639_2 = {
    "zho": "zh", "chi": "zh", "cmn": "zh", "yue": "yue", "eng": "en", "jpn": "ja", "deu": "de", "ger": "de",
    "kor": "ko", "rus": "ru", "fra": "fr", "fre": "fr", "por": "pt", "ara": "ar", "ita": "it", "spa": "es",
    "hin": "hi", "ind": "id", "tha": "th", "tur": "tr", "ukr": "uk", "vie": "vi", "ces": "cs", "cze": "cs",
    "dan": "da", "fil": "fil", "fin": "fi", "isl": "is", "ice": "is", "msa": "ms", "may": "ms", "nor": "no",
    "nob": "no", "nno": "no", "pol": "pl", "swe": "sv",
}  # fmt: skip


def language_of_tag(tag: str | None) -> str | None:
    """The documented language code a metadata tag names, or None ("und", unknown, absent)."""
    if not tag:
        return None
    code = tag.strip().lower().replace("_", "-").split("-")[0]
    if code in LANGUAGES:
        return code
    return _ISO_639_2.get(code)


def detected_language(model: str, requested: str | None, tag: str | None) -> str:
    """What the answer's ``language`` says for audio tagged ``tag`` when ``requested`` was asked for.

    A requested language is echoed (the service reports it back when it was set). ``qwen-audio-asr``
    knows only Chinese and English ("qwen-audio-asr"), so anything else it hears comes back as one of
    those two.
    """
    found = requested or language_of_tag(tag) or DEFAULT_LANGUAGE
    if is_qwen_audio_asr(model):
        return "zh" if found in ("zh", "yue") else "en"
    return found
