"""Where to cut long audio so every piece fits one sync request and no word is cut in half.

The audio adapter measures the RMS energy of the whole file in fixed windows; this module turns that
profile into contiguous spans. Each cut is searched for in the last third of the span that would end at
``chunk_max_s``: late enough that chunks stay long (fewer requests, more context per request), early
enough that there is room to find a pause. Within that stretch the longest run of quiet windows wins and
the cut goes in its middle, so a sentence break beats a short breath. When nothing there is clearly
quieter than the rest (music, a continuous hum), the cut is made at ``chunk_max_s`` exactly.

Energies are RMS values of samples scaled to full scale 1.0, one per window of ``window_s`` seconds,
window ``i`` covering ``[i * window_s, (i + 1) * window_s)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import overload

#: Share of the longest allowed span, at its end, searched for a pause.
SEARCH_FRACTION = 1.0 / 3.0

#: A window this quiet (about -60 dBFS) counts as silence whatever the rest of the file does, so the
#: faint noise a lossy codec leaves in digital silence does not split one pause into many.
SILENCE_FLOOR = 0.001

#: The quietest window must be at most this share of the stretch's median energy to count as a pause;
#: above it the stretch is one continuous sound and a hard cut loses nothing.
PAUSE_RATIO = 0.5

#: Windows within this factor of the quietest one belong to the same pause.
RUN_FACTOR = 2.0

#: A file whose chunk was refused for its length is planned once more with chunks this much shorter.
REPLAN_FACTOR = 0.5


def refused_for_length(remote_code: str, message: str) -> bool:
    """Whether the API refused a chunk for its size or duration: a shorter chunk would be taken.

    A payload over the request limit comes back as ``BadRequest.TooLarge`` (HTTP 413); audio over the
    model's duration limit as an ``InvalidParameter`` whose message speaks of the duration exceeded.
    """
    if remote_code == "BadRequest.TooLarge":
        return True
    text = message.lower()
    return (
        remote_code.startswith("InvalidParameter")
        and "duration" in text
        and any(word in text for word in ("exceed", "too long", "longer than"))
    )


def plan_chunks(
    energies: Sequence[float],
    window_s: float,
    duration_s: float,
    chunk_max_s: float,
    *,
    min_chunk_s: float = 10.0,
) -> list[tuple[float, float]]:
    """Split ``[0, duration_s]`` into contiguous ``(start_s, end_s)`` spans of at most ``chunk_max_s``.

    Args:
        energies: RMS energy per window, in file order; may be shorter or longer than the duration
            implies (windows outside the audio are ignored, missing ones are never cut in).
        window_s: Length of one energy window in seconds.
        duration_s: Length of the audio in seconds; the last span ends exactly here.
        chunk_max_s: Longest span allowed.
        min_chunk_s: A cut is placed, when the search stretch allows, so that neither the span it
            ends nor the remainder of the file is shorter than this.

    Returns:
        Spans in order; the first starts at 0.0, each starts where the previous ended. Empty when
        ``duration_s`` is 0.

    Raises:
        ValueError: On a non-positive window or maximum, or a negative duration or minimum.
    """
    _check(window_s, chunk_max_s, duration_s, min_chunk_s)
    return _rest(energies, window_s, 0.0, duration_s, chunk_max_s, min_chunk_s)


class ChunkPlanner:
    """The same plan as :func:`plan_chunks`, decided while the energies arrive.

    A cut is decided as soon as the energies reach ``chunk_max_s + min_chunk_s`` past the span's
    start: by then the file is known to go on beyond the span, so the decision cannot differ from the
    one made on the whole profile. Only the windows from the current span's start on are kept.

    ``start_s`` continues a plan whose spans up to there are already decided (after a restart); the
    energies are still fed from the file's beginning, and those before ``start_s`` are dropped.
    """

    def __init__(
        self, window_s: float, chunk_max_s: float, *, min_chunk_s: float = 10.0, start_s: float = 0.0
    ) -> None:
        _check(window_s, chunk_max_s, 0.0, min_chunk_s)
        if not start_s >= 0 or not math.isfinite(start_s):
            raise ValueError(f"start_s must be zero or positive, got {start_s!r}")
        self.window_s = window_s
        self.chunk_max_s = chunk_max_s
        self.min_chunk_s = min_chunk_s
        self.start_s = start_s
        self._base = 0  # global index of self._kept[0]
        self._kept: list[float] = []

    def feed(self, energies: Iterable[float]) -> list[tuple[float, float]]:
        """Take the next windows; the spans that became certain with them, in order."""
        self._kept.extend(energies)
        spans: list[tuple[float, float]] = []
        while (
            self._base + len(self._kept)
        ) * self.window_s > self.start_s + self.chunk_max_s + self.min_chunk_s:
            seen_s = (self._base + len(self._kept)) * self.window_s
            view = _Shifted(self._kept, self._base)
            cut = _choose_cut(view, self.window_s, self.start_s, seen_s, self.chunk_max_s, self.min_chunk_s)
            spans.append((self.start_s, cut))
            self.start_s = cut
            self._drop_before(cut)
        self._drop_before(self.start_s)
        return spans

    def finish(self, duration_s: float) -> list[tuple[float, float]]:
        """The remaining spans once the audio is known to end at ``duration_s``."""
        if not duration_s >= 0 or not math.isfinite(duration_s):
            raise ValueError(f"duration_s must be zero or positive, got {duration_s!r}")
        view = _Shifted(self._kept, self._base)
        spans = _rest(view, self.window_s, self.start_s, duration_s, self.chunk_max_s, self.min_chunk_s)
        if spans:
            self.start_s = spans[-1][1]
        self._drop_before(self.start_s)
        return spans

    def _drop_before(self, at_s: float) -> None:
        first = min(math.floor(at_s / self.window_s), self._base + len(self._kept))
        if first > self._base:
            del self._kept[: first - self._base]
            self._base = first


class _Shifted(Sequence[float]):
    """Windows ``base..`` of a profile whose earlier windows were dropped; earlier ones read as loud."""

    def __init__(self, kept: list[float], base: int) -> None:
        self._kept = kept
        self._base = base

    def __len__(self) -> int:
        return self._base + len(self._kept)

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        if isinstance(index, slice):
            raise TypeError("slices are not supported")
        if index < self._base:
            return math.inf
        return self._kept[index - self._base]


def _check(window_s: float, chunk_max_s: float, duration_s: float, min_chunk_s: float) -> None:
    if not window_s > 0 or not math.isfinite(window_s):
        raise ValueError(f"window_s must be a positive number, got {window_s!r}")
    if not chunk_max_s > 0 or not math.isfinite(chunk_max_s):
        raise ValueError(f"chunk_max_s must be a positive number, got {chunk_max_s!r}")
    if not duration_s >= 0 or not math.isfinite(duration_s):
        raise ValueError(f"duration_s must be zero or positive, got {duration_s!r}")
    if not min_chunk_s >= 0:
        raise ValueError(f"min_chunk_s must be zero or positive, got {min_chunk_s!r}")


def _rest(
    energies: Sequence[float], window_s: float, start: float, duration_s: float,
    chunk_max_s: float, min_chunk_s: float,
) -> list[tuple[float, float]]:  # fmt: skip
    spans: list[tuple[float, float]] = []
    while duration_s - start > chunk_max_s:
        cut = _choose_cut(energies, window_s, start, duration_s, chunk_max_s, min_chunk_s)
        spans.append((start, cut))
        start = cut
    if duration_s > start:
        spans.append((start, duration_s))
    return spans


def _choose_cut(
    energies: Sequence[float],
    window_s: float,
    start: float,
    duration_s: float,
    chunk_max_s: float,
    min_chunk_s: float,
) -> float:
    limit = start + chunk_max_s
    lo = start + max(chunk_max_s * (1.0 - SEARCH_FRACTION), min(min_chunk_s, chunk_max_s))
    hi = min(limit, duration_s - min_chunk_s)
    if hi <= lo:
        # The remainder will be short whatever we do; a short last chunk beats a long search.
        hi = limit
    if hi <= lo:
        return limit

    first = math.ceil(lo / window_s)
    last = min(math.floor(hi / window_s), len(energies))  # exclusive: window `last - 1` ends <= hi
    if last <= first:
        return limit
    stretch = [float(energies[i]) for i in range(first, last)]

    quietest = min(stretch)
    if quietest > SILENCE_FLOOR and quietest > PAUSE_RATIO * _median(stretch):
        return limit

    level = max(quietest * RUN_FACTOR, SILENCE_FLOOR)
    best_len = 0
    best_at = 0
    run_len = 0
    for offset, energy in enumerate(stretch):
        run_len = run_len + 1 if energy <= level else 0
        # `>=`: among equally long pauses the later one gives the longer chunk.
        if run_len and run_len >= best_len:
            best_len = run_len
            best_at = offset - run_len + 1
    middle = (first + best_at + best_len / 2.0) * window_s
    return min(max(middle, lo), hi)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0
