"""Loading and checking the service config: every problem at once, with its line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

from dropscribe.config.kinds import ContextReader, FileBytes, InvalidValueError
from dropscribe.config.model import (
    DashScopeSettings,
    InboxSettings,
    LoggingSettings,
    MetricsSettings,
    NotifySettings,
    OpenAIBackendSettings,
    Settings,
    StateSettings,
    StorageSettings,
    WebSettings,
)
from dropscribe.config.rulefiles import parse_rule_file_bytes
from dropscribe.config.schema import RULE_KEYS, SECTIONS, render_reference, section
from dropscribe.config.validate import build_settings
from dropscribe.config.yamlsrc import Problems, parse_yaml
from dropscribe.core.errors import ConfigError
from dropscribe.core.ruleset import BUILTIN_RULES, RuleSet
from dropscribe.service.settings_files import (
    check_config,
    load_settings,
    parse_rule_file,
    resolve_api_key,
)

REPO = Path(__file__).resolve().parents[2]


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env or {})
    return caught.value.messages


def minimal(tmp_path: Path, extra: str = "") -> Path:
    """A config with one inbox and ``extra`` appended as written (indent it to add inbox keys)."""
    path = tmp_path / "config.yaml"
    path.write_text("inboxes:\n  - path: inbox\n" + extra, encoding="utf-8")
    return path


class TestAllProblemsAtOnce:
    def test_four_mistakes_give_four_messages_with_their_lines(self, tmp_path: Path) -> None:
        """Each mistake is reported with the line to fix, in file order, in one go."""
        path = write(
            tmp_path,
            """
            dashscope:
              concurrency: 0
            inboxes:
              - path: inbox
                settle_s: abc
                outputs: [txt, pdf]
            logging:
              level: loud
            """,
        )

        expected = [
            f"{path}:2: dashscope.concurrency: must be a whole number ≥ 1, got 0",
            f"{path}:5: inboxes[0].settle_s: must be a number ≥ 0, got 'abc'",
            f"{path}:6: inboxes[0].outputs: 'pdf' is not one of txt, json, srt, vtt",
            f"{path}:8: logging.level: must be one of debug, info, warning, error, got 'loud'",
        ]
        assert expected == problems_of(path)

    def test_yaml_syntax_error_names_its_line(self, tmp_path: Path) -> None:
        """A file that does not parse says where."""
        path = write(tmp_path, "inboxes:\n  - path: [unclosed\nlogging: {}\n")

        messages = problems_of(path)

        assert len(messages) == 1
        assert messages[0].startswith(f"{path}:3: YAML syntax error")

    def test_empty_file_is_an_error(self, tmp_path: Path) -> None:
        """An empty config names what it lacks."""
        path = write(tmp_path, "# nothing yet\n")

        assert [f"{path}: the file is empty: it needs at least an inboxes list"] == problems_of(path)

    def test_missing_file_is_an_error(self, tmp_path: Path) -> None:
        """A config that is not there is a ConfigError, not a traceback."""
        path = tmp_path / "absent.yaml"

        assert [f"{path}: cannot read: No such file or directory"] == problems_of(path)

    def test_empty_section_is_an_empty_mapping(self, tmp_path: Path) -> None:
        """`metrics:` with nothing under it is fine; an inbox entry with nothing still needs its path."""
        path = write(tmp_path, "inboxes:\n  - path: in\n  -\nmetrics:\n")

        assert [f"{path}:3: inboxes[1].path: required (the watched folder)"] == problems_of(path)

    def test_duplicate_keys_are_errors(self, tmp_path: Path) -> None:
        """YAML would silently keep the last of two equal keys; the loader says so instead."""
        path = minimal(tmp_path, "logging:\n  level: info\n  level: debug\n")

        assert [f"{path}:5: logging.level: duplicate key (first on line 4)"] == problems_of(path)


class TestUnknownKeys:
    @pytest.mark.parametrize(
        ("text", "line", "where"),
        [
            ("inboxes:\n  - path: in\nbogus: 1\n", 3, "bogus"),
            ("inboxes:\n  - path: in\nstorage:\n  bogus: 1\n", 4, "storage.bogus"),
            ("inboxes:\n  - path: in\n    bogus: 1\n", 3, "inboxes[0].bogus"),
            ("inboxes:\n  - path: in\ndefaults:\n  bogus: 1\n", 4, "defaults.bogus"),
            ("inboxes:\n  - path: in\nmetrics:\n  bogus: 1\n", 4, "metrics.bogus"),
            ("inboxes:\n  - path: in\nstate:\n  bogus: 1\n", 4, "state.bogus"),
            ("inboxes:\n  - path: in\nlogging:\n  bogus: 1\n", 4, "logging.bogus"),
            ("inboxes:\n  - path: in\ndashscope:\n  bogus: 1\n", 4, "dashscope.bogus"),
        ],
    )
    def test_unknown_key_at_every_level(self, tmp_path: Path, text: str, line: int, where: str) -> None:
        """An unknown key is an error wherever it appears."""
        path = write(tmp_path, text)

        assert [f"{path}:{line}: {where}: unknown key"] == problems_of(path)

    def test_api_key_in_yaml_is_refused_with_a_hint_and_without_the_key(self, tmp_path: Path) -> None:
        """The key never lives in YAML; the message says where it goes and never repeats it."""
        path = minimal(tmp_path, "dashscope:\n  api_key: sk-very-secret\n")

        expected = [
            f"{path}:4: dashscope.api_key: unknown key (the API key never lives in the YAML file: "
            "use api_key_env or api_key_file)"
        ]
        assert expected == problems_of(path)

    def test_near_miss_suggests_the_key(self, tmp_path: Path) -> None:
        """A typo gets a suggestion."""
        path = write(tmp_path, "inboxes:\n  - path: in\n    setle_s: 3\n")

        assert [f"{path}:3: inboxes[0].setle_s: unknown key (did you mean settle_s?)"] == problems_of(path)

    def test_inbox_key_in_defaults_says_where_it_belongs(self, tmp_path: Path) -> None:
        """defaults holds rule keys only."""
        path = minimal(tmp_path, "defaults:\n  settle_s: 3\n")

        expected = [
            f"{path}:4: defaults.settle_s: unknown key (settle_s is set per inbox (under inboxes), "
            "not in defaults)"
        ]
        assert expected == problems_of(path)


class TestValues:
    def test_defaults_applied(self, tmp_path: Path) -> None:
        """Keys left out take the dataclass defaults; done/failed sit beside the inbox."""
        path = minimal(tmp_path)

        settings = load_settings(path, {})

        assert DashScopeSettings() == settings.dashscope
        assert StorageSettings() == settings.storage
        assert StateSettings() == settings.state
        assert LoggingSettings() == settings.logging
        assert MetricsSettings() == settings.metrics
        assert RuleSet() == settings.defaults
        expected = InboxSettings(path=tmp_path / "inbox", done=tmp_path / "done", failed=tmp_path / "failed")
        assert (expected,) == settings.inboxes
        assert path.resolve() == settings.source

    def test_relative_paths_resolve_against_the_config_folder(self, tmp_path: Path) -> None:
        """Relative paths start at the config file's folder, not the working directory."""
        (tmp_path / "etc").mkdir()
        path = write(
            tmp_path / "etc",
            """
            state: {path: ../var/state.db}
            inboxes:
              - path: ../share/in
                done: ../share/out/./done
                failed: /abs/failed
            """,
        )

        settings = load_settings(path, {})

        inbox = settings.inboxes[0]
        assert tmp_path / "var/state.db" == settings.state.path
        assert tmp_path / "share/in" == inbox.path
        assert tmp_path / "share/out/done" == inbox.done
        assert Path("/abs/failed") == inbox.failed

    def test_rule_keys_of_an_inbox_go_into_its_rules(self, tmp_path: Path) -> None:
        """Rule keys written under an inbox land in InboxSettings.rules, others stay unset."""
        path = minimal(tmp_path, "    language: en\n    outputs: [srt, txt, srt]\n    chunk_max_s: 60\n")

        rules = load_settings(path, {}).inboxes[0].rules

        assert RuleSet(language="en", outputs=("srt", "txt"), chunk_max_s=60.0) == rules

    def test_norwegian_is_not_false(self, tmp_path: Path) -> None:
        """`language: no` means Norwegian, although YAML 1.1 reads a bare no as false."""
        path = minimal(tmp_path, "defaults:\n  language: no\n")

        assert load_settings(path, {}).defaults.language == "no"

    def test_context_file_text_is_read_into_context(self, tmp_path: Path) -> None:
        """A config-level context_file is read at load time; its path is kept for support-file checks."""
        (tmp_path / "glossary.txt").write_text("Qwen, DashScope\n", encoding="utf-8")
        path = minimal(tmp_path, "defaults:\n  context_file: glossary.txt\n")

        defaults = load_settings(path, {}).defaults

        assert ("Qwen, DashScope", tmp_path / "glossary.txt") == (defaults.context, defaults.context_file)

    def test_context_and_context_file_together_are_an_error(self, tmp_path: Path) -> None:
        """Only one source of context per level."""
        (tmp_path / "glossary.txt").write_text("x", encoding="utf-8")
        path = minimal(tmp_path, "defaults:\n  context: a\n  context_file: glossary.txt\n")

        assert [f"{path}:5: defaults.context_file: set context or context_file, not both"] == problems_of(
            path
        )

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("chunk_max_s: 10", "must be a number > 10 and ≤ 300, got 10"),
            ("chunk_max_s: 301", "must be a number > 10 and ≤ 300, got 301"),
            ("outputs: []", "must be a non-empty list of txt, json, srt, vtt, got a list"),
            ("model: qwen3-asr", "must be a known model ("),
            ("language: xx", "must be auto or a language code (zh, yue,"),
            ("enabled: maybe", "must be true or false, got 'maybe'"),
            ("long_audio: stream", "must be one of split, filetrans, got 'stream'"),
            ("context: " + "word " * 10_001, "is about 10,001 tokens long; the API takes at most 10,000"),
        ],
    )
    def test_rule_values_are_checked(self, tmp_path: Path, line: str, message: str) -> None:
        """Rule keys are checked against the same table as everywhere else."""
        path = minimal(tmp_path, "defaults:\n  " + line + "\n")

        messages = problems_of(path)

        assert len(messages) == 1
        key = line.split(":")[0]
        assert messages[0].startswith(f"{path}:4: defaults.{key}: {message}")

    @pytest.mark.parametrize(
        "model",
        [
            "qwen3-asr-flash",
            "qwen3-asr-flash-2025-09-08",
            "qwen3-asr-flash-2026-02-10",
            "qwen3-asr-flash-us",
            "qwen3-asr-flash-2025-09-08-us",
            "qwen-audio-asr",
            "qwen-audio-asr-latest",
        ],
    )
    def test_known_models_are_accepted(self, tmp_path: Path, model: str) -> None:
        """Dated snapshots and the -us variants are known models."""
        path = minimal(tmp_path, f"dashscope:\n  model: {model}\n")

        assert model == load_settings(path, {}).dashscope.model

    def test_yaml_merge_keys_work(self, tmp_path: Path) -> None:
        """Anchors and merges share settings between inboxes; explicit keys override merged ones."""
        path = write(
            tmp_path,
            """
            inboxes:
              - &share {path: a, settle_s: 30, language: zh}
              - {<<: *share, path: b, language: en}
            """,
        )

        first, second = load_settings(path, {}).inboxes

        assert (first.settle_s, first.rules.language) == (30.0, "zh")
        assert (tmp_path / "b", 30.0, "en") == (second.path, second.settle_s, second.rules.language)


