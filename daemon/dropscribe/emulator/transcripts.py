"""The emulator's stand-in for recognition: text derived only from what arrived.

The emulator cannot understand speech. Instead every transcript names the audio's duration and the
SHA-256 of the exact bytes received, so a test can prove which file (or which chunk of a file) reached
the API and that nothing was cut or re-encoded on the way.
"""

from __future__ import annotations

import math
import re
from typing import Any

SENTENCE_S = 10.0

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def emulated_text(duration_s: float, sha256_hex: str) -> str:
    """The sync transcript for audio of ``duration_s`` seconds whose bytes hash to ``sha256_hex``.

    ``sha256_hex`` is the digest of the audio file as received (after base64 decoding or download),
    not of decoded PCM. For example a 2 s WAV gives ``"emulated transcript 2.00s sha256:3f2a9c01b7de"``.
    """
    return f"emulated transcript {duration_s:.2f}s sha256:{sha256_hex[:12]}"


def emulated_sentence(index: int, sha256_hex: str) -> str:
    """The text of sentence ``index`` (from 0) in a file-transcription result."""
    return f"emulated sentence {index} sha256:{sha256_hex[:12]}"


def approx_tokens(text: str) -> int:
    """A token count close enough for limits and usage: one per CJK character plus one per other word."""
    cjk = len(_CJK.findall(text))
    words = len(_CJK.sub(" ", text).split())
    return cjk + words


def billed_seconds(duration_s: float) -> int:
    # Rounded to milliseconds first so float noise (2.0000000001 s) does not bill an extra second.
    return math.ceil(round(duration_s, 3))


def split_for_stream(text: str, parts: int = 3) -> list[str]:
    """Cut ``text`` at spaces into at most ``parts`` pieces whose concatenation is ``text``."""
    words = text.split(" ")
    if len(words) < 2:
        return [text]
    count = min(parts, len(words))
    size = math.ceil(len(words) / count)
    pieces = []
    for start in range(0, len(words), size):
        piece = " ".join(words[start : start + size])
        pieces.append(piece if start == 0 else " " + piece)
    return pieces


def sentences(duration_s: float, sha256_hex: str, language: str, *, with_words: bool) -> list[dict[str, Any]]:
    """Sentence list of a file-transcription result: one sentence per started 10 s of audio.

    See docs/dashscope.md, "File transcription".
    """
    total_ms = round(duration_s * 1000)
    if total_ms <= 0:
        return []
    step_ms = round(SENTENCE_S * 1000)
    result: list[dict[str, Any]] = []
    for index, begin in enumerate(range(0, total_ms, step_ms)):
        end = min(begin + step_ms, total_ms)
        text = emulated_sentence(index, sha256_hex)
        sentence: dict[str, Any] = {
            "sentence_id": index,
            "begin_time": begin,
            "end_time": end,
            "text": text,
            "language": language,
            "emotion": "neutral",
        }
        if with_words:
            sentence["words"] = _words(text, begin, end)
        result.append(sentence)
    return result


def _words(text: str, begin_ms: int, end_ms: int) -> list[dict[str, Any]]:
    tokens = text.split(" ")
    span = (end_ms - begin_ms) / len(tokens)
    return [
        {
            "begin_time": begin_ms + round(i * span),
            "end_time": begin_ms + round((i + 1) * span),
            "text": token,
            "punctuation": "",
        }
        for i, token in enumerate(tokens)
    ]
