"""The rules of an inbox kept current while the service runs, re-read only when a rule file changes.

A rule file that cannot be used holds the files below it: they wait, nothing fails, and the reason is
written beside it in ``asr-rules.yaml.error.txt`` for whoever can see the share but not the logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Literal

from dropscribe.adapters.files import atomic_write
from dropscribe.config.backends import backend_rule_problems
from dropscribe.config.kinds import FileSignature
from dropscribe.config.model import DashScopeSettings, InboxSettings, Settings
from dropscribe.config.rulefiles import ParsedRuleFile
from dropscribe.core.errors import ShareUnavailableError, TransientError
from dropscribe.core.rules import effective_rules
from dropscribe.core.ruleset import EffectiveRules, RuleSet
from dropscribe.service.settings_files import file_signature, read_rule_file

# errnos that mean the share itself is away (unmounted, stale, server down), not this one file
_SHARE_GONE = frozenset(
    {
        errno.EIO,
        errno.ESTALE,
        errno.ENOTCONN,
        errno.ETIMEDOUT,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ENODEV,
    }
)
ERROR_SUFFIX = ".error.txt"


@dataclass(frozen=True)
class RulesHeld:
    """An invalid rule file on the way to a folder: that folder's files wait until it is fixed."""

    rule_file: Path
    messages: list[str]


@dataclass(frozen=True)
class RuleFileEvent:
    """A rule file was read (``loaded`` or ``invalid``) or has gone (``removed``); log it once."""

    rule_file: Path
    status: Literal["loaded", "invalid", "removed"]
    messages: tuple[str, ...] = ()


def error_file_for(rule_file: Path) -> Path:
    """Where the problems of ``rule_file`` are written for the people who use the share."""
    return rule_file.with_name(rule_file.name + ERROR_SUFFIX)


@dataclass
class _Entry:
    signature: FileSignature | None  # None: there is no rule file in this folder
    parsed: ParsedRuleFile | None = None
    context_signature: FileSignature | None = None
    messages: list[str] = field(default_factory=list)


