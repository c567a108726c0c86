"""Segment records: chunked AES-256-GCM over zstd. Knows nothing of headers.

A record is ``record_length (4) || AES-GCM(payload key, nonce, encoding ||
body)``; the nonce binds the segment index and the last-segment flag
(docs/format.md, "Segment records").
"""

import ctypes
import mmap
import os
import struct

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError, MalformedEnvelope, TruncatedEnvelope
from . import constants as c

_LEN = struct.Struct(">I")
_COUNT = struct.Struct(">I")
PROBE = 4096
_BODY = 64


def nonce(index: int, last: bool) -> bytes:
    if index >= 1 << 64:
        raise ValueError("segment index out of range")
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class SegmentSealer:
    """Turns plaintext segments into records. One per thread: zstd contexts
    are not shareable."""

    def __init__(self, payload_key: bytes, segment_size: int, level: int = 3):
        self._aead = AESGCM(payload_key)
        self._zstd = zstandard.ZstdCompressor(level=level, write_content_size=True)
        self._probe = zstandard.ZstdCompressor(level=1, write_content_size=False)
        self._zeros = bytes(segment_size)
        self._plain = bytearray(1 + segment_size)
        self.segment_size = segment_size

    def _looks_incompressible(self, data) -> bool:
        """Compresses three 4 KiB samples at level 1: random bytes, or data
        already compressed or encrypted, do not shrink, and compressing the
        whole segment would be time spent for nothing."""
        n = len(data)
        if n < 16 * PROBE:
            return False
        mid = n // 2
        sample = b"".join((data[:PROBE], data[mid : mid + PROBE], data[n - PROBE :]))
        return len(self._probe.compress(sample)) > 0.97 * len(sample)

    def seal(self, index: int, data, last: bool) -> bytes:
        out = bytearray(c.RECORD_LENGTH_SIZE + self.segment_size + c.RECORD_OVERHEAD)
        n = len(data)
        length = self.seal_into(index, data, 0, n, last, out)
        return bytes(memoryview(out)[:length])

    def seal_into(self, index: int, buf, at: int, n: int, last: bool, out) -> int:
        """Seals the segment ``buf[at:at + n]`` into ``out`` (room for a full
        segment's record); returns the record's length. With ``at`` > 0 the
        byte before the segment is scratch, and a raw segment is encrypted
        in place of a copy. Buffers are reused: a fresh 1 MiB allocation
        per segment costs page faults that are dear in a VM."""
        if n > self.segment_size:
            raise ValueError("segment larger than the segment size")
        view = memoryview(buf)
        data = view[at : at + n]
        plain = self._plain
        if n and self._all_zero(buf, at, data):
            plain[0] = c.ENCODING_ZEROS
            _COUNT.pack_into(plain, 1, n)
            src = memoryview(plain)[: 1 + _COUNT.size]
        else:
            packed = None
            if n and not self._looks_incompressible(data):
                packed = self._zstd.compress(data)
                if len(packed) >= n:
                    packed = None
            if packed is not None:
                plain[0] = c.ENCODING_ZSTD
                plain[1 : 1 + len(packed)] = packed
                src = memoryview(plain)[: 1 + len(packed)]
            elif at:
                view[at - 1] = c.ENCODING_RAW
                src = view[at - 1 : at + n]
            else:
                plain[0] = c.ENCODING_RAW
                plain[1 : 1 + n] = data
                src = memoryview(plain)[: 1 + n]
        length = len(src) + c.TAG_LENGTH
        _LEN.pack_into(out, 0, length)
        end = c.RECORD_LENGTH_SIZE + length
        self._aead.encrypt_into(
            nonce(index, last), src, None, memoryview(out)[c.RECORD_LENGTH_SIZE : end]
        )
        return end

    def _all_zero(self, buf, at: int, data: memoryview) -> bool:
        n = len(data)
        head = min(n, 64)
        if data[:head] != self._zeros[:head]:
            return False  # most segments: a short look is enough
        try:
            where = ctypes.addressof(ctypes.c_char.from_buffer(buf, at))
        except TypeError:  # read-only bytes: compare a copy
            return data.tobytes() == self._zeros[:n]
        # libc's memcmp on the buffer where it lies (the GIL released): a
        # copy to compare as bytes cost more than the compare itself.
        return _memcmp(where, self._zeros, n) == 0


_memcmp = ctypes.CDLL(None).memcmp
_memcmp.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)
_memcmp.restype = ctypes.c_int


