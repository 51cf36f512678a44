"""Whether a file that looks broken is refused now or given time: a stalled upload looks just like one."""

from __future__ import annotations

# what a transfer that stalled half-way looks like; other rejections do not depend on time
INCOMPLETE_CODES = frozenset({"empty_file", "empty_audio", "not_audio", "truncated_audio", "corrupt_audio"})

# a file still open for writing is looked at again after the folder's settle time, but never sooner
BUSY_MIN_WAIT_S = 1.0


def unfinished_wait_s(
    code: str, *, looks_like_media: bool, quiet_s: float, incomplete_wait_s: float
) -> float | None:
    """Seconds to wait before looking at the file again, or None to reject it now.

    ``quiet_s`` is how long ago the service last saw the file change, on its own clock. A file whose
    head carries no known media signature (``looks_like_media`` False) never turns into a recording,
    however long it waits, so it is rejected at once.
    """
    if code not in INCOMPLETE_CODES or not looks_like_media:
        return None
    wait_s = incomplete_wait_s - quiet_s
    return wait_s if wait_s > 0 else None


def busy_wait_s(settle_s: float) -> float:
    """How long a file held open for writing waits before it is looked at again."""
    return max(BUSY_MIN_WAIT_S, settle_s)
