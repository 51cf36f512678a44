"""The audio adapter on real files: probing, refusing non-audio and hostile media, splitting."""

from __future__ import annotations

import errno
import io
import os
import struct
from pathlib import Path

import av
import pytest

from dropscribe.adapters import audio
from dropscribe.adapters.audio import opening as audio_opening
from dropscribe.adapters.files import open_input
from dropscribe.core.chunking import plan_chunks
from dropscribe.core.errors import InputRejectedError, ShareUnavailableError
from dropscribe.core.formats import DASHSCOPE, FILETRANS, SYNC, Encoding, format_policy
from tests.support.audio import (
    FORMATS,
    espeak_available,
    make_speech,
    make_speechlike,
    make_tone,
    make_video_without_audio,
    sha256_file,
)

CODECS = {
    "wav": "pcm_s16le", "mp3": "mp3", "m4a": "aac", "flac": "flac", "ogg": "opus", "opus": "opus",
    "aac": "aac", "webm": "opus", "aiff": "pcm_s16be",
}  # fmt: skip


def rejected(code: str) -> pytest.RaisesExc[InputRejectedError]:
    return pytest.raises(InputRejectedError, check=lambda exc: exc.code == code)


class TestProbe:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_every_fixture_format_is_probed(self, tmp_path: Path, fmt: str) -> None:
        """Length, codec and layout come out right for each format the fixtures make."""
        path = make_tone(tmp_path / f"tone.{fmt}", seconds=3.0, fmt=fmt)

        info = audio.probe(path)

        # Raw ADTS has no length field; FFmpeg estimates it from the bitrate.
        assert info.duration_s == pytest.approx(3.0, abs=0.15 if fmt == "aac" else 0.1)
        assert info.has_audio
        assert not info.has_video
        assert CODECS[fmt] == info.codec
        assert info.channels == 1
        assert info.sample_rate in {16000, 48000}  # Opus always decodes at 48 kHz
        # every fixture format goes as it is to file transcription; m4a is off the sync list since 2026
        assert audio.is_sendable_as_is(info, format_policy(DASHSCOPE, FILETRANS)) == (fmt != "aiff")
        assert audio.is_sendable_as_is(info, format_policy(DASHSCOPE, SYNC)) == (fmt != "m4a")

    def test_stereo_cd_rate(self, tmp_path: Path) -> None:
        """Rate and channel count of a typical music-player file are reported as stored."""
        path = make_tone(tmp_path / "cd.m4a", seconds=2.0, fmt="m4a", sample_rate=44100, channels=2)

        info = audio.probe(path)

        assert (info.sample_rate, info.channels) == (44100, 2)
        assert audio.mime_type(info) == "audio/mp4"

    def test_open_descriptor_is_read_without_reopening(self, tmp_path: Path) -> None:
        """The service's own O_NOFOLLOW file object works, repeatedly, and stays open."""
        path = make_tone(tmp_path / "talk.mp3", seconds=2.0, fmt="mp3")
        with open_input(path) as handle:
            handle.seek(1234)

            first = audio.probe(handle)
            second = audio.probe(handle)
            energies, duration = audio.measure_energy(handle)

            assert first == second
            assert not handle.closed
        assert first.duration_s == pytest.approx(2.0, abs=0.1)
        assert duration == pytest.approx(2.0, abs=0.1)
        assert len(energies) == pytest.approx(20, abs=1)

    def test_the_file_is_not_followed_by_name(self, tmp_path: Path) -> None:
        """Only the object is read: renaming the file under an open handle changes nothing."""
        path = make_tone(tmp_path / "a.wav", seconds=1.0, fmt="wav")
        with path.open("rb") as handle:
            path.rename(tmp_path / "b.wav")
            (tmp_path / "a.wav").write_bytes(b"not audio at all")
            assert audio.probe(handle).codec == "pcm_s16le"

    def test_tags_in_a_legacy_encoding_do_not_matter(self, tmp_path: Path) -> None:
        """A WAV whose INFO title is Latin-1, not UTF-8, is still audio (PyAV alone would refuse it)."""
        data = make_tone(tmp_path / "plain.wav", seconds=1.0, fmt="wav").read_bytes()
        title = b"Caf\xe9 meeting!\x00"  # even length: RIFF chunks are word-aligned
        info_chunk = b"LIST" + struct.pack("<I", 12 + len(title)) + b"INFO"
        info_chunk += b"INAM" + struct.pack("<I", len(title)) + title
        at = data.index(b"data")
        tagged = data[:at] + info_chunk + data[at:]
        path = tmp_path / "tagged.wav"
        path.write_bytes(tagged[:4] + struct.pack("<I", len(tagged) - 8) + tagged[8:])

        assert audio.probe(path).duration_s == pytest.approx(1.0, abs=0.01)

    def test_spliced_recordings_decode_as_one_timeline(self, tmp_path: Path) -> None:
        """Two MP3s glued together, with different rates and layouts, measure as their sum."""
        first = make_tone(tmp_path / "a.mp3", seconds=2.0, fmt="mp3").read_bytes()
        second = make_tone(
            tmp_path / "b.mp3", seconds=3.0, fmt="mp3", sample_rate=44100, channels=2
        ).read_bytes()
        path = tmp_path / "spliced.mp3"
        path.write_bytes(first + second)

        _, duration = audio.measure_energy(path)
        chunks = audio.encode_chunks(path, [(0.0, duration)], tmp_path / "out")

        assert duration == pytest.approx(5.0, abs=0.15)
        assert audio.probe(chunks[0]).duration_s == pytest.approx(duration, abs=0.001)

    @pytest.mark.parametrize(
        "content",
        [b"", b"Minutes of the meeting\n" * 200, bytes(range(256)) * 64, b"\xff\xfb" + bytes(4000),
         b"%PDF-1.4\n" + bytes(2000), b"RIFF\x24\x00\x00\x00WAVEfmt "],
        ids=["empty", "text", "garbage", "mp3-sync-then-zeros", "pdf", "riff-header-only"],
    )  # fmt: skip
    def test_non_audio_is_rejected(self, tmp_path: Path, content: bytes) -> None:
        """Whatever its name says, a file FFmpeg cannot parse is not_audio, with no file name."""
        path = tmp_path / "secret-name.mp3"
        path.write_bytes(content)

        with rejected("not_audio") as caught:
            audio.probe(path)

        assert "secret-name" not in str(caught.value)

    def test_video_without_audio(self, tmp_path: Path) -> None:
        """A silent screen recording is a media file, but not one we can transcribe."""
        path = make_video_without_audio(tmp_path / "screen.mp4")

        with rejected("no_audio_stream"):
            audio.probe(path)
        with rejected("no_audio_stream"):
            audio.measure_energy(path)

    @pytest.mark.parametrize("fmt", ["wav", "mp3", "ogg"])
    def test_read_errors_are_the_share_not_the_file(self, tmp_path: Path, fmt: str) -> None:
        """An I/O error while reading is transient, never a verdict on the recording."""
        data = make_tone(tmp_path / f"x.{fmt}", seconds=20.0, fmt=fmt).read_bytes()

        with pytest.raises(ShareUnavailableError, match="Input/output error"):
            audio.probe(FailingFile(data, fail_after=0))
        with pytest.raises(ShareUnavailableError, match="Input/output error"):
            audio.measure_energy(FailingFile(data, fail_after=len(data) // 2))
        with pytest.raises(ShareUnavailableError, match="Input/output error"):
            audio.encode_chunks(FailingFile(data, fail_after=len(data) // 2), [(0, 20)], tmp_path)
        assert list(tmp_path.glob("*.flac")) == []


class TestHostileMedia:
    """Playlists dressed up as audio must never make FFmpeg read another file."""

    @staticmethod
    def secret(tmp_path: Path) -> Path:
        # A real recording, so that if it were ever read the probe would succeed and say so.
        return make_tone(tmp_path / "other-tenant.wav", seconds=7.0, fmt="wav")

    def test_the_threat_is_real_in_this_ffmpeg(self, tmp_path: Path) -> None:
        """Plain PyAV follows an ffconcat list to a neighbouring file; the guards below matter."""
        self.secret(tmp_path)
        playlist = tmp_path / "talk.mp3"
        playlist.write_text("ffconcat version 1.0\nfile 'other-tenant.wav'\n")

        with playlist.open("rb") as handle, av.open(handle, "r") as container:
            assert container.format.name == "concat"
            assert sum(p.size for p in container.demux(container.streams.audio[0])) > 200_000

    @pytest.mark.parametrize(
        "playlist",
        [
            "ffconcat version 1.0\nfile 'other-tenant.wav'\n",
            "ffconcat version 1.0\nfile '{secret}'\n",
            "ffconcat version 1.0\nfile 'file:{secret}'\nfile '/etc/hostname'\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:7.0,\nother-tenant.wav\n#EXT-X-ENDLIST\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:7.0,\nfile://{secret}\n#EXT-X-ENDLIST\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n/etc/hostname\n#EXT-X-ENDLIST\n",
            "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nhttp://127.0.0.1:9/a.ts\n",
        ],
        ids=["concat-relative", "concat-absolute", "concat-protocol", "hls-relative", "hls-file-url",
             "hls-etc", "hls-http"],
    )  # fmt: skip
    def test_playlists_are_not_audio(self, tmp_path: Path, playlist: str) -> None:
        """Every playlist flavour is refused outright, whatever it references."""
        secret = self.secret(tmp_path)
        path = tmp_path / "talk.mp3"
        path.write_text(playlist.format(secret=secret))

        with rejected("not_audio"):
            audio.probe(path)
        with path.open("rb") as handle, rejected("not_audio"):
            audio.measure_energy(handle)

    @pytest.mark.parametrize("guard", ["format_whitelist", "protocol_whitelist"])
    def test_each_guard_blocks_the_concat_trick_on_its_own(self, tmp_path: Path, guard: str) -> None:
        """Defence in depth: the demuxer list and the empty protocol list each suffice."""
        self.secret(tmp_path)
        playlist = tmp_path / "talk.mp3"
        playlist.write_text("ffconcat version 1.0\nfile 'other-tenant.wav'\n")
        options = {guard: audio_opening.input_options()[guard]}

        with playlist.open("rb") as handle, pytest.raises(av.FFmpegError):
            av.open(handle, container_options=options)


class TestEnergy:
    def test_windows_follow_the_signal(self, tmp_path: Path) -> None:
        """Tone windows carry the tone's RMS, silent windows are zero, the length is exact."""
        path = make_speechlike(tmp_path / "s.wav", 4.0, "wav", gaps=[(1.0, 2.0)])

        energies, duration = audio.measure_energy(path, window_s=0.1)

        assert duration == pytest.approx(4.0, abs=0.01)
        assert len(energies) == 40
        assert energies[5] == pytest.approx(0.3 / 2**0.5, rel=0.02)
        assert max(energies[11:19]) < 1e-3
        assert energies[35] == pytest.approx(0.3 / 2**0.5, rel=0.02)

    def test_stereo_48k_is_measured_at_16k_mono(self, tmp_path: Path) -> None:
        """Any input layout ends up on the same 16 kHz mono timeline."""
        path = make_tone(tmp_path / "st.ogg", seconds=2.5, fmt="ogg", sample_rate=48000, channels=2)

        energies, duration = audio.measure_energy(path, window_s=0.5)

        assert duration == pytest.approx(2.5, abs=0.02)
        assert len(energies) == 5

    def test_a_cut_off_flac_is_truncated_audio(self, tmp_path: Path) -> None:
        """A FLAC whose header promises more than the file holds is reported as cut off."""
        data = make_tone(tmp_path / "full.flac", seconds=10.0, fmt="flac").read_bytes()
        cut = tmp_path / "cut.flac"
        cut.write_bytes(data[: len(data) // 2])

        assert audio.probe(cut).duration_s == pytest.approx(10.0)
        with rejected("truncated_audio") as caught:
            audio.measure_energy(cut)
        assert "states 10.0 s" in caught.value.message

    def test_a_little_damage_is_skipped(self, tmp_path: Path) -> None:
        """A few garbled bytes in an MP3 cost a moment of audio, not the whole file."""
        data = bytearray(make_tone(tmp_path / "ok.mp3", seconds=6.0, fmt="mp3").read_bytes())
        for at in range(len(data) // 3, len(data) // 3 + 400, 7):
            data[at] ^= 0x5A
        damaged = tmp_path / "damaged.mp3"
        damaged.write_bytes(bytes(data))

        _, duration = audio.measure_energy(damaged)

        assert duration == pytest.approx(6.0, abs=0.5)

    def test_speech_has_pauses(self, tmp_path: Path) -> None:
        """Real synthesised speech shows loud words and quiet gaps."""
        if not espeak_available():
            pytest.skip("espeak-ng is not installed")
        path = make_speech(tmp_path / "hello.m4a", "Hello there. This is a test, with pauses.", "m4a")

        energies, duration = audio.measure_energy(path)

        assert 1.5 < duration < 6.0
        assert max(energies) > 0.05
        assert min(energies) < 0.005


class TestSplitting:
    GAPS = [(149.4, 150.6), (289.2, 290.8)] + [(t - 0.25, t) for t in range(10, 420, 10)]

    def test_seven_minutes_split_at_silences(self, tmp_path: Path) -> None:
        """A 7-minute talk becomes chunks of at most 180 s, cut in pauses, adding up to the whole."""
        source = make_speechlike(tmp_path / "talk.flac", 420.0, "flac", gaps=self.GAPS)
        before = sha256_file(source)

        energies, duration = audio.measure_energy(source)
        spans = plan_chunks(energies, 0.1, duration, 180.0)
        chunks = audio.encode_chunks(source, spans, tmp_path / "chunks")

        assert duration == pytest.approx(420.0, abs=0.01)
        assert [tmp_path / "chunks" / f"chunk-{i:04d}.flac" for i in range(len(spans))] == chunks
        for _, cut in spans[:-1]:
            assert any(a <= cut <= b for a, b in self.GAPS), cut
        infos = [audio.probe(chunk) for chunk in chunks]
        for info, (start, end) in zip(infos, spans, strict=True):
            assert info.duration_s <= 180.0
            assert info.duration_s == pytest.approx(end - start, abs=0.01)
            assert (info.codec, info.sample_rate, info.channels) == ("flac", 16000, 1)
        assert sum(info.duration_s for info in infos) == pytest.approx(420.0, abs=0.2)
        assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == [c.name for c in chunks]
        assert before == sha256_file(source)

    def test_spans_may_skip_audio(self, tmp_path: Path) -> None:
        """Only the asked-for stretches are written, from a stereo 44.1 kHz MP3."""
        source = make_tone(tmp_path / "m.mp3", seconds=6.0, fmt="mp3", sample_rate=44100, channels=2)

        chunks = audio.encode_chunks(source, [(0.5, 1.5), (3.0, 6.0)], tmp_path / "out")

        assert [pytest.approx(audio.probe(c).duration_s, abs=0.01) for c in chunks] == [1.0, 3.0]

    def test_bad_spans_leave_nothing_behind(self, tmp_path: Path) -> None:
        """Overlapping spans or spans past the end are refused and no chunk is left over."""
        source = make_tone(tmp_path / "t.wav", seconds=3.0, fmt="wav")
        out = tmp_path / "out"

        with pytest.raises(ValueError, match="overlaps"):
            audio.encode_chunks(source, [(0.0, 2.0), (1.0, 3.0)], out)
        with pytest.raises(ValueError, match="after the audio ends"):
            audio.encode_chunks(source, [(0.0, 2.0), (5.0, 6.0)], out)
        assert list(out.iterdir()) == []

    def test_transcode_makes_small_flac(self, tmp_path: Path) -> None:
        """A format DashScope may not take is re-encoded whole as 16 kHz mono FLAC."""
        source = make_tone(tmp_path / "in.aiff", seconds=3.0, fmt="aiff", sample_rate=44100, channels=2)

        out = audio.transcode(source, tmp_path / "out" / "whole.flac")

        info = audio.probe(out)
        assert (info.format_name, info.codec, info.sample_rate, info.channels) == ("flac", "flac", 16000, 1)
        assert info.duration_s == pytest.approx(3.0, abs=0.01)
        assert out.stat().st_size < source.stat().st_size / 5
        assert [out] == list(out.parent.iterdir())


class TestStreamedSplitting:
    """One decoding pass finds the pauses (FFmpeg's astats) and writes each chunk as it is cut."""

    GAPS = TestSplitting.GAPS
    FLAC = format_policy(DASHSCOPE).chunk_encoding

    def test_same_pauses_and_plan_as_the_energy_pass(self, tmp_path: Path) -> None:
        """The C-speed loudness and the pure-Python energy pass agree: same cuts, all in the gaps."""
        source = make_speechlike(tmp_path / "talk.wav", 420.0, "wav", gaps=self.GAPS)
        energies, duration = audio.measure_energy(source)
        expected = plan_chunks(energies, 0.1, duration, 180.0)

        chunks = list(audio.stream_chunks(source, tmp_path / "out", self.FLAC, 180.0))

        assert [(c.start_s, c.end_s) for c in chunks] == expected
        assert all(c.new for c in chunks)
        for chunk in chunks[:-1]:
            assert any(a <= chunk.end_s <= b for a, b in self.GAPS), chunk.end_s
        for chunk in chunks:
            assert chunk.path is not None
            info = audio.probe(chunk.path)
            assert (info.codec, info.sample_rate, info.channels) == ("flac", 16000, 1)
            assert info.duration_s == pytest.approx(chunk.end_s - chunk.start_s, abs=0.001)

    def test_a_chunk_is_handed_out_before_the_file_is_read_to_its_end(self, tmp_path: Path) -> None:
        """When the first chunk comes out, later chunks are not written yet: the pass is lazy."""
        source = make_speechlike(tmp_path / "talk.flac", 420.0, "flac", gaps=self.GAPS)
        out = tmp_path / "out"

        stream = audio.stream_chunks(source, out, self.FLAC, 60.0)
        first = next(stream)

        assert first.index == 0
        assert first.path is not None
        assert sorted(p.name for p in out.iterdir()) == ["chunk-0000.flac"]
        first.path.unlink()
        rest = list(stream)
        assert [c.index for c in rest] == list(range(1, len(rest) + 1))
        assert rest[-1].end_s == pytest.approx(420.0, abs=0.01)

    def test_a_restart_keeps_planned_spans_and_writes_only_what_is_asked(self, tmp_path: Path) -> None:
        """Spans passed in stay as they are, the rest comes out as before, skipped ones are not written."""
        source = make_speechlike(tmp_path / "talk.wav", 420.0, "wav", gaps=self.GAPS)
        whole = [(c.start_s, c.end_s) for c in audio.stream_chunks(source, tmp_path / "a", self.FLAC, 60.0)]
        out = tmp_path / "b"

        again = list(audio.stream_chunks(source, out, self.FLAC, 60.0, planned=whole[:3], skip={0, 2}))

        assert [(c.start_s, c.end_s) for c in again] == whole
        assert [c.new for c in again] == [False] * 3 + [True] * (len(whole) - 3)
        assert [c.path is None for c in again[:3]] == [True, False, True]
        assert sorted(p.name for p in out.iterdir()) == [
            f"chunk-{i:04d}.flac" for i in range(len(whole)) if i not in (0, 2)
        ]

    # PyAV reports the interrupt it swallows as "ignored": that report is the situation under test
    @pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
    def test_ctrl_c_while_decoding_is_not_taken_for_the_end_of_the_file(self, tmp_path: Path) -> None:
        """FFmpeg's read callback swallows a KeyboardInterrupt; the split must not end early as if done."""
        data = make_speechlike(tmp_path / "talk.wav", 120.0, "wav").read_bytes()

        with pytest.raises(KeyboardInterrupt):
            list(
                audio.stream_chunks(InterruptedFile(data, len(data) // 2), tmp_path / "out", self.FLAC, 30.0)
            )

    def test_a_cut_off_flac_is_still_truncated_audio(self, tmp_path: Path) -> None:
        """The damage checks of the decoder run in the streaming pass too (at its end)."""
        data = make_tone(tmp_path / "full.flac", seconds=40.0, fmt="flac").read_bytes()
        cut = tmp_path / "cut.flac"
        cut.write_bytes(data[: len(data) // 2])

        with rejected("truncated_audio"):
            list(audio.stream_chunks(cut, tmp_path / "out", self.FLAC, 15.0))


class TestFormatPolicy:
    """The adapters carry out core.formats: real files, probed and re-encoded as a policy says."""

    def test_probed_files_are_judged_by_the_backend_policy(self, tmp_path: Path) -> None:
        """What the probe reports feeds the policy of one backend and one way of sending."""
        m4a = audio.probe(make_tone(tmp_path / "a.m4a", seconds=1.0, fmt="m4a"))
        mp3 = audio.probe(make_tone(tmp_path / "a.mp3", seconds=1.0, fmt="mp3"))
        # the sync models dropped m4a from their list; file transcription still takes it
        assert not audio.is_sendable_as_is(m4a, format_policy(DASHSCOPE, SYNC))
        assert audio.is_sendable_as_is(m4a, format_policy(DASHSCOPE, FILETRANS))
        assert audio.is_sendable_as_is(mp3, format_policy(DASHSCOPE, SYNC))
        assert audio.mime_type(m4a) == "audio/mp4"

    def test_transcode_follows_the_encoding_it_is_given(self, tmp_path: Path) -> None:
        """Another backend's target (8 kHz WAV here) is what gets written, not FLAC."""
        source = make_tone(tmp_path / "in.mp3", seconds=2.0, fmt="mp3", sample_rate=44100, channels=2)
        wav = Encoding("wav", "pcm_s16le", 8000, "s16", "audio/wav", ".wav")

        out = audio.transcode(source, tmp_path / "whole.wav", wav)

        info = audio.probe(out)
        assert (info.format_name, info.codec) == ("wav", "pcm_s16le")
        assert (info.sample_rate, info.channels) == (8000, 1)
        assert info.duration_s == pytest.approx(2.0, abs=0.03)

    def test_chunks_follow_the_encoding_they_are_given(self, tmp_path: Path) -> None:
        """Chunk names take the encoding's suffix and the spans are cut at its sample rate."""
        source = make_tone(tmp_path / "in.wav", seconds=4.0, fmt="wav")
        wav = Encoding("wav", "pcm_s16le", 8000, "s16", "audio/wav", ".wav")

        chunks = audio.encode_chunks(source, [(0.0, 1.5), (2.0, 4.0)], tmp_path / "out", wav)

        assert [c.name for c in chunks] == ["chunk-0000.wav", "chunk-0001.wav"]
        infos = [audio.probe(c) for c in chunks]
        assert [(i.codec, i.sample_rate) for i in infos] == [("pcm_s16le", 8000)] * 2
        assert [pytest.approx(i.duration_s, abs=0.001) for i in infos] == [1.5, 2.0]


class FailingFile(io.BytesIO):
    """An in-memory file whose reads fail with EIO once ``fail_after`` bytes were served."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        super().__init__(data)
        self._size = len(data)
        self._fail_after = fail_after

    def read(self, size: int | None = -1) -> bytes:
        pos = self.tell()
        if self._fail_after <= pos < self._size:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if size is None or size < 0:
            size = self._size - pos
        if pos < self._fail_after:
            size = min(size, self._fail_after - pos)  # a short read up to the bad spot, like a disk
        return super().read(size)


class InterruptedFile(io.BytesIO):
    """An in-memory file whose first read past ``at`` bytes raises KeyboardInterrupt, as one Ctrl-C does."""

    def __init__(self, data: bytes, at: int) -> None:
        super().__init__(data)
        self._at = at
        self._interrupted = False

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self._at and not self._interrupted:
            self._interrupted = True
            raise KeyboardInterrupt
        return super().read(size)
