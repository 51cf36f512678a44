"""Subtitle writers: SRT and WebVTT that every player reads back as the cues that were meant.

The documents are parsed back with small strict parsers written to the formats' rules: a blank line
ends a cue, a line with ``-->`` is a timing line, and in WebVTT ``&``, ``<`` and ``>`` start markup.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from dropscribe.core.recognition import Sentence
from dropscribe.core.transcript import render_srt, render_vtt

_CLOCK = r"(\d{{2,}}):([0-5]\d):([0-5]\d){sep}(\d{{3}})"
SRT_TIMING = re.compile("^{0} --> {0}$".format(_CLOCK.format(sep=",")))
VTT_TIMING = re.compile("^{0} --> {0}$".format(_CLOCK.format(sep=r"\.")))
# text a WebVTT parser shows as written: no tags, and '&' only in the three escapes the writer uses
VTT_PLAIN = re.compile(r"(?:[^&<>]|&(?:amp|lt|gt);)+")


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str


def _millis(match: re.Match[str], first: int) -> int:
    hours, minutes, secs, millis = (int(match.group(first + i)) for i in range(4))
    return ((hours * 60 + minutes) * 60 + secs) * 1000 + millis


def _blocks(body: str) -> list[list[str]]:
    assert "\r" not in body
    if not body:
        return []
    assert body.endswith("\n"), repr(body[-10:])
    assert not body.endswith("\n\n"), repr(body[-10:])
    return [block.split("\n") for block in body[:-1].split("\n\n")]


def _text_lines(lines: list[str]) -> list[str]:
    assert lines, "a cue without text"
    for line in lines:
        assert line.strip(), f"blank line inside a cue: {lines!r}"
        assert "-->" not in line, f"text that reads as a timing line: {line!r}"
    return lines


def parse_srt(document: str) -> list[Cue]:
    cues = []
    for number, lines in enumerate(_blocks(document), start=1):
        assert lines[0] == str(number), lines
        timing = SRT_TIMING.match(lines[1])
        assert timing, lines[1]
        text = _text_lines(lines[2:])
        cues.append(Cue(_millis(timing, 1), _millis(timing, 5), "\n".join(text)))
    return cues


def parse_vtt(document: str) -> list[Cue]:
    assert document.startswith("WEBVTT\n\n"), document[:20]
    cues = []
    for lines in _blocks(document.removeprefix("WEBVTT\n\n")):
        timing = VTT_TIMING.match(lines[0])
        assert timing, lines[0]
        text = _text_lines(lines[1:])
        for line in text:
            assert VTT_PLAIN.fullmatch(line), f"markup or a bare '&' in cue text: {line!r}"
        cues.append(Cue(_millis(timing, 1), _millis(timing, 5), html.unescape("\n".join(text))))
    return cues


class TestTimestamps:
    def test_clock_format_in_both_writers(self) -> None:
        """Hours, minutes, seconds and milliseconds; a comma in SRT, a full stop in WebVTT."""
        segments = [Sentence(0.0, 1.5, "one"), Sentence(3661.007, 3662.5, "two")]
        srt = render_srt(segments)
        vtt = render_vtt(segments)
        assert "00:00:00,000 --> 00:00:01,500" in srt
        assert "01:01:01,007 --> 01:01:02,500" in srt
        assert "00:00:00.000 --> 00:00:01.500" in vtt
        assert "01:01:01.007 --> 01:01:02.500" in vtt

    def test_rounding_carries_and_long_recordings_and_negative_starts(self) -> None:
        """59.9996 s rounds up to the next minute; 100 hours still fits; a start before 0 is 0."""
        segments = [Sentence(-0.2, 59.9996, "a"), Sentence(360_000.0, 360_001.25, "b")]
        expected = [Cue(0, 60_000, "a"), Cue(360_000_000, 360_001_250, "b")]
        assert parse_srt(render_srt(segments)) == expected
        assert parse_vtt(render_vtt(segments)) == expected


class TestCues:
    def test_cues_in_time_order_numbered_from_one_without_empty_ones(self) -> None:
        """Empty segments leave no gap in the numbering; cues come out sorted by start time."""
        segments = [
            Sentence(2.0, 3.0, "second"),
            Sentence(0.5, 1.0, "  "),
            Sentence(0.0, 2.0, "first"),
            Sentence(3.0, 4.0, ""),
            Sentence(3.0, 5.0, "third"),
        ]
        expected = [Cue(0, 2000, "first"), Cue(2000, 3000, "second"), Cue(3000, 5000, "third")]
        assert parse_srt(render_srt(segments)) == expected
        assert parse_vtt(render_vtt(segments)) == expected

    def test_nothing_to_show(self) -> None:
        """No segments: an empty SRT and a WebVTT header alone are both valid documents."""
        assert render_srt([]) == ""
        assert render_vtt([Sentence(0.0, 1.0, " \n ")]) == "WEBVTT\n\n"
        assert parse_srt(render_srt([])) == []

    def test_end_never_before_start(self) -> None:
        """A segment whose end precedes its start gets a cue of zero length, not a backwards one."""
        assert parse_vtt(render_vtt([Sentence(2.0, 1.0, "x")])) == [Cue(2000, 2000, "x")]


HOSTILE = [
    ("first line\n\nsecond line", "first line\nsecond line"),
    ("windows\r\n\r\nline ends\r\n", "windows\nline ends"),
    ("old mac\r\rline ends", "old mac\nline ends"),
    ("   \n  padded  \n\n\t\n", "padded"),
    ("2\n00:00:01,000 --> 00:00:02,000\nforged cue", None),
    ("a --> b", None),
    ("--->", None),
    ("<b>bold</b> & <i>co</i> &amp; 1 < 2 > 0", None),
]


class TestHostileText:
    def test_srt_keeps_one_cue_per_segment(self) -> None:
        """Blank lines collapse and ``-->`` becomes an arrow, so no text can end or forge a cue."""
        segments = [Sentence(float(i), i + 0.5, text) for i, (text, _) in enumerate(HOSTILE)]
        cues = parse_srt(render_srt(segments))
        assert len(cues) == len(HOSTILE)
        expected_texts = {
            4: "2\n00:00:01,000 → 00:00:02,000\nforged cue",
            5: "a → b",
            6: "-→",
            7: "<b>bold</b> & <i>co</i> &amp; 1 < 2 > 0",
        }
        for index, (cue, (_, collapsed)) in enumerate(zip(cues, HOSTILE, strict=True)):
            assert cue.start_ms == index * 1000
            assert cue.text == (collapsed if collapsed is not None else expected_texts[index])

    def test_vtt_keeps_one_cue_per_segment_and_the_text_as_written(self) -> None:
        """Blank lines collapse; ``&``, ``<`` and ``>`` are escaped, so ``-->`` and tags show as text."""
        segments = [Sentence(float(i), i + 0.5, text) for i, (text, _) in enumerate(HOSTILE)]
        document = render_vtt(segments)
        cues = parse_vtt(document)
        assert len(cues) == len(HOSTILE)
        for index, (cue, (written, collapsed)) in enumerate(zip(cues, HOSTILE, strict=True)):
            assert cue.start_ms == index * 1000
            assert cue.text == (collapsed if collapsed is not None else written)
        assert "a --&gt; b" in document
        assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;i&gt;co&lt;/i&gt; &amp;amp; 1 &lt; 2 &gt; 0" in document