class TestCrossChecks:
    def test_nested_inboxes_are_refused(self, tmp_path: Path) -> None:
        """One inbox inside another would see the same files twice."""
        path = write(
            tmp_path,
            """
            inboxes:
              - {path: in, done: out/done, failed: out/failed}
              - {path: in/sub, done: out/done2, failed: out/failed2}
            """,
        )

        expected = [
            f"{path}:3: inboxes[1].path: {tmp_path}/in/sub overlaps inboxes[0] ({tmp_path}/in): "
            "one inbox may not contain another"
        ]
        assert expected == problems_of(path)

    def test_done_inside_an_inbox_is_refused(self, tmp_path: Path) -> None:
        """done/ inside an inbox would feed finished files back in."""
        path = write(tmp_path, "inboxes:\n  - path: in\n    done: in/done\n")

        messages = problems_of(path)

        assert [f"{path}:3: inboxes[0].done: done folder {tmp_path}/in/done overlaps inboxes[0]"] == [
            message.split(" (")[0] for message in messages
        ]

    def test_default_failed_inside_another_inbox_names_the_default(self, tmp_path: Path) -> None:
        """A defaulted folder that lands in another inbox is reported at the inbox's path."""
        path = write(
            tmp_path,
            """
            inboxes:
              - {path: share/in, done: share/done, failed: share/failed}
              - {path: share/in2/x, done: share/in/d, failed: elsewhere}
            """,
        )

        messages = problems_of(path)

        assert len(messages) == 1
        assert messages[0].startswith(
            f"{path}:3: inboxes[1].done: done folder {tmp_path}/share/in/d overlaps"
        )

    def test_inbox_behind_a_symlink_is_still_an_overlap(self, tmp_path: Path) -> None:
        """Links are followed when looking for overlaps."""
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "real")
        path = write(
            tmp_path,
            """
            inboxes:
              - {path: real, done: d1, failed: f1}
              - {path: link, done: d2, failed: f2}
            """,
        )

        assert len(problems_of(path)) == 1

    def test_s3_needs_a_bucket(self, tmp_path: Path) -> None:
        """An S3 store without a bucket cannot work."""
        path = minimal(tmp_path, "storage:\n  type: s3\n")

        assert [f"{path}:4: storage.bucket: required when storage.type is s3"] == problems_of(path)

    @pytest.mark.parametrize(
        ("extra", "line", "where"),
        [
            ("defaults:\n  long_audio: filetrans\n", 4, "defaults.long_audio"),
            ("    long_audio: filetrans\n", 3, "inboxes[0].long_audio"),
            ("dashscope:\n  model: qwen3-asr-flash-filetrans\n", 4, "dashscope.model"),
        ],
    )
    def test_filetrans_needs_fetchable_storage(
        self, tmp_path: Path, extra: str, line: int, where: str
    ) -> None:
        """Inline data cannot reach the file-transcription API, which fetches a URL."""
        path = minimal(tmp_path, extra)

        messages = problems_of(path)

        assert len(messages) == 1
        assert messages[0].startswith(f"{path}:{line}: {where}: ")
        assert "needs storage.type s3 or dashscope" in messages[0]

    def test_filetrans_with_s3_is_fine(self, tmp_path: Path) -> None:
        """With an object store, filetrans is allowed."""
        path = minimal(tmp_path, "storage: {type: s3, bucket: b}\ndefaults: {long_audio: filetrans}\n")

        assert load_settings(path, {}).defaults.long_audio == "filetrans"

    def test_journal_inside_an_inbox_is_refused(self, tmp_path: Path) -> None:
        """The journal and its staging folder belong on local disk, not in a watched folder."""
        path = minimal(tmp_path, "state:\n  path: inbox/.state/state.db\n")

        messages = problems_of(path)

        assert len(messages) == 1
        assert messages[0].startswith(f"{path}:4: state.path: ")

    def test_retry_max_below_base_is_refused(self, tmp_path: Path) -> None:
        """The backoff cap cannot be smaller than its first step."""
        path = minimal(tmp_path, "dashscope:\n  retry_base_s: 10\n  retry_max_s: 5\n")

        assert [f"{path}:5: dashscope.retry_max_s: must be ≥ retry_base_s (10)"] == problems_of(path)

    def test_no_inboxes_is_an_error(self, tmp_path: Path) -> None:
        """A service without inboxes has nothing to do."""
        path = write(tmp_path, "inboxes: []\n")

        assert [f"{path}:1: inboxes: must be a non-empty list of inboxes, got a list"] == problems_of(path)

    def test_inbox_without_path_is_an_error(self, tmp_path: Path) -> None:
        """path is the one required inbox key."""
        path = write(tmp_path, "inboxes:\n  - settle_s: 3\n")

        assert [f"{path}:2: inboxes[0].path: required (the watched folder)"] == problems_of(path)


