"""The C library's memory allocator, asked to give large blocks back to the system when they are freed.

Each request of a long recording carries a chunk of a few megabytes as base64 text, so four workers
allocate and free blocks of that size all day. glibc serves such blocks with ``mmap`` (returned at
``free``) until it sees one freed; then it raises its mmap threshold to that size, and from there on the
blocks come from the heaps of the worker threads, which keep what they once held. Fixing the threshold
keeps large blocks mapped: on a 3-hour recording the service's peak went from idle + 82 MiB to
idle + 55 MiB (``bench/RESULTS.md``). Python has no binding for ``mallopt`` or ``malloc_trim``, hence
``ctypes``; where the C library is not glibc both calls do nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
LARGE_BLOCK_BYTES = 1 << 20
# glibc's own way to set the threshold: an operator who set it keeps their value
ENV_OVERRIDE = "MALLOC_MMAP_THRESHOLD_"


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def map_large_blocks(threshold_bytes: int = LARGE_BLOCK_BYTES) -> bool:
    """Serve blocks of ``threshold_bytes`` and more with their own mapping, returned when freed.

    True once set; False where glibc is not there or the environment already sets the threshold.
    """
    libc = _libc()
    if libc is None or ENV_OVERRIDE in os.environ or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes))


def return_freed_memory() -> None:
    """Hand back to the system what the heaps hold free (``malloc_trim``)."""
    libc = _libc()
    with contextlib.suppress(AttributeError):
        if libc is not None:
            libc.malloc_trim(0)
