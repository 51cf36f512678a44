"""Media signatures at the head of a file, and signs at its tail that its transfer stopped.

Two questions the gate cannot answer from sizes and times alone:

- Is this media at all? :func:`media_kind` reads the container or stream signature from the first
  :data:`HEAD_BYTES`. Only a file with a known signature can be an upload still under way; anything
  else (text renamed ``.mp3``, random bytes, a PDF) is garbage and may fail at once.
- Did the transfer finish? :func:`tail_looks_cut` looks at the end of a recognized file for what a
  stopped transfer leaves behind: a last frame, page or box that does not fit in the file, a header
  stating more bytes than there are, a stream that lacks its closing marks, or zero bytes where a copy
  reserved the full size first (Windows/SMB copies set the end of file before writing) and then stalled.

Both are pure: they take bytes, or read through a ``read_at(offset, length)`` callback the caller
provides, and never read more than a few hundred KiB whatever the file size: the head, the last
:data:`TAIL_BYTES`, a few box or chunk headers, and for long zero tails a bisection in 4 KiB probes.

Modules: :mod:`~.signatures` (the head), :mod:`~.verdict` (the tail, and what each kind is judged by),
:mod:`~.zero_tails`, :mod:`~.frames` and :mod:`~.chains` (frame-based streams) with
:mod:`~.frame_checks`, :mod:`~.flac`, :mod:`~.mp4`, :mod:`~.chunks` and :mod:`~.streams` (containers),
:mod:`~.tags`, :mod:`~.source` (the windows read) and :mod:`~.binary`.
"""

from dropscribe.core.media.signatures import KINDS, head_looks_unwritten, media_kind
from dropscribe.core.media.source import HEAD_BYTES, TAIL_BYTES, ReadAt
from dropscribe.core.media.verdict import tail_looks_cut

__all__ = [
    "HEAD_BYTES",
    "KINDS",
    "TAIL_BYTES",
    "ReadAt",
    "head_looks_unwritten",
    "media_kind",
    "tail_looks_cut",
]