class TestApiKey:
    def test_from_the_environment(self) -> None:
        """The environment variable named by api_key_env gives the key."""
        settings = DashScopeSettings(api_key_env="MY_KEY")

        assert resolve_api_key(settings, {"MY_KEY": " sk-1\n"}) == "sk-1"

    def test_from_a_file(self, tmp_path: Path) -> None:
        """Without the variable, api_key_file gives the key, trimmed."""
        (tmp_path / "key").write_text("sk-2\n", encoding="utf-8")
        settings = DashScopeSettings(api_key_file=tmp_path / "key")

        assert resolve_api_key(settings, {}) == "sk-2"

    def test_environment_wins_over_the_file(self, tmp_path: Path) -> None:
        """The variable overrides a deployed file for one run."""
        (tmp_path / "key").write_text("sk-file", encoding="utf-8")
        settings = DashScopeSettings(api_key_file=tmp_path / "key")

        assert resolve_api_key(settings, {"DASHSCOPE_API_KEY": "sk-env"}) == "sk-env"

    def test_bare_name_is_looked_up_in_credentials_directory(self, tmp_path: Path) -> None:
        """Under systemd LoadCredential=, a bare api_key_file name is found in $CREDENTIALS_DIRECTORY."""
        credentials = tmp_path / "run-credentials"
        credentials.mkdir()
        (credentials / "dashscope").write_text("sk-3", encoding="utf-8")
        env = {"CREDENTIALS_DIRECTORY": str(credentials)}
        path = minimal(tmp_path, "dashscope:\n  api_key_file: dashscope\n")

        settings = load_settings(path, env)

        assert credentials / "dashscope" == settings.dashscope.api_key_file
        assert resolve_api_key(settings.dashscope, env) == "sk-3"

    def test_bare_name_without_credentials_directory_is_beside_the_config(self, tmp_path: Path) -> None:
        """From a shell, the same bare name is relative to the config file."""
        path = minimal(tmp_path, "dashscope:\n  api_key_file: dashscope\n")

        assert tmp_path / "dashscope" == load_settings(path, {}).dashscope.api_key_file

    def test_missing_key_says_how_to_set_it(self) -> None:
        """No variable and no file: the message names both ways."""
        with pytest.raises(ConfigError) as caught:
            resolve_api_key(DashScopeSettings(), {})

        assert caught.value.messages == ["no API key: set DASHSCOPE_API_KEY or dashscope.api_key_file"]

    def test_unreadable_or_empty_file_is_an_error(self, tmp_path: Path) -> None:
        """A named file that is missing or empty is reported, with its path."""
        (tmp_path / "empty").write_text("\n", encoding="utf-8")
        for name in ("missing", "empty"):
            with pytest.raises(ConfigError) as caught:
                resolve_api_key(DashScopeSettings(api_key_file=tmp_path / name), {})
            assert str(tmp_path / name) in caught.value.messages[0]

    def test_key_is_never_in_a_message(self, tmp_path: Path) -> None:
        """A malformed key is refused without being shown."""
        (tmp_path / "key").write_text("sk-abc def\n", encoding="utf-8")

        with pytest.raises(ConfigError) as caught:
            resolve_api_key(DashScopeSettings(api_key_file=tmp_path / "key"), {})

        assert "sk-abc" not in str(caught.value)


