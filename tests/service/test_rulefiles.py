"""Rule files on a real folder tree: parsing, the cascade, hot re-reads, holds and support files."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TypeVar

import pytest

from dropscribe.config.model import InboxSettings
from dropscribe.core.errors import ConfigError
from dropscribe.core.ruleset import EffectiveRules, RuleSet
from dropscribe.service.rule_cache import RuleCache, RuleFileEvent, RulesHeld, error_file_for
from dropscribe.service.settings_files import find_rule_files, load_settings, parse_rule_file
from tests.support.blocking import finishes

RULES = "asr-rules.yaml"
T = TypeVar("T")


def write(path: Path, text: str) -> Path:
    """Write ``text`` and move the mtime forward, so a change is seen even on coarse-mtime filesystems."""
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    bumped = max(before, path.stat().st_mtime_ns) + 2_000_000_000
    os.utime(path, ns=(bumped, bumped))
    return path


def problems(path: Path, root: Path, **options: bool) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_rule_file(path, root, **options)
    return caught.value.messages


def effective(rules: EffectiveRules | RulesHeld) -> EffectiveRules:
    assert isinstance(rules, EffectiveRules), rules
    return rules


@pytest.fixture
def inbox(tmp_path: Path) -> InboxSettings:
    root = tmp_path / "inbox"
    root.mkdir()
    return InboxSettings(path=root, done=tmp_path / "done", failed=tmp_path / "failed")


class TestParseRuleFile:
    def test_keys_become_a_rule_set(self, tmp_path: Path) -> None:
        """Every rule key is read; keys left out stay unset."""
        path = write(tmp_path / RULES, "language: zh\nenable_itn: true\noutputs: [txt, vtt]\n")

        assert RuleSet(language="zh", enable_itn=True, outputs=("txt", "vtt")) == parse_rule_file(
            path, tmp_path
        )

    def test_empty_file_is_an_empty_rule_set(self, tmp_path: Path) -> None:
        """An empty rule file (or only comments) changes nothing."""
        path = write(tmp_path / RULES, "# nothing yet\n")

        assert RuleSet() == parse_rule_file(path, tmp_path)

    def test_every_problem_with_file_line_and_key(self, tmp_path: Path) -> None:
        """All mistakes come back together as file:line: key: message."""
        path = write(tmp_path / RULES, "language: klingon\nenable_itn: yes\nchunk_max_s: 5\nsettle_s: 3\n")

        expected = [
            f"{path}:1: language: must be auto or a language code",
            f"{path}:3: chunk_max_s: must be a number > 10 and ≤ 300, got 5",
            f"{path}:4: settle_s: unknown key (settle_s is set per inbox in the service config, not in a "
            "rule file)",
        ]
        actual = problems(path, tmp_path)
        assert expected[1:] == actual[1:]
        assert actual[0].startswith(expected[0])

    def test_not_a_mapping(self, tmp_path: Path) -> None:
        """A rule file is a mapping of rule keys."""
        path = write(tmp_path / RULES, "- language: en\n")

        messages = problems(path, tmp_path)

        assert len(messages) == 1
        assert messages[0].startswith(f"{path}:1: must be a mapping of rule keys (language, ")

    def test_alias_bomb_is_stopped(self, tmp_path: Path) -> None:
        """Rule files come from anyone with access to the share; exponential aliases are cut short."""
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, 9)]
        path = write(tmp_path / RULES, "\n".join(lines) + "\n")

        messages = problems(path, tmp_path)

        assert any("document too large or nested" in message for message in messages)

    def test_self_referencing_alias_is_an_error(self, tmp_path: Path) -> None:
        """A recursive alias does not send the reader into a loop."""
        path = write(tmp_path / RULES, "outputs: &loop [txt, *loop]\n")

        assert any("an alias refers to itself" in message for message in problems(path, tmp_path))

    def test_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        """A named pipe called asr-rules.yaml would block a plain read forever; it is refused at once."""
        path = tmp_path / RULES
        os.mkfifo(path)

        assert [f"{path}: is not a regular file (it is a FIFO (named pipe))"] == finishes(
            lambda: problems(path, tmp_path)
        )

    def test_sparse_giant_is_refused_by_its_size(self, tmp_path: Path) -> None:
        """A 3 GB rule file is refused by its size, without reading it."""
        path = tmp_path / RULES
        with open(path, "wb") as out:
            out.truncate(3 * 1024**3)

        assert [f"{path}: is too large (3,221,225,472 bytes; at most 262,144)"] == finishes(
            lambda: problems(path, tmp_path)
        )

    def test_link_is_refused_wherever_it_points(self, tmp_path: Path) -> None:
        """A rule file that is a link is not followed, not even to a file inside the inbox: an error
        note quoting a linked file would show its content to the share."""
        write(tmp_path / "real.yaml", "language: en\n")
        path = tmp_path / "sub" / RULES
        path.parent.mkdir()
        path.symlink_to(tmp_path / "real.yaml")

        assert [f"{path}: is a symbolic link (links are not followed)"] == problems(path, tmp_path)

    def test_filetrans_refused_when_storage_is_inline(self, tmp_path: Path) -> None:
        """The service's storage decides whether filetrans can work."""
        path = write(tmp_path / RULES, "\nlong_audio: filetrans\n")

        messages = problems(path, tmp_path, filetrans_available=False)

        assert len(messages) == 1
        assert messages[0].startswith(f"{path}:2: long_audio: filetrans needs storage.type s3 or dashscope")


