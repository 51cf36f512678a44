"""Finding settled files in one inbox: walk, filter, and apply the completeness gate."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dropscribe.adapters import files
from dropscribe.adapters.watcher import is_mount_point
from dropscribe.config.model import EffectiveRules, InboxSettings
from dropscribe.config.rulefiles import RuleCache, RulesHeld
from dropscribe.core.gate import Observation, is_settled, observe
from dropscribe.core.naming import is_ignored, is_ignored_dir


@dataclass
class ScanResult:
    """What one scan found: files ready to take, and how many still wait, are held or unreadable."""

    ready: list[tuple[str, EffectiveRules]] = field(default_factory=list)
    settling: int = 0
    held: dict[str, list[str]] = field(default_factory=dict)  # rule file -> messages
    available: bool = True
    problem: str | None = None


class InboxScanner:
    def __init__(self, inbox: InboxSettings, rules: RuleCache) -> None:
        self.inbox = inbox
        self.rules = rules
        self.observations: dict[str, Observation] = {}
        self._skip = {inbox.done, inbox.failed}
        # an inbox seen as a mount point once must stay one: an unmounted share leaves an empty
        # folder behind, and that must read as "share missing", not as "no files"
        self._was_mount = False

    def available(self) -> str | None:
        """None when the inbox can be scanned; otherwise why not. A missing mount is not an empty folder."""
        root = self.inbox.path
        try:
            os.stat(root)
        except OSError as exc:
            return f"inbox not reachable: {exc.strerror}"
        if not os.path.isdir(root):
            return "inbox is not a folder"
        if not os.access(root, os.R_OK | os.X_OK):
            return "inbox not readable"
        if is_mount_point(root):
            self._was_mount = True
        elif self._was_mount:
            return "inbox share is not mounted (the folder is no longer a mount point)"
        return None

    def _skip_dir(self, path: Path) -> bool:
        return is_ignored_dir(path.name) or path in self._skip

    def scan(self, now: float, busy: set[str]) -> ScanResult:
        """Walk the inbox; files in ``busy`` (being processed) are left out of the gate."""
        result = ScanResult()
        problem = self.available()
        if problem is not None:
            # keep every observation: the files are still there, we just cannot see them now
            return ScanResult(available=False, problem=problem)
        seen: set[str] = set()
        # rules are per folder: look them up once per folder and scan, not once per file
        folder_rules: dict[Path, EffectiveRules | RulesHeld] = {}
        support_names = {self.inbox.rules_file, self.inbox.rules_file + ".error.txt"}
        for entry in files.walk(self.inbox.path, recursive=self.inbox.recursive, skip_dir=self._skip_dir):
            if isinstance(entry, OSError):
                if entry.filename and Path(entry.filename) == self.inbox.path:
                    return ScanResult(available=False, problem=f"inbox not readable: {entry.strerror}")
                continue
            name = entry.path.name
            if is_ignored(name, self.inbox.ignore) or name in support_names:
                continue
            relpath = entry.relpath
            folder = entry.path.parent
            rules = folder_rules.get(folder)
            if rules is None:
                rules = folder_rules[folder] = self.rules.rules_for(PurePosixPath(relpath).parent)
            if entry.path in self.rules.context_files():
                continue
            seen.add(relpath)
            if relpath in busy:
                continue
            if isinstance(rules, RulesHeld):
                result.held.setdefault(str(rules.rule_file), rules.messages)
                continue
            if not rules.enabled:
                continue
            ident = entry.identity
            fingerprint = (ident.dev, ident.ino, ident.size, ident.mtime_ns)
            obs = observe(self.observations.get(relpath), fingerprint, now)
            self.observations[relpath] = obs
            if is_settled(obs, now, self.inbox.settle_s):
                result.ready.append((relpath, rules))
            else:
                result.settling += 1
        for gone in set(self.observations) - seen:
            del self.observations[gone]
        return result