class TestCheckConfig:
    def test_missing_inbox_is_an_error_for_check_only(self, tmp_path: Path) -> None:
        """check reports an inbox that is not there; run (require_inboxes=False) waits for it."""
        path = minimal(tmp_path)

        expected = [
            f"{path}:2: inboxes[0].path: {tmp_path}/inbox is not an existing folder (not created yet, "
            "or the share is not mounted)"
        ]
        assert expected == check_config(path, env={})
        assert check_config(path, require_inboxes=False, env={}) == []

    def test_rule_files_are_checked_too(self, tmp_path: Path) -> None:
        """Every rule file under every inbox is validated, with its own file and line."""
        (tmp_path / "inbox/a/b").mkdir(parents=True)
        (tmp_path / "inbox/asr-rules.yaml").write_text("language: en\n", encoding="utf-8")
        bad = tmp_path / "inbox/a/b/asr-rules.yaml"
        bad.write_text("enable_itn: true\noutputs: [doc]\n", encoding="utf-8")
        path = minimal(tmp_path)

        assert [f"{bad}:2: outputs: 'doc' is not one of txt, json, srt, vtt"] == check_config(path, env={})

    def test_rule_file_asking_for_filetrans_with_inline_storage(self, tmp_path: Path) -> None:
        """A rule file is checked against the service's storage."""
        (tmp_path / "inbox").mkdir()
        rule_file = tmp_path / "inbox/asr-rules.yaml"
        rule_file.write_text("long_audio: filetrans\n", encoding="utf-8")
        path = minimal(tmp_path)

        messages = check_config(path, env={})

        assert len(messages) == 1
        assert messages[0].startswith(f"{rule_file}:1: long_audio: filetrans needs storage.type s3")

    def test_config_problems_come_back_as_a_list(self, tmp_path: Path) -> None:
        """check returns the load problems instead of raising."""
        path = write(tmp_path, "inboxes: 3\n")

        assert [f"{path}:1: inboxes: must be a non-empty list of inboxes, got 3"] == check_config(
            path, env={}
        )


