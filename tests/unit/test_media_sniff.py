"""media_sniff on real media made by PyAV, real cuts and pre-allocated copies of it, and real non-media."""

from __future__ import annotations

import functools
import io
import random
import struct
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from dropscribe.core import media as media_sniff
from dropscribe.core.media import (
    HEAD_BYTES,
    head_looks_unwritten,
    media_kind,
    tail_looks_cut,
)
from tests.support.audio import FORMATS, make_speechlike, make_tone

GRAIN = 64 * 1024

#: What each fixture format of tests/support/audio.py is recognized as.
FIXTURE_KINDS = {
    "wav": "wav", "mp3": "mp3", "m4a": "mp4", "flac": "flac", "ogg": "ogg", "opus": "ogg",
    "aac": "aac", "webm": "matroska", "aiff": "aiff",
}  # fmt: skip

#: More containers, made here with PyAV: name -> (muxer, encoder, muxer options, expected kind).
EXTRA: dict[str, tuple[str, str, dict[str, str], str]] = {
    "ac3": ("ac3", "ac3", {}, "ac3"),
    "eac3": ("eac3", "eac3", {}, "eac3"),
    "mp2": ("mp2", "mp2", {}, "mp3"),
    "wma": ("asf", "wmav2", {}, "asf"),
    "caf": ("caf", "pcm_s16le", {}, "caf"),
    "au": ("au", "pcm_s16be", {}, "au"),
    "w64": ("w64", "pcm_s16le", {}, "w64"),
    "flv": ("flv", "aac", {}, "flv"),
    "avi": ("avi", "pcm_s16le", {}, "avi"),
    "mka_pcm": ("matroska", "pcm_s16le", {}, "matroska"),
    "mka_flac": ("matroska", "flac", {}, "matroska"),
    "ts": ("mpegts", "mp2", {}, "mpegts"),
    "mpg": ("mpeg", "mp2", {}, "mpeg"),
    "wv": ("wv", "wavpack", {}, "wavpack"),
    "tta": ("tta", "tta", {}, "tta"),
    "voc": ("voc", "pcm_u8", {}, "voc"),
    "amr": ("amr", "libopencore_amrnb", {}, "amr"),
    "mov_pcm": ("mov", "pcm_s16le", {}, "mp4"),
    "3gp": ("3gp", "aac", {}, "mp4"),
    "m4a_faststart": ("ipod", "aac", {"movflags": "faststart"}, "mp4"),
    "m4a_alac": ("ipod", "alac", {}, "mp4"),
    "oga_flac": ("ogg", "flac", {}, "ogg"),
}

#: Formats whose cut is seen wherever it falls (the rest are judged by zero tails only).
CUT_SEEN = (
    "mp3", "m4a", "flac", "ogg", "opus", "aac", "webm", "wav", "aiff",
    "ac3", "eac3", "mp2", "wma", "caf", "au", "w64", "flv", "avi", "mka_pcm", "mka_flac", "ts", "wv",
    "mov_pcm", "3gp", "m4a_faststart", "m4a_alac", "oga_flac",
)  # fmt: skip

#: Formats whose encoded audio never holds long runs of zero bytes: any zero tail means a cut.
COMPRESSED = (
    "mp3", "m4a_faststart", "flac", "ogg", "opus", "aac", "webm", "ac3", "eac3", "mp2", "flv",
    "mka_flac", "ts", "wv", "oga_flac", "mpg", "amr", "tta",
)  # fmt: skip

#: Formats that may hold PCM, where only a zero tail starting on a 64 KiB boundary counts.
PCM = ("wav", "aiff", "caf", "au", "w64", "avi", "mka_pcm", "mov_pcm", "voc", "wma")

#: Encoders that need a bit rate set (FFmpeg's default of 0 is refused).
BIT_RATES = {"wmav2": 32000}

#: Encoders that run at one rate only but do not say so.
RATES = {"libopencore_amrnb": 8000}


def over(data: bytes) -> media_sniff.ReadAt:
    """A ``read_at`` over bytes held in memory."""
    return lambda offset, length: data[offset : offset + length]


