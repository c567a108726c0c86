"""Moving a sealed dump to other wrapping keys.

Shallow (rewrap): the data key is unwrapped and wrapped again; the header is
signed anew and the prefix and payload are copied byte for byte, never
decrypted, so the cost does not grow with what the dump holds. Deep
(re-encrypt): a new data key, every segment opened and sealed again in
memory; afterwards the old wrapping key opens nothing.
"""

import io
import os
from collections.abc import Sequence
from dataclasses import replace

from ..wrapkey import WrappingKey
from . import constants as c
from . import format as fmt
from .opener import Unlocked, _chunks, check_prefix, segments
from .seal import SealResult, make_key_entries, seal_stream, sign


def rewrapped_header(unlocked: Unlocked, keys: Sequence[WrappingKey]) -> bytes:
    """The header with new key entries for ``keys``, signed under the same
    data key: all a shallow rewrap changes."""
    new = replace(unlocked.header, keys=make_key_entries(unlocked.data_key, keys))
    return sign(new, unlocked.data_key)


def rewrap(
    f, unlocked: Unlocked, offset: int, keys: Sequence[WrappingKey], dst
) -> fmt.Header:
    """Writes ``f`` to ``dst`` with new key entries for ``keys``; ``f`` is
    the sealed file, read as bytes only."""
    signed = rewrapped_header(unlocked, keys)
    _copy_range(f, dst, 0, offset)
    dst.write(signed)
    start = offset + len(unlocked.raw)
    _copy_range(f, dst, start, os.fstat(f.fileno()).st_size - start)
    return fmt.parse(signed)


def _copy_range(f, dst, start: int, length: int) -> None:
    """Copies bytes in the kernel where it can (copy_file_range), so the
    payload does not pass through this process."""
    dst.flush()
    src_fd, dst_fd = f.fileno(), dst.fileno()
    pos, out = start, dst.tell()
    while length > 0:
        try:
            n = os.copy_file_range(src_fd, dst_fd, length, pos, out)
        except OSError:
            n = 0
        if n == 0:
            break
        pos, out, length = pos + n, out + n, length - n
    dst.seek(out)
    f.seek(pos)
    while length > 0:
        chunk = f.read(min(length, 1 << 20))
        if not chunk:
            raise OSError("the file shrank while it was copied")
        dst.write(chunk)
        length -= len(chunk)


class _Plaintext(io.RawIOBase):
    """The dump's bytes (plain prefix, then payload) as a stream, decrypted a
    segment at a time in memory; nothing of it is written anywhere."""

    def __init__(self, f, unlocked: Unlocked, offset: int):
        self._chunks = self._generate(f, unlocked, offset)
        self._buf = memoryview(b"")

    @staticmethod
    def _generate(f, unlocked, offset):
        check_prefix(f, unlocked, offset)
        start = f.tell()
        yield from _chunks(f, offset)
        f.seek(start)
        for encoding, data in segments(f, unlocked):
            yield bytes(data) if encoding == c.ENCODING_ZEROS else data

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def reencrypt(
    f,
    unlocked: Unlocked,
    offset: int,
    keys: Sequence[WrappingKey],
    dst,
    threads: int = 0,
) -> SealResult:
    h = unlocked.header
    return seal_stream(
        _Plaintext(f, unlocked, offset),
        dst,
        keys,
        dump_type=h.dump_type,
        metadata=h.metadata,
        prefix_length=offset,
        segment_shift=h.segment_shift,
        threads=threads,
        original_size=h.original_size,
    )