class SegmentOpener:
    """Reads records from a stream and returns their plaintext.

    ``expected`` is the plaintext length of the segment being opened; the
    caller knows it from the authenticated dump size.
    """

    def __init__(self, payload_key: bytes, segment_size: int):
        self._aead = AESGCM(payload_key)
        self._zstd = zstandard.ZstdDecompressor()
        self.segment_size = segment_size
        self.max_record = segment_size + c.RECORD_OVERHEAD
        self._plain = None

    def records(self, f) -> "RecordReader":
        return RecordReader(f, self.max_record)

    def open(self, index: int, record, last: bool, expected: int):
        """Returns ``(encoding, data)``; for zeros, data is the zero count."""
        try:
            plain = self._aead.decrypt(nonce(index, last), record, None)
        except InvalidTag:
            raise _tampered(index) from None
        return self._decode(index, memoryview(plain), expected)

    def open_into(self, index: int, record, last: bool, expected: int):
        """Like ``open``, but a raw segment comes back as a view of a buffer
        that the next call reuses."""
        if self._plain is None:
            self._plain = aligned(_BODY + self.max_record)
        # The body (after the encoding byte) starts on a 64-byte line, so
        # that the kernel copies it out at full speed.
        start = _BODY - 1
        out = memoryview(self._plain)[start : start + len(record) - c.TAG_LENGTH]
        try:
            self._aead.decrypt_into(nonce(index, last), record, None, out)
        except InvalidTag:
            raise _tampered(index) from None
        return self._decode(index, out, expected)

    def _decode(self, index: int, plain: memoryview, expected: int):
        encoding, body = plain[0], plain[1:]
        if encoding == c.ENCODING_ZEROS:
            if len(body) != _COUNT.size or _COUNT.unpack(body)[0] != expected:
                raise MalformedEnvelope(f"segment {index} has a wrong zero count")
            return encoding, expected
        if encoding == c.ENCODING_RAW:
            data = body
        elif encoding == c.ENCODING_ZSTD:
            data = self._decompress(index, body, expected)
        else:
            raise MalformedEnvelope(f"segment {index} has unknown encoding {encoding}")
        if len(data) != expected:
            raise MalformedEnvelope(f"segment {index} has the wrong length")
        return encoding, data

    def _decompress(self, index: int, body, expected: int) -> bytes:
        try:
            size = zstandard.frame_content_size(body)
        except zstandard.ZstdError:
            size = -1
        if size != expected:
            raise MalformedEnvelope(f"segment {index}: zstd frame of the wrong size")
        try:
            return self._zstd.decompress(body, max_output_size=expected)
        except zstandard.ZstdError:
            raise MalformedEnvelope(f"segment {index}: bad zstd frame") from None


def _tampered(index: int) -> IntegrityError:
    return IntegrityError(
        f"segment {index} failed authentication (corrupted or tampered)"
    )


def aligned(n: int) -> mmap.mmap:
    """A page-aligned buffer. The kernel copies into a destination that is
    not 32-byte aligned about 5 times slower here: reading a cached 1.5 GiB
    core took 0.65 s into bytearrays (whose data sits 16 bytes past a line),
    0.14 s into these (bench notes in docs/limitations.md)."""
    return mmap.mmap(-1, n)


class RecordReader:
    """Reads records one after the other into one reused, aligned buffer;
    positional reads on the file descriptor where there is one, so the
    kernel copies straight to an aligned address. ``done()`` leaves ``f``
    just after the last record read."""

    def __init__(self, f, max_record: int):
        self._f, self.max_record = f, max_record
        self._buf = aligned(max_record)
        try:
            self._fd, self._pos = f.fileno(), f.tell()
        except (OSError, ValueError, AttributeError):
            self._fd = None

    def _fill(self, view) -> int:
        if self._fd is None:
            return read_full(self._f, view)
        got = 0
        while got < len(view):
            n = os.preadv(self._fd, [view[got:]], self._pos + got)
            if not n:
                break
            got += n
        self._pos += got
        return got

    def read(self, index: int) -> memoryview:
        head = bytearray(c.RECORD_LENGTH_SIZE)
        got = self._fill(memoryview(head))
        if got == 0:
            raise TruncatedEnvelope(f"truncated: segment {index} is missing")
        if got < c.RECORD_LENGTH_SIZE:
            raise TruncatedEnvelope(f"truncated inside segment {index}")
        (length,) = _LEN.unpack(head)
        if not c.MIN_RECORD_LENGTH <= length <= self.max_record:
            raise IntegrityError(
                f"segment {index} has an impossible length (corrupted or tampered)"
            )
        view = memoryview(self._buf)[:length]
        if self._fill(view) < length:
            raise TruncatedEnvelope(f"truncated inside segment {index}")
        return view

    def done(self) -> None:
        if self._fd is not None:
            self._f.seek(self._pos)


def _read_exact(f, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def read_full(f, buf) -> int:
    """Fills ``buf`` (a bytearray or a view of one) from a file or pipe;
    returns how many bytes came (short only at end of input)."""
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got