class TestExampleAndSchema:
    def test_example_config_loads(self) -> None:
        """The shipped example is a valid config."""
        settings = load_settings(REPO / "config.example.yaml", {})

        assert Path("/srv/nas/dictation/inbox") == settings.inboxes[0].path
        assert Path("/srv/nas/dictation/done") == settings.inboxes[0].done

    def test_example_config_documents_every_key(self) -> None:
        """Every key of the schema appears, set or commented, in the example."""
        text = (REPO / "config.example.yaml").read_text(encoding="utf-8")

        missing = [
            f"{part.name}.{key.name}" for part in SECTIONS for key in part.keys if f"{key.name}:" not in text
        ]
        assert missing == []

    def test_example_rule_file_parses(self, tmp_path: Path) -> None:
        """docs/asr-rules.example.yaml is a valid rule file."""
        (tmp_path / "asr-rules.yaml").write_bytes((REPO / "docs/asr-rules.example.yaml").read_bytes())

        rules = parse_rule_file(tmp_path / "asr-rules.yaml", tmp_path)

        assert rules.language == "yue"

    @pytest.mark.parametrize(
        ("name", "cls", "skip"),
        [
            ("dashscope", DashScopeSettings, set()),
            ("storage", StorageSettings, set()),
            ("state", StateSettings, set()),
            ("logging", LoggingSettings, set()),
            ("metrics", MetricsSettings, set()),
            ("web", WebSettings, set()),
            ("notify", NotifySettings, set()),
            ("defaults", RuleSet, {"budget_timezone"}),  # a section key of its own, in Settings
            ("inboxes", InboxSettings, {"rules"}),
        ],
    )
    def test_schema_and_dataclasses_name_the_same_keys(self, name: str, cls: type, skip: set[str]) -> None:
        """The schema table and the settings dataclasses cannot drift apart."""
        schema_keys = {key.name for key in section(name).keys} - skip
        field_names = {f.name for f in fields(cls)} - skip
        if name == "inboxes":
            field_names |= {key.name for key in RULE_KEYS}

        assert field_names == schema_keys

    def test_rule_key_defaults_match_the_builtin_rules(self) -> None:
        """The documented defaults of rule keys are the ones the cascade uses."""
        for key in RULE_KEYS:
            if key.name not in {"language", "context", "model", "context_file"}:
                assert getattr(BUILTIN_RULES, key.name) == key.default, key.name

    def test_reference_mentions_every_key(self) -> None:
        """The rendered reference lists every key of every section."""
        reference = render_reference()

        assert all(f"`{key.name}`" in reference for part in SECTIONS for key in part.keys)


