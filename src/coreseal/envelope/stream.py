"""Segment records: chunked AES-256-GCM over zstd. Knows nothing of headers.

A record is ``record_length (4) || AES-GCM(payload key, nonce, encoding ||
body)``; the nonce binds the segment index and the last-segment flag
(docs/format.md, "Segment records").
"""

import struct

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError, MalformedEnvelope, TruncatedEnvelope
from . import constants as c

_LEN = struct.Struct(">I")
_COUNT = struct.Struct(">I")
PROBE = 4096
RAW = bytes([c.ENCODING_RAW])
ZSTD = bytes([c.ENCODING_ZSTD])


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
        n = len(data)
        if n > self.segment_size:
            raise ValueError("segment larger than the segment size")
        if n and data == (self._zeros if n == self.segment_size else self._zeros[:n]):
            plain = bytes([c.ENCODING_ZEROS]) + _COUNT.pack(n)
        elif not n or self._looks_incompressible(data):
            plain = RAW + data
        else:
            packed = self._zstd.compress(data)
            if len(packed) < n:
                plain = ZSTD + packed
            else:
                plain = RAW + data
        sealed = self._aead.encrypt(nonce(index, last), plain, None)
        return _LEN.pack(len(sealed)) + sealed


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

    def read_record(self, f, index: int) -> bytes:
        head = _read_exact(f, c.RECORD_LENGTH_SIZE)
        if len(head) == 0:
            raise TruncatedEnvelope(f"truncated: segment {index} is missing")
        if len(head) < c.RECORD_LENGTH_SIZE:
            raise TruncatedEnvelope(f"truncated inside segment {index}")
        (length,) = _LEN.unpack(head)
        if not c.MIN_RECORD_LENGTH <= length <= self.max_record:
            raise IntegrityError(
                f"segment {index} has an impossible length (corrupted or tampered)"
            )
        body = _read_exact(f, length)
        if len(body) < length:
            raise TruncatedEnvelope(f"truncated inside segment {index}")
        return body

    def open(self, index: int, record: bytes, last: bool, expected: int):
        """Returns ``(encoding, data)``; for zeros, data is the zero count."""
        try:
            plain = self._aead.decrypt(nonce(index, last), record, None)
        except InvalidTag:
            raise IntegrityError(
                f"segment {index} failed authentication (corrupted or tampered)"
            ) from None
        encoding, body = plain[0], memoryview(plain)[1:]
        if encoding == c.ENCODING_ZEROS:
            if len(body) != _COUNT.size or _COUNT.unpack(body)[0] != expected:
                raise MalformedEnvelope(f"segment {index} has a wrong zero count")
            return encoding, expected
        if encoding == c.ENCODING_RAW:
            data = body  # a view of the decrypted bytes: no copy
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
