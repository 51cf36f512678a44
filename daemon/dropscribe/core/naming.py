"""Which names in an inbox are taken, and what the outputs of a finished file are called."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

# Names that writers use while a transfer is still running, or that operating systems and NAS boxes
# scatter around. Dotfiles cover rsync's `.<name>.XXXXXX`, Syncthing's `.syncthing.*`, `._*` and
# `.DS_Store`; the rest are suffixes and names from browsers, WinSCP, Office and Windows.
BUILTIN_IGNORE = (
    ".*",
    "*.part",
    "*.partial",
    "*.tmp",
    "*.temp",
    "*.filepart",
    "*.crdownload",
    "*.download",
    "~$*",
    "~syncthing~*",
    "Thumbs.db",
    "desktop.ini",
)
IGNORED_DIRS = ("@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "System Volume Information")

# Text-like files are never taken as recordings: rule files, context files and transcripts live
# beside audio, and turning a glossary into a failed "not audio" job would surprise everyone.
SUPPORT_SUFFIXES = (".txt", ".md", ".yaml", ".yml", ".json", ".srt", ".vtt")

SIDECAR_SUFFIXES = (".txt", ".json", ".srt", ".vtt", ".error.json")


def is_ignored(name: str, extra_patterns: Iterable[str] = ()) -> bool:
    """True for names that are never inputs: in-progress transfers, OS litter, support files."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in BUILTIN_IGNORE):
        return True
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in extra_patterns):
        return True
    return name.lower().endswith(SUPPORT_SUFFIXES)


def is_ignored_dir(name: str) -> bool:
    """Hidden folders (our own `.dropscribe` among them) and NAS metadata folders are not walked."""
    return name.startswith(".") or name in IGNORED_DIRS


def split_name(name: str) -> tuple[str, str]:
    """``"talk.final.mp3"`` -> ``("talk.final", ".mp3")``; a name without a dot has no suffix."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def numbered(name: str, n: int) -> str:
    """The n-th candidate name: ``talk.mp3``, ``talk (2).mp3``, ``talk (3).mp3``..."""
    if n <= 1:
        return name
    stem, suffix = split_name(name)
    return f"{stem} ({n}){suffix}"


def sidecar_name(source_name: str, suffix: str) -> str:
    """``talk.mp3`` + ``.txt`` -> ``talk.txt``."""
    return split_name(source_name)[0] + suffix


NAME_MAX_BYTES = 255
# room for the longest sidecar suffix and a " (NNNNN)" number
_RESERVED_BYTES = len(".error.json") + len(" (10000)")


def fit_name(name: str) -> str:
    """Shorten the stem so the name, numbered and with any sidecar suffix, fits in 255 bytes."""
    stem, suffix = split_name(name)
    if len(suffix.encode("utf-8", "surrogateescape")) > 16:  # not a real extension
        stem, suffix = name, ""
    budget = NAME_MAX_BYTES - _RESERVED_BYTES - len(suffix.encode("utf-8", "surrogateescape"))
    raw = stem.encode("utf-8", "surrogateescape")
    if len(raw) <= budget:
        return name
    # "…" (3 bytes) marks the cut; the full original name is kept in the sidecars
    return _cut_bytes(stem, budget - 3) + "…" + suffix


def _cut_bytes(text: str, budget: int) -> str:
    """The longest prefix of ``text`` within ``budget`` bytes, never splitting a character."""
    out, used = "", 0
    for char in text:
        size = len(char.encode("utf-8", "surrogateescape"))
        if used + size > budget:
            break
        out += char
        used += size
    return out


def pick_free_name(name: str, is_taken: Callable[[str], bool], limit: int = 10_000) -> str:
    """First candidate whose source name and every possible sidecar name are all free.

    Checking all sidecar kinds, not only the ones this folder writes, keeps a numbered set together
    even when two files share a stem (``a.mp3`` and ``a.wav`` both want ``a.txt``).
    """
    name = fit_name(name)
    for n in range(1, limit + 1):
        candidate = numbered(name, n)
        names = [candidate, *(sidecar_name(candidate, s) for s in SIDECAR_SUFFIXES)]
        if not any(is_taken(other) for other in names):
            return candidate
    raise RuntimeError(f"no free name after {limit} tries")


def object_key(sha256: str, part: str, suffix: str) -> str:
    """Storage keys derive from content only, never from user file names."""
    return f"{sha256[:2]}/{sha256}/{part}{suffix}"


def short_format_name(format_name: str, file_name: str) -> str:
    """One short container name: FFmpeg says ``mov,mp4,m4a,3gp,3g2,mj2`` for all of that family.

    The file's own extension wins when it is one of the names given; otherwise the first name.
    """
    names = [name.strip() for name in format_name.split(",") if name.strip()]
    if not names:
        return format_name
    extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    return extension if extension in names else names[0]