def judge(data: bytes) -> tuple[str | None, str | None]:
    kind = media_kind(data[:HEAD_BYTES])
    return kind, (tail_looks_cut(kind, over(data), len(data)) if kind else None)


def _transcode(src: Path, dst: Path, muxer: str, encoder: str, options: dict[str, str]) -> Path:
    rates = av.Codec(encoder, "w").audio_rates
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=muxer, options=options) as out:
        source = inp.streams.audio[0]
        rate = RATES.get(encoder, source.rate)
        if rates and rate not in rates:
            rate = min((r for r in rates if r >= rate), default=max(rates))
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        context = stream.codec_context
        if encoder in BIT_RATES:
            context.bit_rate = BIT_RATES[encoder]
        context.open()
        resampler = av.AudioResampler(
            format=context.format, layout="mono", rate=rate, frame_size=context.frame_size or None
        )
        for frame in inp.decode(source):
            for converted in resampler.resample(frame):
                out.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            out.mux(stream.encode(converted))
        out.mux(stream.encode(None))
    return dst


class Library:
    """Real media files, each made once per test session."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @functools.cache  # noqa: B019 - one library per session, kept for its whole life
    def make(self, name: str, seconds: float = 3.0) -> bytes:
        path = self.root / f"{name}-{seconds:g}"
        if name in FIXTURE_KINDS:
            make_tone(path, seconds=seconds, fmt=name)
        else:
            muxer, encoder, options, _ = EXTRA[name]
            wav = make_tone(self.root / f"src-{seconds:g}.wav", seconds=seconds, fmt="wav")
            _transcode(wav, path, muxer, encoder, options)
        return path.read_bytes()


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    return Library(tmp_path_factory.mktemp("media"))


def kind_of(name: str) -> str:
    return FIXTURE_KINDS[name] if name in FIXTURE_KINDS else EXTRA[name][3]


def cut_points(size: int) -> Iterator[int]:
    """Offsets to cut a file at: spread over its length, plus a few bytes short of the end.

    The fractions are odd so that no cut lands exactly between two constant-size frames: a stream
    without a stated length (AC-3, MP2, TS) cut there is indistinguishable from a shorter one.
    """
    for fraction in (0.3131, 0.5037, 0.7713, 0.9291):
        yield int(size * fraction)
    for short in (1, 2, 5, 77, 300):
        yield size - short


class TestKnownMedia:
    @pytest.mark.parametrize("name", [*FORMATS, *EXTRA])
    def test_complete_file_is_known_and_not_cut(self, library: Library, name: str) -> None:
        """Every real file of every container is recognized by its head and its end looks finished."""
        data = library.make(name)

        assert judge(data) == (kind_of(name), None)

    @pytest.mark.parametrize("name", ["mp3", "aac", "ogg", "flac", "m4a", "webm", "ac3", "wv", "ts", "wav"])
    def test_long_file_is_judged_from_its_tail_alone(self, library: Library, name: str) -> None:
        """When the tail window does not reach back to the first frame, the end still reads as finished."""
        data = library.make(name, seconds=90.0)
        assert len(data) > 2 * media_sniff.TAIL_BYTES

        assert judge(data) == (kind_of(name), None)

    def test_tags_around_mp3_frames(self, library: Library) -> None:
        """ID3v1, APEv2 and Lyrics3 tags after the last frame are not mistaken for a cut frame."""
        data = library.make("mp3")
        ape_item = struct.pack("<II", 5, 0) + b"Title\x00hello"
        ape_body = ape_item + struct.pack("<8sIIII8x", b"APETAGEX", 2000, len(ape_item) + 32, 1, 0)
        lyrics = b"LYRICSBEGIN" + b"IND00002" + b"10"
        lyrics3 = lyrics + f"{len(lyrics):06d}".encode() + b"LYRICS200"
        id3v1 = b"TAG" + b"t" * 30 + b"a" * 30 + b"b" * 30 + b"2024" + b"\x00" * 30 + b"\x0c"

        for tagged in (data + id3v1, data + ape_body, data + ape_body + id3v1, data + lyrics3 + id3v1):
            assert judge(tagged) == ("mp3", None)
            cut = tagged[: len(data) - 100] + tagged[len(data) :]
            assert judge(cut)[1] is not None

    def test_media_behind_an_id3v2_tag(self, library: Library) -> None:
        """FLAC and ADTS files sometimes carry an ID3v2 tag in front; the tag is skipped."""
        tag = b"ID3\x04\x00\x00\x00\x00\x01\x00" + b"\x00" * 128
        assert judge(tag + library.make("flac")) == ("flac", None)
        assert judge(tag + library.make("aac")) == ("aac", None)

    def test_mpeg_frames_after_leading_junk(self, library: Library) -> None:
        """Frames found a little way in (zero padding, a damaged start) still make an MP3."""
        data = library.make("mp3")
        first = data.index(b"\xff\xf3")
        for junk in (b"\x00" * 1000, bytes(range(256)) * 3):
            assert media_kind(junk + data[first:]) == "mp3"

    def test_oversized_tag_is_taken_as_mp3(self, library: Library) -> None:
        """An ID3v2 tag larger than the head window (cover art) says MP3 before any frame is seen."""
        big = 200_000
        size = bytes([(big >> 21) & 0x7F, (big >> 14) & 0x7F, (big >> 7) & 0x7F, big & 0x7F])
        tag = b"ID3\x03\x00\x00" + size + bytes(random.Random(5).randbytes(big))
        data = tag + library.make("mp3")

        assert judge(data) == ("mp3", None)


class TestGarbage:
    def test_text_renamed_as_audio(self) -> None:
        """Plain text, including text that happens to contain box and chunk names, is no media."""
        for text in (
            "Minutes of the meeting\n" * 3000, "Get free stuff now " * 100, "The mdat box holds data",
            "RIFF is a container; WAVE a form.", "ID3 tags are described elsewhere", "# !AMR not really",
        ):  # fmt: skip
            assert media_kind(text.encode()) is None, text

    @pytest.mark.parametrize("seed", range(100))
    def test_random_bytes(self, seed: int) -> None:
        """No signature is read into random bytes: frame syncs must chain, boxes must nest."""
        blob = random.Random(seed).randbytes(HEAD_BYTES)

        assert media_kind(blob) is None

    def test_documents_and_images(self) -> None:
        """Compressed document and image formats (random-looking streams inside) are no media."""
        rng = random.Random(7)
        noise = rng.randbytes(200_000)
        for data in (
            _png(rng),
            _pdf(noise),
            _zip(noise, zipfile.ZIP_STORED),
            _zip(noise, zipfile.ZIP_DEFLATED),
        ):
            assert media_kind(data[:HEAD_BYTES]) is None

    def test_empty_and_tiny(self) -> None:
        assert media_kind(b"") is None
        assert media_kind(b"\xff\xfb") is None
        assert media_kind(b"RIFF") is None

    def test_unwritten_head(self) -> None:
        """A head of zero bytes is space reserved for a copy that has not written yet, not garbage."""
        assert head_looks_unwritten(bytes(HEAD_BYTES)) is not None
        assert head_looks_unwritten(b"") is None
        assert head_looks_unwritten(b"hello" + bytes(100)) is None


class TestCutUploads:
    @pytest.mark.parametrize("name", CUT_SEEN)
    def test_cut_anywhere_is_seen(self, library: Library, name: str) -> None:
        """An upload that stopped mid-file, short or long, reads as cut wherever it stopped."""
        for seconds in (3.0, 40.0):
            data = library.make(name, seconds)
            for cut in cut_points(len(data)):
                kind, reason = judge(data[:cut])
                assert kind == kind_of(name)
                assert reason is not None, f"{name} {seconds} s cut at {cut} of {len(data)}"

    def test_mp3_cut_between_frames_is_seen_by_its_xing_header(self, library: Library) -> None:
        """A cut that falls exactly between two frames leaves a valid chain; the Xing byte count tells."""
        data = library.make("mp3", 40.0)
        for boundary in packet_starts(data)[-40::7]:
            assert judge(data[:boundary])[1] is not None

    def test_ogg_cut_between_pages_lacks_the_end_of_stream(self, library: Library) -> None:
        data = library.make("opus", 40.0)
        starts = [i for i in range(len(data)) if data.startswith(b"OggS", i)]
        for boundary in starts[-6:]:
            reason = judge(data[:boundary])[1]
            assert reason is not None
            assert "end-of-stream" in reason

    def test_flac_cut_between_frames_falls_short_of_its_sample_count(self, library: Library) -> None:
        data = library.make("flac", 40.0)
        for boundary in packet_starts(data)[-5:]:
            reason = judge(data[:boundary])[1]
            assert reason is not None
            assert "samples" in reason

    def test_wav_shorter_than_its_header(self, library: Library) -> None:
        """A WAV whose data chunk states more bytes than there are was cut (or is still arriving)."""
        data = library.make("wav", 10.0)
        reason = judge(data[:100_000])[1]
        assert reason is not None
        assert "WAV header" in reason

    def test_mp4_that_was_never_finalized(self, library: Library) -> None:
        """Recorders write ftyp and a growing mdat, and moov only at the end: no moov means unfinished."""
        data = library.make("m4a", 10.0)
        mdat = data.index(b"mdat") - 4
        moov = data.index(b"moov") - 4
        assert moov > mdat
        growing = data[:mdat] + b"\x00\x00\x00\x00mdat" + data[mdat + 8 : moov]

        kind, reason = judge(growing)
        assert kind == "mp4"
        assert reason is not None
        assert "moov" in reason


class TestPreallocatedCopies:
    """A copy that set the final size first and then stalled: real data, then zeros to the end."""

    @pytest.mark.parametrize("name", COMPRESSED)
    def test_compressed_zero_tail_is_cut(self, library: Library, name: str) -> None:
        """Encoded audio never holds 4 KiB of zero bytes: such a tail is unwritten, wherever it starts."""
        data = library.make(name, 40.0)
        for written in (len(data) // 3, len(data) // 2 + 999, len(data) - 5000):
            padded = data[:written] + bytes(len(data) - written)
            assert judge(padded)[1] is not None, f"{name}: {written} of {len(data)} written"

    @pytest.mark.parametrize("name", PCM)
    def test_pcm_zero_tail_from_a_write_boundary_is_cut(self, library: Library, name: str) -> None:
        """Zeros that begin exactly on a 64 KiB boundary, after real samples: what a stalled copy leaves."""
        data = library.make(name, 90.0)
        blocks = len(data) // GRAIN
        assert blocks >= 6
        for written_blocks in (2, blocks // 2, blocks - 1):
            written = written_blocks * GRAIN
            padded = data[:written] + bytes(len(data) - written)
            reason = judge(padded)[1]
            assert reason is not None, f"{name}: {written} of {len(data)} written"

    @pytest.mark.parametrize("fmt", ["wav", "aiff"])
    def test_pcm_ending_in_digital_silence_is_not_cut(self, tmp_path: Path, fmt: str) -> None:
        """Ten seconds of exact digital silence at the end of a real PCM recording is content, not a cut."""
        for index, seconds in enumerate((12.0, 13.37, 15.5, 20.0, 31.01)):
            path = make_speechlike(
                tmp_path / f"s{index}.{fmt}", seconds, fmt, gaps=[(seconds - 10.0, seconds)]
            )
            data = path.read_bytes()
            assert data.endswith(bytes(GRAIN))
            assert judge(data) == (fmt, None), f"{seconds} s"

    def test_pcm_silence_mid_file_then_zeros_from_a_boundary(self, library: Library) -> None:
        """The rule reads the start of the zero run, however long it is: the whole tail window may be zero."""
        data = library.make("wav", 40.0)
        for written in (GRAIN, 3 * GRAIN, 7 * GRAIN):
            padded = data[:written] + bytes(len(data) - written)
            assert judge(padded)[1] is not None


class TestHostileInput:
    def test_damaged_and_cut_short_files_never_raise(self, library: Library) -> None:
        """Whatever a file holds, the checks answer: they run on every input a drop folder gets."""
        rng = random.Random(11)
        kinds = sorted(media_sniff.KINDS)
        for name in (*FORMATS, *EXTRA):
            data = library.make(name)
            for _ in range(40):
                damaged = bytearray(data[: rng.randrange(len(data) + 1)])
                for _ in range(rng.randrange(8)):
                    if damaged:
                        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
                blob = bytes(damaged) + rng.randbytes(rng.randrange(3) * 1000)
                media_kind(blob[:HEAD_BYTES])
                for kind in (kind_of(name), rng.choice(kinds)):
                    tail_looks_cut(kind, over(blob), len(blob))

    def test_file_that_shrinks_while_read(self, library: Library) -> None:
        """A file truncated between the size check and the reads is not finished."""
        data = library.make("mp3", 90.0)
        shrunk = data[: len(data) // 2]

        assert tail_looks_cut("mp3", over(shrunk), len(data)) is not None


@pytest.mark.timing
class TestCost:
    def test_reads_on_a_2gb_file_stay_small(self, library: Library) -> None:
        """Judging a 2 GB file reads a few hundred KiB: head, tail, box headers, a bisection of zeros."""
        size = 2 * 1024**3
        wav = library.make("wav", 40.0)
        header = bytearray(wav[: 5 * GRAIN])
        struct.pack_into("<I", header, 4, size - 8)
        struct.pack_into("<I", header, header.index(b"data") + 4, size - header.index(b"data") - 8)
        m4a = library.make("m4a", 10.0)
        mdat, moov = m4a.index(b"mdat") - 4, m4a.index(b"moov") - 4
        mp4_head = bytearray(m4a[:moov])
        struct.pack_into(">I", mp4_head, mdat, size - (len(m4a) - moov) - mdat)
        mp3 = library.make("mp3", 90.0)
        cases: list[tuple[list[tuple[int, bytes]], bool]] = [
            ([(0, bytes(header))], True),  # stalled after 320 KiB: zeros to the end
            ([(0, bytes(header)), (size - GRAIN, wav[-GRAIN:])], False),
            ([(0, bytes(mp4_head)), (size - (len(m4a) - moov), m4a[moov:])], False),
            ([(0, mp3[:HEAD_BYTES]), (size - 200_000, mp3[-200_000:])], False),
            ([(0, mp3[:HEAD_BYTES]), (size - 200_000, mp3[-200_000:-1000])], True),
        ]
        for parts, cut in cases:
            virtual = Virtual(parts, size)
            kind = media_kind(virtual.read_at(0, HEAD_BYTES))
            assert kind is not None
            virtual.bytes_read = 0
            assert (tail_looks_cut(kind, virtual.read_at, size) is not None) is cut, kind
            assert virtual.bytes_read <= 400 * 1024, (kind, virtual.bytes_read)

    def test_pure_functions_are_quick_on_their_windows(self, library: Library) -> None:
        """Tens of milliseconds at most per call, even in pure Python on a busy machine."""
        blobs = [random.Random(seed).randbytes(HEAD_BYTES) for seed in range(50)]
        files = [library.make(name, 90.0) for name in ("mp3", "flac", "ogg", "aac", "m4a")]
        started = time.perf_counter()
        for blob in blobs:
            media_kind(blob)
        for data in files:
            judge(data)
        per_call = (time.perf_counter() - started) / (len(blobs) + len(files))
        assert per_call < 0.1, per_call


class Virtual:
    """A large file in memory: the given parts at their offsets, zeros elsewhere; counts bytes read."""

    def __init__(self, parts: list[tuple[int, bytes]], size: int) -> None:
        self.parts = parts
        self.size = size
        self.bytes_read = 0

    def read_at(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        self.bytes_read += length
        out = bytearray(length)
        for start, data in self.parts:
            lo, hi = max(start, offset), min(start + len(data), offset + length)
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - start : hi - start]
        return bytes(out)


def packet_starts(data: bytes) -> list[int]:
    """Where FFmpeg's demuxer says each audio packet starts: frame boundaries found independently."""
    with av.open(io.BytesIO(data), "r") as container:
        packets = container.demux(container.streams.audio[0])
        return [packet.pos for packet in packets if packet.size and packet.pos is not None]


def _png(rng: random.Random) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    width = height = 256
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _pdf(noise: bytes) -> bytes:
    stream = zlib.compress(noise)
    return (
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
        + b"3 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
        + stream
        + b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )


def _zip(noise: bytes, method: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        archive.writestr("notes.txt", "hello " * 1000)
        archive.writestr("blob.bin", noise)
    return buffer.getvalue()
