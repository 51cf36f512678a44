"""Names: what is ignored, and how finished files and sidecars avoid every existing name."""

from dropscribe.core.naming import is_ignored, numbered, object_key, pick_free_name, split_name


class TestIgnore:
    def test_transfer_temporaries_and_os_litter_are_ignored(self) -> None:
        """Names writers use mid-transfer, and OS metadata, are never inputs."""
        for name in [
            ".talk.mp3.Xa91bc", "talk.mp3.part", "talk.mp3.filepart", "a.crdownload", "x.tmp",
            "~$doc.wav", ".syncthing.talk.mp3.tmp", "Thumbs.db", ".DS_Store", "._talk.mp3",
            "asr-rules.yaml", "context.txt", "talk.json",
        ]:  # fmt: skip
            assert is_ignored(name), name

    def test_recordings_are_not_ignored(self) -> None:
        """Ordinary recordings, whatever their extension or characters, are candidates."""
        for name in ["talk.mp3", "Meeting 2026-01-05.m4a", "-rf.wav", "noext", "会议.flac"]:
            assert not is_ignored(name), name

    def test_extra_patterns_from_config(self) -> None:
        """An inbox's own ignore patterns are honoured on top of the built-in ones."""
        assert is_ignored("scratch-1.wav", ["scratch-*"])
        assert not is_ignored("keep.wav", ["scratch-*"])


class TestFreeNames:
    def test_split_and_number(self) -> None:
        """Numbering goes before the last suffix only."""
        assert split_name("talk.final.mp3") == ("talk.final", ".mp3")
        assert split_name(".hidden") == (".hidden", "")
        assert numbered("talk.final.mp3", 3) == "talk.final (3).mp3"
        assert numbered("noext", 2) == "noext (2)"

    def test_taken_sidecar_forces_a_new_number(self) -> None:
        """A free source name is not enough: its sidecars must be free too."""
        taken = {"a.mp3", "a (2).txt"}
        assert pick_free_name("a.mp3", taken.__contains__) == "a (3).mp3"
        assert pick_free_name("a.wav", {"a.txt"}.__contains__) == "a (2).wav"
        assert pick_free_name("b.wav", taken.__contains__) == "b.wav"

    def test_object_keys_come_from_content_only(self) -> None:
        """Object keys hold the hash and a part name, never a user's file name."""
        key = object_key("ab" * 32, "chunk-0001", ".flac")
        assert key == f"ab/{'ab' * 32}/chunk-0001.flac"
