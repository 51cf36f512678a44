"""The completeness gate: a file is taken only after it stayed the same for the folder's settle time."""

from __future__ import annotations

from dataclasses import dataclass

Fingerprint = tuple[int, int, int, int]  # dev, inode, size, mtime_ns


@dataclass(frozen=True)
class Observation:
    """The last fingerprint seen for a path, and since when it has not changed."""

    fingerprint: Fingerprint
    since: float


def observe(previous: Observation | None, fingerprint: Fingerprint, now: float) -> Observation:
    """Keep the old start time while nothing changes; any change of size, mtime or inode restarts it."""
    if previous is not None and previous.fingerprint == fingerprint:
        return previous
    return Observation(fingerprint, now)


def is_settled(observation: Observation, now: float, settle_s: float) -> bool:
    return now - observation.since >= settle_s


def result_key_material(
    sha256: str, *, model: str, language: str | None, enable_itn: bool, context_sha256: str | None,
    mode: str, chunk_max_s: float,
) -> str:  # fmt: skip
    """Everything that shapes what the API is asked, so equal keys mean an equal, reusable answer."""
    return "|".join(
        [sha256, model, language or "auto", "itn" if enable_itn else "noitn",
         context_sha256 or "-", mode, f"{chunk_max_s:g}"]
    )  # fmt: skip
