"""The format policy of each backend: what goes as it is, what is re-encoded, and to what."""

from __future__ import annotations

import dataclasses

import pytest

from dropscribe.core.formats import DASHSCOPE, Encoding, FormatPolicy, format_policy, mime_type

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"


class TestDashScopeTakesAsIs:
    @pytest.mark.parametrize(
        ("format_name", "codec"),
        [("mp3", "mp3"), (MP4, "aac"), ("wav", "pcm_s16le"), ("ogg", "opus"), ("ogg", "vorbis"),
         ("flac", "flac"), ("matroska,webm", "opus"), ("asf", "wmav2"), ("amr", "amr_nb"),
         ("aiff", "pcm_s16be"), ("mpeg", "mp2")],
    )  # fmt: skip
    def test_common_recordings_go_as_they_are(self, format_name: str, codec: str) -> None:
        """MP3, M4A, WAV, Opus and friends need no re-encoding."""
        assert format_policy(DASHSCOPE).takes_as_is(format_name, codec)

    @pytest.mark.parametrize(
        ("format_name", "codec"),
        [("caf", "alac"), ("wav", "pcm_f64le"), ("wav", "adpcm_ms"), ("w64", "pcm_s16le"),
         (MP4, "alac"), ("ogg", "speex"), ("mpegts", "aac"), ("wav", None)],
    )  # fmt: skip
    def test_other_containers_or_codecs_are_re_encoded(self, format_name: str, codec: str | None) -> None:
        """An unlisted container, an odd codec in a listed one, or no known codec: re-encode first."""
        assert not format_policy(DASHSCOPE).takes_as_is(format_name, codec)

    def test_container_names_match_whole_parts_only(self) -> None:
        """``mpegts`` is not ``mpeg``: a part of FFmpeg's comma list must be listed exactly."""
        policy = format_policy(DASHSCOPE)
        assert "mpeg" in policy.containers
        assert not policy.takes_as_is("mpegts", "mp2")
        assert policy.takes_as_is("mpegts,mpeg", "mp2")


class TestDashScopeEncodings:
    def test_whole_files_and_chunks_become_16k_mono_flac(self) -> None:
        """Re-encoded files and the chunks of long audio are 16 kHz s16 FLAC, sent as audio/flac."""
        policy = format_policy(DASHSCOPE)
        flac = Encoding("flac", "flac", 16000, "s16", "audio/flac", ".flac")
        assert policy.transcode_to == flac
        assert policy.chunk_encoding == flac

    def test_what_it_re_encodes_to_it_takes_as_is(self) -> None:
        """A re-encoded file is never re-encoded again."""
        policy = format_policy(DASHSCOPE)
        for encoding in (policy.transcode_to, policy.chunk_encoding):
            assert policy.takes_as_is(encoding.container, encoding.codec)
            assert mime_type(encoding.container, has_video=False) == encoding.mime_type


class TestPolicies:
    def test_unknown_backend_is_refused_by_name(self) -> None:
        with pytest.raises(ValueError, match="'openai-compatible'"):
            format_policy("openai-compatible")

    def test_a_backend_is_decided_by_its_own_lists(self) -> None:
        """Another backend's policy is plain data: WAV only, chunks as 8 kHz WAV."""
        wav = Encoding("wav", "pcm_s16le", 8000, "s16", "audio/wav", ".wav")
        other = FormatPolicy("other", frozenset({"wav"}), frozenset({"pcm_s16le"}), wav, wav)
        assert other.takes_as_is("wav", "pcm_s16le")
        assert not other.takes_as_is("mp3", "mp3")
        assert format_policy(DASHSCOPE).takes_as_is("mp3", "mp3")

    def test_policies_cannot_be_changed_in_place(self) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            format_policy(DASHSCOPE).codecs = frozenset()  # type: ignore[misc]


class TestMimeTypes:
    @pytest.mark.parametrize(
        ("format_name", "mime"),
        [("mp3", "audio/mpeg"), (MP4, "audio/mp4"), ("wav", "audio/wav"), ("ogg", "audio/ogg"),
         ("flac", "audio/flac"), ("matroska,webm", "audio/webm"), ("asf", "audio/x-ms-wma"),
         ("amr", "audio/amr"), ("aiff", "audio/aiff"), ("avi", "video/x-msvideo")],
    )  # fmt: skip
    def test_audio_only(self, format_name: str, mime: str) -> None:
        assert mime_type(format_name, has_video=False) == mime

    def test_a_file_with_a_picture_is_sent_as_video(self) -> None:
        assert mime_type(MP4, has_video=True) == "video/mp4"
        assert mime_type("ogg", has_video=True) == "video/ogg"
        assert mime_type("matroska,webm", has_video=True) == "video/webm"

    def test_unknown_containers_are_octet_stream(self) -> None:
        assert mime_type("caf", has_video=False) == "application/octet-stream"
