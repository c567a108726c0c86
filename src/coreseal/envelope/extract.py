"""Writing a dump's plaintext out: the plain prefix first, then segments,
seeking over zero segments when the output is a regular file."""

from . import constants as c
from .describe import read_header_hinting
from .opener import KeyLookup, Unlocked, check_prefix, segments, unlock
from .pipeline import default_threads

_ZEROS = bytes(1 << 20)


def open_envelope(f, offset: int, lookup: KeyLookup) -> Unlocked:
    header, raw = read_header_hinting(f, offset)
    return unlock(header, raw, lookup)


def extract_stream(
    f, unlocked: Unlocked, offset: int, out, sparse: bool, threads: int = 1
) -> int:
    """Writes the plaintext to ``out``; returns the bytes written. With
    ``sparse``, ``out`` must be a seekable file and zero segments become
    holes. The caller discards ``out`` if this raises. One thread by
    default: on two cores the disk write is the limit, and a second thread
    measured no faster (bench notes in docs/limitations.md); 0 means one per
    core."""
    check_prefix(f, unlocked, offset, out)
    hole = 0
    total = unlocked.header.prefix_length
    for encoding, data in segments(f, unlocked, threads or default_threads()):
        if encoding == c.ENCODING_ZEROS:
            if sparse:
                hole += data
            else:
                _write_zeros(out, data)
            total += data
            continue
        if hole:
            out.seek(hole, 1)
            hole = 0
        out.write(data)
        total += len(data)
    if sparse:
        out.truncate(total)
        out.seek(total)
    return total


def _write_zeros(out, n: int) -> None:
    while n:
        step = min(n, len(_ZEROS))
        out.write(_ZEROS[:step])
        n -= step