class TestCheckListsEveryProblemAtOnce:
    """``check`` looks at the disk for whatever parts of the config did parse, so a config with
    mistakes in its keys and a missing folder is fixed in one round, not two."""

    def test_unknown_key_and_missing_inbox_both_reported(self, tmp_path: Path) -> None:
        """A misspelt key elsewhere does not hide that the inbox folder is missing."""
        path = write(
            tmp_path,
            """
            dashscope:
              modle: qwen3-asr-flash
            inboxes:
              - path: inbox
            """,
        )

        assert check_config(path, env={}) == [
            f"{path}:2: dashscope.modle: unknown key (did you mean model?)",
            f"{path}:4: inboxes[0].path: {tmp_path}/inbox is not an existing folder (not created yet, "
            "or the share is not mounted)",
        ]

    def test_mistake_inside_the_inbox_entry_and_its_missing_folder(self, tmp_path: Path) -> None:
        """The inbox with a bad key still has a usable path, and that path is checked."""
        path = write(
            tmp_path,
            """
            inboxes:
              - path: inbox
                setle_s: 3
            """,
        )

        messages = check_config(path, env={})

        assert messages == [
            f"{path}:2: inboxes[0].path: {tmp_path}/inbox is not an existing folder (not created yet, "
            "or the share is not mounted)",
            f"{path}:3: inboxes[0].setle_s: unknown key (did you mean settle_s?)",
        ]

    def test_missing_folder_of_a_later_inbox_is_named_by_its_own_index(self, tmp_path: Path) -> None:
        """An unusable first entry does not shift the index named for the second one."""
        path = write(
            tmp_path,
            """
            inboxes:
              - settle_s: 1
              - path: second
            """,
        )

        messages = check_config(path, env={})

        assert len(messages) == 2
        assert messages[0].startswith(f"{path}:2: inboxes[0].path: required")
        assert messages[1].startswith(f"{path}:3: inboxes[1].path: {tmp_path}/second is not an existing")

    def test_config_mistake_and_invalid_rule_file_both_reported(self, tmp_path: Path) -> None:
        """Rule files in an inbox that exists are checked even when the config has problems."""
        (tmp_path / "inbox/talks").mkdir(parents=True)
        rule_file = tmp_path / "inbox/talks/asr-rules.yaml"
        rule_file.write_text("language: klingon\n", encoding="utf-8")
        path = minimal(tmp_path, "logging:\n  level: loud\n")

        messages = check_config(path, env={})

        assert len(messages) == 2
        assert messages[0].startswith(f"{path}:4: logging.level: ")
        assert messages[1].startswith(f"{rule_file}:1: language: ")

    def test_rule_files_not_judged_against_a_storage_type_that_is_wrong(self, tmp_path: Path) -> None:
        """With storage.type itself in error, whether filetrans is reachable is unknown: only the
        storage mistake is reported, not a guess about the rule file."""
        (tmp_path / "inbox").mkdir()
        (tmp_path / "inbox/asr-rules.yaml").write_text("long_audio: filetrans\n", encoding="utf-8")
        path = minimal(tmp_path, "storage:\n  type: ftp\n")

        messages = check_config(path, env={})

        assert len(messages) == 1
        assert messages[0].startswith(f"{path}:4: storage.type: ")

    def test_run_still_refuses_a_config_with_problems(self, tmp_path: Path) -> None:
        """Loading for ``run`` is unchanged: any problem raises, a missing inbox does not."""
        path = minimal(tmp_path, "logging:\n  level: loud\n")

        assert [message.split(": ")[1] for message in problems_of(path)] == ["logging.level"]

    def test_check_command_lists_both_and_exits_78(self, tmp_path: Path) -> None:
        """The real command prints the key mistake and the missing folder together, then exits 78."""
        path = write(
            tmp_path,
            """
            dashscope:
              modle: qwen3-asr-flash
            inboxes:
              - path: inbox
            """,
        )

        done = subprocess.run(
            [sys.executable, "-m", "dropscribe", "check", "-c", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

        assert done.returncode == 78
        assert f"{path}: 2 problem(s)" in done.stderr
        assert "dashscope.modle: unknown key (did you mean model?)" in done.stderr
        assert f"inboxes[0].path: {tmp_path}/inbox is not an existing folder" in done.stderr


class TestParsingWithoutFiles:
    """``dropscribe.config`` works on text and bytes; files it needs are read by the reader it is given."""

    SOURCE = Path("/nowhere/config.yaml")
    INBOX = Path("/nowhere/inbox")

    @staticmethod
    def reader(files: dict[Path, bytes], calls: list[tuple[Path, Path | None]]) -> ContextReader:
        def read(path: Path, confine_to: Path | None) -> FileBytes:
            calls.append((path, confine_to))
            if path not in files:
                raise InvalidValueError(f"{path} does not exist")
            return FileBytes(files[path], (1, len(files[path]), 7, 1))

        return read

    def build(self, text: str, read_context: ContextReader) -> tuple[Settings | None, list[str]]:
        problems = Problems(self.SOURCE)
        root = parse_yaml(textwrap.dedent(text).lstrip("\n"), problems)
        settings, _ = build_settings(
            root, source=self.SOURCE, env={}, problems=problems, read_context=read_context
        )
        return settings, problems.messages()

    def test_context_file_text_comes_from_the_reader(self) -> None:
        """A context_file is resolved beside the config and its text, from the reader, becomes context."""
        calls: list[tuple[Path, Path | None]] = []
        glossary = Path("/nowhere/glossary.txt")
        read = self.reader({glossary: "\ufeffDropscribe, Qwen\n".encode()}, calls)

        settings, messages = self.build(
            """
            defaults:
              context_file: glossary.txt
            inboxes:
              - path: inbox
            """,
            read,
        )

        assert messages == []
        assert settings is not None
        assert (settings.defaults.context, settings.defaults.context_file) == ("Dropscribe, Qwen", glossary)
        assert calls == [(glossary, None)]  # the service config's context file is not confined

    def test_reader_refusal_is_a_problem_at_the_key_line(self) -> None:
        """What the reader says against a file is reported like any other value problem."""
        settings, messages = self.build(
            """
            inboxes:
              - path: inbox
                context_file: missing.txt
            """,
            self.reader({}, []),
        )

        assert settings is None
        assert messages == [f"{self.SOURCE}:3: inboxes[0].context_file: /nowhere/missing.txt does not exist"]

    def test_rule_file_bytes_read_context_confined_to_the_inbox(self) -> None:
        """A rule file's context file is asked for inside its inbox, and its signature kept."""
        calls: list[tuple[Path, Path | None]] = []
        rule_file = self.INBOX / "team" / "asr-rules.yaml"
        terms = self.INBOX / "terms.txt"
        read = self.reader({terms: b"Kubernetes"}, calls)

        parsed = parse_rule_file_bytes(
            b"language: en\ncontext_file: ../terms.txt\n",
            rule_file,
            self.INBOX,
            Problems(rule_file),
            read_context=read,
            filetrans_available=False,
        )

        assert parsed.messages == []
        assert (parsed.rules.language, parsed.rules.context) == ("en", "Kubernetes")
        assert (parsed.context_file, parsed.context_signature) == (terms, (1, 10, 7, 1))
        assert calls == [(terms, self.INBOX)]

    @pytest.mark.parametrize(
        ("written", "message"),
        [
            ("/etc/passwd", "must be a path relative to this rule file"),
            ("../../outside.txt", "must stay inside the inbox"),
        ],
    )
    def test_rule_file_context_outside_the_inbox_is_never_asked_for(self, written: str, message: str) -> None:
        """A context file that would leave the inbox is refused before any read; the name is still kept."""
        calls: list[tuple[Path, Path | None]] = []
        rule_file = self.INBOX / "team" / "asr-rules.yaml"

        parsed = parse_rule_file_bytes(
            f"context_file: {written}\n".encode(),
            rule_file,
            self.INBOX,
            Problems(rule_file),
            read_context=self.reader({}, calls),
            filetrans_available=True,
        )

        assert calls == []
        assert len(parsed.messages) == 1
        assert parsed.messages[0].startswith(f"{rule_file}:1: context_file: {message}")
        assert parsed.context_file is not None

    def test_unusable_rule_file_bytes_set_nothing(self) -> None:
        """Bytes that are not a mapping of rule keys give an empty rule set and say why."""
        rule_file = self.INBOX / "asr-rules.yaml"

        parsed = parse_rule_file_bytes(
            b"- a list\n",
            rule_file,
            self.INBOX,
            Problems(rule_file),
            read_context=self.reader({}, []),
            filetrans_available=True,
        )

        assert parsed.rules == RuleSet()
        assert parsed.messages[0].startswith(f"{rule_file}:1: must be a mapping of rule keys")


class TestBackends:
    BACKENDS = """\
backends:
  onprem:
    type: openai
    base_url: http://gpu-box:8000/v1/
    model: Qwen/Qwen3-ASR-1.7B
    max_upload_mb: 10
  intl:
    type: dashscope
    base_url: https://dashscope-intl.aliyuncs.com/api/v1
    concurrency: 2
"""

    def test_backends_by_name_and_a_folder_that_picks_one(self, tmp_path: Path) -> None:
        path = minimal(tmp_path, "    backend: onprem\n" + self.BACKENDS + "defaults:\n  backend: intl\n")
        settings = load_settings(path, {"DASHSCOPE_API_KEY": "sk-test"})
        onprem = settings.backends["onprem"]
        assert isinstance(onprem, OpenAIBackendSettings)
        assert (onprem.base_url, onprem.model, onprem.max_upload_mb) == (
            "http://gpu-box:8000/v1", "Qwen/Qwen3-ASR-1.7B", 10.0,
        )  # fmt: skip
        assert (onprem.concurrency, onprem.api_key_env) == (2, None)
        intl = settings.backends["intl"]
        assert isinstance(intl, DashScopeSettings)
        assert (intl.concurrency, intl.model) == (2, "qwen3-asr-flash")
        assert list(settings.all_backends()) == ["dashscope", "onprem", "intl"]
        assert (settings.inboxes[0].rules.backend, settings.defaults.backend) == ("onprem", "intl")

    def test_without_backends_everything_is_dashscope(self, tmp_path: Path) -> None:
        settings = load_settings(minimal(tmp_path), {})
        assert list(settings.all_backends()) == ["dashscope"]
        assert settings.defaults.backend is None
        assert BUILTIN_RULES.backend == "dashscope"

    def test_a_backend_rule_must_name_a_configured_backend(self, tmp_path: Path) -> None:
        messages = problems_of(minimal(tmp_path, "    backend: onprme\n" + self.BACKENDS))
        assert len(messages) == 1
        assert "inboxes[0].backend: 'onprme' is not a configured backend" in messages[0]
        assert "(configured: dashscope, intl, onprem)" in messages[0]

    def test_bad_backend_entries_are_each_reported(self, tmp_path: Path) -> None:
        text = """\
backends:
  dashscope:
    type: openai
  nokey:
    type: openai
    model: m
  wrong:
    type: whisper
  typo:
    type: openai
    base_url: http://h/v1
    model: m
    max_upload: 5
"""
        messages = problems_of(minimal(tmp_path, text))
        joined = "\n".join(messages)
        assert "backends.dashscope: the dashscope section defines the backend named dashscope" in joined
        assert "backends.nokey.base_url: required" in joined
        assert "backends.wrong.type: must be one of dashscope, openai" in joined
        assert "backends.typo.max_upload: unknown key (did you mean max_upload_mb?)" in joined
        assert len(messages) == 4

    def test_an_openai_backend_cannot_read_temporary_uploads(self, tmp_path: Path) -> None:
        messages = problems_of(minimal(tmp_path, self.BACKENDS + "storage:\n  type: dashscope\n"))
        assert len(messages) == 1
        assert (
            "backends.onprem: an openai backend cannot read DashScope's temporary oss:// uploads"
            in messages[0]
        )
