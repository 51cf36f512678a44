"""What the emulator answers as a transcript: placeholder text by default, heard words on request.

By default the emulator does not understand speech. Every transcript then names the audio's duration
and the SHA-256 of the exact bytes received, so a test can prove which file (or which chunk of a file)
reached the API and that nothing was cut or re-encoded on the way. A :class:`Transcriber` made with
``recognizer="pocketsphinx"`` answers the English words pocketsphinx hears instead (see
:mod:`.hearing`), for people trying the service by hand.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from typing import IO, Any

from dropscribe.emulator.hearing import HeardWord, PocketsphinxHearing

RECOGNIZERS = ("placeholder", "pocketsphinx")

SENTENCE_S = 10.0
_PAUSE_S = 0.5  # a pause this long between heard words starts a new sentence
_REMEMBERED = 256  # recognitions kept for file-transcription results fetched after the submit

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


class Transcriber:
    """The transcripts of one emulator: placeholder text, or words heard by ``recognizer``.

    Audio is heard when it arrives (:meth:`listen`), while its bytes are at hand; the answers are
    built from what was heard, by the SHA-256 of those bytes. Raises ValueError for an unknown
    recognizer and :class:`~dropscribe.emulator.hearing.HearingUnavailableError` when pocketsphinx
    is asked for but not installed.
    """

    def __init__(self, recognizer: str = "placeholder") -> None:
        if recognizer not in RECOGNIZERS:
            raise ValueError(f"unknown recognizer {recognizer!r}; choose one of {', '.join(RECOGNIZERS)}")
        self.recognizer = recognizer
        self._hearing = PocketsphinxHearing() if recognizer == "pocketsphinx" else None
        self._lock = threading.Lock()
        self._heard: OrderedDict[str, list[HeardWord]] = OrderedDict()

    def listen(self, source: IO[bytes], sha256_hex: str) -> None:
        """Recognize the audio in ``source`` (bytes hashing to ``sha256_hex``); placeholder: nothing."""
        if self._hearing is None:
            return
        with self._lock:
            if sha256_hex in self._heard:
                self._heard.move_to_end(sha256_hex)
                return
        words = self._hearing.hear(source)
        with self._lock:
            self._heard[sha256_hex] = words
            while len(self._heard) > _REMEMBERED:
                self._heard.popitem(last=False)

    def text(self, duration_s: float, sha256_hex: str) -> str:
        """The sync transcript of the first ``duration_s`` seconds of audio already :meth:`listen`-ed to."""
        words = self._words(sha256_hex)
        if words is None:
            return emulated_text(duration_s, sha256_hex)
        return " ".join(w.text for w in words if w.start_s < duration_s)

    def sentences(
        self, duration_s: float, sha256_hex: str, language: str, *, with_words: bool
    ) -> list[dict[str, Any]]:
        """The sentence list of a file-transcription result (see :func:`sentences`)."""
        words = self._words(sha256_hex)
        if words is None:
            return sentences(duration_s, sha256_hex, language, with_words=with_words)
        return _heard_sentences([w for w in words if w.start_s < duration_s], language, with_words=with_words)

    def _words(self, sha256_hex: str) -> list[HeardWord] | None:
        if self._hearing is None:
            return None
        with self._lock:
            # Forgotten audio (hundreds of files later) gets placeholder text rather than an error.
            return self._heard.get(sha256_hex)


def _heard_sentences(words: list[HeardWord], language: str, *, with_words: bool) -> list[dict[str, Any]]:
    groups: list[list[HeardWord]] = []
    for word in words:
        last = groups[-1] if groups else None
        if last and word.start_s - last[-1].end_s < _PAUSE_S and word.end_s - last[0].start_s <= SENTENCE_S:
            last.append(word)
        else:
            groups.append([word])
    result: list[dict[str, Any]] = []
    for index, group in enumerate(groups):
        sentence: dict[str, Any] = {
            "sentence_id": index,
            "begin_time": round(group[0].start_s * 1000),
            "end_time": round(group[-1].end_s * 1000),
            "text": " ".join(w.text for w in group),
            "language": language,
            "emotion": "neutral",
        }
        if with_words:
            sentence["words"] = [
                {
                    "begin_time": round(w.start_s * 1000),
                    "end_time": round(w.end_s * 1000),
                    "text": w.text,
                    "punctuation": "",
                }
                for w in group
            ]
        result.append(sentence)
    return result
