"""ISO base media files (MP4, M4A, MOV, 3GP): how their box chain announces them at the head, and
whether it runs whole to the end of the file with a ``moov`` box in it."""

from __future__ import annotations

from dropscribe.core.media.binary import fourcc_ok, looks_like_text, u32be
from dropscribe.core.media.source import HEAD_BYTES, MAX_HEADERS, Source
from dropscribe.core.media.zero_tails import compressed_zero_tail, pcm_zero_tail

_TOP_BOXES = frozenset({
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"meta", b"moof", b"mfra",
    b"pdin", b"sidx", b"styp", b"prft", b"emsg",
})  # fmt: skip
_MOOV_CHILDREN = frozenset({b"mvhd", b"cmov", b"trak", b"udta", b"meta", b"iods", b"prfl"})
_PCM_SAMPLE_ENTRIES = frozenset({
    b"lpcm", b"sowt", b"twos", b"in24", b"in32", b"fl32", b"fl64", b"raw ", b"NONE", b"ipcm", b"fpcm",
})  # fmt: skip


def is_bmff(data: bytes, pos: int) -> bool:
    """An ISO base media file at ``pos``: ``ftyp`` first, or a first box that nests right."""
    if len(data) < pos + 8:
        return False
    size, kind = u32be(data, pos), data[pos + 4 : pos + 8]
    if kind == b"ftyp":
        return 16 <= size <= 4096 and fourcc_ok(data[pos + 8 : pos + 12])
    if kind not in (b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"):
        return False
    if size == 0:
        return kind == b"mdat"
    if size == 1:
        if len(data) < pos + 16:
            return False
        size = int.from_bytes(data[pos + 8 : pos + 16], "big")
    if size < 8:
        return False
    if kind == b"moov":
        return data[pos + 12 : pos + 16] in _MOOV_CHILDREN
    following = data[pos + size + 4 : pos + size + 8]
    if len(following) == 4:
        return following in _TOP_BOXES
    # Text can spell "mdat" at offset 4 too ("The mdat box..."); media data is not text.
    return kind == b"mdat" and not looks_like_text(data[pos + 8 : pos + 72])


def check_mp4(src: Source) -> str | None:
    """The top-level boxes chain exactly to the end and a ``moov`` exists; then the zero tail rule of
    what the file holds at its end (compressed media data, or PCM)."""
    offset, last, moov, fragments = 0, b"", None, False
    for _ in range(MAX_HEADERS):
        if offset >= src.size:
            break
        header = src.at(offset, 16)
        if len(header) < 8:
            return f"the file ends inside an MP4 box header at offset {offset}"
        if not header[:8].strip(b"\x00"):
            return f"zero bytes where an MP4 box should start, at offset {offset}"
        size, kind = u32be(header, 0), header[4:8]
        if not fourcc_ok(kind):
            return None  # something else follows the boxes: not a sign of a stopped transfer
        if size == 1:
            if len(header) < 16:
                return f"the file ends inside an MP4 box header at offset {offset}"
            size = int.from_bytes(header[8:16], "big")
        elif size == 0:
            size = src.size - offset
        if size < 8:
            return None
        if offset + size > src.size:
            name, present = kind.decode("latin-1"), src.size - offset
            return f"the MP4 '{name}' box at offset {offset} states {size} bytes, {present} are there"
        if kind == b"moov":
            moov = (offset, size)
        fragments = fragments or kind == b"moof"
        last, offset = kind, offset + size
    else:
        return pcm_zero_tail(src)
    if moov is None and not fragments:
        return "there is no 'moov' box: the recording was never finalized"
    if last == b"mdat" and not _holds_pcm(src, moov):
        return compressed_zero_tail(src)
    return pcm_zero_tail(src)


def _holds_pcm(src: Source, moov: tuple[int, int] | None) -> bool:
    if moov is None:
        return True
    box = src.at(moov[0], min(moov[1], HEAD_BYTES))
    pos = box.find(b"stsd")
    while pos >= 0:
        if box[pos + 16 : pos + 20] in _PCM_SAMPLE_ENTRIES:
            return True
        pos = box.find(b"stsd", pos + 4)
    return False