class TestContextFile:
    def test_relative_to_the_rule_file(self, tmp_path: Path) -> None:
        """context_file is found from the rule file's folder, also one level up inside the inbox."""
        write(tmp_path / "glossary.txt", "陳大文, EBITDA\n")
        path = write(tmp_path / "sub" / RULES, "context_file: ../glossary.txt\n")

        rules = parse_rule_file(path, tmp_path)

        assert ("陳大文, EBITDA", tmp_path / "glossary.txt") == (rules.context, rules.context_file)

    def test_dotdot_out_of_the_inbox_is_refused(self, tmp_path: Path) -> None:
        """A context file may not be taken from outside the inbox."""
        root = tmp_path / "inbox"
        write(tmp_path / "secret.txt", "x")
        path = write(root / RULES, "context_file: ../secret.txt\n")

        expected = f"{path}:1: context_file: must stay inside the inbox ('../secret.txt' leads out of {root})"
        assert [expected] == problems(path, root)

    def test_absolute_path_is_refused(self, tmp_path: Path) -> None:
        """Server paths mean nothing to the people who write rule files; only relative ones are allowed."""
        write(tmp_path / "g.txt", "x")
        path = write(tmp_path / RULES, f"context_file: {tmp_path / 'g.txt'}\n")

        assert [f"{path}:1: context_file: must be a path relative to this rule file"] == problems(
            path, tmp_path
        )

    def test_symlink_pointing_out_is_refused(self, tmp_path: Path) -> None:
        """A link inside the inbox may not lead to a file outside it."""
        root = tmp_path / "inbox"
        write(tmp_path / "secret.txt", "x")
        root.mkdir()
        (root / "glossary.txt").symlink_to(tmp_path / "secret.txt")
        path = write(root / RULES, "context_file: glossary.txt\n")

        link = "is a symbolic link (links are not followed)"
        assert [f"{path}:1: context_file: {root}/glossary.txt {link}"] == problems(path, root)

    def test_any_link_on_the_way_is_refused(self, tmp_path: Path) -> None:
        """Links are not followed below the inbox at all, so none can be swapped in between a check and
        the read: not as the file, not as a folder on the way, not even pointing inside."""
        write(tmp_path / "terms" / "glossary.txt", "Qwen\n")
        (tmp_path / "inside.txt").symlink_to(tmp_path / "terms" / "glossary.txt")
        (tmp_path / "linked").symlink_to(tmp_path / "terms")
        link = "is a symbolic link (links are not followed)"
        cases = {
            "inside.txt": f"{tmp_path}/inside.txt {link}",
            "linked/glossary.txt": f"{tmp_path}/linked {link}",
        }
        for name, message in cases.items():
            path = write(tmp_path / RULES, f"context_file: {name}\n")
            assert [f"{path}:1: context_file: {message}"] == problems(path, tmp_path)

    def test_fifo_folder_and_sparse_giant_are_refused_unread(self, tmp_path: Path) -> None:
        """Only a regular file is read, and only when its size fits: judged on the open descriptor."""
        os.mkfifo(tmp_path / "pipe.txt")
        (tmp_path / "folder.txt").mkdir()
        with open(tmp_path / "giant.txt", "wb") as out:
            out.truncate(3 * 1024**3)
        cases = {
            "pipe.txt": "is not a regular file (it is a FIFO (named pipe))",
            "folder.txt": "is not a regular file (it is a folder)",
            "giant.txt": "is too large (3,221,225,472 bytes; at most 1,048,576)",
        }
        for name, message in cases.items():
            path = write(tmp_path / RULES, f"context_file: {name}\n")
            assert [f"{path}:1: context_file: {tmp_path}/{name} {message}"] == finishes(
                partial(problems, path, tmp_path)
            )

    def test_service_config_context_file_may_be_a_link_but_must_be_a_file(self, tmp_path: Path) -> None:
        """The admin's own context file (in the service config) may live anywhere and be a link, but a
        FIFO there is refused as well, without blocking."""
        write(tmp_path / "etc" / "terms.txt", "Qwen, DashScope\n")
        (tmp_path / "terms-link.txt").symlink_to(tmp_path / "etc" / "terms.txt")
        os.mkfifo(tmp_path / "pipe.txt")
        config = tmp_path / "config.yaml"

        config.write_text("defaults: {context_file: terms-link.txt}\ninboxes: [{path: in}]\n")
        assert load_settings(config, {}).defaults.context == "Qwen, DashScope"

        config.write_text("defaults: {context_file: pipe.txt}\ninboxes: [{path: in}]\n")
        with pytest.raises(ConfigError) as caught:
            finishes(lambda: load_settings(config, {}))
        expected = f"{tmp_path}/pipe.txt is not a regular file (it is a FIFO (named pipe))"
        assert [f"{config}:1: defaults.context_file: {expected}"] == caught.value.messages

    def test_missing_binary_and_oversized_files_are_refused(self, tmp_path: Path) -> None:
        """The context file must exist, be UTF-8 text, and stay under the token limit."""
        (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
        write(tmp_path / "long.txt", "word " * 10_001)
        cases = {
            "missing.txt": f"{tmp_path}/missing.txt does not exist",
            "binary.txt": f"{tmp_path}/binary.txt is not UTF-8 text",
            "long.txt": f"{tmp_path}/long.txt is about 10,001 tokens long; the API takes at most 10,000",
        }
        for name, message in cases.items():
            path = write(tmp_path / RULES, f"context_file: {name}\n")
            assert [f"{path}:1: context_file: {message}"] == problems(path, tmp_path)


class TestCascade:
    def test_inbox_sub_subsub_key_by_key(self, inbox: InboxSettings) -> None:
        """Each folder level overrides only the keys it sets."""
        root = inbox.path
        write(root / RULES, "language: zh\nenable_itn: true\noutputs: [txt]\n")
        write(root / "sub" / RULES, "language: en\noutputs: [txt, srt]\n")
        write(root / "sub/subsub" / RULES, "enable_itn: false\n")
        cache = RuleCache(inbox, RuleSet(chunk_max_s=100.0), default_model="qwen3-asr-flash-us")

        top = effective(cache.rules_for(PurePosixPath(".")))
        sub = effective(cache.rules_for(PurePosixPath("sub")))
        deep = effective(cache.rules_for(PurePosixPath("sub/subsub/deeper")))

        expected_top = ("zh", True, ("txt",), 100.0, "qwen3-asr-flash-us")
        assert expected_top == (top.language, top.enable_itn, top.outputs, top.chunk_max_s, top.model)
        assert (sub.language, sub.enable_itn, sub.outputs) == ("en", True, ("txt", "srt"))
        assert (deep.language, deep.enable_itn, deep.outputs) == ("en", False, ("txt", "srt"))

    def test_inbox_rules_sit_between_defaults_and_rule_files(self, inbox: InboxSettings) -> None:
        """Order: global defaults, then the inbox's keys, then rule files."""
        with_rules = InboxSettings(
            path=inbox.path,
            done=inbox.done,
            failed=inbox.failed,
            rules=RuleSet(language="ja", enable_itn=True),
        )
        write(inbox.path / RULES, "enable_itn: false\n")
        cache = RuleCache(with_rules, RuleSet(language="zh", chunk_max_s=90.0))

        rules = effective(cache.rules_for(Path(".")))

        assert (rules.language, rules.enable_itn, rules.chunk_max_s) == ("ja", False, 90.0)

    def test_disabled_folder(self, inbox: InboxSettings) -> None:
        """enabled: false reaches the caller as rules with enabled False."""
        write(inbox.path / "private" / RULES, "enabled: false\n")
        cache = RuleCache(inbox, RuleSet())

        assert effective(cache.rules_for(PurePosixPath("private/2024"))).enabled is False
        assert effective(cache.rules_for(PurePosixPath("public"))).enabled is True

    def test_absolute_folder_inside_the_inbox_is_accepted(self, inbox: InboxSettings) -> None:
        """An absolute path inside the inbox is taken relative to it."""
        write(inbox.path / "a" / RULES, "language: fr\n")
        cache = RuleCache(inbox, RuleSet())

        assert effective(cache.rules_for(inbox.path / "a")).language == "fr"

    def test_path_leaving_the_inbox_is_a_programming_error(self, inbox: InboxSettings) -> None:
        """.. and foreign absolute paths are refused."""
        cache = RuleCache(inbox, RuleSet())

        with pytest.raises(ValueError, match="leaves the inbox"):
            cache.rules_for(PurePosixPath("a/../../b"))
        with pytest.raises(ValueError, match="is not inside"):
            cache.rules_for(Path("/elsewhere"))

    def test_for_inbox_uses_the_service_model_and_storage(self, tmp_path: Path) -> None:
        """for_inbox takes the default model and filetrans availability from the settings."""
        config = tmp_path / "config.yaml"
        config.write_text(
            "dashscope: {model: qwen3-asr-flash-us}\ninboxes: [{path: in}, {path: other}]\n", encoding="utf-8"
        )
        settings = load_settings(config, {})
        write(tmp_path / "in" / RULES, "long_audio: filetrans\n")

        held = RuleCache.for_inbox(settings, settings.inboxes[0]).rules_for(PurePosixPath("."))
        other = RuleCache.for_inbox(settings, settings.inboxes[1]).rules_for(PurePosixPath("."))

        assert isinstance(held, RulesHeld)  # storage is inline: filetrans cannot work
        assert effective(other).model == "qwen3-asr-flash-us"


class TestHotReload:
    def test_changed_rule_file_is_read_again(self, inbox: InboxSettings) -> None:
        """Editing a rule file changes the rules on the next call, without a restart."""
        rule_file = write(inbox.path / RULES, "language: en\n")
        cache = RuleCache(inbox, RuleSet())
        assert effective(cache.rules_for(PurePosixPath("."))).language == "en"

        write(rule_file, "language: de\n")

        assert effective(cache.rules_for(PurePosixPath("."))).language == "de"

    def test_unchanged_rule_file_is_not_read_again(self, inbox: InboxSettings) -> None:
        """Asking again without a change costs a stat, not a parse."""
        write(inbox.path / RULES, "language: en\n")
        events: list[RuleFileEvent] = []
        cache = RuleCache(inbox, RuleSet(), on_change=events.append)

        for _ in range(5):
            cache.rules_for(PurePosixPath("."))

        assert [RuleFileEvent(inbox.path / RULES, "loaded")] == events

    def test_changed_context_file_is_read_again(self, inbox: InboxSettings) -> None:
        """Editing only the context file also refreshes the rules."""
        glossary = write(inbox.path / "glossary.txt", "first\n")
        write(inbox.path / RULES, "context_file: glossary.txt\n")
        cache = RuleCache(inbox, RuleSet())
        assert effective(cache.rules_for(PurePosixPath("."))).context == "first"

        write(glossary, "second\n")

        assert effective(cache.rules_for(PurePosixPath("."))).context == "second"

    def test_new_and_removed_rule_files(self, inbox: InboxSettings) -> None:
        """A rule file that appears applies at once; one that goes stops applying."""
        cache = RuleCache(inbox, RuleSet())
        assert effective(cache.rules_for(PurePosixPath("a"))).language is None

        rule_file = write(inbox.path / "a" / RULES, "language: ko\n")
        assert effective(cache.rules_for(PurePosixPath("a"))).language == "ko"

        rule_file.unlink()
        assert effective(cache.rules_for(PurePosixPath("a"))).language is None


class TestInvalidRuleFile:
    def test_holds_the_folder_writes_the_error_file_and_resumes_when_fixed(
        self, inbox: InboxSettings
    ) -> None:
        """A broken rule file holds its folder and those below, says why beside it, and fixing it resumes."""
        rule_file = write(inbox.path / "sub" / RULES, "language: en\noutputs: [pdf]\n")
        error_file = error_file_for(rule_file)
        cache = RuleCache(inbox, RuleSet())

        held = cache.rules_for(PurePosixPath("sub"))
        held_below = cache.rules_for(PurePosixPath("sub/deeper"))
        elsewhere = cache.rules_for(PurePosixPath("other"))

        expected_messages = [f"{rule_file}:2: outputs: 'pdf' is not one of txt, json, srt, vtt"]
        assert RulesHeld(rule_file, expected_messages) == held
        assert RulesHeld(rule_file, expected_messages) == held_below
        assert isinstance(elsewhere, EffectiveRules)
        note = error_file.read_text(encoding="utf-8")
        assert expected_messages[0] in note
        assert "held" in note
        assert [held] == cache.held()

        write(rule_file, "language: en\noutputs: [txt, srt]\n")

        assert effective(cache.rules_for(PurePosixPath("sub/deeper"))).outputs == ("txt", "srt")
        assert not error_file.exists()
        assert cache.held() == []

    def test_error_file_is_written_once_per_change(self, inbox: InboxSettings) -> None:
        """Asking again about a still-broken file neither re-reads it nor rewrites the note."""
        rule_file = write(inbox.path / RULES, "language: [en]\n")
        events: list[RuleFileEvent] = []
        cache = RuleCache(inbox, RuleSet(), on_change=events.append)
        cache.rules_for(PurePosixPath("."))
        note = error_file_for(rule_file)
        first = note.stat()

        cache.rules_for(PurePosixPath("."))
        cache.rules_for(PurePosixPath("x"))

        assert [event.status for event in events] == ["invalid"]
        assert (first.st_ino, first.st_mtime_ns) == (note.stat().st_ino, note.stat().st_mtime_ns)

    def test_error_file_goes_when_the_rule_file_goes(self, inbox: InboxSettings) -> None:
        """Deleting a broken rule file releases the folder and removes the note."""
        rule_file = write(inbox.path / RULES, "enabled: sometimes\n")
        events: list[RuleFileEvent] = []
        cache = RuleCache(inbox, RuleSet(), on_change=events.append)
        assert isinstance(cache.rules_for(PurePosixPath(".")), RulesHeld)

        rule_file.unlink()

        assert effective(cache.rules_for(PurePosixPath("."))).enabled is True
        assert not error_file_for(rule_file).exists()
        assert [event.status for event in events] == ["invalid", "removed"]

    def test_stale_error_file_is_removed_on_first_sight(self, inbox: InboxSettings) -> None:
        """A note left from before a restart, with no rule file any more, does not linger."""
        stale = write(error_file_for(inbox.path / RULES), "old news\n")

        RuleCache(inbox, RuleSet()).rules_for(PurePosixPath("."))

        assert not stale.exists()

    def test_missing_context_file_holds_until_it_appears(self, inbox: InboxSettings) -> None:
        """A rule file naming a context file that is not there yet waits for it."""
        write(inbox.path / RULES, "context_file: terms.txt\n")
        cache = RuleCache(inbox, RuleSet())
        assert isinstance(cache.rules_for(PurePosixPath(".")), RulesHeld)

        write(inbox.path / "terms.txt", "Qwen\n")

        assert effective(cache.rules_for(PurePosixPath("."))).context == "Qwen"

    def test_context_file_flipped_to_a_link_and_back(self, inbox: InboxSettings, tmp_path: Path) -> None:
        """A context file swapped for a link holds the folder (the secret is never the context); swapped
        back to a file, the folder resumes with the file's text."""
        write(tmp_path / "secret.txt", "TOP SECRET\n")
        ctx = write(inbox.path / "ctx.txt", "harmless\n")
        write(inbox.path / RULES, "context_file: ctx.txt\n")
        cache = RuleCache(inbox, RuleSet())
        assert effective(cache.rules_for(PurePosixPath("."))).context == "harmless"

        (inbox.path / ".link").symlink_to(tmp_path / "secret.txt")
        os.replace(inbox.path / ".link", ctx)
        held = cache.rules_for(PurePosixPath("."))

        assert isinstance(held, RulesHeld)
        assert held.messages == [
            f"{inbox.path / RULES}:1: context_file: {ctx} is a symbolic link (links are not followed)"
        ]
        write(inbox.path / ".regular", "harmless again\n")
        os.replace(inbox.path / ".regular", ctx)
        assert effective(cache.rules_for(PurePosixPath("."))).context == "harmless again"


class TestSupportFiles:
    def test_rule_files_notes_and_context_files_are_support_files(self, inbox: InboxSettings) -> None:
        """Rule files, their error notes and the context files they name are never recordings."""
        root = inbox.path
        write(root / "shared-terms", "Qwen\n")
        write(root / "sub" / RULES, "context_file: ../shared-terms\n")
        cache = RuleCache(inbox, RuleSet())
        cache.rules_for(PurePosixPath("sub"))

        assert cache.is_support_file(root / "deep/down" / RULES)
        assert cache.is_support_file(PurePosixPath("sub/asr-rules.yaml.error.txt"))
        assert cache.is_support_file(root / "shared-terms")
        assert cache.is_support_file(PurePosixPath("shared-terms"))
        assert not cache.is_support_file(root / "sub/meeting.m4a")

    def test_context_file_is_known_before_its_folder_was_asked_about(self, inbox: InboxSettings) -> None:
        """A scan that meets the context file first still recognises it."""
        write(inbox.path / "a" / "terms", "Qwen\n")
        write(inbox.path / "a" / RULES, "context_file: terms\n")
        cache = RuleCache(inbox, RuleSet())

        assert cache.is_support_file(inbox.path / "a" / "terms")

    def test_context_file_named_by_a_broken_rule_file_is_still_support(self, inbox: InboxSettings) -> None:
        """Even while its rule file is invalid, a named context file is not taken as a recording."""
        write(inbox.path / "terms", "Qwen\n")
        write(inbox.path / RULES, "context_file: terms\nlanguage: xx\n")
        cache = RuleCache(inbox, RuleSet())

        assert isinstance(cache.rules_for(PurePosixPath(".")), RulesHeld)
        assert cache.is_support_file(PurePosixPath("terms"))

    def test_config_context_files_are_support_files(self, inbox: InboxSettings) -> None:
        """A context file named in the service config, inside the inbox, is support too."""
        terms = inbox.path / "terms.txt"
        cache = RuleCache(inbox, RuleSet(context="x", context_file=terms))

        assert cache.is_support_file(terms)


class TestFindRuleFiles:
    def test_recursive_inbox_skips_hidden_folders(self, inbox: InboxSettings) -> None:
        """check finds the rule files the service would read, and no others."""
        for folder in ("", "a", "a/b", ".hidden", "@eaDir"):
            write(inbox.path / folder / RULES, "")

        expected = [inbox.path / RULES, inbox.path / "a" / RULES, inbox.path / "a/b" / RULES]
        assert expected == list(find_rule_files(inbox))

    def test_flat_inbox_has_only_its_root_rule_file(self, inbox: InboxSettings) -> None:
        """A non-recursive inbox reads only its own rule file."""
        write(inbox.path / RULES, "")
        write(inbox.path / "a" / RULES, "")
        flat = InboxSettings(path=inbox.path, done=inbox.done, failed=inbox.failed, recursive=False)

        assert [inbox.path / RULES] == list(find_rule_files(flat))