class RuleCache:
    """The rules of one inbox, re-read only when a rule file or its context file changes.

    :meth:`rules_for` costs one ``stat`` per folder level (two where a context file is named), so it
    can be asked for every file on every scan. :meth:`is_support_file` knows the context files named
    by every rule file read so far, and reads the rule files on a file's own path the first time.
    """

    def __init__(
        self,
        inbox: InboxSettings,
        defaults: RuleSet,
        *,
        default_model: str = DashScopeSettings.model,
        filetrans_available: bool = True,
        on_change: Callable[[RuleFileEvent], None] | None = None,
        backends: frozenset[str] | None = None,
    ) -> None:
        self.inbox = inbox
        self.backends = backends  # the configured backend names; None: not checked
        self.defaults = defaults
        self.default_model = default_model
        self.filetrans_available = filetrans_available
        self.on_change = on_change
        self._entries: dict[Path, _Entry] = {}
        self._context_files: set[Path] | None = None

    @classmethod
    def for_inbox(
        cls,
        settings: Settings,
        inbox: InboxSettings,
        *,
        on_change: Callable[[RuleFileEvent], None] | None = None,
    ) -> RuleCache:
        """The cache for ``inbox`` with the service-wide defaults, model and storage of ``settings``."""
        return cls(
            inbox,
            settings.defaults,
            default_model=settings.dashscope.model,
            filetrans_available=settings.storage.type != "inline",
            on_change=on_change,
            backends=frozenset(settings.all_backends()),
        )

    def rules_for(self, relpath_dir: PurePath) -> EffectiveRules | RulesHeld:
        """The rules for files in the folder ``relpath_dir`` (relative to the inbox; ``.`` is its root).

        Returns RulesHeld when a rule file on the way is invalid. Raise ShareUnavailableError when a
        rule file cannot even be looked at (share gone, stale handle); ValueError for a path that
        leaves the inbox.
        """
        layers = [self.defaults, self.inbox.rules]
        folder = self.inbox.path
        for depth, part in enumerate(("", *self._parts(relpath_dir))):
            if depth:
                folder = folder / part
            rule_file = folder / self.inbox.rules_file
            entry = self._current(rule_file)
            if entry.messages:
                return RulesHeld(rule_file, list(entry.messages))
            if entry.parsed is not None:
                layers.append(entry.parsed.rules)
        return effective_rules(layers, default_model=self.default_model)

    def is_support_file(self, path: PurePath) -> bool:
        """True for files that configure the service and are never recordings: rule files, their
        ``.error.txt``, and the context files named by the config or by a rule file read so far.

        ``path`` is absolute or relative to the inbox.
        """
        name = path.name
        if name in (self.inbox.rules_file, self.inbox.rules_file + ERROR_SUFFIX):
            return True
        full = Path(os.path.normpath(self.inbox.path / path))
        self._read_unseen(full.parent)
        return full in self.context_files()

    def context_files(self) -> set[Path]:
        """The context files known now: from ``defaults``, the inbox and every rule file read."""
        if self._context_files is None:
            named = [rules.context_file for rules in (self.defaults, self.inbox.rules)]
            named += [entry.parsed.context_file for entry in self._entries.values() if entry.parsed]
            self._context_files = {path for path in named if path is not None}
        return self._context_files

    def held(self) -> list[RulesHeld]:
        """Every rule file currently invalid, as last read (for status reports)."""
        return [
            RulesHeld(rule_file, list(entry.messages))
            for rule_file, entry in sorted(self._entries.items())
            if entry.messages
        ]

    def _read_unseen(self, folder: Path) -> None:
        # A scan may meet a context file before asking for its folder's rules; reading the rule
        # files on the way once (never again: rules_for keeps them current) closes that gap.
        try:
            parts = self._parts(folder)
        except ValueError:
            return
        current = self.inbox.path
        for depth, part in enumerate(("", *parts)):
            if depth:
                current = current / part
            rule_file = current / self.inbox.rules_file
            if rule_file not in self._entries:
                with contextlib.suppress(TransientError):
                    self._current(rule_file)

    def _parts(self, relpath_dir: PurePath) -> tuple[str, ...]:
        relative = PurePosixPath(relpath_dir.as_posix())
        if relative.is_absolute():
            try:
                relative = PurePosixPath(Path(relpath_dir).relative_to(self.inbox.path).as_posix())
            except ValueError:
                raise ValueError(f"{relpath_dir} is not inside {self.inbox.path}") from None
        parts = tuple(part for part in relative.parts if part != ".")
        if ".." in parts:
            raise ValueError(f"{relpath_dir} leaves the inbox")
        return parts

    def _current(self, rule_file: Path) -> _Entry:
        signature = _stat_signature(rule_file)
        entry = self._entries.get(rule_file)
        if entry is not None and entry.signature == signature and self._context_unchanged(entry):
            return entry
        self._context_files = None
        if signature is None:
            entry_was = entry
            entry = _Entry(None)
            self._entries[rule_file] = entry
            # also on first sight: an error file left from before a restart must not linger
            _remove(error_file_for(rule_file))
            if entry_was is not None and entry_was.signature is not None:
                self._emit(RuleFileEvent(rule_file, "removed"))
            return entry
        # the signature was taken before reading: a change from now on shows up next time
        known = entry.parsed.context_file if entry is not None and entry.parsed is not None else None
        parsed, context_signature = self._parse_with_context(rule_file, known)
        entry = _Entry(signature, parsed, context_signature, parsed.messages)
        self._entries[rule_file] = entry
        if parsed.messages:
            _write_error_file(rule_file, parsed.messages)
            self._emit(RuleFileEvent(rule_file, "invalid", tuple(parsed.messages)))
        else:
            _remove(error_file_for(rule_file))
            self._emit(RuleFileEvent(rule_file, "loaded"))
        return entry

    def _parse_with_context(
        self, rule_file: Path, known: Path | None
    ) -> tuple[ParsedRuleFile, FileSignature | None]:
        """The rule file read, and the signature its context file had when it was read.

        A context file that was read brings the signature of the very descriptor read. One that was
        refused (missing, a link, not a regular file...) is looked at before the read instead: looked
        at after it, a swap in between would be taken for the refused state, and the folder would stay
        held on a file that is fine. Its name is only known from a read, hence a second read when the
        name is new.
        """
        before = _stat_signature(known) if known is not None else None
        parsed = self._parse(rule_file)
        if parsed.context_file not in (None, known) and parsed.context_signature is None:
            known = parsed.context_file
            before = _stat_signature(known)
            parsed = self._parse(rule_file)
        if parsed.context_file is None or parsed.context_signature is not None:
            return parsed, parsed.context_signature
        if parsed.context_file == known:
            return parsed, before
        # the rule file named another context file on each read, so it is being edited: its own
        # signature, taken before both reads, brings it back here next time
        return parsed, _stat_signature(parsed.context_file)

    def _parse(self, rule_file: Path) -> ParsedRuleFile:
        parsed = read_rule_file(rule_file, self.inbox.path, filetrans_available=self.filetrans_available)
        if self.backends is None:
            return parsed
        # a backend name no one configured holds the folder now, not each file at its arrival
        wrong = [f"{rule_file}: {key}: {message}" for message, key in
                 backend_rule_problems(parsed.rules, self.backends)]  # fmt: skip
        return dataclasses.replace(parsed, messages=[*parsed.messages, *wrong]) if wrong else parsed

    def _context_unchanged(self, entry: _Entry) -> bool:
        if entry.parsed is None or entry.parsed.context_file is None:
            return True
        return _stat_signature(entry.parsed.context_file) == entry.context_signature

    def _emit(self, event: RuleFileEvent) -> None:
        if self.on_change is not None:
            self.on_change(event)


def _stat_signature(path: Path) -> FileSignature | None:
    # the name's own entry: a file swapped for a link (rule files and their context files are
    # never read through one) must count as a change even when the link leads to the same file
    try:
        return file_signature(os.lstat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in _SHARE_GONE:
            raise ShareUnavailableError(f"cannot look at {path}: {exc.strerror or exc}") from exc
        # a problem of this path (no permission, a link loop...): parsing reports it, and this
        # stand-in signature keeps that verdict until the path changes and a real signature appears
        return (-1, -1, -1, -1)


def _write_error_file(rule_file: Path, messages: list[str]) -> None:
    target = error_file_for(rule_file)
    text = (
        f"{rule_file.name} in this folder cannot be used:\n\n"
        + "".join(f"  {message}\n" for message in messages)
        + f"\nFiles in this folder and the folders below it are held (not transcribed, not moved) "
        f"until {rule_file.name} is fixed.\nThis file disappears by itself once it is.\n"
    )
    with contextlib.suppress(OSError):
        if target.read_text(encoding="utf-8") == text:
            return  # unchanged: spare the share a rewrite
    # a read-only share cannot take the note; the folder is held all the same and the event is logged
    with contextlib.suppress(OSError):
        atomic_write(target, text.encode("utf-8"), mode=0o644)


def _remove(path: Path) -> None:
    # gone already is the goal; a read-only share keeps a stale note, which is harmless
    with contextlib.suppress(OSError):
        path.unlink()
