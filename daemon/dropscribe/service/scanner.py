"""Finding settled files in one inbox: a full walk as the truth, and cheap incremental looks in between.

A full walk (``scan``) stats every file and runs every ``rescan_s``; it alone can be trusted on a share
that sends no events and may drop some. Between walks, ``refresh`` looks only where something can have
changed: the paths named by filesystem events, the folders whose mtime moved (a name was added or
removed: how a polled share shows a new file without stat-ing every file), and the files that are due
to be looked at again because they were still settling. Its cost follows the changes, not the size of
the inbox, so a 10,000-file backlog costs no more per file than a 1,000-file one.

Settled files wait in ``candidates``, in the order they were found, until the dispatcher takes them.
On a local disk a file seen for the first time counts as quiet since its last change (its ctime: a
backlog waiting when the service starts is taken at once); on a share the server's clock may differ from
ours, so there the service watches each new file for the whole settle time itself.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dropscribe.adapters import files
from dropscribe.adapters.watcher import is_mount_point, on_own_clock
from dropscribe.config.model import InboxSettings
from dropscribe.core.gate import Fingerprint, Observation, is_settled, observe, settles_at
from dropscribe.core.naming import is_ignored, is_ignored_dir
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.service.rule_cache import RuleCache, RulesHeld


@dataclass
class ScanResult:
    """What one full walk found: files ready to take, and how many still wait, are held or unreadable."""

    ready: list[tuple[str, EffectiveRules]] = field(default_factory=list)
    settling: int = 0
    settling_paths: list[str] = field(default_factory=list)
    held: dict[str, list[str]] = field(default_factory=dict)  # rule file -> messages
    held_paths: list[str] = field(default_factory=list)
    available: bool = True
    problem: str | None = None


class InboxScanner:
    def __init__(self, inbox: InboxSettings, rules: RuleCache, *, own_clock: bool | None = None) -> None:
        """``own_clock``: whether file times in the inbox come from this machine's clock (None: decided
        by the file system the inbox is on)."""
        self.inbox = inbox
        self.rules = rules
        self.own_clock = on_own_clock(inbox.path) if own_clock is None else own_clock
        self.observations: dict[str, Observation] = {}
        self.candidates: dict[str, EffectiveRules] = {}  # settled and not in flight, oldest first
        self.settling: dict[str, float] = {}  # relpath -> when to look at it again (monotonic)
        self.held: dict[str, list[str]] = {}  # rule file -> messages
        self.held_paths: set[str] = set()
        self.folders: dict[str, int] = {}  # folder relpath ("" is the inbox) -> mtime_ns when listed
        self.full_scan_wanted = False
        self._skip = {inbox.done, inbox.failed}
        self._support_names = {inbox.rules_file, inbox.rules_file + ".error.txt"}
        self._events_lock = threading.Lock()
        self._event_paths: set[str] = set()
        self._event_folders: set[str] = set()
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

    # events (called from the watcher's thread) ---------------------------------------------------

    def note_event(self, path: str, is_directory: bool) -> None:
        """A filesystem event named ``path``: look at it (or at that folder) in the next refresh."""
        try:
            relpath = Path(path).relative_to(self.inbox.path).as_posix()
        except ValueError:
            return
        name = PurePosixPath(relpath).name
        with self._events_lock:
            if relpath == ".":
                self._event_folders.add("")
            elif name in self._support_names:
                self.full_scan_wanted = True  # a rule file changed: its folders are judged anew
            elif is_directory:
                self._event_folders.add(relpath)
            else:
                self._event_paths.add(relpath)

    # the full walk --------------------------------------------------------------------------------

    def scan(self, now: float, busy: set[str]) -> ScanResult:
        """Walk the inbox; files in ``busy`` (being processed) are left out of the gate."""
        self.full_scan_wanted = False
        result = ScanResult()
        problem = self.available()
        if problem is not None:
            # keep every observation: the files are still there, we just cannot see them now
            return ScanResult(available=False, problem=problem)
        seen: set[str] = set()
        folders: dict[str, int] = {}
        self.held, self.held_paths = {}, set()
        self.candidates, self.settling = {}, {}
        folder_rules: dict[str, EffectiveRules | RulesHeld] = {}
        try:
            folders[""] = os.stat(self.inbox.path).st_mtime_ns
        except OSError as exc:
            return ScanResult(available=False, problem=f"inbox not readable: {exc.strerror}")
        stack = [""]
        while stack:
            folder = stack.pop()
            listing = files.list_folder(self.inbox.path / folder if folder else self.inbox.path)
            if isinstance(listing, OSError):
                if not folder:
                    return ScanResult(available=False, problem=f"inbox not readable: {listing.strerror}")
                continue
            for entry in listing:
                relpath = f"{folder}/{entry.name}" if folder else entry.name
                assert entry.identity is not None  # listed with stat_files
                if entry.is_dir:
                    path = self.inbox.path / relpath
                    if self.inbox.recursive and not self._skip_dir(path):
                        folders[relpath] = entry.identity.mtime_ns
                        stack.append(relpath)
                    continue
                if self._consider(relpath, entry.identity, now, busy, folder_rules):
                    seen.add(relpath)
        for gone in set(self.observations) - seen:
            del self.observations[gone]
        self.folders = folders
        with self._events_lock:  # everything they named was looked at just now
            self._event_paths.clear()
            self._event_folders.clear()
        result.ready = list(self.candidates.items())
        result.settling_paths = list(self.settling)
        result.settling = len(self.settling)
        result.held = dict(self.held)
        result.held_paths = sorted(self.held_paths)
        return result

    # incremental looks ----------------------------------------------------------------------------

    def refresh(self, now: float, busy: set[str], *, poll: bool) -> None:
        """Look where something may have changed: event paths, moved folders (if ``poll``), due files."""
        with self._events_lock:
            paths, self._event_paths = self._event_paths, set()
            folders = self._event_folders
            self._event_folders = set()
        if poll:
            folders |= self._moved_folders()
        folder_rules: dict[str, EffectiveRules | RulesHeld] = {}
        for folder in sorted(folders):
            self._relist(folder, now, busy, folder_rules)
        due = [relpath for relpath, at in self.settling.items() if at <= now]
        for relpath in paths.union(due):
            self._restat(relpath, now, busy, folder_rules)

    def next_due(self) -> float:
        """When the first file still settling is to be looked at again (only while one is)."""
        return min(self.settling.values())

    def recheck(self, relpath: str, now: float, busy: set[str]) -> bool:
        """Before a candidate is taken: still there, and still what was seen settled?"""
        self._restat(relpath, now, busy, {})
        return relpath in self.candidates

    def _moved_folders(self) -> set[str]:
        """Folders whose mtime changed since they were listed: a name was added, removed or renamed."""
        moved = set()
        root = str(self.inbox.path)
        stat_path = os.stat
        # plain strings, not Path objects: this runs every few seconds over every folder of the inbox
        for folder, mtime_ns in list(self.folders.items()):
            try:
                st = stat_path(f"{root}/{folder}" if folder else root)
            except OSError:
                moved.add(folder)
                continue
            if st.st_mtime_ns != mtime_ns:
                moved.add(folder)
        return moved

    def _relist(
        self, folder: str, now: float, busy: set[str], folder_rules: dict[str, EffectiveRules | RulesHeld]
    ) -> None:
        """List one folder: new names are looked at, vanished ones forgotten, new subfolders walked."""
        path = self.inbox.path / folder if folder else self.inbox.path
        prefix = f"{folder}/" if folder else ""
        try:
            mtime_ns = os.stat(path).st_mtime_ns
        except OSError as exc:
            if folder and isinstance(exc, FileNotFoundError | NotADirectoryError):
                self._forget_below(folder)
            else:  # the inbox itself, or the share: never read as "no files"; the full walk reports it
                self.full_scan_wanted = True
            return
        listing = files.list_folder(path, stat_files=False)
        if isinstance(listing, OSError):
            self.full_scan_wanted = True
            return
        self.folders[folder] = mtime_ns
        present = set()
        for entry in listing:
            relpath = prefix + entry.name
            if entry.is_dir:
                sub = self.inbox.path / relpath
                if self.inbox.recursive and not self._skip_dir(sub) and relpath not in self.folders:
                    self._relist(relpath, now, busy, folder_rules)
                continue
            present.add(relpath)
            if relpath not in self.observations:
                self._restat(relpath, now, busy, folder_rules)
        for relpath in [r for r in self.observations if r.startswith(prefix) and "/" not in r[len(prefix) :]]:
            if relpath not in present:
                self._forget(relpath)
        children = [f for f in self.folders if f.startswith(prefix) and f != folder]
        for child in children:
            if "/" not in child[len(prefix) :] and not os.path.isdir(self.inbox.path / child):
                self._forget_below(child)

    def _restat(
        self, relpath: str, now: float, busy: set[str], folder_rules: dict[str, EffectiveRules | RulesHeld]
    ) -> None:
        try:
            st = os.lstat(self.inbox.path / relpath)
        except (FileNotFoundError, NotADirectoryError):
            self._forget(relpath)
            return
        except OSError:  # the share, not the file: the full walk tells which
            self.full_scan_wanted = True
            return
        if stat.S_ISDIR(st.st_mode):
            parent = str(PurePosixPath(relpath).parent)
            if self.inbox.recursive and (parent == "." or parent in self.folders):
                self._relist(relpath, now, busy, folder_rules)
            return
        if not self._consider(relpath, files.Identity.of(st), now, busy, folder_rules):
            self._forget(relpath)

    def _forget(self, relpath: str) -> None:
        self.observations.pop(relpath, None)
        self.candidates.pop(relpath, None)
        self.settling.pop(relpath, None)
        self.held_paths.discard(relpath)

    def _forget_below(self, folder: str) -> None:
        prefix = f"{folder}/" if folder else ""
        for relpath in [r for r in self.observations if r.startswith(prefix)]:
            self._forget(relpath)
        for relpath in [r for r in self.held_paths if r.startswith(prefix)]:
            self.held_paths.discard(relpath)
        for sub in [f for f in self.folders if f == folder or f.startswith(prefix)]:
            del self.folders[sub]

    # judging one file -----------------------------------------------------------------------------

    def _consider(
        self, relpath: str, ident: files.Identity, now: float, busy: set[str],
        folder_rules: dict[str, EffectiveRules | RulesHeld],
    ) -> bool:  # fmt: skip
        """Put one file where it belongs (candidate, settling, held); False if it is not an input."""
        name = PurePosixPath(relpath).name
        if is_ignored(name, self.inbox.ignore) or name in self._support_names:
            return False
        if not self.inbox.recursive and "/" in relpath:
            return False
        if self.inbox.path / relpath in self.rules.context_files():
            return False
        folder = str(PurePosixPath(relpath).parent)
        rules = folder_rules.get(folder)
        if rules is None:
            rules = folder_rules[folder] = self.rules.rules_for(PurePosixPath(relpath).parent)
        if relpath in busy:
            self.candidates.pop(relpath, None)
            self.settling.pop(relpath, None)
            return True
        if isinstance(rules, RulesHeld):
            self.held.setdefault(str(rules.rule_file), rules.messages)
            self.held_paths.add(relpath)
            self.candidates.pop(relpath, None)
            self.settling.pop(relpath, None)
            return True
        self.held_paths.discard(relpath)
        if not rules.enabled:
            self.candidates.pop(relpath, None)
            self.settling.pop(relpath, None)
            return True
        fingerprint: Fingerprint = (ident.dev, ident.ino, ident.size, ident.mtime_ns)
        # ctime, not mtime: every write, rename, link or chmod moves it, and no tool sets it back (a copy
        # that keeps the original mtime, or our own link()+unlink() move, still counts as just changed)
        quiet_before_s = time.time() - max(ident.mtime_ns, ident.ctime_ns) / 1e9 if self.own_clock else 0.0
        obs = observe(self.observations.get(relpath), fingerprint, now, quiet_before_s=quiet_before_s)
        self.observations[relpath] = obs
        if is_settled(obs, now, self.inbox.settle_s):
            self.settling.pop(relpath, None)
            self.candidates.setdefault(relpath, rules)
        else:
            self.candidates.pop(relpath, None)
            self.settling[relpath] = settles_at(obs, self.inbox.settle_s)
        return True
