"""The format policy of each backend: what goes as it is, what is re-encoded, and to what."""

from __future__ import annotations

import dataclasses

import pytest

from dropscribe.core.formats import (
    DASHSCOPE,
    FILETRANS,
    OPENAI,
    SYNC,
    Encoding,
    FormatPolicy,
    format_policy,
    mime_type,
    policy_for,
)

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"


class TestDashScopeTakesAsIs:
    @pytest.mark.parametrize(
        ("format_name", "codec"),
        [("mp3", "mp3"), ("aac", "aac"), ("wav", "pcm_s16le"), ("ogg", "opus"), ("ogg", "vorbis"),
         ("flac", "flac"), ("matroska,webm", "opus"), ("asf", "wmav2"), ("amr", "amr_nb"),
         ("aiff", "pcm_s16be"), ("mpeg", "mp2")],
    )  # fmt: skip
    def test_common_recordings_go_as_they_are(self, format_name: str, codec: str) -> None:
        """MP3, AAC, WAV, Opus and friends need no re-encoding."""
        assert format_policy(DASHSCOPE).takes_as_is(format_name, codec)

    @pytest.mark.parametrize(
        ("format_name", "codec"),
        [("caf", "alac"), ("wav", "pcm_f64le"), ("wav", "adpcm_ms"), ("w64", "pcm_s16le"),
         (MP4, "alac"), ("ogg", "speex"), ("mpegts", "aac"), ("wav", None), (MP4, "aac"), ("mov", "aac")],
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


class TestSyncAndFileTranscriptionLists:
    """The sync models' list (2026) lost m4a and mp4; file transcription keeps them and mov, not aiff."""

    def test_m4a_goes_as_it_is_only_to_file_transcription(self) -> None:
        assert not format_policy(DASHSCOPE, SYNC).takes_as_is(MP4, "aac")
        assert format_policy(DASHSCOPE, FILETRANS).takes_as_is(MP4, "aac")

    def test_aiff_goes_as_it_is_only_to_the_sync_models(self) -> None:
        assert format_policy(DASHSCOPE, SYNC).takes_as_is("aiff", "pcm_s16be")
        assert not format_policy(DASHSCOPE, FILETRANS).takes_as_is("aiff", "pcm_s16be")

    @pytest.mark.parametrize(
        ("format_name", "codec"),
        [("aac", "aac"), ("amr", "amr_nb"), ("avi", "mp3"), ("flac", "flac"), ("flv", "aac"),
         ("matroska,webm", "opus"), ("mp3", "mp3"), ("mpeg", "mp2"), ("ogg", "opus"), ("wav", "pcm_s16le"),
         ("asf", "wmav2")],
    )  # fmt: skip
    def test_both_lists_share_the_rest(self, format_name: str, codec: str) -> None:
        for way in (SYNC, FILETRANS):
            assert format_policy(DASHSCOPE, way).takes_as_is(format_name, codec)

    def test_the_default_way_is_sync(self) -> None:
        assert format_policy(DASHSCOPE) is format_policy(DASHSCOPE, SYNC)
        assert format_policy(DASHSCOPE, FILETRANS).way == FILETRANS

    def test_a_policy_finds_its_backends_list_for_a_way(self) -> None:
        """A backend without a list of its own for a way keeps the one it has."""
        sync = format_policy(DASHSCOPE)
        assert policy_for(sync, FILETRANS) is format_policy(DASHSCOPE, FILETRANS)
        assert policy_for(format_policy(OPENAI), FILETRANS) is format_policy(OPENAI)
        with pytest.raises(ValueError, match="'openai'"):
            format_policy(OPENAI, FILETRANS)

    def test_both_ways_re_encode_to_16k_mono_flac(self) -> None:
        assert format_policy(DASHSCOPE, FILETRANS).transcode_to == format_policy(DASHSCOPE).transcode_to


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
